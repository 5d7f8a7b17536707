// The HTTP/2 side of the outbound and inbound listeners (RFC 9113), a sibling of http1-server.ts: a
// connection whose first bytes are the HTTP/2 preface (cleartext, prior knowledge) is handed here, to
// a node:http2 server session, as is a TLS connection that negotiated `h2` by ALPN (tls-listener.ts),
// and each of its streams becomes the same DownstreamRequest the
// HTTP/1.1 server makes, so both go through the same handlers (host resolution, path normalization,
// refusals, the layer list).
//
// What a hostile peer meets (the limits are in Http2Limits below, each with where it comes from):
// a bad preface gets GOAWAY PROTOCOL_ERROR; more concurrent streams than advertised are refused
// (RST_STREAM REFUSED_STREAM, then GOAWAY when it persists); a header list over 16 KiB or over 100
// fields resets the stream; a frame larger than the advertised frame size is a connection error
// (GOAWAY FRAME_SIZE_ERROR); SETTINGS and PING floods whose acknowledgements the peer does not read
// exhaust the session's bounded outbound queue and end it; streams opened and reset faster than
// 33 a second after a burst of 1000 (the rapid-reset attack, CVE-2023-44487) end the session with
// GOAWAY. Flow control is node's: a stream whose body the sidecar is not reading stops granting
// window, so a slow reader on either side holds the peer back instead of filling memory.

import type { IncomingHttpHeaders } from 'node:http2'
import {
  constants,
  createServer,
  type Http2Server,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2'
import type { Socket } from 'node:net'
import { Readable } from 'node:stream'
import type { PeerCertificate, TLSSocket } from 'node:tls'
import { Cancellation } from '../engine/cancel.ts'
import type { CancelSignal, HeaderMap, MeshResponse, RecordedBody, Trailers } from '../engine/types.ts'
import { readableOf } from './body-stream.ts'
import { connectionTokens, dropHeader } from './header-policy.ts'
import type { DownstreamHandler, DownstreamRequest } from './http1-server.ts'
import { MAX_BUFFERED_BODY, MAX_HEADER_BYTES, MAX_HEADER_COUNT } from './limits.ts'
import { pump } from './pump.ts'

/** The client connection preface (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
/** Its request line: enough to tell an HTTP/2 client from an HTTP/1.1 one. */
const PREFACE_LINE = 16

/**
 * What the first bytes of a connection say: `h2` once the preface's request line is there, `h1` as
 * soon as a byte differs from it, `more` while they are a proper prefix of it.
 */
export function sniffPreface(data: Buffer): 'h1' | 'h2' | 'more' {
  const n = Math.min(data.length, PREFACE_LINE)
  for (let i = 0; i < n; i++) if (data[i] !== H2_PREFACE[i]) return 'h1'
  return n < PREFACE_LINE ? 'more' : 'h2'
}

export interface Http2Limits {
  /**
   * Streams a client may have open at once: 100, the smallest value RFC 9113 §6.5.2 recommends and
   * the default of nghttp2, Go and Envoy's upstream side; nginx uses 128.
   */
  maxConcurrentStreams: number
  /** Header list bytes (uncompressed, RFC 9113 §6.5.2): the HTTP/1.1 edge's 16 KiB. */
  maxHeaderListSize: number
  /** Header fields per block, pseudo-headers included: the HTTP/1.1 edge's 100, plus the four pseudo ones. */
  maxHeaderListPairs: number
  /**
   * Rapid reset (CVE-2023-44487): a burst of this many stream resets is allowed, then at most
   * `streamResetRate` a second; past that, GOAWAY. 1000 and 33: node's defaults since the fix.
   */
  streamResetBurst: number
  streamResetRate: number
  /**
   * Frames the session found invalid, and streams it had to refuse, before the session ends: 100
   * each (node's default of 1000 invalid frames is a lot of free work for a peer).
   */
  maxInvalidFrames: number
  maxRejectedStreams: number
  /**
   * Memory one session may hold in its queues, MB: 10, node's default. A peer that sends SETTINGS or
   * PING and never reads the acknowledgements fills the outbound queue, and the session ends there.
   */
  maxSessionMemory: number
  /** A session with no stream open for this long is closed with GOAWAY, ms (the keep-alive timeout). */
  idleTimeout: number
}

export const DEFAULT_HTTP2_LIMITS: Readonly<Http2Limits> = Object.freeze({
  maxConcurrentStreams: 100,
  maxHeaderListSize: MAX_HEADER_BYTES,
  maxHeaderListPairs: MAX_HEADER_COUNT + 4,
  streamResetBurst: 1000,
  streamResetRate: 33,
  maxInvalidFrames: 100,
  maxRejectedStreams: 100,
  maxSessionMemory: 10,
  idleTimeout: 60_000,
})

/** What the HTTP/2 edge tells the listener it belongs to (the drain's and /stats' bookkeeping). */
export interface Http2Hooks {
  requestStarted(): void
  requestEnded(): void
  /** A session ended in a protocol error of the peer's making, by its kind (`h2_protocol_error`...). */
  refused(code: string): void
}

export interface Http2Edge {
  /** Takes over a connection whose first bytes (`head`, already read off it) are the preface. */
  accept(socket: Socket, head: Buffer): void
  /** Takes over a TLS connection whose handshake negotiated `h2` (nothing read off it yet). */
  acceptTls(socket: TLSSocket): void
  sessions(): number
  /** GOAWAY to every session: no new streams, the open ones finish. */
  closeIdle(): void
  /** Ends every session now. */
  destroy(): void
}

const GOAWAY_PROTOCOL_ERROR = Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, HTTP2_HEADER_STATUS } = constants

