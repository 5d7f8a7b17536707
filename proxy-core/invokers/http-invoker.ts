// The sidecar's HTTP invoker: meshgate's own HTTP/1.1 client (http/http1-client.ts) for every HTTP/1.1
// origin, and its HTTP/2 client (http/http2-client.ts) for targets with `protocol: http2 | grpc`, each
// cleartext or `https://`. TLS origins are reached the way tls-client.ts decides per target, the same
// for both: with the sidecar's certificate and trust bundle (mutual TLS to another sidecar), or the
// system's roots.

import type { Invoker } from '../engine/types.ts'
import { createHttp1Invoker, type Http1Options, type PoolStats } from '../http/http1-client.ts'
import { createHttp2Invoker, type Http2ClientOptions } from '../http/http2-client.ts'
import { createUpstreamTls } from '../http/tls-client.ts'
import type { TlsMaterial } from '../tls/material.ts'

export type HttpInvokerOptions = Omit<Http1Options, 'tls'> & {
  /** The sidecar's certificate, key and trust bundle; none: https targets use the system's roots. */
  tls?: TlsMaterial
  /** Options of the HTTP/2 client, for targets with `protocol: http2 | grpc`. */
  http2?: Omit<Http2ClientOptions, 'tls'>
}

export interface HttpInvoker extends Invoker {
  close(): Promise<void>
  /** Open pools and their connection counts, for `/stats`. */
  stats(): Record<string, PoolStats>
}

export function createHttpInvoker(opts: HttpInvokerOptions = {}): HttpInvoker {
  const { tls: material, http2, ...http1 } = opts
  // One policy maker: a target's policy is made once and shared by both clients.
  const tls = createUpstreamTls(material)
  const plain = createHttp1Invoker({ ...http1, tls })
  // Its sessions and sockets are made on a target's first call; creating it costs a few objects.
  const h2 = createHttp2Invoker({ ...http2, tls })

  return {
    invoke(req, endpoint, signal) {
      const t = endpoint.target
      const http2 = t.kind === 'http' && (t.protocol === 'http2' || t.protocol === 'grpc')
      return http2 ? h2.invoke(req, endpoint, signal) : plain.invoke(req, endpoint, signal)
    },
    async close() {
      await Promise.all([plain.close(), h2.close()])
    },
    stats() {
      return { ...plain.stats(), ...h2.stats() }
    },
  }
}
