// From a downstream request to the engine's MeshRequest: hop-by-hop headers dropped, the forwarding
// headers set, small bodies read into memory. Every listener that takes requests (the sidecar's
// outbound and inbound, the dev gateway) is the HTTP edge's server (http/http1-server.ts), whose parsed
// header map is ours to edit in place.

import { randomUUID } from 'node:crypto'
import { ErrorCodes } from '../engine/errors.ts'
import type { HeaderMap, MeshBody, MeshResponse } from '../engine/types.ts'
import { connectionTokens, dropHeader, keepTe } from '../http/header-policy.ts'
import type { DownstreamRequest } from '../http/http1-server.ts'
import { MAX_BUFFERED_BODY } from './limits.ts'
import { sidecarError } from './write-response.ts'

/**
 * Drops hop-by-hop headers from a parsed header map, in place: those RFC 9110 §7.6.1 names, those the
 * Connection header lists, and TE unless it is `trailers`. Returns the Host header as sent.
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

/**
 * The body of a request from the edge's server as the pipeline gets it (`requestBody`): at once when it
 * is in hand, else once read. Undefined when it broke off before its declared end (the client left, or
 * the edge timed it out): the caller answers `incompleteBody()` and closes the connection.
 */
export function downstreamBody(req: DownstreamRequest): MeshBody | Promise<MeshBody | undefined> {
  const read = requestBody(req.body, req.contentLength, req.contentLength < 0)
  return read instanceof Promise ? read.catch(() => undefined) : read
}

/** The answer to a request whose body broke off (`downstreamBody`). */
export function incompleteBody(grpc = false): MeshResponse {
  return sidecarError(ErrorCodes.badRequest, 'request body incomplete', undefined, grpc)
}
