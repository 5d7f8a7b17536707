// Malformed and hostile HTTP/2 against the sidecar process, written as raw frames on a plain socket:
// a bad preface, SETTINGS, PING and RST_STREAM floods, the rapid-reset pattern (CVE-2023-44487), a
// frame over the frame size, a header list over the limit, and streams past the concurrent-stream
// limit. Each gets a GOAWAY or a stream reset; the process never dies, and normal HTTP/1.1 and HTTP/2
// traffic goes on after each.

import { connect as h2connect } from 'node:http2'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { send } from '../sidecar/client.ts'

const files = meshDir()
let upstream: Upstream
let sidecar: SidecarProcess
let port: number

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 } as const
const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const
const E = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  ENHANCE_YOUR_CALM: 11,
}

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

/** HPACK: an integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1
  if (value < max) return [first | value]
  const out = [first | max]
  let v = value - max
  while (v >= 128) {
    out.push((v % 128) + 128)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return out
}

/** A literal field without indexing, new name (RFC 7541 §6.2.2), no Huffman. */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1')
  const v = Buffer.from(value, 'latin1')
  return Buffer.concat([
    Buffer.from([0x00]),
    Buffer.from(hpackInt(n.length, 7, 0)),
    n,
    Buffer.from(hpackInt(v.length, 7, 0)),
    v,
  ])
}

/** `GET /path` to `authority`: :method GET, :scheme http (static 2, 6), :path and :authority as literals. */
function requestBlock(authority: string, path = '/', extra: Buffer[] = [], method = 'GET'): Buffer {
  return Buffer.concat([
    method === 'GET' ? Buffer.from([0x82]) : literal(':method', method),
    Buffer.from([0x86]),
    literal(':path', path),
    literal(':authority', authority),
    ...extra,
  ])
}

interface Frame {
  type: number
  flags: number
  stream: number
  payload: Buffer
}

/** A raw HTTP/2 client connection: writes bytes, parses what comes back into frames. */
class RawConn {
  readonly socket: Socket
  readonly frames: Frame[] = []
  closed = false
  private buf = Buffer.alloc(0)
  private waiters: (() => void)[] = []

