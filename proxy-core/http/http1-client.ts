// The sidecar's cleartext HTTP/1.1 client: keep-alive pools of plain `net` sockets and a response
// parser of its own. undici, which it replaces on this path, built a request object, a handler chain
// and a body stream per request and cost about 50 µs of CPU each (2.2× the rest of the proxy,
// measured with wrk against a bare proxy); a small response that arrives whole here is one read,
// one parse and one Buffer. `https://` origins go through the same pools over TLS (tls-client.ts
// says how each target is reached): HTTP/1.1 by ALPN, the session resumed on new connections.
//
// What it speaks (RFC 9112): requests with Content-Length or chunked bodies; responses framed by
// Content-Length, chunked or the connection's close; 1xx interim responses skipped; HEAD, 204 and
// 304 bodiless. Anything ambiguous — a malformed status line or field, two different Content-Lengths,
// bytes after a complete response — fails the attempt as a reset and the connection is never reused.

import { connect, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import { type TLSSocket, connect as tlsConnect } from 'node:tls'
import type {
  AttemptRequest,
  CancelSignal,
  Endpoint,
  FailureKind,
  HeaderMap,
  Invoker,
  MeshResponse,
  TargetConfig,
} from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import { stripResponseHopByHop } from './header-policy.ts'
import {
  ChunkedDecoder,
  CRLF2,
  connectionHas,
  contentLength,
  endsChunked,
  fieldLines,
  parseFields,
  statusOf,
} from './http1-codec.ts'
import type { TlsConnectPolicy } from './tls-client.ts'
import { UPSTREAM_ALPN } from './tls-client.ts'
import { writeAtTurnEnd } from './turn-writes.ts'
import { agreedProtocol, SocketUpgrade } from './upgraded.ts'
import { upstreamFailure } from './upstream-failure.ts'

export interface Http1Options {
  /** Connections per origin; null: no limit (the circuit breaker bounds concurrency). */
  connections?: number | null
  /** TCP connect timeout, ms. 10 s: undici's default, and well above any LAN connect. */
  connectTimeout?: number
  /** Idle keep-alive sockets close after this, ms. 4 s: undici's default, under node's 5 s server side. */
  keepAliveTimeout?: number
  /** Longest silence within a response body, ms. 300 s: Envoy's stream idle timeout is 5 min. */
  bodyTimeout?: number
  /** Upstream response heads larger than this fail the attempt, bytes. 16 KiB, as node's default. */
  maxHeaderSize?: number
  /**
   * 5xx responses with a declared length up to this many bytes are read fully before being returned,
   * so a response the pipeline discards for a retry never pins a connection. 64 KiB.
   */
  bufferErrorBodies?: number
  /** How `https://` origins are reached, per target (tls-client.ts); none: https is refused. */
  tls?: (target: TargetConfig) => TlsConnectPolicy
}

export interface PoolStats {
  connected: number
  pending: number
  running: number
  /** TLS pools: connections opened so far (full handshakes plus resumed ones). */
  opened?: number
  /** TLS pools: connections whose handshake resumed an earlier session. */
  resumed?: number
}

export interface Http1Invoker extends Invoker {
  /** Closes idle connections now and every other one when its exchange ends. */
  close(): Promise<void>
  stats(): Record<string, PoolStats>
}

type Settings = Required<Omit<Http1Options, 'connections' | 'tls'>> & { connections: number }

const CRLF = Buffer.from('\r\n')
const LAST_CHUNK = Buffer.from('0\r\n\r\n')
/** Methods a reused connection may replay on a fresh one when it turns out to be closed (RFC 9110 §9.2.2). */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** Methods that carry a body by definition: an empty one is still declared (`content-length: 0`). */
const BODY_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH'])
const BAD_PATH = /[^\x21-\xff]/

/** A failure before the connection existed may be retried anywhere; after, the exchange broke. */
function failure(kind: FailureKind, message: string, cause?: unknown): UpstreamFailure {
  return new UpstreamFailure(kind, message, cause === undefined ? undefined : { cause })
}

// ---------------------------------------------------------------------------------------------
// Pools and connections.

class Pool {
  readonly idle: Conn[] = []
  /** Exchanges waiting for a connection when the pool is at its limit. */
  readonly waiting: Exchange[] = []
  open = 0
  /** Connections ever opened, and (TLS) those that resumed a session: for /stats. */
  opened = 0
  resumed = 0
  running = 0
  closed = false
  readonly host: string
  readonly port: number
  /** `host:port` as the origin names it, for a request without a Host header. */
  readonly authority: string
  readonly settings: Settings
  /** `https://` origins: how the handshake goes. */
  readonly tls: TlsConnectPolicy | undefined
  /** The last TLS session a connection of this pool got, resumed by the next one (no full handshake). */
  session: Buffer | undefined
  /** The material generation `session` was made under: a swap makes it worthless. */
  sessionGeneration = 0

  constructor(url: URL, settings: Settings, tls: TlsConnectPolicy | undefined) {
    this.host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    this.port = url.port === '' ? (tls === undefined ? 80 : 443) : Number(url.port)
    this.authority = url.host
    this.settings = settings
    this.tls = tls
  }

  /** A connection made under older TLS material: it finishes its exchange, then closes. */
  stale(conn: Conn): boolean {
    return this.tls !== undefined && conn.generation !== this.tls.generation()
  }

  /** Gives `ex` a connection: an idle one, a new one, or (at the limit) the next one released. */
  assign(ex: Exchange, fresh: boolean): void {
    this.running++
    if (!fresh) {
      const now = performance.now()
      for (let conn = this.idle.pop(); conn !== undefined; conn = this.idle.pop()) {
        // One the upstream may be closing right now is not worth the race; the sweep closes the rest.
        if (now - conn.idleSince < this.settings.keepAliveTimeout && !this.stale(conn)) {
          ex.attach(conn)
          return
        }
        conn.destroy()
      }
    }
    if (this.open < this.settings.connections) {
      ex.attach(new Conn(this))
      return
    }
    this.running--
    this.waiting.push(ex)
  }

  /** The exchange on `conn` has ended; `reusable` when the connection is clean for the next one. */
  release(conn: Conn, reusable: boolean): void {
    this.running--
    conn.exchange = undefined
    if (!reusable || this.closed || this.stale(conn)) conn.destroy()
    else {
      conn.served++
      const next = this.waiting.shift()
      if (next !== undefined) {
        this.running++
        next.attach(conn)
        return
      }
      conn.idleSince = performance.now()
      this.idle.push(conn)
    }
    this.wake()
  }

  /**
   * An upgrade gets a connection of its own, never pooled (after a 101 it leaves the pool; after
   * anything else it closes) and outside the connection limit, which counts pooled HTTP connections.
   */
  assignUpgrade(ex: Exchange): void {
    this.running++
    ex.attach(new Conn(this, true))
  }

  /** A connection closed: a waiting exchange can open another. */
  wake(): void {
    if (this.waiting.length > 0 && this.open < this.settings.connections)
      this.assign(this.waiting.shift()!, true)
  }

  forget(conn: Conn): void {
    const i = this.idle.indexOf(conn)
    if (i >= 0) this.idle.splice(i, 1)
  }

  sweep(now: number): void {
    while (this.idle.length > 0 && now - this.idle[0]!.idleSince >= this.settings.keepAliveTimeout) {
      this.idle.shift()!.destroy()
    }
  }
}

/**
 * Every upstream socket reads into this one buffer (node's `onread`): no Buffer is allocated and no
 * stream machinery runs per read. The bytes are only valid until the next read, so whatever outlives
 * the callback (a partial head, a body piece handed on) is copied out first. 64 KiB: libuv's own
 * read size.
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024)

class Conn {
  readonly socket: Socket
  exchange: Exchange | undefined
  connected = false
  /** Exchanges completed on this connection: a reused one may have been closed by the upstream. */
  served = 0
  idleSince = 0
  error: Error | undefined
  readonly pool: Pool
  /** Switched protocols: the socket belongs to a tunnel, and the pool has let go of it. */
  upgraded = false
  /** The listener of a plain (upgrade) connection, which reads into buffers of its own. */
  readonly onPlain: ((chunk: Buffer) => void) | undefined
  /** The TLS material generation this connection's handshake used (0: cleartext). */
  readonly generation: number

  /**
   * `plain`: read with 'data' events instead of the shared buffer, so that after a 101 the socket
   * can be handed to a tunnel as an ordinary stream.
   */
  constructor(pool: Pool, plain = false) {
    this.pool = pool
    pool.open++
    pool.opened++
    const tls = pool.tls
    let socket: Socket
    if (tls === undefined) {
      this.generation = 0
      socket = plain
        ? connect({ host: pool.host, port: pool.port, noDelay: true })
        : connect({
            host: pool.host,
            port: pool.port,
            noDelay: true,
            onread: { buffer: READ_BUFFER, callback: (n: number) => this.onRead(n) },
          })
      if (plain) {
        this.onPlain = (chunk: Buffer) => {
          const ex = this.exchange
          if (ex === undefined) this.destroy()
          else ex.onData(chunk)
        }
        socket.on('data', this.onPlain)
      }
      socket.on('connect', () => this.onConnected())
    } else {
      this.generation = tls.generation()
      const session = pool.sessionGeneration === this.generation ? pool.session : undefined
      // The request is written at once; the TLS socket holds it until the handshake is done. Reads
      // come decrypted as 'data' events (a TLS socket takes no `onread` buffer).
      const secure: TLSSocket = tlsConnect({
        host: pool.host,
        port: pool.port,
        secureContext: tls.secureContext(),
        ALPNProtocols: [...UPSTREAM_ALPN],
        ...(tls.servername === undefined ? {} : { servername: tls.servername }),
        ...(tls.checkServerIdentity === undefined ? {} : { checkServerIdentity: tls.checkServerIdentity }),
        ...(session === undefined ? {} : { session }),
      })
      secure.setNoDelay(true)
      secure.on('secureConnect', () => {
        if (secure.isSessionReused()) pool.resumed++
        this.onConnected()
      })
      secure.on('session', (s: Buffer) => {
        if (tls.generation() !== this.generation) return
        pool.session = s
        pool.sessionGeneration = this.generation
      })
      secure.on('data', (chunk: Buffer) => this.onChunk(chunk))
      socket = secure
    }
    this.socket = socket
    socket.setTimeout(pool.settings.connectTimeout)
    socket.on('end', () => this.exchange?.onEnd())
    socket.on('timeout', () => {
      const what = this.connected ? 'response body idle' : 'connect'
      socket.destroy(Object.assign(new Error(`${what} timeout`), { code: 'ETIMEDOUT' }))
    })
    socket.on('error', (err) => {
      this.error = err
    })
    socket.on('close', () => {
      if (this.upgraded) return
      pool.open--
      pool.forget(this)
      const ex = this.exchange
      this.exchange = undefined
      ex?.onClose(this)
      pool.wake()
    })
  }

  /** TCP connected (cleartext) or the TLS handshake done: the exchange may be cut short from here on. */
  private onConnected(): void {
    this.connected = true
    this.socket.setTimeout(0)
  }

  /** `n` bytes arrived in READ_BUFFER; false pauses the socket (a slow body reader). */
  private onRead(n: number): boolean {
    this.onChunk(READ_BUFFER.subarray(0, n))
    return !this.socket.isPaused()
  }

  private onChunk(chunk: Buffer): void {
    const ex = this.exchange
    // Bytes nobody asked for: the upstream is confused, and the connection with it.
    if (ex === undefined) {
      this.destroy()
      return
    }
    ex.onData(chunk)
  }

  destroy(): void {
    this.socket.destroy()
  }
}

