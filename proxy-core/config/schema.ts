// A small schema language: each node both validates a parsed document (collecting every problem
// with its path) and describes itself as JSON Schema, so `mesh.schema.json` and the validator come
// from one source and cannot drift apart. Hand-written instead of a library to keep the Lambda
// bundle small (see the cold-start budget in DESIGN).
import { parseDuration } from './duration.ts'

export type ConfigPath = readonly (string | number)[]
export interface Problem {
  path: ConfigPath
  message: string
  /** Point at the key itself rather than its value (unknown keys). */
  atKey?: boolean
}

export interface Schema<T> {
  /**
   * Returns the value, or undefined after pushing problems. Containers return what they could read
   * even when parts are wrong (bad members left out, bad list items as holes), so that later checks
   * (references between services and targets) still run and every problem is reported at once.
   */
  check(value: unknown, path: ConfigPath, problems: Problem[]): T | undefined
  jsonSchema(): Record<string, unknown>
  /** Accepts undefined as "absent" (used by object shapes). */
  readonly optional?: boolean
  readonly description?: string
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  if (typeof value === 'string') return JSON.stringify(value)
  return String(value)
}

function withDescription(schema: Record<string, unknown>, description?: string): Record<string, unknown> {
  return description ? { description, ...schema } : schema
}

export function optional<T>(inner: Schema<T>): Schema<T> & { readonly optional: true } {
  return { ...inner, optional: true }
}

export function string(
  opts: { pattern?: RegExp; hint?: string; enum?: readonly string[]; description?: string } = {},
): Schema<string> {
  return {
    description: opts.description,
    check(value, path, problems) {
      if (typeof value !== 'string') {
        problems.push({ path, message: `expected ${opts.hint ?? 'a string'}, got ${describe(value)}` })
        return undefined
      }
      if (opts.enum && !opts.enum.includes(value)) {
        problems.push({ path, message: `expected one of ${opts.enum.join(', ')}, got ${describe(value)}` })
        return undefined
      }
      if (opts.pattern && !opts.pattern.test(value)) {
        problems.push({
          path,
          message: `expected ${opts.hint ?? `a string matching ${opts.pattern.source}`}, got ${describe(value)}`,
        })
        return undefined
      }
      return value
    },
    jsonSchema: () =>
      withDescription(
        opts.enum
          ? { type: 'string', enum: [...opts.enum] }
          : opts.pattern
            ? { type: 'string', pattern: opts.pattern.source }
            : { type: 'string' },
        opts.description,
      ),
  }
}

export function number(
  opts: { min?: number; max?: number; integer?: boolean; hint?: string; description?: string } = {},
): Schema<number> {
  const hint =
    opts.hint ??
    `${opts.integer ? 'a whole number' : 'a number'}${opts.min !== undefined && opts.max !== undefined ? ` from ${opts.min} to ${opts.max}` : opts.min !== undefined ? ` of at least ${opts.min}` : ''}`
  return {
    description: opts.description,
    check(value, path, problems) {
      const ok =
        typeof value === 'number' &&
        Number.isFinite(value) &&
        (!opts.integer || Number.isInteger(value)) &&
        (opts.min === undefined || value >= opts.min) &&
        (opts.max === undefined || value <= opts.max)
      if (!ok) {
        problems.push({ path, message: `expected ${hint}, got ${describe(value)}` })
        return undefined
      }
      return value as number
    },
    jsonSchema: () =>
      withDescription(
        {
          type: opts.integer ? 'integer' : 'number',
          ...(opts.min !== undefined ? { minimum: opts.min } : {}),
          ...(opts.max !== undefined ? { maximum: opts.max } : {}),
        },
        opts.description,
      ),
  }
}

export const percent = (description?: string): Schema<number> =>
  number({ min: 0, max: 100, hint: 'a percentage from 0 to 100', description })

