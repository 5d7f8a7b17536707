// The HTTP/1.1 server of the outbound and inbound listeners: plain `net` sockets and the parser in
// http1-codec.ts, without node's http machinery (an IncomingMessage, a ServerResponse and their
// streams per request, and a header object built twice). With it the sidecar's request path is one read, one parse, one
// write per side. Measured against node's server in the same proxy (wrk, 16 connections, one core):
// about 20 µs of CPU per request less.
//
// What it accepts (RFC 9112): HTTP/1.0 and 1.1, keep-alive and pipelining (requests on a connection
// are answered in order, one at a time), Content-Length and chunked request bodies, Expect:
// 100-continue. What it refuses, with a response from the error table and a closed connection: see
// http1-request.ts for the head (400, 405, 417, 431, 501, 505), a request line over 16 KiB (414),
// a malformed chunked body (400), a head or a body that stops arriving (408).

import type { Socket } from 'node:net'
import { Server as NetServer } from 'node:net'
import { Readable } from 'node:stream'
import type { PeerCertificate, TLSSocket } from 'node:tls'
import { Server as TlsServer } from 'node:tls'
import { Cancellation } from '../engine/cancel.ts'
import { type ErrorCode, ErrorCodes } from '../engine/errors.ts'
import type { CancelSignal, Clock, HeaderMap, MeshResponse, Timers, Trailers } from '../engine/types.ts'
import { systemClock, systemTimers } from '../engine/types.ts'
import type { ListenAddress } from '../sidecar/listen-address.ts'
import { boundAddress, listen as listenOn } from '../sidecar/listen-address.ts'
import { readableOf } from './body-stream.ts'
import { connectionTokens, dropHeader } from './header-policy.ts'
import {
  BAD_VALUE,
  ChunkedDecoder,
  CRLF2,
  connectionHas,
  contentLength,
  isFieldName,
  type PieceSink,
} from './http1-codec.ts'
import { HeadRefusal, parseRequestHead } from './http1-request.ts'
import { createHttp2Edge, type Http2Edge, type Http2Limits, sniffPreface } from './http2-server.ts'
import { DEFAULT_EDGE_TIMEOUTS, type EdgeTimeouts, MAX_BUFFERED_BODY, MAX_HEADER_BYTES } from './limits.ts'
import { pump } from './pump.ts'
import { httpDate, refusalText, statusLine } from './refusal.ts'
import {
  HandshakeFailures,
  handshakeFailureReason,
  LISTENER_ALPN,
  LISTENER_ALPN_HTTP1,
  TLS_HANDSHAKE_RECORD,
  type TlsListenerOptions,
} from './tls-listener.ts'

/** One request as the handler sees it. */
export interface DownstreamRequest {
  readonly method: string
  /** The request target as sent: origin form (`/a?b`) or absolute form (`http://svc/a`). */
  readonly url: string
  /** The field lines: names lower case, a repeated field an array. The handler's to change. */
  readonly headers: HeaderMap
  readonly remoteAddress: string | undefined
  /** Whether the request came over TLS. */
  readonly secure: boolean
  /** The client's certificate, verified against the trust bundle (mutual TLS); null otherwise. */
  peerCertificate(): PeerCertificate | null
  /** None; the whole body, when it came with the head and is small; or the body as it arrives. */
  readonly body: Buffer | Readable | null
  /** Declared length; -1 for a chunked body (or, in HTTP/2, none declared). */
  readonly contentLength: number
  /** Request trailers: HTTP/2 only. */
  readonly trailers?: Trailers
  /** Aborts when the client goes away before its response is complete. */
  readonly signal: CancelSignal
  /** Sends the response. Resolves once it is written or the client is gone; never rejects. */
  respond(res: MeshResponse, close: boolean): Promise<void>
  /**
   * The protocols of the upgrade the client asked for (`websocket`), or undefined (http1-request.ts
   * `upgradeOf` says when an Upgrade field is ignored). Any other answer than `switchProtocols` is an
   * ordinary response; if the client sent bytes after the upgrade request, the connection then closes
   * (they were meant for the new protocol and are not a request).
   */
  readonly upgrade: string | undefined
  /**
   * Answers 101 with `headers` (hop-by-hop ones dropped) and `Upgrade: protocol`, and hands the
   * connection over: the server forgets it (no timeouts, no drain close), and the caller owns the
   * socket, paused, with the bytes the client sent after the request (`head`) to pass on first.
   * Undefined when the response has begun already or the client is gone.
   */
  switchProtocols(protocol: string, headers: HeaderMap): SwitchedConnection | undefined
}