/**
 * A request body from an HTTP/2 stream: its DATA as a Readable of its own (so a reader that stops
 * early never tears down the stream the response goes out on), with backpressure: while nobody
 * reads, the stream is paused and the client gets no more window. It keeps what passed through, up to
 * MAX_BUFFERED_BODY, so a call of unknown length (gRPC's) can still be retried once it has ended.
 */
class StreamBody extends Readable implements RecordedBody {
  private readonly stream: ServerHttp2Stream
  private kept: Buffer[] | undefined = []
  private keptBytes = 0
  private ended = false

  constructor(stream: ServerHttp2Stream) {
    super()
    this.stream = stream
    this.on('error', () => {})
    stream.on('data', (chunk: Buffer) => {
      if (this.kept !== undefined) {
        this.keptBytes += chunk.length
        if (this.keptBytes > MAX_BUFFERED_BODY) this.kept = undefined
        else this.kept.push(chunk)
      }
      if (!this.push(chunk)) stream.pause()
    })
    stream.once('end', () => {
      this.ended = true
      this.push(null)
    })
  }

  override _read(): void {
    if (this.stream.isPaused()) this.stream.resume()
  }

  recorded(): Uint8Array | undefined {
    if (!this.ended || this.kept === undefined) return undefined
    return this.kept.length === 1 ? this.kept[0]! : Buffer.concat(this.kept, this.keptBytes)
  }
}

/** Fields that are connection-specific in HTTP/2 (RFC 9113 §8.2.2) or that node sets itself. */
function h2Headers(headers: HeaderMap, status?: number): Record<string, string | string[] | number> {
  const out: Record<string, string | string[] | number> = Object.create(null)
  if (status !== undefined) out[HTTP2_HEADER_STATUS] = status
  const listed = connectionTokens(headers.connection)
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || name.charCodeAt(0) === 58 /* : */) continue
    if (dropHeader(name, listed) || name === 'host') continue
    out[name] = value
  }
  return out
}

class H2Exchange implements DownstreamRequest {
  readonly method: string
  readonly url: string
  readonly headers: HeaderMap
  readonly remoteAddress: string | undefined
  readonly body: Readable | null
  readonly contentLength: number
  readonly trailers: Trailers | undefined
  /** A TLS session (ALPN h2); false for cleartext prior knowledge. */
  readonly secure: boolean
  /** HTTP/2 has no Upgrade (RFC 9113 §8.6); WebSockets over h2 (RFC 8441) are not offered. */
  readonly upgrade = undefined
  private readonly stream: ServerHttp2Stream
  private controller: Cancellation | undefined
  private done = false
  private readonly onDone: () => void
  private readonly tls: SessionTls | undefined

