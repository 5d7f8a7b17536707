// From a downstream request to the engine's MeshRequest: hop-by-hop headers dropped, the forwarding
// headers set, small bodies read into memory. Two sources: the outbound listener's own server, whose
// parsed header map is ours to edit in place, and node's IncomingMessage (the inbound listener, the dev
// gateway), whose headers are copied once straight from `rawHeaders`.

import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { HeaderMap, MeshBody, MeshRequest } from '../engine/types.ts'
import { connectionTokens, dropHeader, keepTe } from '../invokers/hop-by-hop.ts'
import { MAX_BUFFERED_BODY } from './limits.ts'

export interface DownstreamHeaders {
  headers: HeaderMap
  /** The Host header as sent (before any absolute-form override). */
  host: string | undefined
  /** Declared body length, or -1 when none was declared. */
  contentLength: number
  /** True when the body comes chunked (its length unknown up front). */
  chunked: boolean
}

/** `::ffff:10.0.0.1` → `10.0.0.1`: the mapped form is an artefact of dual-stack sockets. */
export function peerAddress(req: IncomingMessage): string | undefined {
  const a = req.socket.remoteAddress
  return a?.startsWith('::ffff:') ? a.slice(7) : a
}

/**
 * Copies the request headers once into a fresh map (null prototype: a header named `__proto__` or
 * `constructor` is just a header), without hop-by-hop ones. Repeated headers become arrays, so they go
 * upstream as sent; Host and Content-Length keep their first value.
 */
export function copyHeaders(req: IncomingMessage): DownstreamHeaders {
  const raw = req.rawHeaders
  const headers: HeaderMap = Object.create(null)
  // Repeated Connection or TE lines are one comma-separated list (RFC 9110 §5.3).
  let connection: string | undefined
  let te: string | undefined
  let chunked = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (name === 'connection') {
      connection = connection === undefined ? value : `${connection},${value}`
      continue
    }
    if (name === 'te') {
      te = te === undefined ? value : `${te},${value}`
      continue
    }
    if (name === 'transfer-encoding') {
      chunked = true
      continue
    }
    if (dropHeader(name, undefined)) continue
    const prev = headers[name]
    if (prev === undefined) headers[name] = value
    else if (name === 'host' || name === 'content-length') continue
    else if (typeof prev === 'string') headers[name] = [prev, value]
    else prev.push(value)
  }
  const listed = connectionTokens(connection)
  if (listed !== undefined) for (const name of listed) delete headers[name]
  if (keepTe(te)) headers.te = 'trailers'
  const cl = headers['content-length']
  const contentLength = typeof cl === 'string' && /^\d+$/.test(cl) ? Number(cl) : -1
  const host = typeof headers.host === 'string' ? headers.host : undefined
  return { headers, host, contentLength, chunked }
}

/**
 * Drops hop-by-hop headers from a parsed header map, in place (see `copyHeaders`). Returns the Host
 * header as sent.
 */
export function stripHopByHop(headers: HeaderMap): string | undefined {
  const connection = headers.connection
  const te = headers.te
  const listed = connectionTokens(connection)
  for (const name in headers) if (dropHeader(name, listed)) delete headers[name]
  if (keepTe(te)) headers.te = 'trailers'
  const host = headers.host
  return typeof host === 'string' ? host : undefined
}

export interface ForwardingOptions {
  /** The scheme the client used to reach us: `http` on the sidecar's plain listeners. */
  proto: 'http' | 'https'
  /** Overrides Host (absolute-form requests). */
  authority?: string
}

/**
 * Sets the forwarding headers in place: the peer appended to `x-forwarded-for` (Envoy's
 * use_remote_address), `x-forwarded-proto` unless an earlier proxy set it, and `x-request-id` generated
 * when absent (Envoy's behaviour; the app's own id is kept so its logs line up).
 */
export function addForwardingHeaders(
  headers: HeaderMap,
  peer: string | undefined,
  opts: ForwardingOptions,
): void {
  if (opts.authority !== undefined) headers.host = opts.authority
  if (peer !== undefined) {
    const xff = headers['x-forwarded-for']
    headers['x-forwarded-for'] =
      xff === undefined ? peer : `${Array.isArray(xff) ? xff.join(', ') : xff}, ${peer}`
  }
  if (headers['x-forwarded-proto'] === undefined) headers['x-forwarded-proto'] = opts.proto
  if (headers['x-request-id'] === undefined) headers['x-request-id'] = randomUUID()
}

/**
 * The body the pipeline gets: nothing when the request declares none; small bodies with a length read
 * into memory (replayable for retries and mirrors); everything else the request stream itself.
 */
export function requestBody(
  body: AsyncIterable<Uint8Array> | Buffer | null,
  contentLength: number,
  chunked: boolean,
): MeshBody | Promise<MeshBody> {
  if (body === null || Buffer.isBuffer(body) || chunked || contentLength > MAX_BUFFERED_BODY) return body
  if (contentLength <= 0) return null
  return readWhole(body, contentLength)
}

/** Reads a body of declared `length` into one buffer; rejects if it ends early. */
async function readWhole(body: AsyncIterable<Uint8Array>, length: number): Promise<Buffer> {
  // Not from node's shared pool: the body may outlive this request (a mirror, a retry).
  const buf = Buffer.allocUnsafeSlow(length)
  let off = 0
  for await (const chunk of body) {
    // node's parser stops at Content-Length, so this cannot overflow; the guard keeps that explicit.
    if (off + chunk.length > buf.length) throw new Error('request body longer than its Content-Length')
    buf.set(chunk, off)
    off += chunk.length
  }
  if (off !== buf.length) throw new Error('request body shorter than its Content-Length')
  return buf
}

/** The whole conversion for one downstream request; `path` is already normalized (`edgePath`). */
export async function toMeshRequest(
  req: IncomingMessage,
  info: DownstreamHeaders,
  path: string,
  opts: ForwardingOptions,
): Promise<MeshRequest> {
  const peer = peerAddress(req)
  addForwardingHeaders(info.headers, peer, opts)
  const body = await requestBody(req, info.contentLength, info.chunked)
  const out: MeshRequest = { method: req.method ?? 'GET', path, headers: info.headers, body }
  if (peer !== undefined) out.remoteAddress = peer
  return out
}
