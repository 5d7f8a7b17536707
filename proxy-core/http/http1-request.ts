// The request head as the edge reads it (RFC 9112 §2–§6), strictly: what it takes, every parser on
// the path reads the same way; what it cannot be sure of, it refuses with the status RFC 9112 names,
// and the server closes the connection after the refusal. A pure function of the head's text, so the
// fuzz tests can drive it without a socket.

import { type ErrorCode, ErrorCodes } from '../engine/errors.ts'
import type { HeaderMap } from '../engine/types.ts'
import { connectionHas, contentLength, parseFields, requestCoding, TOKEN } from './http1-codec.ts'
import { MAX_HEADER_COUNT } from './limits.ts'

export interface RequestHead {
  readonly method: string
  /** Origin form (`/a?b`), absolute form (`http://svc/a`), or `*` for OPTIONS. */
  readonly target: string
  readonly http10: boolean
  /** Names lower case, a repeated field an array; no prototype. */
  readonly headers: HeaderMap
  /** The body's framing: its Content-Length, 0 for none, -1 for chunked. */
  readonly length: number
  /** `Expect: 100-continue` was sent. */
  readonly expectContinue: boolean
  /**
   * The protocols of an upgrade the edge will try (`websocket`), as the client listed them; undefined
   * for an ordinary request. See `upgradeOf` for when an Upgrade field is ignored instead.
   */
  readonly upgrade: string | undefined
}

/** Why a head is refused: the error table's code (its status with it) and a reason for the log. */
export class HeadRefusal {
  readonly code: ErrorCode
  readonly reason: string
  /** Fields for the refusal's JSON body beside `error`. */
  readonly details: Readonly<Record<string, string>> | undefined
  constructor(code: ErrorCode, reason: string, details?: Record<string, string>) {
    this.code = code
    this.reason = reason
    this.details = details
  }
}

/** The usual methods, known to be tokens without a look at each character. */
const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])

const bad = (reason: string) => new HeadRefusal(ErrorCodes.badRequest, reason)

/**
 * Reads a request head: `text` is latin1, from the request line to just before the blank line.
 * Returns the head, or the refusal.
 */
export function parseRequestHead(text: string): RequestHead | HeadRefusal {
  const lines = text.split('\r\n')
  const line = lines[0]!
  // method SP request-target SP HTTP-version, single spaces (RFC 9112 §3).
  const sp1 = line.indexOf(' ')
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1)
  if (sp2 < 0 || line.indexOf(' ', sp2 + 1) >= 0) return bad('request line')
  const method = line.slice(0, sp1)
  const target = line.slice(sp1 + 1, sp2)
  const version = line.slice(sp2 + 1)
  if (!(METHODS.has(method) || TOKEN.test(method))) return bad('method')
  if (version !== 'HTTP/1.1' && version !== 'HTTP/1.0') {
    return isVersion(version)
      ? new HeadRefusal(ErrorCodes.versionNotSupported, `version ${version}`)
      : bad('version')
  }
  // The sidecar is never a tunnel to anywhere.
  if (method === 'CONNECT') return new HeadRefusal(ErrorCodes.methodNotAllowed, 'CONNECT')
  if (!validTarget(method, target)) return bad('request target')
  // A `%` without two hex digits after it: in the path it is the path normalizer's refusal (the same
  // code and reason as engine/path-normalize.ts gives the Lambda gateway), in the query a bad target.
  const badEscape = BAD_ESCAPE.exec(target)
  if (badEscape !== null) {
    const q = target.indexOf('?')
    return q < 0 || badEscape.index < q
      ? new HeadRefusal(ErrorCodes.invalidPath, 'request target', { reason: 'bad_percent_encoding' })
      : bad('request target')
  }

  const headers: HeaderMap = Object.create(null)
  const fields = parseFields(lines, 1, headers, false)
  if (typeof fields === 'string') return bad(fields)
  if (fields > MAX_HEADER_COUNT) return new HeadRefusal(ErrorCodes.headersTooLarge, 'too many fields')
  const http10 = version === 'HTTP/1.0'
  // Exactly one Host, valid, in HTTP/1.1 (RFC 9112 §3.2); at most one in 1.0.
  const host = headers.host
  if (typeof host === 'string' ? !validHost(host) : host !== undefined || !http10) return bad('host')
  const expect = headers.expect
  let expectContinue = false
  if (expect !== undefined) {
    if (typeof expect !== 'string' || expect.toLowerCase() !== '100-continue') {
      return new HeadRefusal(ErrorCodes.expectationFailed, 'expect')
    }
    expectContinue = !http10
  }
  const te = headers['transfer-encoding']
  const cl = headers['content-length']
  let length = 0
  if (te !== undefined) {
    // Both framings at once is how requests get smuggled past a proxy (RFC 9112 §6.1); HTTP/1.0 has
    // no transfer codings (§6.1, a 1.0 message with one is faulty framing).
    if (cl !== undefined || http10) return bad('transfer-encoding with content-length or in HTTP/1.0')
    const coding = requestCoding(te)
    if (coding === 'bad') return bad('transfer-encoding')
    // Valid, and chunked last, but with a coding the edge would lose on the way.
    if (coding === 'unknown') return new HeadRefusal(ErrorCodes.notImplemented, 'transfer coding')
    length = -1
  } else if (cl !== undefined) {
    length = contentLength(cl, false)
    if (length < 0) return bad('content-length')
    headers['content-length'] = String(length)
  }
  const upgrade = upgradeOf(headers, http10, length)
  if (upgrade === null) return bad('upgrade')
  return { method, target, http10, headers, length, expectContinue, upgrade }
}

