// The parts of HTTP/1.1 (RFC 9112) that the sidecar's own server and client share: field lines,
// Content-Length, the chunked transfer coding. Strict where laxness lets a request be smuggled: a
// field name with whitespace before its colon, two different lengths, a chunk size that is not hex.

import type { HeaderMap } from '../engine/types.ts'

export const CRLF2 = Buffer.from('\r\n\r\n')
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Field values: visible ASCII, space, tab and obs-text; never CR, LF or NUL (RFC 9110 §5.5). */
export const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/
/** A chunk-size line longer than this is garbage, not a size. */
const MAX_CHUNK_LINE = 1024

// Field names, as sent → lower case and known to be tokens. The same few dozen names arrive on every
// message; remembering them saves lower-casing and checking each one again, and hands back one
// string per name, so header maps are keyed by the same (internalized) strings every time. Bounded:
// past NAME_CACHE_MAX distinct spellings, names are checked each time as before.
const NAME_CACHE_MAX = 1024
const COMMON_NAMES = [
  'accept',
  'accept-encoding',
  'accept-language',
  'authorization',
  'cache-control',
  'connection',
  'content-encoding',
  'content-length',
  'content-type',
  'cookie',
  'date',
  'end-user',
  'etag',
  'expect',
  'host',
  'keep-alive',
  'last-modified',
  'location',
  'server',
  'set-cookie',
  'te',
  'traceparent',
  'tracestate',
  'transfer-encoding',
  'user-agent',
  'vary',
  'x-amzn-trace-id',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-request-id',
]
const canonical = new Map<string, string>(COMMON_NAMES.map((n) => [n, n]))
const nameCache = new Map<string, string>()
/** Lower-case names known to be tokens: those seen by `fieldName` and the common ones. */
const knownNames = new Set<string>(COMMON_NAMES)

/** A field name as sent → its lower-case form, or undefined when it is no token. */
export function fieldName(raw: string): string | undefined {
  const hit = nameCache.get(raw)
  if (hit !== undefined) return hit
  const lower = raw.toLowerCase()
  if (!TOKEN.test(lower)) return undefined
  const name = canonical.get(lower) ?? lower
  if (nameCache.size < NAME_CACHE_MAX) {
    nameCache.set(raw, name)
    knownNames.add(name)
  }
  return name
}

/** True if `name` (already lower case) is a token: what a header map's key must be to go out. */
export function isFieldName(name: string): boolean {
  return knownNames.has(name) || TOKEN.test(name)
}

/**
 * Adds the field lines `lines[from..]` to `headers` (names lower case; a repeated field becomes an
 * array). `fold`: obs-fold continuation lines are joined with a space (what a proxy does with a
 * response, RFC 9112 §5.2) instead of refused (what a server does with a request). Returns what is
 * wrong, if anything, or the number of field lines.
 */
export function parseFields(
  lines: string[],
  from: number,
  headers: HeaderMap,
  fold: boolean,
): string | number {
  let last: string | undefined
  let count = 0
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!
    const c0 = line.charCodeAt(0)
    if (c0 === 32 || c0 === 9) {
      if (!fold || last === undefined) return 'obsolete line folding'
      const prev = headers[last]!
      const more = line.trim()
      if (typeof prev === 'string') headers[last] = `${prev} ${more}`
      else prev[prev.length - 1] = `${prev[prev.length - 1]} ${more}`
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) return 'field line without a name'
    const name = fieldName(line.slice(0, colon))
    if (name === undefined) return `field name ${JSON.stringify(line.slice(0, colon).toLowerCase())}`
    // Without the optional whitespace around it: spaces and tabs only (RFC 9110 §5.5), one slice.
    let from = colon + 1
    let to = line.length
    while (from < to && isOws(line.charCodeAt(from))) from++
    while (to > from && isOws(line.charCodeAt(to - 1))) to--
    const value = line.slice(from, to)
    if (BAD_VALUE.test(value)) return `value of ${name}`
    const prev = headers[name]
    if (prev === undefined) headers[name] = value
    else if (typeof prev === 'string') headers[name] = [prev, value]
    else prev.push(value)
    last = name
    count++
  }
  return count
}