// ---------------------------------------------------------------------------------------------
// One request/response exchange.

const Phase = { head: 0, length: 1, chunked: 2, untilClose: 3, done: 4 } as const
type Phase = (typeof Phase)[keyof typeof Phase]

class ResponseBody extends Readable {
  private readonly ex: Exchange
  constructor(ex: Exchange) {
    super()
    this.ex = ex
    // Whoever reads the body hears of its errors; one nobody reads must not crash the process.
    this.on('error', noop)
  }
  override _read(): void {
    this.ex.conn?.socket.resume()
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.ex.bodyGone()
    cb(err)
  }
}

class Exchange {
  conn: Conn | undefined
  private phase: Phase = Phase.head
  /** Head bytes so far, when the head spans reads. */
  private partial: Buffer | undefined
  private settled = false
  private gotBytes = false
  /** The request is fully written: only then may the connection carry another. */
  private sent = false
  private retried = false
  private status = 0
  private headers: HeaderMap | undefined
  private keepAlive = true
  /** Body bytes still due (Phase.length). */
  private remaining = 0
  private chunks: ChunkedDecoder | undefined
  /** A 5xx body being read whole before it is returned. */
  private collected: Buffer[] | undefined
  private body: ResponseBody | undefined
  /** The socket's idle timer runs for this body (small responses never arm it: no timer per request). */
  private bodyTimer = false
  private readonly onAbort = () => this.abort()
  private readonly pool: Pool
  private readonly req: AttemptRequest
  /** Request line and header lines, without the framing header and the blank line. */
  private readonly head: string
  private readonly signal: CancelSignal
  /** The endpoint's id, for the upgrade handle. */
  origin = ''
  private readonly resolve: (res: MeshResponse) => void
  private readonly reject: (err: unknown) => void

