// mesh.schema.json as AppConfig can run it. AppConfig's JSON_SCHEMA validators speak JSON Schema
// Draft 4 and hold at most 32 768 characters; the shipped schema is Draft 2020-12 and pretty-printed
// (34 KB). This renders the same constraints in Draft 4, minified:
//   const: X                              → enum: [X]
//   propertyNames: {pattern: P} + additionalProperties: S (no properties)
//                                         → patternProperties: {P: S}, additionalProperties: false
// Any other post-Draft-4 keyword is an error here, so a schema change cannot silently weaken the
// validator that AppConfig runs.
import { readPackageJson } from '../package-info.ts'

const DRAFT_4 = 'http://json-schema.org/draft-04/schema#'
/** The longest validator Content AppConfig accepts. */
export const MAX_VALIDATOR_CHARS = 32_768
const UNCONVERTIBLE = [
  'if',
  'then',
  'else',
  'contains',
  '$defs',
  'dependentRequired',
  'dependentSchemas',
  'prefixItems',
  'unevaluatedProperties',
  'unevaluatedItems',
  '$dynamicRef',
  '$anchor',
]

export function toDraft4(schema: unknown, path = '#'): unknown {
  if (Array.isArray(schema)) return schema.map((s, i) => toDraft4(s, `${path}/${i}`))
  if (typeof schema !== 'object' || schema === null) return schema
  const src = schema as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(src)) {
    if (UNCONVERTIBLE.includes(k)) throw new Error(`${path}: "${k}" has no Draft 4 form`)
    if (k === '$schema' || k === '$id') continue
    if (k === 'exclusiveMinimum' || k === 'exclusiveMaximum')
      throw new Error(`${path}: numeric "${k}" needs the Draft 4 boolean form; not converted`)
    if (k === 'const') out.enum = [v]
    else if (k === 'propertyNames') continue
    else if (k === 'properties' || k === 'patternProperties')
      out[k] = Object.fromEntries(
        Object.entries(v as object).map(([n, s]) => [n, toDraft4(s, `${path}/${k}/${n}`)]),
      )
    else out[k] = toDraft4(v, `${path}/${k}`)
  }
  if (src.propertyNames !== undefined) {
    const names = src.propertyNames as Record<string, unknown>
    const only = Object.keys(names)
    if (only.length !== 1 || typeof names.pattern !== 'string' || src.properties || src.patternProperties)
      throw new Error(`${path}: this "propertyNames" has no Draft 4 form`)
    out.patternProperties = {
      [names.pattern]: toDraft4(src.additionalProperties ?? {}, `${path}/additionalProperties`),
    }
    out.additionalProperties = false
  }
  return out
}

/** The validator Content that `meshgate publish --init` attaches to the profile. */
export function appConfigMeshSchema(): string {
  const shipped = readPackageJson('mesh.schema.json') as object
  const content = JSON.stringify({ $schema: DRAFT_4, ...(toDraft4(shipped) as object) })
  if (content.length > MAX_VALIDATOR_CHARS)
    throw new Error(
      `the Draft 4 schema is ${content.length} characters; AppConfig takes at most ${MAX_VALIDATOR_CHARS}`,
    )
  return content
}