/** `protocol-name ["/" protocol-version]`, each a token (RFC 9110 §7.8). */
const PROTOCOL = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(\/[!#$%&'*+\-.^_`|~0-9A-Za-z]+)?$/

/**
 * The upgrade a request asks for (RFC 9110 §7.8), or undefined when it is an ordinary request, or
 * null when its Upgrade field is malformed (400). An Upgrade field is ignored, and the request served
 * as an ordinary one (the field is hop-by-hop and never forwarded), when:
 * - `Connection` does not list `upgrade`: the sender must send both, and a proxy that forwarded
 *   only one would leave the two ends disagreeing about what the connection is;
 * - the request is HTTP/1.0 (RFC 9110 §7.8: a server must ignore it there);
 * - the request has a body: the switch would happen after the body (RFC 9110 §7.8), which no
 *   WebSocket or other upgrade uses, and bytes that are body to one parser and tunnel to another are
 *   how requests get smuggled. Served as an ordinary request, the body is framed as one;
 * - only `h2c` is asked for: HTTP/2's cleartext upgrade is deprecated (RFC 9113 §3.1); the listeners
 *   take HTTP/2 by its preface instead. `h2c` is dropped from a longer list.
 */
function upgradeOf(headers: HeaderMap, http10: boolean, length: number): string | undefined | null {
  const field = headers.upgrade
  if (field === undefined || http10 || length !== 0) return undefined
  if (!connectionHas(headers.connection, 'upgrade')) return undefined
  const wanted: string[] = []
  for (const line of Array.isArray(field) ? field : [field]) {
    for (const raw of line.split(',')) {
      const p = raw.trim()
      if (p === '') continue
      if (!PROTOCOL.test(p)) return null
      if (p.toLowerCase() !== 'h2c') wanted.push(p)
    }
  }
  return wanted.length === 0 ? undefined : wanted.join(', ')
}

/** `HTTP/DIGIT.DIGIT`: a version, if not one the edge speaks (505 rather than 400). */
function isVersion(v: string): boolean {
  if (v.length !== 8 || !v.startsWith('HTTP/') || v.charCodeAt(6) !== 46) return false
  const a = v.charCodeAt(5)
  const b = v.charCodeAt(7)
  return a >= 48 && a <= 57 && b >= 48 && b <= 57
}

/**
 * A byte a request target may not hold (RFC 3986 via RFC 9112 §3.2): outside visible ASCII, or `#`
 * (a fragment is never sent). Brackets, braces, `|` and `^` pass: browsers send some of them raw in
 * queries. One regular expression per target, not a test per byte.
 */
const BAD_TARGET = /[^!"$-~]/
/** A `%` not followed by two hex digits, which three parsers read three ways: always refused. */
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/

/** Origin form, absolute form (http or https, no userinfo), or `*` for OPTIONS (RFC 9112 §3.2). */
function validTarget(method: string, target: string): boolean {
  const n = target.length
  if (n === 0) return false
  const c0 = target.charCodeAt(0)
  if (c0 === 42) return n === 1 && method === 'OPTIONS' // *
  if (BAD_TARGET.test(target)) return false
  if (c0 === 47) return true // /
  // absolute-form: scheme "://" authority path-abempty [ "?" query ].
  const sep = target.indexOf('://')
  if (sep < 0) return false
  const scheme = target.slice(0, sep).toLowerCase()
  if (scheme !== 'http' && scheme !== 'https') return false
  const from = sep + 3
  let end = from
  while (end < n && target.charCodeAt(end) !== 47 && target.charCodeAt(end) !== 63) end++
  const authority = target.slice(from, end)
  // userinfo is deprecated and a way to make one URL read as two hosts (RFC 9110 §4.2.4).
  return authority !== '' && !authority.includes('@') && validHost(authority) && !authority.startsWith(':')
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || ((c | 0x20) >= 97 && (c | 0x20) <= 102)
}

/** reg-name and IPv4 bytes: unreserved, sub-delims and `%` (RFC 3986 §3.2.2). */
const HOST_BYTE = new Uint8Array(128)
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%") {
  HOST_BYTE[c.charCodeAt(0)] = 1
}

/**
 * `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2): a reg-name or IPv4 address, or an IP
 * literal in brackets, then digits after a colon. Empty is valid (a target without an authority).
 */
export function validHost(value: string): boolean {
  const n = value.length
  let i = 0
  if (value.charCodeAt(0) === 91) {
    // [IPv6] or [v.future]: hex digits, colons and dots, as far as the edge needs to tell.
    const close = value.indexOf(']')
    if (close < 2) return false
    for (i = 1; i < close; i++) {
      const c = value.charCodeAt(i)
      if (!(isHex(c) || c === 58 || c === 46 || c === 118 || c === 86)) return false
    }
    i = close + 1
  } else {
    for (; i < n; i++) {
      const c = value.charCodeAt(i)
      if (c === 58) break
      if (c >= 128 || HOST_BYTE[c] === 0) return false
    }
  }
  if (i === n) return true
  if (value.charCodeAt(i) !== 58) return false
  for (i++; i < n; i++) {
    const d = value.charCodeAt(i)
    if (d < 48 || d > 57) return false
  }
  return true
}