  constructor(
    pool: Pool,
    req: AttemptRequest,
    head: string,
    signal: CancelSignal,
    resolve: (res: MeshResponse) => void,
    reject: (err: unknown) => void,
  ) {
    this.pool = pool
    this.req = req
    this.head = head
    this.signal = signal
    this.resolve = resolve
    this.reject = reject
    signal.addEventListener('abort', this.onAbort)
  }

  attach(conn: Conn): void {
    this.conn = conn
    conn.exchange = this
    const { method, body } = this.req
    const socket = conn.socket
    if (body === null) {
      const head = this.head
      writeAtTurnEnd(socket, BODY_METHODS.has(method) ? `${head}content-length: 0\r\n\r\n` : `${head}\r\n`)
      this.sent = true
    } else if (typeof body === 'string' || body instanceof Uint8Array) {
      // Small bodies go out with the head in one write.
      const bytes = typeof body === 'string' ? Buffer.from(body) : body
      writeAtTurnEnd(socket, `${this.head}content-length: ${bytes.byteLength}\r\n\r\n`)
      socket.write(bytes)
      this.sent = true
    } else {
      this.writeStream(socket, body).then(
        () => {
          this.sent = true
        },
        (err: unknown) => {
          // The body source failed (the client went away mid-upload): nothing sensible can follow.
          this.fail(failure(FailureKinds.reset, `request body: ${(err as Error).message}`, err))
        },
      )
    }
  }

