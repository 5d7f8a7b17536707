// The sidecar's HTTP/2 client, for targets with `protocol: http2` or `grpc` (RFC 9113; cleartext with
// prior knowledge, or TLS with `h2` negotiated by ALPN for `https://` origins, under the same per-target
// policy as the HTTP/1.1 client: tls-client.ts): pooled sessions per endpoint, each carrying up to the concurrent streams its
// server allows. A session that gets GOAWAY takes no new streams and finishes the ones it has; one
// that errors or closes is dropped, and the next request opens a new one. Bodies stream both ways
// with node's flow control (a slow reader on one side stops the window on the other), and trailers
// pass through (gRPC's status lives there).

import type {
  ClientHttp2Session,
  ClientHttp2Stream,
  IncomingHttpHeaders,
  IncomingHttpStatusHeader,
} from 'node:http2'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { isGrpcRequest } from '../engine/grpc.ts'
import type {
  AttemptRequest,
  CancelSignal,
  Endpoint,
  HeaderMap,
  Invoker,
  MeshResponse,
  TargetConfig,
} from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import { readableOf } from './body-stream.ts'
import { connectionTokens, dropHeader, keepTe } from './header-policy.ts'
import type { PoolStats } from './http1-client.ts'
import { drainOrClose } from './pump.ts'
import type { TlsConnectPolicy } from './tls-client.ts'
import { upstreamFailure } from './upstream-failure.ts'

// Built-ins fetched, not imported: the Lambda bundle reaches this file only through a dynamic import
// (an HTTP/2 target's first call), and an import would be hoisted into its init (DESIGN: cold start).
const { connect, constants } = process.getBuiltinModule('node:http2')
const { Readable } = process.getBuiltinModule('node:stream')
const tlsConnect = (options: import('node:tls').ConnectionOptions) =>
  process.getBuiltinModule('node:tls').connect(options)

/** What the client offers in ALPN on an `https://` origin: HTTP/2 only (a server without it is refused). */
export const UPSTREAM_H2_ALPN: readonly string[] = Object.freeze(['h2'])

export interface Http2ClientOptions {
  /** TCP connect timeout, ms. 10 s, as the HTTP/1.1 client's. */
  connectTimeout?: number
  /** A session with no stream open closes after this, ms: 60 s. */
  idleTimeout?: number
  /** Streams per session until the server's SETTINGS say otherwise: 100, RFC 9113's recommended floor. */
  defaultMaxStreams?: number
  /**
   * How `https://` origins are reached, per target (tls-client.ts: the sidecar's certificate and trust
   * bundle, or the system's roots; SNI; the names the peer must carry). None: the system's roots.
   */
  tls?: (target: TargetConfig) => TlsConnectPolicy
}

type Settings = Required<Omit<Http2ClientOptions, 'tls'>>

export interface Http2Invoker extends Invoker {
  close(): Promise<void>
  stats(): Record<string, PoolStats>
}

const {
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_AUTHORITY,
  HTTP2_HEADER_SCHEME,
  HTTP2_HEADER_STATUS,
} = constants

class Session {
  readonly session: ClientHttp2Session
  active = 0
  connected = false
  /** GOAWAY received, or closing: no new streams. */
  draining = false
  dead = false
  /** What ended it, for the streams it takes down. */
  error: unknown
  /** The TLS material generation its handshake used (0: cleartext or the system's roots). */
  readonly generation: number
  private readonly pool: Pool

