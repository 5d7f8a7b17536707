// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy never forwards them.
// `TE: trailers` is the one exception worth keeping: it only says the client accepts trailers. Every
// place that forwards or strips fields asks this module (the one header policy of the HTTP edge).

import type { HeaderMap } from '../engine/types.ts'

/**
 * Always connection-specific, whatever `Connection` lists: RFC 9110's list, the proxy credentials
 * (consumed by the proxy they are meant for), and `Trailer`, because the sidecar does not forward
 * trailers and an announcement of fields that never come would mislead the receiver.
 */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** True if `name` (lower case) is hop-by-hop on its own account. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name)
}

/**
 * The extra header names a `Connection` header nominates (`Connection: close, x-foo` → `x-foo`), lower
 * case. Undefined when there are none, which is the common case and allocates nothing.
 */
export function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined
  let tokens: Set<string> | undefined
  for (const line of Array.isArray(value) ? value : [value]) {
    for (const raw of line.split(',')) {
      const token = raw.trim().toLowerCase()
      if (token === '' || token === 'close' || token === 'keep-alive') continue
      if (tokens === undefined) tokens = new Set()
      tokens.add(token)
    }
  }
  return tokens
}

/** `TE` survives only as `trailers` (RFC 9110 §10.1.4; HTTP/2 allows nothing else either). */
export function keepTe(value: string | string[] | undefined): boolean {
  if (value === undefined) return false
  const joined = Array.isArray(value) ? value.join(',') : value
  return joined.split(',').some((t) => t.trim().toLowerCase() === 'trailers')
}

/** True if `name` must not be forwarded, given the tokens of this message's `Connection` header. */
export function dropHeader(name: string, listed: Set<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || listed?.has(name) === true
}

/**
 * What of a request field goes to the next hop: its value, `trailers` for a TE that allows them, or
 * undefined for a field that stops here (hop-by-hop, named by Connection, or Expect, which the edge
 * answered itself). Content-Length is each writer's to decide: it frames the body its own way.
 */
export function forwardedRequestValue(
  name: string,
  value: string | string[],
  listed: Set<string> | undefined,
): string | string[] | undefined {
  if (name === 'te') return keepTe(value) ? 'trailers' : undefined
  if (name === 'expect' || dropHeader(name, listed)) return undefined
  return value
}

/** Deletes, in place, the fields of a response that stop at this hop. */
export function stripResponseHopByHop(headers: HeaderMap): HeaderMap {
  const listed = connectionTokens(headers.connection)
  for (const name in headers) if (dropHeader(name, listed)) delete headers[name]
  return headers
}

/** A copy of `headers` (names lower-cased) without the fields that stop at this hop, TE included. */
export function forwardedCopy(headers: Readonly<Record<string, string | string[] | undefined>>): HeaderMap {
  const out: HeaderMap = {}
  const listed = connectionTokens(headers.connection)
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    const key = name.toLowerCase()
    if (!dropHeader(key, listed)) out[key] = value
  }
  return out
}