  constructor() {
    this.socket = connect(port, '127.0.0.1')
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3)
        if (this.buf.length < 9 + len) break
        this.frames.push({
          type: this.buf[3]!,
          flags: this.buf[4]!,
          stream: this.buf.readUInt32BE(5) & 0x7fffffff,
          payload: this.buf.subarray(9, 9 + len),
        })
        this.buf = this.buf.subarray(9 + len)
      }
      this.wake()
    })
    this.socket.on('error', () => {})
    this.socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }

  write(data: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data)
  }

  /** Preface and an empty SETTINGS; then our ACK of theirs once it comes. */
  async handshake(): Promise<void> {
    this.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0)]))
    await this.until(() => this.frames.some((f) => f.type === T.SETTINGS && (f.flags & F.ACK) === 0))
    this.write(frame(T.SETTINGS, F.ACK, 0))
    await this.until(() => this.frames.some((f) => f.type === T.SETTINGS && (f.flags & F.ACK) !== 0))
  }

  /** Resolves once `test` holds, or the connection has closed (then `test` is checked once more). */
  until(test: () => boolean, timeoutMs = 10_000): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; frames: ${this.summary()}`)), timeoutMs)
      const check = () => {
        if (test() || this.closed) {
          clearTimeout(timer)
          resolve(test())
          return
        }
        this.waiters.push(check)
      }
      check()
    })
  }

  goaway(): { code: number; lastStream: number } | undefined {
    const f = this.frames.find((x) => x.type === T.GOAWAY)
    return f === undefined
      ? undefined
      : { lastStream: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) }
  }

  resets(): { stream: number; code: number }[] {
    return this.frames
      .filter((f) => f.type === T.RST_STREAM)
      .map((f) => ({ stream: f.stream, code: f.payload.readUInt32BE(0) }))
  }

  summary(): string {
    const counts: Record<number, number> = {}
    for (const f of this.frames) counts[f.type] = (counts[f.type] ?? 0) + 1
    return `${JSON.stringify(counts)} goaway=${JSON.stringify(this.goaway())} closed=${this.closed}`
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** The process is up and serves HTTP/1.1 and HTTP/2 as before. */
async function stillServing(): Promise<void> {
  expect(sidecar.child.exitCode).toBeNull()
  const h1 = await send(sidecar.outbound, { host: 'plain', path: '/after' })
  expect(h1.status).toBe(200)
  const status = await new Promise<number>((resolve, reject) => {
    const session = h2connect(sidecar.outbound)
    session.on('error', reject)
    const s = session.request({ ':path': '/after-h2', ':authority': 'plain' })
    s.on('response', (h) => {
      resolve(Number(h[':status']))
      session.close()
    })
    s.on('error', reject)
    s.resume()
  })
  expect(status).toBe(200)
}

beforeAll(async () => {
  upstream = await startUpstream('plain')
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'h2bad',
    services: { plain: { targets: { v1: { http: upstream.url } } } },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'client' })
  port = sidecar.outboundPort
}, 30_000)

afterAll(async () => {
  await sidecar?.stop()
  await upstream?.close()
  files.remove()
})

describe('hostile HTTP/2 against the sidecar', () => {
  it('answers a well-formed raw request (the frame builder works)', async () => {
    const c = new RawConn()
    await c.handshake()
    c.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, requestBlock('plain', '/raw')))
    expect(await c.until(() => c.frames.some((f) => f.type === T.DATA && f.stream === 1))).toBe(true)
    expect(c.frames.some((f) => f.type === T.HEADERS && f.stream === 1)).toBe(true)
    c.destroy()
  })

  it('answers a bad preface with GOAWAY PROTOCOL_ERROR and closes', async () => {
    const c = new RawConn()
    c.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n', 'latin1'))
    await c.until(() => c.closed)
    expect(c.goaway()?.code).toBe(E.PROTOCOL_ERROR)
    await stillServing()
  })

  it('ends a SETTINGS flood whose acknowledgements are never read', async () => {
    const c = new RawConn()
    await c.handshake()
    c.socket.pause() // read nothing: every ACK piles up on the sidecar's side
    const burst = Buffer.concat(Array.from({ length: 1000 }, () => frame(T.SETTINGS, 0, 0)))
    for (let i = 0; i < 400 && !c.closed && !c.socket.destroyed; i++) {
      if (!c.socket.write(burst)) await new Promise<void>((r) => setTimeout(r, 5))
    }
    c.socket.resume()
    await c.until(() => c.closed)
    const g = c.goaway()
    // The session is ended: GOAWAY (ENHANCE_YOUR_CALM, or an internal error once its queue is full).
    expect(c.closed).toBe(true)
    expect(g === undefined || g.code !== E.NO_ERROR).toBe(true)
    await stillServing()
  })

  it('ends a PING flood whose acknowledgements are never read', async () => {
    const c = new RawConn()
    await c.handshake()
    c.socket.pause()
    const ping = frame(T.PING, 0, 0, Buffer.alloc(8, 7))
    const burst = Buffer.concat(Array.from({ length: 1000 }, () => ping))
    for (let i = 0; i < 400 && !c.closed && !c.socket.destroyed; i++) {
      if (!c.socket.write(burst)) await new Promise<void>((r) => setTimeout(r, 5))
    }
    c.socket.resume()
    await c.until(() => c.closed)
    expect(c.closed).toBe(true)
    await stillServing()
  })

  it('treats RST_STREAM on streams never opened as a connection error (GOAWAY PROTOCOL_ERROR)', async () => {
    const c = new RawConn()
    await c.handshake()
    const rst = (id: number) => frame(T.RST_STREAM, 0, id, Buffer.from([0, 0, 0, E.CANCEL]))
    c.write(Buffer.concat(Array.from({ length: 500 }, (_, i) => rst(2 * i + 1))))
    await c.until(() => c.goaway() !== undefined)
    expect(c.goaway()?.code).toBe(E.PROTOCOL_ERROR)
    c.destroy()
    await stillServing()
  })

  it('stops rapid reset (CVE-2023-44487): streams opened and cancelled at once end the session with GOAWAY', async () => {
    const c = new RawConn()
    await c.handshake()
    const upstreamBefore = upstream.count()
    let id = 1
    const total = 5000
    while (id < total * 2 && !c.closed && c.goaway() === undefined) {
      const batch: Buffer[] = []
      for (let i = 0; i < 100; i++, id += 2) {
        batch.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, requestBlock('plain', '/reset')))
        batch.push(frame(T.RST_STREAM, 0, id, Buffer.from([0, 0, 0, E.CANCEL])))
      }
      c.write(Buffer.concat(batch))
      await new Promise<void>((r) => setImmediate(r))
    }
    await c.until(() => c.goaway() !== undefined)
    // The session ended. Usually the GOAWAY is read; but the server closes the socket right after it
    // while this client may still be writing, and a close with our frames unread is a TCP reset, on
    // which the kernel drops what we had not read yet: then the close alone is what we see.
    const g = c.goaway()
    if (g === undefined) expect(c.closed).toBe(true)
    else {
      expect(g.code).not.toBe(E.NO_ERROR)
      expect(g.lastStream).toBeLessThan(total * 2)
    }
    // The upstream did not see them all.
    expect(upstream.count() - upstreamBefore).toBeLessThan(total)
    c.destroy()
    await stillServing()
  })

  it('answers a HEADERS frame larger than the frame size with GOAWAY FRAME_SIZE_ERROR', async () => {
    const c = new RawConn()
    await c.handshake()
    const block = requestBlock('plain', '/big', [literal('x-big', 'a'.repeat(20_000))])
    expect(block.length).toBeGreaterThan(16_384)
    c.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, block))
    await c.until(() => c.goaway() !== undefined)
    expect(c.goaway()?.code).toBe(E.FRAME_SIZE_ERROR)
    c.destroy()
    await stillServing()
  })

  it('resets a stream whose header list is over the limit (sent in frames of allowed size)', async () => {
    const c = new RawConn()
    await c.handshake()
    const block = requestBlock('plain', '/big', [literal('x-big', 'a'.repeat(40_000))])
    const frames: Buffer[] = []
    for (let at = 0; at < block.length; at += 16_000) {
      const piece = block.subarray(at, at + 16_000)
      const last = at + 16_000 >= block.length
      frames.push(
        at === 0
          ? frame(T.HEADERS, F.END_STREAM | (last ? F.END_HEADERS : 0), 1, piece)
          : frame(T.CONTINUATION, last ? F.END_HEADERS : 0, 1, piece),
      )
    }
    c.write(Buffer.concat(frames))
    await c.until(() => c.resets().length > 0 || c.goaway() !== undefined)
    // node resets the stream with ENHANCE_YOUR_CALM once the list passes maxHeaderListSize.
    expect(c.resets().find((r) => r.stream === 1)?.code).toBe(E.ENHANCE_YOUR_CALM)
    expect(c.goaway()).toBeUndefined()
    // Never answered as a request.
    expect(c.frames.some((f) => f.type === T.HEADERS && f.stream === 1)).toBe(false)
    c.destroy()
    await stillServing()
  })

  it('refuses a stream past the concurrent-stream limit (GOAWAY PROTOCOL_ERROR naming the last stream it serves)', async () => {
    const c = new RawConn()
    await c.handshake()
    const settings = c.frames.find((f) => f.type === T.SETTINGS && (f.flags & F.ACK) === 0)!
    let limit = 0
    for (let at = 0; at + 6 <= settings.payload.length; at += 6)
      if (settings.payload.readUInt16BE(at) === 3) limit = settings.payload.readUInt32BE(at + 2)
    expect(limit).toBe(100)
    // POSTs whose bodies never end: each stream stays open.
    const open: Buffer[] = []
    for (let i = 0; i <= limit; i++)
      open.push(frame(T.HEADERS, F.END_HEADERS, 2 * i + 1, requestBlock('plain', '/held', [], 'POST')))
    c.write(Buffer.concat(open))
    const over = 2 * limit + 1
    await c.until(() => c.resets().some((r) => r.stream === over) || c.goaway() !== undefined)
    // RFC 9113 §5.1.2 allows a stream error (REFUSED_STREAM, PROTOCOL_ERROR); nghttp2 makes it a
    // connection error once the limit was acknowledged: GOAWAY whose last stream is the last one
    // within the limit, so none of those is lost.
    const reset = c.resets().find((r) => r.stream === over)
    const g = c.goaway()
    if (reset !== undefined) expect([E.REFUSED_STREAM, E.PROTOCOL_ERROR]).toContain(reset.code)
    else {
      expect(g?.code).toBe(E.PROTOCOL_ERROR)
      expect(g?.lastStream).toBe(over - 2)
    }
    expect(c.resets().filter((r) => r.stream < over)).toEqual([])
    c.destroy()
    await stillServing()
  })
})