  /** Writes the request head, then the body as it arrives, with backpressure. */
  private async writeStream(socket: Socket, body: AsyncIterable<Uint8Array>): Promise<void> {
    let head = this.head
    // Its declared length if the client gave one (it was checked as digits), else chunked.
    const declared = this.req.headers['content-length']
    const length = typeof declared === 'string' ? Number(declared) : -1
    head += length >= 0 ? `content-length: ${length}\r\n\r\n` : 'transfer-encoding: chunked\r\n\r\n'
    socket.write(head, 'latin1')
    let written = 0
    for await (const piece of body) {
      if (this.conn === undefined || this.phase === Phase.done) return
      written += piece.byteLength
      if (length >= 0 && written > length) throw new Error('longer than its content-length')
      if (piece.byteLength === 0) continue
      let more: boolean
      if (length >= 0) more = socket.write(piece)
      else {
        socket.cork()
        socket.write(`${piece.byteLength.toString(16)}\r\n`, 'latin1')
        socket.write(piece)
        more = socket.write(CRLF)
        socket.uncork()
      }
      if (!more) await drained(socket)
    }
    if (length >= 0 && written < length) throw new Error('shorter than its content-length')
    if (length < 0) socket.write(LAST_CHUNK)
  }

  onData(chunk: Buffer): void {
    this.gotBytes = true
    if (this.phase === Phase.done) {
      // More after a complete response (while the request is still going up): never reuse this one.
      this.keepAlive = false
      return
    }
    let data = chunk
    if (this.phase === Phase.head) {
      const rest = this.parseHeads(data)
      if (rest === undefined) return
      data = rest
    }
    this.consume(data)
  }