  constructor(pool: Pool, origin: string, opts: Settings) {
    this.pool = pool
    const tls = pool.tls
    this.generation = tls?.generation() ?? 0
    const session = connect(origin, {
      // No push (we never want one).
      settings: { enablePush: false },
      peerMaxConcurrentStreams: opts.defaultMaxStreams,
      // https: our own TLS socket, so the target's policy decides the context, SNI and names.
      ...(pool.secure ? { createConnection: () => this.connectTls(pool) } : {}),
    })
    this.session = session
    const socket = session.socket as Socket | undefined
    socket?.setTimeout?.(opts.connectTimeout)
    const onConnectTimeout = () =>
      session.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }))
    socket?.once?.('timeout', onConnectTimeout)
    session.once('connect', () => {
      if (pool.secure && session.alpnProtocol !== 'h2') {
        // Checked here, not on the socket's secureConnect: node's session must be set up on the socket
        // before it may be destroyed.
        const err = new Error(`${pool.origin} did not negotiate h2 by ALPN`)
        this.error = err
        this.dead = true
        this.retire()
        session.destroy(Object.assign(err, { code: 'ERR_HTTP2_ALPN' }))
        return
      }
      this.connected = true
      socket?.setTimeout?.(0)
      socket?.off?.('timeout', onConnectTimeout)
    })
    session.on('error', (err) => {
      this.error = err
      this.retire()
    })
    session.once('goaway', () => {
      this.draining = true
      this.retire()
    })
    session.once('close', () => {
      this.dead = true
      this.retire()
    })
    session.setTimeout(opts.idleTimeout, () => {
      if (this.active === 0) {
        this.draining = true
        this.retire()
        session.close()
      }
    })
  }

  /**
   * The TLS connection for an https origin, offering only `h2`: a server that picks nothing is cut
   * off on connect with a clear error (one that does ALPN without h2 ends the handshake itself).
   */
  private connectTls(pool: Pool): TLSSocket {
    const tls = pool.tls
    const socket = tlsConnect({
      host: pool.host,
      port: pool.port,
      ALPNProtocols: [...UPSTREAM_H2_ALPN],
      ...(tls === undefined ? {} : { secureContext: tls.secureContext() }),
      ...(tls?.servername === undefined
        ? pool.servername === undefined
          ? {}
          : { servername: pool.servername }
        : { servername: tls.servername }),
      ...(tls?.checkServerIdentity === undefined ? {} : { checkServerIdentity: tls.checkServerIdentity }),
    })
    socket.setNoDelay(true)
    return socket
  }

  /** Streams it may still open now. */
  get capacity(): number {
    const max = this.session.remoteSettings?.maxConcurrentStreams ?? this.pool.opts.defaultMaxStreams
    return Math.min(max, 2 ** 31 - 1) - this.active
  }

  get usable(): boolean {
    return !this.draining && !this.dead && !this.session.destroyed && !this.session.closed
  }

  /** Made with a client certificate since rotated: it takes no new streams, the open ones finish. */
  get stale(): boolean {
    const tls = this.pool.tls
    return tls !== undefined && tls.generation() !== this.generation
  }

  /** No new streams; closes once the open ones are done. */
  drain(): void {
    this.draining = true
    this.retire()
    this.session.close()
  }

  private retire(): void {
    this.pool.forget(this)
  }
}

class Pool {
  readonly sessions: Session[] = []
  readonly origin: string
  readonly authority: string
  readonly opts: Settings
  readonly secure: boolean
  readonly scheme: 'http' | 'https'
  readonly host: string
  readonly port: number
  /** SNI when the policy names none: the URL's host, unless it is an IP address (RFC 6066 §3). */
  readonly servername: string | undefined
  readonly tls: TlsConnectPolicy | undefined

  constructor(origin: string, opts: Settings, tls: TlsConnectPolicy | undefined) {
    this.origin = origin
    const url = new URL(origin)
    this.authority = url.host
    this.opts = opts
    this.secure = url.protocol === 'https:'
    this.scheme = this.secure ? 'https' : 'http'
    this.host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    this.port = url.port === '' ? (this.secure ? 443 : 80) : Number(url.port)
    this.servername = /^[\d.]+$|:/.test(this.host) ? undefined : this.host
    this.tls = tls
  }

  /** A session with room for one more stream: an open one, else a new one. */
  acquire(): Session {
    for (const s of this.sessions) {
      if (s.usable && s.stale) {
        s.drain()
        return this.acquire()
      }
      if (s.usable && s.capacity > 0) return s
    }
    const s = new Session(this, this.origin, this.opts)
    this.sessions.push(s)
    return s
  }

  forget(s: Session): void {
    const i = this.sessions.indexOf(s)
    if (i >= 0) this.sessions.splice(i, 1)
  }

  stats(): PoolStats {
    let running = 0
    for (const s of this.sessions) running += s.active
    return { connected: this.sessions.length, pending: 0, running }
  }
}

/** Request fields for HTTP/2: no connection-specific ones (RFC 9113 §8.2.2), TE only as `trailers`. */
function requestHeaders(
  req: AttemptRequest,
  authority: string,
  scheme: 'http' | 'https',
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null)
  const headers = req.headers
  const host = headers.host
  out[HTTP2_HEADER_METHOD] = req.method
  out[HTTP2_HEADER_PATH] = req.path
  out[HTTP2_HEADER_SCHEME] = scheme
  out[HTTP2_HEADER_AUTHORITY] = typeof host === 'string' && host !== '' ? host : authority
  const listed = connectionTokens(headers.connection)
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || name === 'host' || name.charCodeAt(0) === 58) continue
    if (name === 'te') {
      if (keepTe(value)) out.te = 'trailers'
      continue
    }
    if (dropHeader(name, listed) || name === 'expect') continue
    out[name] = value
  }
  return out
}

/** Response or trailer fields as the pipeline's HeaderMap: pseudo-headers left out. */
function fieldsOf(raw: IncomingHttpHeaders): HeaderMap {
  const out: HeaderMap = Object.create(null)
  for (const name in raw) {
    if (name.charCodeAt(0) === 58) continue
    const value = raw[name]
    if (value !== undefined) out[name] = value
  }
  return out
}

