// One source resource being translated: its file, its `KIND/NAME`, and the report it writes to. Every
// translator reads fields through `keys` so that a field it does not handle is reported, never lost.
import { lineOf, type Obj } from './reader.ts'
import type { Report } from './report.ts'

export class ResourceContext {
  readonly report: Report
  readonly file: string
  readonly resource: string
  /** The resource's own line, for lines about the resource as a whole. */
  readonly line: number
  constructor(report: Report, file: string, resource: string, line: number) {
    this.report = report
    this.file = file
    this.resource = resource
    this.line = line
  }

  /** `KIND/NAME (file:line)`, for the comment above a service. */
  get source(): string {
    return `${this.resource} (${this.file}:${this.line})`
  }

  /** One report line about `obj[key]` (or `obj` itself). */
  note(obj: unknown, key: string | number | undefined, field: string, why: string, instead: string): void {
    this.report.add({
      file: this.file,
      line: lineOf(obj, key, this.line),
      resource: this.resource,
      field,
      why,
      instead,
    })
  }

  /**
   * Reports every key of `obj` that is not in `handled`. `known` gives the reason and the advice for
   * fields the translator knows meshgate has no equivalent for; anything else is an unknown field.
   */
  keys(
    obj: Obj | undefined,
    path: string,
    handled: readonly string[],
    known: Record<string, [why: string, instead: string]> = {},
  ): void {
    if (obj === undefined) return
    for (const key of Object.keys(obj)) {
      if (handled.includes(key)) continue
      const field = path === '' ? key : `${path}.${key}`
      const k = known[key]
      if (k !== undefined) this.note(obj, key, field, k[0], k[1])
      else
        this.note(
          obj,
          key,
          field,
          'not a field meshgate knows for this resource',
          'check the spelling, or remove it',
        )
    }
  }

  /**
   * Whether a translated match is one meshgate accepts: paths absolute, regexes valid in JavaScript
   * (RE2 and JS differ at the edges, e.g. `(?i)`), header names HTTP tokens. When not, the match is
   * reported and left out, so that the translated file always loads.
   */
  expressible(at: unknown, field: string, match: Record<string, unknown>): boolean {
    const fail = (why: string) => {
      this.note(
        at,
        undefined,
        field,
        `${why}; the match was left out`,
        'rewrite the condition in a form meshgate takes',
      )
      return false
    }
    const path = match.path as { exact?: string; prefix?: string; regex?: string } | undefined
    for (const p of [path?.exact, path?.prefix]) {
      if (p !== undefined && !/^\/[^\s?#]*$/.test(p))
        return fail(`path ${JSON.stringify(p)} is not an absolute path`)
    }
    const methods = match.method === undefined ? [] : [match.method].flat()
    for (const m of methods)
      if (typeof m !== 'string' || !/^[A-Z]+$/.test(m))
        return fail(`method ${JSON.stringify(m)} is not an HTTP method`)
    const regexes: string[] = []
    if (path?.regex !== undefined) regexes.push(path.regex)
    for (const kind of ['headers', 'query'] as const) {
      for (const [name, v] of Object.entries((match[kind] ?? {}) as Record<string, unknown>)) {
        if (kind === 'headers' && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
          return fail(`header ${name} is not an HTTP header name meshgate can match`)
        }
        const re = (v as { regex?: unknown } | null)?.regex
        if (typeof re === 'string') regexes.push(re)
      }
    }
    for (const re of regexes) {
      try {
        new RegExp(re)
      } catch {
        return fail(`regex ${JSON.stringify(re)} is not valid in JavaScript`)
      }
    }
    return true
  }
}