  /** Reads heads (skipping 1xx ones); returns the bytes after the final head, or undefined to wait. */
  private parseHeads(chunk: Buffer): Buffer | undefined {
    // `buf` is ours when it was concatenated; else a view of the shared read buffer, which the next
    // read overwrites: a partial head kept past this read is copied (issue 23: after an interim head,
    // the view of the final head's first part was kept and corrupted).
    const owned = this.partial !== undefined
    let buf = owned ? Buffer.concat([this.partial!, chunk]) : chunk
    this.partial = undefined
    const limit = this.pool.settings.maxHeaderSize
    for (;;) {
      const end = buf.indexOf(CRLF2)
      if (end < 0 || end > limit) {
        if (end > limit || buf.length > limit) {
          this.fail(failure(FailureKinds.reset, `response head larger than ${limit} bytes`))
        } else this.partial = owned ? buf : Buffer.from(buf)
        return undefined
      }
      const problem = this.parseHead(buf.toString('latin1', 0, end))
      if (problem !== undefined) {
        this.fail(failure(FailureKinds.reset, `malformed response: ${problem}`))
        return undefined
      }
      buf = buf.subarray(end + 4)
      if (this.status >= 200) return buf
      if (this.status === 101 && this.req.upgrade !== undefined) {
        this.switched(buf)
        return undefined
      }
      if (this.status === 101) {
        this.fail(failure(FailureKinds.reset, 'upstream switched protocols unasked'))
        return undefined
      }
      // 100 Continue, 103 Early Hints...: interim, the final response follows.
    }
  }

  /** Parses one head into status and headers; returns what is wrong with it, if anything. */
  private parseHead(text: string): string | undefined {
    const lines = text.split('\r\n')
    const status = statusOf(lines[0]!)
    if (status < 0) return 'status line'
    this.status = status
    this.keepAlive = lines[0]!.charCodeAt(7) === 49 // HTTP/1.1; 1.0 closes unless it says otherwise
    if (this.status < 100) return 'status code'
    if (this.status < 200 && !(this.status === 101 && this.req.upgrade !== undefined)) return undefined
    // No prototype: a field named `constructor` or `__proto__` is just a field.
    const headers: HeaderMap = Object.create(null)
    const fields = parseFields(lines, 1, headers, true)
    if (typeof fields === 'string') return fields
    this.headers = headers
    return undefined
  }

  /**
   * A 101 to the upgrade this exchange asked for: the connection leaves HTTP and the pool, and goes
   * back with the response as its `upgrade`, paused, with `rest` (bytes of the new protocol that came
   * in the same read) copied off the read.
   */
  private switched(rest: Buffer): void {
    const headers = this.headers!
    const protocol = agreedProtocol(this.req.upgrade!, headers.upgrade)
    if (protocol === undefined) {
      this.fail(failure(FailureKinds.reset, 'upstream switched protocols without agreeing to one asked for'))
      return
    }
    const conn = this.detach()
    if (conn === undefined) return
    this.phase = Phase.done
    conn.upgraded = true
    this.pool.open--
    this.pool.forget(conn)
    const socket = conn.socket
    socket.pause()
    if (conn.onPlain !== undefined) socket.off('data', conn.onPlain)
    socket.setTimeout(0)
    const head = rest.length > 0 ? Buffer.from(rest) : undefined
    this.settled = true
    this.signal.removeEventListener('abort', this.onAbort)
    this.resolve({
      status: 101,
      headers: stripResponseHopByHop(headers),
      body: null,
      upgrade: new SocketUpgrade(protocol, this.origin, socket, head),
    })
  }

