// The parts of HTTP/1.1 (RFC 9112) that the sidecar's own server and client share: field lines,
// Content-Length, the chunked transfer coding. Strict where laxness lets a request be smuggled: a
// field name with whitespace before its colon, two different lengths, a chunk size that is not hex.

import type { HeaderMap } from '../engine/types.ts'
import { connectionTokens, forwardedRequestValue } from './header-policy.ts'

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
 * array). `response`: obs-fold continuation lines are joined with a space (what a proxy does with a
 * response, RFC 9112 §5.2) instead of refused (what a server does with a request), and a value may
 * begin or end with a no-break space. Returns what is wrong, if anything, or the number of field lines.
 */
export function parseFields(
  lines: string[],
  from: number,
  headers: HeaderMap,
  response: boolean,
): string | number {
  let last: string | undefined
  let count = 0
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!
    const c0 = line.charCodeAt(0)
    if (c0 === 32 || c0 === 9) {
      if (!response || last === undefined) return 'obsolete line folding'
      const prev = headers[last]!
      const more = trimOws(line)
      if (BAD_VALUE.test(more)) return `value of ${last}`
      if (typeof prev === 'string') headers[last] = `${prev} ${more}`
      else prev[prev.length - 1] = `${prev[prev.length - 1]} ${more}`
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) return 'field line without a name'
    const name = fieldName(line.slice(0, colon))
    if (name === undefined) return `field name ${JSON.stringify(line.slice(0, colon).toLowerCase())}`
    const value = fieldValue(line, colon + 1)
    if (value === undefined || (!response && edgeNbsp(value))) return `value of ${name}`
    const prev = headers[name]
    if (prev === undefined) headers[name] = value
    else if (typeof prev === 'string') headers[name] = [prev, value]
    else prev.push(value)
    last = name
    count++
  }
  return count
}

/**
 * The value of a field line from `at`, without the optional whitespace around it: spaces and tabs
 * only (RFC 9110 §5.5), never `String.prototype.trim`'s wider set (VT, FF, U+00A0...), which would
 * let `Content-Length: 5\v` read as 5 here and as garbage to the next parser. Undefined when the
 * value holds a control character (CR, LF, NUL, VT...).
 */
function fieldValue(line: string, at: number): string | undefined {
  let to = line.length
  while (at < to && isOws(line.charCodeAt(at))) at++
  while (to > at && isOws(line.charCodeAt(to - 1))) to--
  const value = line.slice(at, to)
  return BAD_VALUE.test(value) ? undefined : value
}

function trimOws(text: string): string {
  let at = 0
  let to = text.length
  while (at < to && isOws(text.charCodeAt(at))) at++
  while (to > at && isOws(text.charCodeAt(to - 1))) to--
  return text.slice(at, to)
}

/**
 * True if a value (latin1, so UTF-8 arrives as its bytes) begins or ends with a no-break space: a
 * lone 0xA0, or UTF-8's C2 A0. Other parsers trim it as whitespace, so the value means two things.
 * A trailing A0 after another lead byte (`à` is C3 A0) is a letter and stays.
 */
function edgeNbsp(value: string): boolean {
  const n = value.length
  if (n === 0) return false
  const first = value.charCodeAt(0)
  if (first === 0xa0 || (first === 0xc2 && value.charCodeAt(1) === 0xa0)) return true
  if (value.charCodeAt(n - 1) !== 0xa0) return false
  const before = n > 1 ? value.charCodeAt(n - 2) : 0
  return before < 0x80 || before === 0xc2
}

/**
 * A request's header map as field lines for the next hop: hop-by-hop fields and those the
 * Connection field names left out (header-policy.ts), `TE` kept only as `trailers`, and the framing
 * (`content-length`, `expect`) left to the caller, which writes its own. Returns the first field
 * whose name is no token or whose value holds a control character (a header rule's or another
 * invoker's field), since writing it would split the request.
 */