/** A client connection after 101: the socket (paused) and what the client sent after its request. */
export interface SwitchedConnection {
  readonly socket: Socket
  readonly head: Buffer | undefined
}

export type DownstreamHandler = (req: DownstreamRequest) => Promise<void>

export interface Listener {
  /** `host:port` actually bound (port 0 resolved). */
  readonly address: string
  /** Requests received and not yet answered in full. */
  inFlight(): number
  /** performance.now() of the last request start or end: a drain waits for quiet, not just zero. */
  lastActivity(): number
  connections(): number
  /** Stop accepting connections; open ones keep being served (a drain closes them later). */
  stopAccepting(): void
  closeIdle(): void
  /** Close everything now and wait for the server to be fully closed. */
  close(): Promise<void>
  /** Requests refused by the edge itself so far, by error code (`request_timeout`, `bad_request`...). */
  refusals(): Readonly<Record<string, number>>
  /** Connections switched to another protocol (101) and still open. */
  tunnels(): number
  /** TLS listeners: handshakes that failed, by reason (tls-listener.ts's closed set); null in cleartext. */
  handshakeFailures(): Readonly<Record<string, number>> | null
  /** A permissive TLS listener: connections served in cleartext so far (0 on any other listener). */
  plaintextConnections(): number
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'
/** Bodies up to this many bytes go out in the same write as the head, as latin1 (byte for byte). */
const INLINE_BODY = 1024
const DONE: Promise<void> = Promise.resolve()

export interface Http1ServerOptions {
  /** The connections' timeouts; each one not given is its default (limits.ts). */
  timeouts?: Partial<EdgeTimeouts>
  /** The time the timeouts are measured on, and the sweep's timer: injected in tests. */
  clock?: Clock & Timers
  /** TLS on this listener (the HTTP/1.1 server runs inside it unchanged). */
  tls?: TlsListenerOptions
  /**
   * Cleartext HTTP/2 with prior knowledge on the same port, told apart by the connection preface
   * (http2-server.ts), with these limits; false: HTTP/1.1 only. Default: on, default limits.
   */
  http2?: Partial<Http2Limits> | false
}

class RequestBody extends Readable {
  private readonly conn: Conn
  constructor(conn: Conn) {
    super()
    this.conn = conn
    // Whoever reads the body hears of its errors; a body nobody reads (a 404) must not crash the process.
    this.on('error', () => {})
  }
  override _read(): void {
    this.conn.socket.resume()
  }
}

class Exchange implements DownstreamRequest {
  readonly method: string
  readonly url: string
  readonly headers: HeaderMap
  readonly remoteAddress: string | undefined
  readonly upgrade: string | undefined
  readonly secure: boolean
  body: Buffer | Readable | null = null
  contentLength = 0
  private controller: Cancellation | undefined
  private gone = false
  /** HTTP/1.0 client: no chunked responses, keep-alive only when asked for. */
  readonly http10: boolean
  keepAlive: boolean
  /** The response has begun; a failure from here on can only close the connection. */
  started = false
  finished = false
  private readonly conn: Conn

  constructor(
    conn: Conn,
    method: string,
    url: string,
    headers: HeaderMap,
    http10: boolean,
    upgrade: string | undefined,
  ) {
    this.conn = conn
    this.upgrade = upgrade
    this.method = method
    this.url = url
    this.headers = headers
    this.remoteAddress = conn.peer
    this.secure = conn.secure
    this.http10 = http10
    const connection = headers.connection
    this.keepAlive = http10 ? connectionHas(connection, 'keep-alive') : !connectionHas(connection, 'close')
  }

  get signal(): CancelSignal {
    if (this.controller === undefined) {
      // Made when first asked for (a refused or unknown-host request never asks), aborted already if
      // the client left before that.
      this.controller = new Cancellation()
      if (this.gone) this.controller.abort()
    }
    return this.controller
  }

  peerCertificate(): PeerCertificate | null {
    return this.secure ? this.conn.peerCertificate() : null
  }

