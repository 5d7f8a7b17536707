// The sidecar's HTTP invoker: cleartext origins go through meshgate's own HTTP/1.1 client (http1.ts),
// TLS origins through undici, which also speaks HTTP/2 where the upstream offers it in ALPN. undici is
// imported on the first https request only, so a mesh of plain-HTTP services never loads it (it is
// the largest module in the bundle: ~40 ms and several MB of heap).

import type { Invoker } from '../engine/types.ts'
import { createHttp1Invoker, type Http1Options, type PoolStats } from '../http/http1-client.ts'
import { createHttp2Invoker, type Http2ClientOptions } from '../http/http2-client.ts'
import type { UndiciInvoker, UndiciInvokerOptions } from './http-undici.ts'

export type HttpInvokerOptions = Http1Options &
  Pick<UndiciInvokerOptions, 'tls'> & {
    /** Options of the HTTP/2 client, for targets with `protocol: http2 | grpc`. */
    http2?: Http2ClientOptions
  }

export interface HttpInvoker extends Invoker {
  close(): Promise<void>
  /** Open pools and their connection counts, for `/stats`. */
  stats(): Record<string, PoolStats>
}

export function createHttpInvoker(opts: HttpInvokerOptions = {}): HttpInvoker {
  const plain = createHttp1Invoker(opts)
  // Its sessions and sockets are made on a target's first call; creating it costs a few objects.
  const h2 = createHttp2Invoker(opts.http2)
  let tls: Promise<UndiciInvoker> | undefined
  let tlsLoaded: UndiciInvoker | undefined

  function loadTls(): Promise<UndiciInvoker> {
    tls ??= import('./http-undici.ts').then((m) => {
      tlsLoaded = m.createUndiciInvoker(opts)
      return tlsLoaded
    })
    return tls
  }

  return {
    invoke(req, endpoint, signal) {
      const t = endpoint.target
      const http2 = t.kind === 'http' && (t.protocol === 'http2' || t.protocol === 'grpc')
      // https origins negotiate HTTP/2 by ALPN in undici; cleartext ones with prior knowledge here.
      if (http2 && !endpoint.id.startsWith('https:')) return h2.invoke(req, endpoint, signal)
      if (!endpoint.id.startsWith('https:')) return plain.invoke(req, endpoint, signal)
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