export function fieldLines(headers: HeaderMap): string | { name: string } {
  const listed = connectionTokens(headers.connection)
  let out = ''
  for (const name in headers) {
    const given = headers[name]
    if (given === undefined || name === 'content-length') continue
    const value = forwardedRequestValue(name, given, listed)
    if (value === undefined) continue
    if (!isFieldName(name)) return { name }
    if (typeof value === 'string') {
      if (BAD_VALUE.test(value)) return { name }
      out += `${name}: ${value}\r\n`
    } else {
      for (const v of value) {
        if (BAD_VALUE.test(v)) return { name }
        out += `${name}: ${v}\r\n`
      }
    }
  }
  return out
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

/**
 * Content-Length as digits only (at most 15: beyond any real body, within a safe integer). `list`:
 * several equal values, as fields or a comma list, are one value (RFC 9110 §8.6: what a client may
 * accept of a response); a request's must be one field of one value. Anything else is -1.
 */
export function contentLength(value: string | string[], list = true): number {
  if (typeof value === 'string') {
    const n = digits(value)
    if (n >= 0 || !list) return n
  } else if (!list) return -1
  let length = -1
  for (const line of typeof value === 'string' ? [value] : value) {
    for (const part of line.split(',')) {
      const n = digits(trimOws(part))
      if (n < 0 || (length >= 0 && n !== length)) return -1
      length = n
    }
  }
  return length
}

function digits(text: string): number {
  const n = text.length
  if (n === 0 || n > 15) return -1
  let v = 0
  for (let i = 0; i < n; i++) {
    const d = text.charCodeAt(i) - 48
    if (!(d >= 0 && d <= 9)) return -1
    v = v * 10 + d
  }
  return v
}

/** True when the last transfer coding listed is chunked (RFC 9112 §6.3). */
export function endsChunked(te: string | string[]): boolean {
  const last = Array.isArray(te) ? te[te.length - 1]! : te
  const comma = last.lastIndexOf(',')
  return trimOws(comma < 0 ? last : last.slice(comma + 1)).toLowerCase() === 'chunked'
}

/**
 * What a request's Transfer-Encoding means to the server: `chunked` exactly (alone, one field), the
 * only coding the edge takes; `unknown`, well-formed codings ending in chunked that it does not
 * implement (501, RFC 9112 §6.1); `bad`, anything else (400): chunked not last or twice, an empty
 * or malformed element, or two fields, any of which another parser may read differently.
 */
export function requestCoding(te: string | string[]): 'chunked' | 'unknown' | 'bad' {
  if (typeof te !== 'string') return 'bad'
  if (te.length === 7 && te.toLowerCase() === 'chunked') return 'chunked'
  const codings = te.split(',')
  for (let i = 0; i < codings.length; i++) {
    const coding = trimOws(codings[i]!)
    const semi = coding.indexOf(';')
    const name = trimOws(semi < 0 ? coding : coding.slice(0, semi)).toLowerCase()
    if (!TOKEN.test(name)) return 'bad'
    if (name === 'chunked' && (i !== codings.length - 1 || semi >= 0)) return 'bad'
  }
  return endsChunked(te) ? 'unknown' : 'bad'
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

const Step = { size: 0, data: 1, dataCr: 2, dataLf: 3, trailer: 4, done: 5 } as const
type Step = (typeof Step)[keyof typeof Step]

/** Largest chunk size taken: 2^48 - 1 bytes (12 hex digits), far past any body, a safe integer. */
const MAX_CHUNK_SIZE = 0xffff_ffff_ffff
/** The trailer section, in bytes: as much as a head (16 KiB); past it the body is refused. */
const MAX_TRAILER_BYTES = 16 * 1024

/**
 * The chunked transfer coding (RFC 9112 §7.1), decoded incrementally and strictly: a size is hex
 * digits and nothing else (no sign, `0x`, or whitespace around it), extensions follow their grammar,
 * each chunk's data ends in exactly CRLF, and the trailer section is field lines. Each of those is
 * read differently by some other parser, and a difference is a request smuggled. Trailers are read
 * and dropped.
 */
export class ChunkedDecoder {
  private step: Step = Step.size
  private remaining = 0
  private line = ''
  private trailerBytes = 0
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
      const step = this.step
      if (step === Step.data) {
        const n = Math.min(this.remaining, data.length - at)
        sink.piece(data.subarray(at, at + n))
        this.remaining -= n
        at += n
        if (this.remaining === 0) this.step = Step.dataCr
        continue
      }
      if (step === Step.dataCr || step === Step.dataLf) {
        if (data[at] !== (step === Step.dataCr ? 13 : 10)) return this.fail('chunk data not ended by CRLF')
        at++
        this.step = step === Step.dataCr ? Step.dataLf : Step.size
        continue
      }
      // A line: a chunk size, or a trailer field.
      const eol = data.indexOf(10, at)
      this.line += data.toString('latin1', at, eol < 0 ? data.length : eol + 1)
      if (step === Step.size && this.line.length > MAX_CHUNK_LINE) return this.fail('chunk line too long')
      if (eol < 0) {
        if (step === Step.trailer && this.trailerBytes + this.line.length > MAX_TRAILER_BYTES)
          return this.fail('trailer section too large')
        return data.length
      }
      at = eol + 1
      const line = this.line
      this.line = ''
      if (line.charCodeAt(line.length - 2) !== 13) return this.fail('bare LF in chunked body')
      if (step === Step.size) {
        const size = chunkSize(line)
        if (size < 0) return this.fail('chunk size line')
        this.remaining = size
        this.step = size === 0 ? Step.trailer : Step.data
        continue
      }
      this.trailerBytes += line.length
      if (this.trailerBytes > MAX_TRAILER_BYTES) return this.fail('trailer section too large')
      if (line.length === 2) this.step = Step.done
      else if (!trailerField(line)) return this.fail('trailer line')
    }
    return at
  }

  private fail(message: string): number {
    this.error = message
    return -1
  }
}