  /** After the final head: pick the framing (RFC 9112 §6.3) and hand the response over. */
  private consume(data: Buffer): void {
    if (this.phase !== Phase.head) {
      this.feed(data)
      return
    }
    const headers = this.headers!
    const status = this.status
    const connection = headers.connection
    if (connection !== undefined) {
      if (connectionHas(connection, 'close')) this.keepAlive = false
      else if (connectionHas(connection, 'keep-alive')) this.keepAlive = true
    }
    const te = headers['transfer-encoding']
    const cl = headers['content-length']
    if (this.req.method === 'HEAD' || status === 204 || status === 304) {
      this.phase = Phase.done
      this.respond(null)
      this.complete(data)
      return
    }
    if (te !== undefined) {
      // The final coding decides; anything but chunked is read until the connection closes.
      delete headers['content-length']
      if (endsChunked(te)) {
        this.phase = Phase.chunked
        this.chunks = new ChunkedDecoder()
      } else {
        this.phase = Phase.untilClose
        this.keepAlive = false
      }
    } else if (cl !== undefined) {
      const length = contentLength(cl)
      if (length < 0) {
        this.fail(failure(FailureKinds.reset, 'malformed response: content-length'))
        return
      }
      headers['content-length'] = String(length)
      if (data.length >= length) {
        // The common case: the whole body came with the head. One copy, no stream.
        this.phase = Phase.done
        this.respond(Buffer.from(data.subarray(0, length)))
        this.complete(data.subarray(length))
        return
      }
      this.phase = Phase.length
      this.remaining = length
      if (status >= 500 && length <= this.pool.settings.bufferErrorBodies) this.collected = []
    } else {
      this.phase = Phase.untilClose
      this.keepAlive = false
    }
    if (this.collected !== undefined) {
      this.feed(data)
      return
    }
    const body = new ResponseBody(this)
    this.body = body
    this.conn?.socket.setTimeout(this.pool.settings.bodyTimeout)
    this.bodyTimer = true
    // The bytes that came with the head first: if they are malformed, the attempt fails as a whole
    // instead of handing over a stream that is already broken.
    this.feed(data)
    this.respond(body)
  }

  /** Body bytes, framed by the phase; pushes them on and completes the message at its end. */
  private feed(data: Buffer): void {
    let at = 0
    while (at < data.length && this.phase !== Phase.done) {
      if (this.phase === Phase.length) {
        const n = Math.min(this.remaining, data.length - at)
        this.piece(data.subarray(at, at + n))
        at += n
        this.remaining -= n
        if (this.remaining === 0) this.phase = Phase.done
      } else if (this.phase === Phase.untilClose) {
        this.piece(at === 0 ? data : data.subarray(at))
        at = data.length
      } else {
        const chunks = this.chunks!
        at = chunks.feed(data, at, this)
        if (at < 0) {
          this.fail(failure(FailureKinds.reset, `malformed response: ${chunks.error}`))
          return
        }
        // Trailers are read and dropped: the sidecar does not forward them (see hop-by-hop.ts).
        if (chunks.done) this.phase = Phase.done
      }
    }
    if (this.phase === Phase.done) this.complete(data.subarray(at))
  }

  piece(piece: Buffer): void {
    if (piece.length === 0) return
    if (this.collected !== undefined) {
      this.collected.push(Buffer.from(piece))
      return
    }
    // A copy: `piece` lies in the shared read buffer. Backpressure: a slow client pauses the upstream
    // socket; `_read` resumes it.
    if (this.body !== undefined && !this.body.push(Buffer.from(piece))) this.conn?.socket.pause()
  }

  private respond(body: MeshResponse['body']): void {
    if (this.settled) return
    this.settled = true
    this.signal.removeEventListener('abort', this.onAbort)
    this.resolve({ status: this.status, headers: stripResponseHopByHop(this.headers!), body })
  }