  /** The client went away first. */
  abort(): void {
    this.gone = true
    this.controller?.abort()
  }

  switchProtocols(protocol: string, headers: HeaderMap): SwitchedConnection | undefined {
    if (this.started || this.conn.socket.destroyed || BAD_VALUE.test(protocol)) return undefined
    this.started = true
    let head = statusLine(101)
    const listed = connectionTokens(headers.connection)
    for (const name in headers) {
      const value = headers[name]
      if (value === undefined || dropHeader(name, listed) || name === 'content-length' || !isFieldName(name))
        continue
      if (typeof value === 'string') {
        if (!BAD_VALUE.test(value)) head += `${name}: ${value}\r\n`
      } else for (const v of value) if (!BAD_VALUE.test(v)) head += `${name}: ${v}\r\n`
    }
    this.conn.socket.write(`${head}connection: upgrade\r\nupgrade: ${protocol}\r\n\r\n`, 'latin1')
    return this.conn.handOver(this)
  }

  respond(res: MeshResponse, close: boolean): Promise<void> {
    if (this.started || this.conn.socket.destroyed) return DONE
    this.started = true
    const conn = this.conn
    const socket = conn.socket
    // A body the client is still sending when we answer is never read: the connection cannot go on.
    // Bytes after a refused upgrade were meant for the new protocol: never read them as a request.
    const keep =
      this.keepAlive &&
      !close &&
      !conn.readingBody &&
      !conn.closing &&
      !(this.upgrade !== undefined && conn.pending)
    const status = res.status
    const bodyless = this.method === 'HEAD' || status === 204 || status === 304 || status < 200
    let head = statusLine(status)
    const headers = res.headers
    const listed = connectionTokens(headers.connection)
    let hasDate = false
    for (const name in headers) {
      const value = headers[name]
      if (value === undefined || dropHeader(name, listed) || name === 'content-length') continue
      // Another invoker's or a header rule's field: never let it split the response.
      if (!isFieldName(name)) continue
      if (name === 'date') hasDate = true
      if (typeof value === 'string') {
        if (!BAD_VALUE.test(value)) head += `${name}: ${value}\r\n`
      } else for (const v of value) if (!BAD_VALUE.test(v)) head += `${name}: ${v}\r\n`
    }
    if (!hasDate) head += `date: ${httpDate()}\r\n`
    const body = res.body
    if (body === null || typeof body === 'string' || body instanceof Uint8Array) {
      const bytes = body === null ? undefined : typeof body === 'string' ? Buffer.from(body) : body
      const length = bytes?.byteLength ?? 0
      if (this.method === 'HEAD') {
        // The upstream's length, as it would have been for a GET.
        const declared = headers['content-length']
        if (typeof declared === 'string') head += `content-length: ${declared}\r\n`
      } else if (!bodyless) head += `content-length: ${length}\r\n`
      head += keep ? 'connection: keep-alive\r\n\r\n' : 'connection: close\r\n\r\n'
      if (bytes === undefined || length === 0 || bodyless) socket.write(head, 'latin1')
      else if (length <= INLINE_BODY) {
        const view = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, length)
        socket.write(head + view.toString('latin1'), 'latin1')
      } else {
        socket.cork()
        socket.write(head, 'latin1')
        socket.write(bytes)
        socket.uncork()
      }
      conn.finish(this, keep)
      return DONE
    }
    // A stream: its length when the upstream declared one, else chunked (or, to HTTP/1.0, until close).
    const declared = headers['content-length']
    const length = bodyless || declared === undefined ? -1 : contentLength(declared)
    let chunked = false
    let keepStream = keep
    if (bodyless) {
      if (this.method === 'HEAD' && typeof declared === 'string') head += `content-length: ${declared}\r\n`
    } else if (length >= 0) head += `content-length: ${length}\r\n`
    else if (this.http10) keepStream = false
    else {
      chunked = true
      head += 'transfer-encoding: chunked\r\n'
    }
    head += keepStream ? 'connection: keep-alive\r\n\r\n' : 'connection: close\r\n\r\n'
    socket.write(head, 'latin1')
    const src = readableOf(body)
    if (bodyless) {
      src.destroy()
      conn.finish(this, keepStream)
      return DONE
    }
    return pipeBody(src, socket, chunked, length).then(
      () => conn.finish(this, keepStream),
      () => {
        socket.destroy()
      },
    )
  }
}