/** The code of a status line `HTTP/1.0|1.1 SP 3DIGIT [SP reason]`, or -1 when it is not one. */
export function statusOf(line: string): number {
  if (!line.startsWith('HTTP/1.') || line.charCodeAt(8) !== 32) return -1
  const minor = line.charCodeAt(7)
  if (minor !== 48 && minor !== 49) return -1
  if (line.length > 12 && line.charCodeAt(12) !== 32) return -1
  let code = 0
  for (let i = 9; i < 12; i++) {
    const d = line.charCodeAt(i) - 48
    // NaN past the end of the line fails here too.
    if (!(d >= 0 && d <= 9)) return -1
    code = code * 10 + d
  }
  return code
}

function isOws(c: number): boolean {
  return c === 32 || c === 9
}

/** Digits only; a list of equal values is one value (RFC 9110 §8.6); anything else is -1. */
export function contentLength(value: string | string[]): number {
  const all = Array.isArray(value) ? value.join(',') : value
  let length = -1
  for (const part of all.split(',')) {
    const v = part.trim()
    if (!/^\d{1,15}$/.test(v)) return -1
    const n = Number(v)
    if (length >= 0 && n !== length) return -1
    length = n
  }
  return length
}

/** True when the last transfer coding listed is chunked (RFC 9112 §6.3). */
export function endsChunked(te: string | string[]): boolean {
  const codings = (Array.isArray(te) ? te.join(',') : te).split(',')
  return codings[codings.length - 1]!.trim().toLowerCase() === 'chunked'
}

/** True if a Connection field lists `token` (`close`, `keep-alive`; lower case). */
export function connectionHas(value: string | string[] | undefined, token: string): boolean {
  if (value === undefined) return false
  // The usual value is the one token alone, as most peers spell it.
  if (value === token) return true
  for (const line of Array.isArray(value) ? value : [value]) {
    for (const t of line.split(',')) if (t.trim().toLowerCase() === token) return true
  }
  return false
}

/** Where decoded payload goes (an object, not a callback: no closure per message). */
export interface PieceSink {
  piece(payload: Buffer): void
}

const Step = { size: 0, data: 1, dataEnd: 2, trailer: 3, done: 4 } as const
type Step = (typeof Step)[keyof typeof Step]

/** The chunked transfer coding, decoded incrementally; trailers are read and dropped. */
export class ChunkedDecoder {
  private step: Step = Step.size
  private remaining = 0
  private line = ''
  /** Set when the input is not valid chunked coding. */
  error: string | undefined

  get done(): boolean {
    return this.step === Step.done
  }

  /**
   * Decodes `data` from `at`, handing each piece of payload to `sink`. Returns where it stopped: the
   * end of `data`, or just past the last chunk (the rest belongs to the next message), or -1 on error.
   */
  feed(data: Buffer, at: number, sink: PieceSink): number {
    while (at < data.length && this.step !== Step.done) {
      if (this.step === Step.data) {
        const n = Math.min(this.remaining, data.length - at)
        sink.piece(data.subarray(at, at + n))
        this.remaining -= n
        at += n
        if (this.remaining === 0) this.step = Step.dataEnd
        continue
      }
      // A line: a chunk size, the CRLF after a chunk's data, or a trailer field.
      const eol = data.indexOf(10, at)
      this.line += data.toString('latin1', at, eol < 0 ? data.length : eol + 1)
      if (this.line.length > MAX_CHUNK_LINE) return this.fail('chunk line too long')
      if (eol < 0) return data.length
      at = eol + 1
      const line = this.line
      this.line = ''
      if (!line.endsWith('\r\n')) return this.fail('bare LF in chunked body')
      if (this.step === Step.dataEnd) {
        if (line !== '\r\n') return this.fail('chunk longer than its size')
        this.step = Step.size
      } else if (this.step === Step.size) {
        const hex = line.slice(0, -2).split(';', 1)[0]!.trim()
        if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) return this.fail('chunk size')
        this.remaining = Number.parseInt(hex, 16)
        this.step = this.remaining === 0 ? Step.trailer : Step.data
      } else if (line === '\r\n') this.step = Step.done
    }
    return at
  }

  private fail(message: string): number {
    this.error = message
    return -1
  }
}