  /** The response has ended; `extra` is whatever came after it, which must be nothing. */
  private complete(extra: Buffer): void {
    if (this.collected !== undefined) {
      const whole = Buffer.concat(this.collected)
      this.collected = undefined
      this.respond(whole)
    }
    if (this.body !== undefined) this.body.push(null)
    // Bytes after the response, or a request body still going up (an early answer, say a 413): the
    // connection's framing can no longer be trusted, so it closes instead of carrying another request.
    if (extra.length > 0 || !this.sent) this.keepAlive = false
    this.finish()
  }

  /** Response and request both done: hand the connection back. */
  private finish(): void {
    const conn = this.conn
    if (conn === undefined) return
    this.conn = undefined
    const socket = conn.socket
    if (this.bodyTimer) socket.setTimeout(0)
    // Paused by backpressure on the body's last piece: the next exchange needs it reading again.
    if (socket.isPaused()) socket.resume()
    // A refused upgrade's connection is never pooled: it was opened for one exchange.
    this.pool.release(conn, this.keepAlive && this.sent && socket.readable && this.req.upgrade === undefined)
  }

  onEnd(): void {
    if (this.phase === Phase.untilClose) {
      this.phase = Phase.done
      this.complete(Buffer.alloc(0))
    }
  }

  /** The socket closed under this exchange. */
  onClose(conn: Conn): void {
    this.detach()
    if (this.phase === Phase.done) return
    const err = conn.error
    if (!conn.connected) {
      // A refused handshake (the peer's certificate does not verify, or it refused ours) reached no
      // app either: a connect failure, safe to retry on another endpoint.
      if (this.pool.tls !== undefined && err !== undefined && err.message !== 'connect timeout')
        this.fail(
          failure(
            FailureKinds.connectFailure,
            `TLS handshake with ${this.pool.authority}: ${(err as { code?: string }).code ?? ''} ${err.message}`.trim(),
            err,
          ),
        )
      else this.fail(upstreamFailure(err, { aborted: false, connected: false }, 'connect failed'))
      return
    }
    // A kept-alive connection the upstream closed just as we reused it: nothing was processed, so an
    // idempotent request with a body we still hold goes once more, on a new connection.
    if (conn.served > 0 && !this.gotBytes && !this.retried && this.replayable()) {
      this.retried = true
      this.sent = false
      this.pool.assign(this, true)
      return
    }
    this.fail(upstreamFailure(err, { aborted: false, connected: true }, 'upstream closed the connection'))
  }

  private replayable(): boolean {
    const body = this.req.body
    return (
      IDEMPOTENT.has(this.req.method) &&
      (body === null || typeof body === 'string' || body instanceof Uint8Array)
    )
  }

  /** The body's reader let go of it before its end: the rest is never read, so the connection goes. */
  bodyGone(): void {
    if (this.phase === Phase.done) return
    this.phase = Phase.done
    this.detach()?.destroy()
  }

  /** Takes this exchange off its connection (which the caller destroys or has lost). */
  private detach(): Conn | undefined {
    const conn = this.conn
    if (conn === undefined) return undefined
    this.conn = undefined
    conn.exchange = undefined
    this.pool.running--
    return conn
  }

  private abort(): void {
    this.fail(failure(FailureKinds.timeout, 'aborted: the attempt timed out or the client went away'))
  }

  private fail(err: UpstreamFailure): void {
    this.phase = Phase.done
    this.signal.removeEventListener('abort', this.onAbort)
    const conn = this.detach()
    if (conn !== undefined) conn.destroy()
    else {
      const i = this.pool.waiting.indexOf(this)
      if (i >= 0) this.pool.waiting.splice(i, 1)
    }
    if (!this.settled) {
      this.settled = true
      this.reject(err)
    } else if (this.body !== undefined && !this.body.destroyed) this.body.destroy(err)
  }
}

// ---------------------------------------------------------------------------------------------

function noop(): void {}

function drained(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      socket.off('drain', done)
      socket.off('close', done)
      if (err !== undefined || socket.destroyed) reject(err ?? new Error('upstream closed the connection'))
      else resolve()
    }
    socket.on('drain', done)
    socket.on('close', done)
  })
}