/**
 * Copies `src` to the socket with backpressure; rejects if either side broke, or if the body is not
 * the `length` it declared (-1: none), which would corrupt the connection's next response. The caller
 * then closes the connection.
 */
async function pipeBody(src: Readable, socket: Socket, chunked: boolean, length: number): Promise<void> {
  let sent = 0
  const outcome = await pump(src, socket, (piece) => {
    if (piece.length === 0) return true
    sent += piece.length
    if (length >= 0 && sent > length) throw new Error('response body longer than its content-length')
    if (!chunked) return socket.write(piece)
    socket.cork()
    socket.write(`${piece.length.toString(16)}\r\n`, 'latin1')
    socket.write(piece)
    const more = socket.write('\r\n', 'latin1')
    socket.uncork()
    return more
  })
  if (outcome === 'closed') throw new Error('client closed the connection before the response was complete')
  if (outcome instanceof Error) throw outcome
  if (length >= 0 && sent !== length) throw new Error('response body shorter than its content-length')
  if (chunked) socket.write('0\r\n\r\n', 'latin1')
}

class Conn implements PieceSink {
  readonly socket: Socket
  readonly peer: string | undefined
  readonly secure: boolean
  /** Bytes read and not yet parsed: a head in progress, or pipelined requests. */
  private buf: Buffer | undefined
  current: Exchange | undefined
  /** The current request's body is still arriving. */
  readingBody = false
  private remaining = 0
  private chunks: ChunkedDecoder | undefined
  private stream: RequestBody | undefined
  private readonly server: Http1Server
  /** clock.now() when the connection went idle, a head started, or our side closed. */
  private since: number
  private ending = false
  /** No byte read yet: the first ones may be the HTTP/2 preface. */
  private sniffing = true
  private readonly onClose: () => void
  // A streamed request body's progress, as the sweep sees it: no clock is read per read.
  /** Body bytes received. */
  private bodyBytes = 0
  /** bodyBytes at the previous sweep. */
  private bodySeen = 0
  /** When the body last made progress (or the sidecar last held it back), and the last sweep. */
  private bodyLast = 0
  private bodySwept = 0
  /** Time the body has had to arrive in, ms: its age less the time backpressure paused it. */
  private bodyActive = 0
  /** Switched to another protocol (101): the socket belongs to a tunnel now. */
  tunnelled = false
  private readonly onRead = (chunk: Buffer) => this.onData(chunk)

  constructor(server: Http1Server, socket: Socket, secure: boolean) {
    this.server = server
    this.socket = socket
    this.secure = secure
    this.since = server.clock.now()
    const a = socket.remoteAddress
    this.peer = a?.startsWith('::ffff:') ? a.slice(7) : a
    socket.setNoDelay(true)
    socket.on('data', this.onRead)
    socket.on('error', () => {})
    this.onClose = () => {
      server.conns.delete(this)
      const ex = this.current
      if (ex !== undefined && !ex.finished) {
        this.current = undefined
        server.requestEnded()
        ex.abort()
      }
      this.stream?.destroy(new Error('client closed the connection before the request body was complete'))
    }
    socket.on('close', this.onClose)
  }

  /**
   * The first bytes: an HTTP/2 preface hands the socket to the HTTP/2 edge (true); anything else is
   * HTTP/1.1 from here on. A partial preface waits for more, under the head's timeout.
   */
  private sniff(chunk: Buffer): boolean {
    const h2 = this.server.http2
    if (h2 === undefined) {
      this.sniffing = false
      return false
    }
    const data = this.buf === undefined ? chunk : Buffer.concat([this.buf, chunk])
    const verdict = sniffPreface(data)
    if (verdict === 'more') {
      this.buf = data
      return true
    }
    this.sniffing = false
    if (verdict === 'h1') return false
    this.buf = undefined
    this.server.conns.delete(this)
    const socket = this.socket
    socket.pause()
    socket.removeAllListeners('data')
    socket.off('close', this.onClose)
    h2.accept(socket, data)
    return true
  }

  /** The client's verified certificate: read once per connection (node builds a new object per call). */
  private peerCert: PeerCertificate | null | undefined