/** Hex digit value, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  const l = c | 0x20
  return l >= 97 && l <= 102 ? l - 87 : -1
}

/** The size on a chunk-size line (which ends in CRLF), or -1 if the line is not `size *ext CRLF`. */
function chunkSize(line: string): number {
  const end = line.length - 2
  let i = 0
  let size = 0
  for (; i < end; i++) {
    const d = hexDigit(line.charCodeAt(i))
    if (d < 0) break
    size = size * 16 + d
    if (size > MAX_CHUNK_SIZE) return -1
  }
  if (i === 0) return -1
  return i === end || chunkExtensions(line, i, end) ? size : -1
}

/** `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )` over `line[at..end)`. */
function chunkExtensions(line: string, at: number, end: number): boolean {
  let i = at
  while (i < end) {
    i = skipOws(line, i, end)
    if (line.charCodeAt(i) !== 59) return false // ;
    i = skipOws(line, i + 1, end)
    const name = i
    while (i < end && isTokenChar(line.charCodeAt(i))) i++
    if (i === name) return false
    const j = skipOws(line, i, end)
    if (line.charCodeAt(j) !== 61) {
      // No value. Whitespace may stand before a `;` that follows, never before the line's end.
      if (j === end && j !== i) return false
      i = j
      continue
    }
    i = skipOws(line, j + 1, end)
    if (line.charCodeAt(i) === 34) {
      i = quotedString(line, i, end)
      if (i < 0) return false
    } else {
      const value = i
      while (i < end && isTokenChar(line.charCodeAt(i))) i++
      if (i === value) return false
    }
  }
  return true
}

function skipOws(line: string, i: number, end: number): number {
  while (i < end && isOws(line.charCodeAt(i))) i++
  return i
}

/** Past the quoted-string that opens at `i`, or -1 (RFC 9110 §5.6.4). */
function quotedString(line: string, i: number, end: number): number {
  for (i++; i < end; i++) {
    const c = line.charCodeAt(i)
    if (c === 34) return i + 1
    if (c === 92) {
      i++
      const q = line.charCodeAt(i)
      if (i >= end || !(q === 9 || (q >= 0x20 && q !== 0x7f))) return -1
    } else if (!(c === 9 || (c >= 0x20 && c !== 0x7f))) return -1
  }
  return -1
}

/** A trailer line (ending in CRLF) that is a well-formed field line. */
function trailerField(line: string): boolean {
  const colon = line.indexOf(':')
  if (colon <= 0) return false
  for (let i = 0; i < colon; i++) if (!isTokenChar(line.charCodeAt(i))) return false
  return fieldValue(line.slice(0, -2), colon + 1) !== undefined
}

/** tchar (RFC 9110 §5.6.2), as a table: one lookup per character. */
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1
}
export function isTokenChar(c: number): boolean {
  return c < 128 && TCHAR[c] === 1
}