export function boolean(description?: string): Schema<boolean> {
  return {
    description,
    check(value, path, problems) {
      if (typeof value !== 'boolean') {
        problems.push({ path, message: `expected true or false, got ${describe(value)}` })
        return undefined
      }
      return value
    },
    jsonSchema: () => withDescription({ type: 'boolean' }, description),
  }
}

const DURATION_PATTERN = '^\\d+(\\.\\d+)?(ms|s|m|h)$'
/** A duration string, returned in milliseconds. */
export function duration(description?: string): Schema<number> {
  return {
    description,
    check(value, path, problems) {
      const ms = typeof value === 'string' ? parseDuration(value) : undefined
      if (ms === undefined) {
        problems.push({ path, message: `expected a duration like 250ms, 2s or 1m, got ${describe(value)}` })
      }
      return ms
    },
    jsonSchema: () => withDescription({ type: 'string', pattern: DURATION_PATTERN }, description),
  }
}

/** A regular expression that must compile; matched against the whole value. */
export function regex(description?: string): Schema<string> {
  return {
    description,
    check(value, path, problems) {
      if (typeof value !== 'string') {
        problems.push({ path, message: `expected a regular expression, got ${describe(value)}` })
        return undefined
      }
      try {
        new RegExp(value)
      } catch (e) {
        problems.push({ path, message: `invalid regular expression: ${(e as Error).message}` })
        return undefined
      }
      return value
    },
    jsonSchema: () => withDescription({ type: 'string', format: 'regex' }, description),
  }
}

export function list<T>(
  item: Schema<T>,
  opts: { minItems?: number; description?: string } = {},
): Schema<T[]> {
  return {
    description: opts.description,
    check(value, path, problems) {
      if (!Array.isArray(value)) {
        problems.push({ path, message: `expected a list, got ${describe(value)}` })
        return undefined
      }
      if (opts.minItems !== undefined && value.length < opts.minItems) {
        problems.push({ path, message: `expected at least ${opts.minItems} item(s)` })
        return undefined
      }
      return value.map((v, i) => item.check(v, [...path, i], problems)) as T[]
    },
    jsonSchema: () =>
      withDescription(
        { type: 'array', items: item.jsonSchema(), ...(opts.minItems ? { minItems: opts.minItems } : {}) },
        opts.description,
      ),
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

type Shape = Record<string, Schema<unknown>>
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K]['optional'] extends true ? K : never }[keyof S]
export type Infer<S> = S extends Schema<infer T> ? T : never
export type ObjectOf<S extends Shape> = {
  [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]>
} & { [K in OptionalKeys<S>]?: Infer<S[K]> }

/** A mapping with known keys; unknown keys are errors (they are almost always typos). */
export function object<S extends Shape>(
  shape: S,
  opts: {
    exactlyOne?: readonly (keyof S & string)[]
    atMostOne?: readonly (keyof S & string)[]
    description?: string
  } = {},
): Schema<ObjectOf<S>> {
  const known = Object.keys(shape)
  return {
    description: opts.description,
    check(value, path, problems) {
      if (!isMapping(value)) {
        problems.push({
          path,
          message: `expected a mapping with keys ${known.join(', ')}, got ${describe(value)}`,
        })
        return undefined
      }
      const out: Record<string, unknown> = {}
      for (const key of Object.keys(value)) {
        if (!(key in shape)) {
          problems.push({
            path: [...path, key],
            message: `unknown key (expected one of ${known.join(', ')})`,
            atKey: true,
          })
        }
      }
      for (const key of known) {
        const schema = shape[key]!
        const v = value[key]
        if (v === undefined || v === null) {
          if (!schema.optional) problems.push({ path, message: `missing required key "${key}"` })
          continue
        }
        const r = schema.check(v, [...path, key], problems)
        if (r !== undefined) out[key] = r
      }
      for (const [rule, group] of [
        ['exactly one', opts.exactlyOne],
        ['at most one', opts.atMostOne],
      ] as const) {
        if (!group) continue
        const present = group.filter((k) => value[k] !== undefined && value[k] !== null)
        if ((rule === 'exactly one' && present.length !== 1) || present.length > 1) {
          problems.push({
            path,
            message: `expected ${rule} of ${group.join(', ')}, got ${present.length ? present.join(', ') : 'none'}`,
          })
        }
      }
      return out as ObjectOf<S>
    },
    jsonSchema: () => {
      const properties: Record<string, unknown> = {}
      for (const key of known) properties[key] = shape[key]!.jsonSchema()
      const required = known.filter((k) => !shape[k]!.optional)
      const schema: Record<string, unknown> = {
        type: 'object',
        properties,
        additionalProperties: false,
        ...(required.length ? { required } : {}),
      }
      if (opts.exactlyOne) schema.oneOf = opts.exactlyOne.map((k) => ({ required: [k] }))
      if (opts.atMostOne) schema.not = { anyOf: pairs(opts.atMostOne).map((p) => ({ required: p })) }
      return withDescription(schema, opts.description)
    },
  }
}