/** The response body: the stream's DATA as a Readable of its own, paused upstream when not read. */
class ResponseBody extends Readable {
  private readonly stream: ClientHttp2Stream
  constructor(stream: ClientHttp2Stream) {
    super()
    this.stream = stream
    this.on('error', () => {})
  }
  override _read(): void {
    if (this.stream.isPaused()) this.stream.resume()
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // The reader let go before the end: the upstream stream is cancelled, not left to fill a buffer.
    if (!this.stream.closed) this.stream.close(NGHTTP2_CANCEL)
    cb(err)
  }
}

/**
 * One attempt on one stream. A stream the server refuses unprocessed (REFUSED_STREAM: a new session
 * whose limit was not known yet, a server shedding load) goes once more, on whichever session has
 * room then, when its body can be sent again.
 */
function exchange(
  pool: Pool,
  req: AttemptRequest,
  signal: CancelSignal,
  again = true,
): Promise<MeshResponse> {
  return new Promise<MeshResponse>((resolve, reject) => {
    const session = pool.acquire()
    const body = req.body
    const hasTrailers = req.trailers !== undefined
    const noBody =
      body === null ||
      (typeof body === 'string' ? body.length === 0 : body instanceof Uint8Array && body.byteLength === 0)
    let stream: ClientHttp2Stream
    try {
      stream = session.session.request(requestHeaders(req, pool.authority, pool.scheme), {
        endStream: noBody && !hasTrailers,
        waitForTrailers: hasTrailers,
      })
    } catch (err) {
      reject(upstreamFailure(err, { aborted: false, connected: session.connected }, 'stream not opened'))
      return
    }
    session.active++
    let settled = false
    let gotResponse = false
    let out: ResponseBody | undefined
    let trailers: HeaderMap | undefined
    let resolveTrailers: ((t: HeaderMap | undefined) => void) | undefined
    const held = req.awaitGrpcStatus === true
    let heldRes: { status: number; headers: HeaderMap } | undefined
    let lastError: unknown
    /** The upstream's message is complete (END_STREAM seen). */
    let ended = false
    // `on`, not `once`: a stream may emit more than one error, and an unheard one would be thrown.
    stream.on('error', (err) => {
      lastError = err
    })

    const onAbort = () => {
      if (!stream.closed) stream.close(NGHTTP2_CANCEL)
      fail(
        new UpstreamFailure(FailureKinds.timeout, 'aborted: the attempt timed out or the client went away'),
      )
    }
    signal.addEventListener('abort', onAbort)

    const settle = (res: MeshResponse) => {
      if (settled) return
      settled = true
      signal.removeEventListener('abort', onAbort)
      resolve(res)
    }
    const fail = (err: UpstreamFailure) => {
      if (!settled) {
        settled = true
        signal.removeEventListener('abort', onAbort)
        reject(err)
        return
      }
      if (out !== undefined && !out.destroyed) out.destroy(err)
    }
    /** Hands over a response whose body streams from here (first DATA seen, or not holding). */
    const streaming = (status: number, headers: HeaderMap) => {
      out = new ResponseBody(stream)
      const t = new Promise<HeaderMap | undefined>((r) => {
        resolveTrailers = r
      })
      settle({ status, headers, body: out, trailers: t })
    }

    stream.on('response', (raw: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number) => {
      gotResponse = true
      const status = Number(raw[HTTP2_HEADER_STATUS] ?? 502)
      const headers = fieldsOf(raw)
      if ((flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0) {
        // Headers only (gRPC's trailers-only form): nothing more comes.
        settle({ status, headers, body: null })
        return
      }
      // A gRPC call the pipeline may retry on its status: wait for the first message or the trailers.
      if (held && isGrpcRequest(headers)) heldRes = { status, headers }
      else streaming(status, headers)
    })
    stream.on('data', (chunk: Buffer) => {
      if (heldRes !== undefined) {
        const h = heldRes
        heldRes = undefined
        streaming(h.status, h.headers)
      }
      if (out !== undefined && !out.push(chunk)) stream.pause()
    })
    stream.on('trailers', (raw: IncomingHttpHeaders) => {
      trailers = fieldsOf(raw)
    })
    stream.on('end', () => {
      if (heldRes !== undefined) {
        // Headers, then trailers, and no message: the status is known before anything was passed on.
        const h = heldRes
        heldRes = undefined
        settle({ status: h.status, headers: h.headers, body: null, trailers: trailers ?? {} })
        return
      }
      ended = true
      out?.push(null)
      resolveTrailers?.(trailers)
    })
    stream.on('close', () => {
      session.active--
      resolveTrailers?.(trailers)
      // A response that ended cleanly is whole, read or not yet.
      if (settled && (out === undefined || ended)) return
      const code = stream.rstCode
      if (!gotResponse && code === NGHTTP2_REFUSED_STREAM) {
        // Refused before any processing (RFC 9113 §8.7): safe to try elsewhere.
        if (again && !settled && !signal.aborted && replayable(req.body)) {
          settled = true
          signal.removeEventListener('abort', onAbort)
          exchange(pool, req, signal, false).then(resolve, reject)
          return
        }
        fail(new UpstreamFailure(FailureKinds.connectFailure, `${pool.origin}: stream refused`))
        return
      }
      lastError ??= session.error
      if (!session.connected && !gotResponse && !signal.aborted) {
        const why = lastError instanceof Error ? lastError.message : 'connection failed'
        fail(new UpstreamFailure(FailureKinds.connectFailure, `${pool.origin}: ${why}`, { cause: lastError }))
        return
      }
      fail(
        upstreamFailure(
          lastError,
          { aborted: signal.aborted, connected: true },
          `${pool.origin}: stream closed (code ${code})`,
        ),
      )
    })

    if (!noBody || hasTrailers)
      writeBody(stream, req).catch((err: unknown) => {
        if (!stream.closed) stream.close(NGHTTP2_CANCEL)
        fail(
          new UpstreamFailure(FailureKinds.reset, `request body: ${(err as Error).message}`, { cause: err }),
        )
      })
  })
}

function replayable(body: AttemptRequest['body']): boolean {
  return body === null || typeof body === 'string' || body instanceof Uint8Array
}

/** The request body, with backpressure, then its trailers (if any). */
async function writeBody(stream: ClientHttp2Stream, req: AttemptRequest): Promise<void> {
  const trailers = req.trailers
  if (trailers !== undefined) {
    stream.once('wantTrailers', () => {
      Promise.resolve(trailers)
        .catch(() => undefined)
        .then((t) => {
          if (stream.closed || stream.destroyed) return
          const fields: Record<string, string | string[]> = Object.create(null)
          if (t !== undefined)
            for (const name in t) {
              const v = t[name]
              if (v !== undefined && name.charCodeAt(0) !== 58 && !dropHeader(name, undefined))
                fields[name] = v
            }
          stream.sendTrailers(fields)
        })
    })
  }
  const body = req.body
  if (body === null) {
    stream.end()
    return
  }
  if (typeof body === 'string' || body instanceof Uint8Array) {
    stream.end(body)
    return
  }
  const src = readableOf(body)
  for await (const piece of src) {
    if (stream.closed || stream.destroyed) return
    if (!stream.write(piece)) {
      await drainOrClose(stream)
    }
  }
  if (!stream.closed) stream.end()
}

export function createHttp2Invoker(opts: Http2ClientOptions = {}): Http2Invoker {
  const settings: Settings = {
    connectTimeout: opts.connectTimeout ?? 10_000,
    idleTimeout: opts.idleTimeout ?? 60_000,
    defaultMaxStreams: opts.defaultMaxStreams ?? 100,
  }
  const pools = new Map<string, Pool>()
  const tlsPolicy = opts.tls
  let closed = false

  /** One pool per origin, and for TLS per way of reaching it (one target may name another SNI). */
  function poolFor(endpoint: Endpoint): Pool {
    const origin = endpoint.id
    const policy = origin.startsWith('https:') ? tlsPolicy?.(endpoint.target) : undefined
    const key = policy === undefined || policy.key === '' ? origin : `${origin} ${policy.key}`
    let pool = pools.get(key)
    if (pool === undefined) {
      pool = new Pool(origin, settings, policy)
      pools.set(key, pool)
    }
    return pool
  }

  return {
    invoke(req: AttemptRequest, endpoint: Endpoint, signal: CancelSignal) {
      if (closed)
        return Promise.reject(new UpstreamFailure(FailureKinds.connectFailure, 'http2 invoker is closed'))
      if (signal.aborted)
        return Promise.reject(new UpstreamFailure(FailureKinds.timeout, 'aborted before sending'))
      return exchange(poolFor(endpoint), req, signal)
    },
    async close() {
      closed = true
      const closing: Promise<void>[] = []
      for (const pool of pools.values())
        for (const s of pool.sessions.splice(0)) {
          // A destroyed session calls no close callback: nothing to wait for.
          if (s.session.destroyed) continue
          closing.push(new Promise((r) => s.session.close(() => r())))
          // Sessions still busy after a moment are cut off.
          setTimeout(() => s.session.destroy(), 1000).unref()
        }
      pools.clear()
      await Promise.all(closing)
    },
    stats() {
      const out: Record<string, PoolStats> = {}
      for (const [origin, pool] of pools) out[`${origin} (h2)`] = pool.stats()
      return out
    },
  }
}