  constructor(
    stream: ServerHttp2Stream,
    raw: IncomingHttpHeaders,
    endStream: boolean,
    peer: string | undefined,
    tls: SessionTls | undefined,
    onDone: () => void,
  ) {
    this.stream = stream
    this.onDone = onDone
    this.tls = tls
    this.secure = tls !== undefined
    this.method = String(raw[':method'] ?? 'GET')
    this.url = String(raw[':path'] ?? '')
    const headers: HeaderMap = Object.create(null)
    for (const name in raw) {
      if (name.charCodeAt(0) === 58) continue
      const value = raw[name]
      if (value === undefined) continue
      // Cookies may come as several fields in HTTP/2 (RFC 9113 §8.2.3); HTTP/1.1 wants one.
      headers[name] = name === 'cookie' && Array.isArray(value) ? value.join('; ') : value
    }
    // :authority is HTTP/2's Host (RFC 9113 §8.3.1); a Host field, if both came, must agree, and the
    // router reads Host.
    const authority = raw[':authority']
    if (typeof authority === 'string' && authority !== '') headers.host = authority
    this.headers = headers
    this.remoteAddress = peer
    const cl = headers['content-length']
    this.contentLength = typeof cl === 'string' && /^\d+$/.test(cl) ? Number(cl) : -1
    if (endStream) {
      this.body = null
      this.trailers = undefined
    } else {
      this.body = new StreamBody(stream)
      this.trailers = new Promise<HeaderMap | undefined>((resolve) => {
        stream.once('trailers', (t: IncomingHttpHeaders) => resolve(t as HeaderMap))
        stream.once('end', () => resolve(undefined))
        stream.once('close', () => resolve(undefined))
      })
    }
    stream.once('close', () => {
      if (!this.done) this.controller?.abort()
      this.finish()
    })
  }
  peerCertificate(): PeerCertificate | null {
    return this.tls === undefined ? null : this.tls.peerCertificate()
  }

  switchProtocols(): undefined {
    return undefined
  }

  get signal(): CancelSignal {
    if (this.controller === undefined) {
      this.controller = new Cancellation()
      if (this.stream.closed && !this.done) this.controller.abort()
    }
    return this.controller
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    this.onDone()
  }

  respond(res: MeshResponse, close: boolean): Promise<void> {
    const stream = this.stream
    if (stream.headersSent || stream.destroyed || stream.closed) return Promise.resolve()
    if (close) stream.session?.close()
    const bodyless = this.method === 'HEAD' || res.status === 204 || res.status === 304
    const body = bodyless ? null : res.body
    const trailers = res.trailers
    const whole = body === null || typeof body === 'string' || body instanceof Uint8Array
    const empty = body === null || (whole && (typeof body === 'string' ? body.length : body.byteLength) === 0)
    const headers = h2Headers(res.headers, res.status)
    if (bodyless) {
      if (!(res.body === null || typeof res.body === 'string' || res.body instanceof Uint8Array))
        readableOf(res.body).destroy()
    } else if (!whole) delete headers['content-length']
    try {
      if (empty && trailers === undefined) {
        // No body, no trailers: one HEADERS frame with END_STREAM (gRPC's trailers-only form).
        stream.respond(headers, { endStream: true })
        return Promise.resolve()
      }
      stream.respond(headers, { waitForTrailers: trailers !== undefined })
    } catch {
      // A field node will not send (a value with a newline from an upstream): the stream cannot go on.
      stream.close(NGHTTP2_INTERNAL_ERROR)
      return Promise.resolve()
    }
    if (trailers !== undefined) {
      stream.once('wantTrailers', () => {
        Promise.resolve(trailers)
          .catch(() => undefined)
          .then((t) => {
            if (stream.destroyed || stream.closed) return
            try {
              stream.sendTrailers(t === undefined ? {} : h2Headers(t))
            } catch {
              stream.close(NGHTTP2_INTERNAL_ERROR)
            }
          })
      })
    }
    if (whole) {
      stream.end(empty ? undefined : body)
      return Promise.resolve()
    }
    return pipeToStream(readableOf(body), stream)
  }
}

/**
 * The TLS side of one session: its socket, and the client's verified certificate, read once (node
 * builds a new object per call), as http1-server.ts does per connection.
 */
class SessionTls {
  private readonly socket: TLSSocket
  private cert: PeerCertificate | null | undefined
  constructor(socket: TLSSocket) {
    this.socket = socket
  }
  peerCertificate(): PeerCertificate | null {
    if (this.cert === undefined) {
      // Only a certificate the handshake verified; an empty object when the client sent none.
      const cert = this.socket.authorized ? this.socket.getPeerCertificate() : undefined
      this.cert = cert?.raw === undefined ? null : cert
    }
    return this.cert
  }
}