function pairs(keys: readonly string[]): string[][] {
  const out: string[][] = []
  for (let i = 0; i < keys.length; i++)
    for (let j = i + 1; j < keys.length; j++) out.push([keys[i]!, keys[j]!])
  return out
}

/** A mapping from user-chosen names to values of one schema. */
export function record<T>(
  value: Schema<T>,
  opts: { key?: RegExp; keyHint?: string; minProperties?: number; description?: string } = {},
): Schema<Record<string, T>> {
  return {
    description: opts.description,
    check(input, path, problems) {
      if (!isMapping(input)) {
        problems.push({ path, message: `expected a mapping, got ${describe(input)}` })
        return undefined
      }
      const keys = Object.keys(input)
      if (opts.minProperties !== undefined && keys.length < opts.minProperties) {
        problems.push({
          path,
          message: `expected at least ${opts.minProperties} entr${opts.minProperties === 1 ? 'y' : 'ies'}`,
        })
        return undefined
      }
      const out: Record<string, T> = {}
      for (const key of keys) {
        if (opts.key && !opts.key.test(key)) {
          problems.push({
            path: [...path, key],
            message: `invalid name "${key}": expected ${opts.keyHint ?? opts.key.source}`,
            atKey: true,
          })
          continue
        }
        const r = value.check(input[key], [...path, key], problems)
        if (r !== undefined) out[key] = r
      }
      return out
    },
    jsonSchema: () =>
      withDescription(
        {
          type: 'object',
          additionalProperties: value.jsonSchema(),
          ...(opts.key ? { propertyNames: { pattern: opts.key.source } } : {}),
          ...(opts.minProperties ? { minProperties: opts.minProperties } : {}),
        },
        opts.description,
      ),
  }
}

/**
 * Either form, chosen by the value's JSON type (`to: v2` or `to: {v1: 90, v2: 10}`): the problems
 * reported are those of the form the user evidently meant, not of every alternative.
 */
export function either<A, B>(
  whenString: Schema<A>,
  otherwise: Schema<B>,
  description?: string,
): Schema<A | B> {
  return {
    description,
    check(value, path, problems) {
      if (typeof value === 'string') return whenString.check(value, path, problems)
      if (description && (typeof value !== 'object' || value === null)) {
        // Neither form: name both rather than only the second.
        problems.push({ path, message: `expected ${description}, got ${describe(value)}` })
        return undefined
      }
      return otherwise.check(value, path, problems)
    },
    jsonSchema: () =>
      withDescription({ anyOf: [whenString.jsonSchema(), otherwise.jsonSchema()] }, description),
  }
}

/** A constant, e.g. `version: 1`. */
export function literal<T extends string | number>(expected: T, description?: string): Schema<T> {
  return {
    description,
    check(value, path, problems) {
      if (value !== expected) {
        problems.push({ path, message: `expected ${JSON.stringify(expected)}, got ${describe(value)}` })
        return undefined
      }
      return expected
    },
    jsonSchema: () => withDescription({ const: expected }, description),
  }
}
