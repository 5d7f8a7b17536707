// The sidecar's HTTP invoker: meshgate's own HTTP/1.1 client (http/http1-client.ts) for every origin,
// cleartext or `https://`. TLS origins are reached the way tls-client.ts decides per target: with the
// sidecar's certificate and trust bundle (mutual TLS to another sidecar), or with the system's roots.

import type { Invoker } from '../engine/types.ts'
import { createHttp1Invoker, type Http1Options, type PoolStats } from '../http/http1-client.ts'
import { createUpstreamTls } from '../http/tls-client.ts'
import type { TlsMaterial } from '../tls/material.ts'

export type HttpInvokerOptions = Omit<Http1Options, 'tls'> & {
  /** The sidecar's certificate, key and trust bundle; none: https targets use the system's roots. */
  tls?: TlsMaterial
}

export interface HttpInvoker extends Invoker {
  close(): Promise<void>
  /** Open pools and their connection counts, for `/stats`. */
  stats(): Record<string, PoolStats>
}

export function createHttpInvoker(opts: HttpInvokerOptions = {}): HttpInvoker {
  const { tls, ...http1 } = opts
  return createHttp1Invoker({ ...http1, tls: createUpstreamTls(tls) })
}