/** Copies `src` into the stream with backpressure; a broken source resets the stream (INTERNAL_ERROR). */
async function pipeToStream(src: Readable, stream: ServerHttp2Stream): Promise<void> {
  const outcome = await pump(src, stream, (piece) => stream.write(piece))
  if (outcome === 'end') stream.end()
  // A broken source resets the stream; a closed one was the client's reset or its going away, and
  // the upstream's stream went with it (pump destroyed the source).
  else if (outcome instanceof Error && !stream.closed) stream.close(NGHTTP2_INTERNAL_ERROR)
}

export function createHttp2Edge(
  handler: DownstreamHandler,
  hooks: Http2Hooks,
  onError: (err: unknown) => void,
  limits: Partial<Http2Limits> = {},
): Http2Edge {
  const l: Http2Limits = { ...DEFAULT_HTTP2_LIMITS, ...limits }
  const sessions = new Set<Http2Session>()
  /**
   * The TLS side of the connection being handed over: node makes its session and emits 'session'
   * synchronously inside the 'connection' event, so it is read there and nowhere else.
   */
  let handing: SessionTls | undefined
  const server: Http2Server = createServer({
    maxSessionMemory: l.maxSessionMemory,
    maxHeaderListPairs: l.maxHeaderListPairs,
    maxSessionInvalidFrames: l.maxInvalidFrames,
    maxSessionRejectedStreams: l.maxRejectedStreams,
    streamResetBurst: l.streamResetBurst,
    streamResetRate: l.streamResetRate,
    // Our own pings and settings: we send none beyond the first SETTINGS.
    maxOutstandingPings: 10,
    settings: {
      maxConcurrentStreams: l.maxConcurrentStreams,
      maxHeaderListSize: l.maxHeaderListSize,
      enablePush: false,
    },
  })
  server.on('session', (session: Http2Session) => {
    sessions.add(session)
    let open = 0
    const tls = handing
    handing = undefined
    session.on('error', () => {})
    session.on('frameError', () => {})
    session.once('close', () => sessions.delete(session))
    session.setTimeout(l.idleTimeout, () => {
      // Idle for the keep-alive time with nothing open: say goodbye. A long stream is not idle.
      if (open === 0) session.close()
    })
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => {
      open++
      hooks.requestStarted()
      stream.on('error', () => {})
      const socket = session.socket as Socket | undefined
      const a = socket?.remoteAddress
      const peer = a?.startsWith('::ffff:') ? a.slice(7) : a
      const ex = new H2Exchange(
        stream,
        headers,
        (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0,
        peer,
        tls,
        () => {
          open--
          hooks.requestEnded()
        },
      )
      let handled: Promise<void>
      try {
        handled = handler(ex)
      } catch (err) {
        handled = Promise.reject(err)
      }
      handled.catch((err: unknown) => {
        onError(err)
        if (!stream.headersSent && !stream.closed) stream.respond({ ':status': 500 }, { endStream: true })
        else if (!stream.closed) stream.close(NGHTTP2_CANCEL)
      })
    })
  })
  server.on('sessionError', (err: Error & { code?: string }) => {
    hooks.refused(`h2_${(err.code ?? 'error').toLowerCase()}`)
  })

  return {
    accept(socket, head) {
      // The preface's request line is there; the rest of it must be too, byte for byte.
      if (head.length >= H2_PREFACE.length && !head.subarray(0, H2_PREFACE.length).equals(H2_PREFACE)) {
        hooks.refused('h2_bad_preface')
        socket.end(GOAWAY_PROTOCOL_ERROR)
        return
      }
      // node's session reads what is already buffered on the socket (on its next tick) before its own
      // reads; the socket must stay paused until then, or the buffer would flow out as 'data' to nobody.
      socket.unshift(head)
      // Prior knowledge inside TLS (a client that offered no ALPN) is still a TLS session.
      if ((socket as TLSSocket).encrypted === true) handing = new SessionTls(socket as TLSSocket)
      try {
        server.emit('connection', socket)
      } finally {
        handing = undefined
      }
    },
    acceptTls(socket) {
      handing = new SessionTls(socket)
      try {
        server.emit('connection', socket)
      } finally {
        handing = undefined
      }
    },
    sessions: () => sessions.size,
    closeIdle() {
      for (const s of sessions) if (!s.closed) s.close()
    },
    destroy() {
      for (const s of sessions) s.destroy()
    },
  }
}
