// The sidecar's HTTP invoker: meshgate's own HTTP/1.1 client (http/http1-client.ts) for every HTTP/1.1
// origin, cleartext or `https://`, and its HTTP/2 client (http/http2-client.ts) for cleartext
// `protocol: http2 | grpc` targets. TLS origins are reached the way tls-client.ts decides per target:
// with the sidecar's certificate and trust bundle (mutual TLS to another sidecar), or the system's roots.

import type { Invoker } from '../engine/types.ts'
import { createHttp1Invoker, type Http1Options, type PoolStats } from '../http/http1-client.ts'
import { createHttp2Invoker, type Http2ClientOptions } from '../http/http2-client.ts'
import { createUpstreamTls } from '../http/tls-client.ts'
import type { TlsMaterial } from '../tls/material.ts'
import type { UndiciInvoker } from './http-undici.ts'

export type HttpInvokerOptions = Omit<Http1Options, 'tls'> & {
  /** The sidecar's certificate, key and trust bundle; none: https targets use the system's roots. */
  tls?: TlsMaterial
  /** Options of the HTTP/2 client, for targets with `protocol: http2 | grpc`. */
  http2?: Http2ClientOptions
}

export interface HttpInvoker extends Invoker {
  close(): Promise<void>
  /** Open pools and their connection counts, for `/stats`. */
  stats(): Record<string, PoolStats>
}

export function createHttpInvoker(opts: HttpInvokerOptions = {}): HttpInvoker {
  const { tls: material, http2, ...http1 } = opts
  const plain = createHttp1Invoker({ ...http1, tls: createUpstreamTls(material) })
  // Its sessions and sockets are made on a target's first call; creating it costs a few objects.
  const h2 = createHttp2Invoker(http2)
  // HTTP/2 over TLS (an https origin with protocol http2 | grpc) goes through undici, which
  // negotiates h2 by ALPN with the system's roots: not yet with the sidecar's own certificate
  // (docs/protocols.md). Loaded on the first such call.
  let tls: Promise<UndiciInvoker> | undefined
  let tlsLoaded: UndiciInvoker | undefined

  function loadTls(): Promise<UndiciInvoker> {
    tls ??= import('./http-undici.ts').then((m) => {
      tlsLoaded = m.createUndiciInvoker(http1)
      return tlsLoaded
    })
    return tls
  }

  return {
    invoke(req, endpoint, signal) {
      const t = endpoint.target
      const http2 = t.kind === 'http' && (t.protocol === 'http2' || t.protocol === 'grpc')
      if (!http2) return plain.invoke(req, endpoint, signal)
      if (!endpoint.id.startsWith('https:')) return h2.invoke(req, endpoint, signal)
      return loadTls().then((invoker) => invoker.invoke(req, endpoint, signal))
    },
    async close() {
      await Promise.all([plain.close(), h2.close(), tls?.then((invoker) => invoker.close())])
    },
    stats() {
      return { ...plain.stats(), ...h2.stats(), ...tlsLoaded?.stats() }
    },
  }
}