  peerCertificate(): PeerCertificate | null {
    if (this.peerCert === undefined) {
      const socket = this.socket as TLSSocket
      // Only a certificate the handshake verified; an empty object when the client sent none.
      const cert = socket.authorized ? socket.getPeerCertificate() : undefined
      this.peerCert = cert?.raw === undefined ? null : cert
    }
    return this.peerCert
  }

  /** The server is draining: every response closes its connection. */
  get closing(): boolean {
    return this.server.closing
  }

  get idle(): boolean {
    return this.current === undefined && this.buf === undefined && !this.tunnelled
  }

  /** Bytes received after the current request's head and not yet read (pipelined, or early). */
  get pending(): boolean {
    return this.buf !== undefined
  }

  /** The 101 is written: the connection leaves HTTP (see DownstreamRequest.switchProtocols). */
  handOver(ex: Exchange): SwitchedConnection {
    ex.finished = true
    this.current = undefined
    this.server.requestEnded()
    this.tunnelled = true
    this.server.tunnels++
    const socket = this.socket
    // Paused before the listener goes: a flowing socket without one would drop what arrives.
    socket.pause()
    socket.off('data', this.onRead)
    socket.once('close', () => this.server.tunnels--)
    const head = this.buf
    this.buf = undefined
    return { socket, head }
  }

  private onData(chunk: Buffer): void {
    // Our side is closed: nothing more is processed (RFC 9112 §9.6); reading on lets the client's close
    // arrive.
    if (this.ending) return
    // A new head starts: its clock starts (see `sweep`).
    if (this.current === undefined && this.buf === undefined) this.since = this.server.clock.now()
    if (this.sniffing && this.sniff(chunk)) return
    let data = chunk
    if (this.readingBody) {
      const at = this.feedBody(data)
      if (at < 0 || at === data.length) return
      data = data.subarray(at)
    }
    // Socket chunks are the connection's own (node allocates each read): a view of one may be kept.
    this.buf = this.buf === undefined ? data : Buffer.concat([this.buf, data])
    if (this.current === undefined) this.next()
    else if (this.buf.length > MAX_HEADER_BYTES) this.socket.pause() // pipelining ahead of us: wait
  }

  /**
   * The connection's timeouts, checked by the server's sweep rather than with a timer per request:
   * idle for keepAliveTimeout, a head incomplete after headersTimeout (408), a body stalled or too
   * slow (408), a client that does not close its side within headersTimeout of ours. The route's
   * timeouts govern a request once it is read.
   */
  sweep(now: number): void {
    if (this.tunnelled) return
    const limits = this.server.timeouts
    const waited = now - this.since
    if (this.ending) {
      if (waited >= limits.headersTimeout) this.socket.destroy()
    } else if (this.current === undefined) {
      if (this.buf !== undefined && waited >= limits.headersTimeout) this.refuse(ErrorCodes.requestTimeout)
      else if (this.buf === undefined && waited >= limits.keepAliveTimeout) this.socket.destroy()
    } else if (this.readingBody) this.sweepBody(now, limits)
  }

  private sweepBody(now: number, limits: EdgeTimeouts): void {
    const since = this.bodySwept
    this.bodySwept = now
    if (this.socket.isPaused()) {
      // The sidecar holds the body back (its reader is slow): the client is not the one waiting.
      this.bodyLast = now
      return
    }
    this.bodyActive += now - since
    if (this.bodyBytes !== this.bodySeen) {
      this.bodySeen = this.bodyBytes
      this.bodyLast = now
    }
    const stalled = now - this.bodyLast >= limits.bodyIdleTimeout
    const slow =
      limits.bodyMinRate > 0 &&
      this.bodyActive >= limits.bodyIdleTimeout &&
      this.bodyBytes * 1000 < limits.bodyMinRate * this.bodyActive
    if (stalled || slow)
      this.failBody(ErrorCodes.requestTimeout, `request body ${stalled ? 'stalled' : 'too slow'}`)
  }

