// The sidecar's HTTP invoker: one keep-alive undici `Pool` per upstream origin, driven through the
// dispatcher API. Bodies stream both ways; the response body goes back as undici's own stream so the
// server can pipe it without buffering. Only the sidecar loads this file (undici costs ~40 ms to load).

import { Pool } from 'undici'
import { toAbortSignal } from '../engine/cancel.ts'
import type {
  AttemptRequest,
  CancelSignal,
  Endpoint,
  HeaderMap,
  Invoker,
  MeshResponse,
} from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import { connectionTokens, forwardedRequestValue, stripResponseHopByHop } from '../http/header-policy.ts'
import { upstreamFailure } from '../http/upstream-failure.ts'

export interface UndiciInvokerOptions {
  /** Connections per origin; null: no limit (the circuit breaker bounds concurrency). */
  connections?: number | null
  /** TCP/TLS connect timeout, ms. 10 s: undici's default, and well above any LAN connect. */
  connectTimeout?: number
  /** Idle keep-alive sockets close after this, ms. 4 s: undici's default, under node's 5 s server side. */
  keepAliveTimeout?: number
  /** Longest silence within a response body, ms. 300 s: Envoy's stream idle timeout is 5 min. */
  bodyTimeout?: number
  /** Upstream response headers larger than this fail the attempt. 16 KiB, as node's default. */
  maxHeaderSize?: number
  /** Extra TLS options for https origins (e.g. `ca` for a private CA, `rejectUnauthorized`). */
  tls?: { ca?: string | Buffer | Array<string | Buffer>; rejectUnauthorized?: boolean; servername?: string }
  /**
   * 5xx responses with a declared length up to this many bytes are read fully before being returned,
   * so a response the pipeline discards for a retry never pins a pooled connection. 64 KiB.
   */
  bufferErrorBodies?: number
}

export interface UndiciInvoker extends Invoker {
  /** Closes every pool, letting in-flight requests finish. */
  close(): Promise<void>
  /** Open pools and their connection counts, for `/stats`. */
  stats(): Record<string, { connected: number; pending: number; running: number }>
}

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'CONNECT' | 'OPTIONS' | 'TRACE' | 'PATCH'

/** Methods whose responses carry no body, and statuses that never do (RFC 9110 §6.4.1). */
function bodyless(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)
}

export function createUndiciInvoker(opts: UndiciInvokerOptions = {}): UndiciInvoker {
  const pools = new Map<string, Pool>()
  const bufferLimit = opts.bufferErrorBodies ?? 64 * 1024
  let closed = false

  function poolFor(endpoint: Endpoint): Pool {
    const origin = endpoint.id
    let pool = pools.get(origin)
    if (pool === undefined) {
      const https = origin.startsWith('https:')
      pool = new Pool(origin, {
        connections: opts.connections ?? null,
        connectTimeout: opts.connectTimeout ?? 10_000,
        keepAliveTimeout: opts.keepAliveTimeout ?? 4_000,
        // The route and per-try timeouts (the pipeline's AbortSignal) bound the wait for headers.
        headersTimeout: 0,
        bodyTimeout: opts.bodyTimeout ?? 300_000,
        maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024,
        // HTTP/2 only where the upstream offers it in ALPN, which needs TLS; cleartext stays HTTP/1.1.
        allowH2: https,
        ...(https && opts.tls !== undefined ? { connect: opts.tls } : {}),
      })
      pools.set(origin, pool)
    }
    return pool
  }

  async function invoke(
    req: AttemptRequest,
    endpoint: Endpoint,
    cancel: CancelSignal,
  ): Promise<MeshResponse> {
    const signal = toAbortSignal(cancel)
    if (closed) throw new UpstreamFailure(FailureKinds.connectFailure, 'http invoker is closed')
    if (signal.aborted) throw new UpstreamFailure(FailureKinds.timeout, 'aborted before sending')
    const pool = poolFor(endpoint)
    const body = req.body
    let res: Awaited<ReturnType<Pool['request']>>
    try {
      res = await pool.request({
        method: req.method as Method,
        path: req.path,
        headers: outgoingHeaders(req.headers),
        // undici takes strings, bytes and (async) iterables, an IncomingMessage included, as they are.
        body: body as never,
        signal,
      })
    } catch (err) {
      throw toFailure(err, signal)
    }
    // undici's header object is ours now: edited in place.
    const headers = stripResponseHopByHop(res.headers as HeaderMap)
    if (bodyless(req.method, res.statusCode)) {
      res.body.resume()
      return { status: res.statusCode, headers, body: null }
    }
    if (res.statusCode >= 500 && bufferLimit > 0) {
      const length = Number(res.headers['content-length'])
      if (Number.isFinite(length) && length <= bufferLimit) {
        try {
          return { status: res.statusCode, headers, body: new Uint8Array(await res.body.arrayBuffer()) }
        } catch (err) {
          throw toFailure(err, signal)
        }
      }
    }
    return { status: res.statusCode, headers, body: res.body }
  }

  return {
    invoke,
    async close() {
      closed = true
      const all = [...pools.values()]
      pools.clear()
      await Promise.allSettled(all.map((p) => p.close()))
    },
    stats() {
      const out: Record<string, { connected: number; pending: number; running: number }> = {}
      for (const [origin, pool] of pools) {
        const s = pool.stats
        out[origin] = { connected: s.connected, pending: s.pending, running: s.running }
      }
      return out
    },
  }
}

/** The request headers as undici's flat `[name, value, …]` list, hop-by-hop ones left out. */
function outgoingHeaders(headers: HeaderMap): string[] {
  const listed = connectionTokens(headers.connection)
  const out: string[] = []
  for (const name in headers) {
    const given = headers[name]
    // Expect: 100-continue is answered by the sidecar's own server; undici refuses the header anyway.
    const value = given === undefined ? undefined : forwardedRequestValue(name, given, listed)
    if (typeof value === 'string') out.push(name, value)
    else if (value !== undefined) for (const v of value) out.push(name, v)
  }
  return out
}

/** Whatever undici threw, as the pipeline's failure (the signal firing is a timeout whatever it surfaced as). */
function toFailure(err: unknown, signal: AbortSignal): UpstreamFailure {
  return upstreamFailure(err, { aborted: signal.aborted })
}