export function createHttp1Invoker(opts: Http1Options = {}): Http1Invoker {
  const settings: Settings = {
    connections: opts.connections ?? Number.POSITIVE_INFINITY,
    connectTimeout: opts.connectTimeout ?? 10_000,
    keepAliveTimeout: opts.keepAliveTimeout ?? 4_000,
    bodyTimeout: opts.bodyTimeout ?? 300_000,
    maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024,
    bufferErrorBodies: opts.bufferErrorBodies ?? 64 * 1024,
  }
  const pools = new Map<string, Pool>()
  const tlsPolicy = opts.tls
  let closed = false
  const sweeper = setInterval(
    () => {
      const now = performance.now()
      for (const pool of pools.values()) pool.sweep(now)
    },
    // Idle sockets close within a quarter of the timeout past it (expired ones are never reused anyway).
    Math.min(1000, Math.max(100, settings.keepAliveTimeout / 4)),
  )
  sweeper.unref()

  /** One pool per origin, and for TLS per way of reaching it (one target may name another SNI). */
  function poolFor(endpoint: Endpoint): Pool | undefined {
    const origin = endpoint.id
    if (!origin.startsWith('https:')) {
      let pool = pools.get(origin)
      if (pool === undefined) {
        pool = new Pool(new URL(origin), settings, undefined)
        pools.set(origin, pool)
      }
      return pool
    }
    if (tlsPolicy === undefined) return undefined
    const policy = tlsPolicy(endpoint.target)
    const key = policy.key === '' ? origin : `${origin} ${policy.key}`
    let pool = pools.get(key)
    if (pool === undefined) {
      pool = new Pool(new URL(origin), settings, policy)
      pools.set(key, pool)
    }
    return pool
  }

  return {
    invoke(req, endpoint: Endpoint, signal) {
      if (closed) return Promise.reject(failure(FailureKinds.connectFailure, 'http invoker is closed'))
      if (signal.aborted) return Promise.reject(failure(FailureKinds.timeout, 'aborted before sending'))
      if (BAD_PATH.test(req.path)) return Promise.reject(failure(FailureKinds.reset, 'invalid request path'))
      const pool = poolFor(endpoint)
      if (pool === undefined)
        return Promise.reject(failure(FailureKinds.connectFailure, `no TLS configured for ${endpoint.id}`))
      let head = `${req.method} ${req.path} HTTP/1.1\r\n`
      // HTTP/1.1 requires Host (RFC 9112 §3.2); a caller that set none gets the origin's.
      if (req.headers.host === undefined) head += `host: ${pool.authority}\r\n`
      const fields = fieldLines(req.headers)
      if (typeof fields !== 'string') {
        return Promise.reject(failure(FailureKinds.reset, `invalid header ${JSON.stringify(fields.name)}`))
      }
      head += fields
      if (req.upgrade !== undefined) {
        // Connection and Upgrade are hop-by-hop: the edge dropped the client's; these are this hop's.
        if (/[\r\n]/.test(req.upgrade)) return Promise.reject(failure(FailureKinds.reset, 'invalid upgrade'))
        head += `connection: upgrade\r\nupgrade: ${req.upgrade}\r\n`
        return new Promise<MeshResponse>((resolve, reject) => {
          const ex = new Exchange(pool, req, head, signal, resolve, reject)
          ex.origin = endpoint.id
          pool.assignUpgrade(ex)
        })
      }
      return new Promise<MeshResponse>((resolve, reject) => {
        pool.assign(new Exchange(pool, req, head, signal, resolve, reject), false)
      })
    },
    async close() {
      closed = true
      clearInterval(sweeper)
      for (const pool of pools.values()) {
        pool.closed = true
        for (const conn of pool.idle.splice(0)) conn.destroy()
      }
      pools.clear()
    },
    stats() {
      const out: Record<string, PoolStats> = {}
      for (const [origin, pool] of pools) {
        out[origin] = {
          connected: pool.open,
          pending: pool.waiting.length,
          running: pool.running,
          // TLS pools: how many handshakes, and how many of them resumed a session.
          ...(pool.tls === undefined ? {} : { opened: pool.opened, resumed: pool.resumed }),
        }
      }
      return out
    },
  }
}