  /** Parses and starts the next request in the buffer, if a whole head is there. */
  private next(): void {
    let buf = this.buf
    if (buf === undefined) return
    // Empty lines before a request line are ignored (RFC 9112 §2.2).
    let start = 0
    while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2
    const end = buf.indexOf(CRLF2, start)
    if (end < 0 ? buf.length - start > MAX_HEADER_BYTES : end - start > MAX_HEADER_BYTES) {
      // The request line alone past the limit is a URI too long (414), else the fields are (431).
      const eol = buf.indexOf('\r\n', start)
      const longLine = eol < 0 || eol - start > MAX_HEADER_BYTES
      this.refuse(longLine ? ErrorCodes.uriTooLong : ErrorCodes.headersTooLarge)
      return
    }
    if (end < 0) return
    const head = parseRequestHead(buf.toString('latin1', start, end))
    const rest = end + 4 < buf.length ? buf.subarray(end + 4) : undefined
    this.buf = undefined
    buf = undefined
    if (head instanceof HeadRefusal) {
      this.refuse(head.code, head.details)
      return
    }
    const ex = new Exchange(this, head.method, head.target, head.headers, head.http10, head.upgrade)
    ex.contentLength = head.length
    if (head.length < 0) this.chunks = new ChunkedDecoder()
    this.current = ex
    this.server.requestStarted()

    if (ex.contentLength === 0) {
      this.buf = rest
    } else if (
      ex.contentLength > 0 &&
      ex.contentLength <= MAX_BUFFERED_BODY &&
      (rest?.length ?? 0) >= ex.contentLength
    ) {
      // The whole body came with the head: a copy of it, no stream.
      ex.body = Buffer.from(rest!.subarray(0, ex.contentLength))
      this.buf = rest!.length > ex.contentLength ? rest!.subarray(ex.contentLength) : undefined
    } else {
      if (head.expectContinue) this.socket.write(CONTINUE, 'latin1')
      this.readingBody = true
      this.remaining = ex.contentLength
      this.stream = new RequestBody(this)
      ex.body = this.stream
      const now = this.server.clock.now()
      this.bodyBytes = 0
      this.bodySeen = 0
      this.bodyActive = 0
      this.bodyLast = now
      this.bodySwept = now
      if (rest !== undefined) {
        const at = this.feedBody(rest)
        if (at >= 0 && at < rest.length) this.buf = rest.subarray(at)
        // What came with the head arrived now, not at the first sweep.
        this.bodySeen = this.bodyBytes
      }
      // A malformed chunk in the same read as the head: refused already, no handler runs.
      if (this.current !== ex) return
    }
    this.server.handle(ex)
  }

  /** Request body bytes from `data`; returns how many belonged to the body, or -1 on a bad chunk. */
  private feedBody(data: Buffer): number {
    let at: number
    if (this.chunks !== undefined) {
      at = this.chunks.feed(data, 0, this)
      if (at < 0) {
        this.failBody(ErrorCodes.badRequest, `malformed chunked body: ${this.chunks.error}`)
        return -1
      }
      this.bodyBytes += at
      if (this.chunks.done) this.bodyDone()
    } else {
      at = Math.min(this.remaining, data.length)
      this.bodyBytes += at
      this.piece(at === data.length ? data : data.subarray(0, at))
      this.remaining -= at
      if (this.remaining === 0) this.bodyDone()
    }
    return at
  }

  piece(payload: Buffer): void {
    if (payload.length > 0 && this.stream !== undefined && !this.stream.push(payload)) this.socket.pause()
  }

  private bodyDone(): void {
    this.readingBody = false
    this.chunks = undefined
    this.stream?.push(null)
    this.stream = undefined
  }

  /**
   * The body cannot be read on (malformed chunked coding, 400; stalled or crawling, 408): the
   * handler's stream errors, and the client gets the refusal, or a cut-off if its response has begun.
   */
  private failBody(code: ErrorCode, message: string): void {
    this.stream?.destroy(new Error(message))
    this.stream = undefined
    if (this.abandon()) this.refuse(code)
    else {
      this.server.refused(code)
      this.socket.destroy()
    }
  }

  /**
   * Takes the current request away from its handler, whose response (if it comes) is then never
   * written, and aborts its signal. False when the response has already begun.
   */
  private abandon(): boolean {
    const ex = this.current
    if (ex === undefined) return true
    if (ex.started) return false
    ex.started = true
    ex.finished = true
    this.current = undefined
    this.server.requestEnded()
    ex.abort()
    return true
  }

  /** The response to `ex` is written; `keep`: the connection goes on. */
  finish(ex: Exchange, keep: boolean): void {
    ex.finished = true
    if (this.current !== ex) return
    this.current = undefined
    this.server.requestEnded()
    if (!keep || this.server.closing) {
      this.end()
      return
    }
    this.since = this.server.clock.now()
    if (this.socket.isPaused()) this.socket.resume()
    if (this.buf !== undefined) this.next()
  }

  /** Answers a request the server will not take (through the error table), and closes. */
  private refuse(code: ErrorCode, details?: Readonly<Record<string, string>>): void {
    this.server.refused(code)
    this.buf = undefined
    this.socket.write(refusalText(code, details), 'latin1')
    this.end()
  }

  /** Half-closes; a client that never closes its side is cut off after headersTimeout. */
  private end(): void {
    this.buf = undefined
    this.ending = true
    // A body still arriving is read and dropped, not buffered for a reader that has gone.
    this.readingBody = false
    this.stream?.destroy()
    this.stream = undefined
    if (this.socket.isPaused()) this.socket.resume()
    this.since = this.server.clock.now()
    this.socket.end()
  }
}

class Http1Server {
  readonly conns = new Set<Conn>()
  inFlight = 0
  tunnels = 0
  lastActivity = performance.now()
  closing = false
  readonly timeouts: EdgeTimeouts
  readonly clock: Clock & Timers
  readonly refusals: Record<string, number> = Object.create(null)
  /** Where connections that open with the HTTP/2 preface go; undefined: HTTP/1.1 only. */
  readonly http2: Http2Edge | undefined
  private readonly handler: DownstreamHandler
  private readonly onError: (err: unknown) => void

  constructor(handler: DownstreamHandler, onError: (err: unknown) => void, opts: Http1ServerOptions) {
    this.handler = handler
    this.onError = onError
    this.timeouts = { ...DEFAULT_EDGE_TIMEOUTS, ...opts.timeouts }
    this.clock = opts.clock ?? { now: systemClock.now, set: systemTimers.set, clear: systemTimers.clear }
    this.http2 =
      opts.http2 === false
        ? undefined
        : createHttp2Edge(
            handler,
            {
              requestStarted: () => this.requestStarted(),
              requestEnded: () => this.requestEnded(),
              refused: (code) => {
                this.refusals[code] = (this.refusals[code] ?? 0) + 1
              },
            },
            onError,
            { idleTimeout: this.timeouts.keepAliveTimeout, ...opts.http2 },
          )
  }

  requestStarted(): void {
    this.inFlight++
    this.lastActivity = performance.now()
  }

  requestEnded(): void {
    this.inFlight--
    this.lastActivity = performance.now()
  }

  refused(code: ErrorCode): void {
    this.refusals[code] = (this.refusals[code] ?? 0) + 1
  }

  handle(ex: Exchange): void {
    let handled: Promise<void>
    try {
      handled = this.handler(ex)
    } catch (err) {
      handled = Promise.reject(err)
    }
    handled.catch((err: unknown) => {
      // Handlers answer their own errors; reaching here is a bug, and the connection cannot be trusted.
      this.onError(err)
      if (!ex.started) void ex.respond({ status: 500, headers: {}, body: null }, true)
      else if (!ex.finished) for (const c of this.conns) if (c.current === ex) c.socket.destroy()
    })
  }
}

/**
 * PERMISSIVE: a plain server that reads each connection's first bytes and hands it to the TLS server
 * (a handshake record) or to the HTTP/1.1 server as cleartext. The bytes go back into the socket
 * first (node's TLSSocket takes what is buffered). A client that sends nothing is cut off after the
 * handshake timeout, as on a TLS-only listener.
 */
function sniffingServer(
  state: Http1Server,
  secure: TlsServer,
  timeout: number,
  failures: Record<string, number>,
  onPlaintext: () => void,
): NetServer {
  return new NetServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    const onError = () => socket.destroy()
    const onTimeout = () => {
      failures[HandshakeFailures.timeout] = (failures[HandshakeFailures.timeout] ?? 0) + 1
      socket.destroy()
    }
    socket.setTimeout(timeout)
    socket.once('timeout', onTimeout)
    socket.on('error', onError)
    socket.once('data', (chunk: Buffer) => {
      socket.pause()
      socket.setTimeout(0)
      socket.off('timeout', onTimeout)
      socket.off('error', onError)
      socket.unshift(chunk)
      if (chunk[0] === TLS_HANDSHAKE_RECORD) secure.emit('connection', socket)
      else {
        onPlaintext()
        state.conns.add(new Conn(state, socket, false))
        socket.resume()
      }
    })
  })
}

/** How often the connections' timeouts are checked, ms: a quarter of the shortest, 50 ms to 1 s. */
function sweepInterval(t: EdgeTimeouts): number {
  const shortest = Math.min(t.headersTimeout, t.keepAliveTimeout, t.bodyIdleTimeout)
  return Math.max(50, Math.min(1000, Math.floor(shortest / 4)))
}

/** Starts the listener; resolves once it is bound. `onError` hears of errors a handler failed to answer. */
export async function listenHttp1(
  at: ListenAddress,
  handler: DownstreamHandler,
  onError: (err: unknown) => void = () => {},
  opts: Http1ServerOptions = {},
): Promise<Listener> {
  const state = new Http1Server(handler, onError, opts)
  const tls = opts.tls
  const failures: Record<string, number> = Object.create(null)
  let plaintext = 0
  let server: NetServer
  if (tls === undefined) {
    server = new NetServer({ noDelay: true }, (socket) => {
      state.conns.add(new Conn(state, socket, false))
    })
  } else {
    // TLS wraps the same server: the handshake first (bounded by handshakeTimeout), then the socket
    // is a connection like any other. A peer that speaks no TLS, sends garbage, offers no certificate
    // or one from another CA is cut off here, counted by reason, and never reaches the parser.
    const material = tls.material
    const secure = new TlsServer(
      {
        ...material.serverOptions(),
        noDelay: true,
        ALPNProtocols: [...(state.http2 === undefined ? LISTENER_ALPN_HTTP1 : LISTENER_ALPN)],
        handshakeTimeout: tls.handshakeTimeout,
        requestCert: material.verifiesPeers,
        rejectUnauthorized: material.verifiesPeers,
      },
      (socket) => {
        // ALPN chose HTTP/2: the session takes the socket; the HTTP/1.1 parser never sees it.
        if (socket.alpnProtocol === 'h2' && state.http2 !== undefined) state.http2.acceptTls(socket)
        else state.conns.add(new Conn(state, socket, true))
      },
    )
    secure.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
      // A client certificate that does not verify: node cuts the socket and reports only the hang-up,
      // the verification's own error stays on the socket.
      const reason = handshakeFailureReason(err, socket.authorizationError)
      failures[reason] = (failures[reason] ?? 0) + 1
      // Listening for the event takes over node's own handling: the socket (a timed-out handshake's
      // included) stays open unless it is destroyed here.
      socket.destroy()
    })
    // New handshakes take the new certificate; connections already open keep theirs.
    material.onSwap(() => secure.setSecureContext(material.serverOptions()))
    server =
      tls.permissive === true
        ? sniffingServer(state, secure, tls.handshakeTimeout, failures, () => plaintext++)
        : secure
  }
  const clock = state.clock
  const every = sweepInterval(state.timeouts)
  let sweeper: unknown
  let stopped = false
  const sweep = () => {
    const now = clock.now()
    for (const c of state.conns) c.sweep(now)
    if (!stopped) sweeper = clock.set(sweep, every)
  }
  sweeper = clock.set(sweep, every)
  try {
    await listenOn(server, at.port, at.host)
  } catch (err) {
    stopped = true
    clock.clear(sweeper)
    throw err
  }
  const address = boundAddress(server)
  let accepting = true
  return {
    address,
    inFlight: () => state.inFlight,
    lastActivity: () => state.lastActivity,
    connections: () => state.conns.size + (state.http2?.sessions() ?? 0),
    refusals: () => ({ ...state.refusals }),
    tunnels: () => state.tunnels,
    handshakeFailures: () => (tls === undefined ? null : { ...failures }),
    plaintextConnections: () => plaintext,
    stopAccepting() {
      if (!accepting) return
      accepting = false
      server.close()
    },
    closeIdle() {
      state.closing = true
      for (const c of state.conns) if (c.idle) c.socket.end()
      state.http2?.closeIdle()
    },
    close() {
      state.closing = true
      stopped = true
      clock.clear(sweeper)
      return new Promise<void>((resolve) => {
        if (accepting) {
          accepting = false
          server.close(() => resolve())
        } else resolve()
        for (const c of state.conns) c.socket.destroy()
        state.http2?.destroy()
      })
    },
  }
}
