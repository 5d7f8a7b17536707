// Raw-socket peers for the edge tests, where the bytes on the wire must be exact: an upstream that
// records every request it parses (so a test can prove nothing was smuggled to it) and answers as
// the test says, and a client that sends bytes and collects everything until the connection closes.

import { once } from 'node:events'
import type { AddressInfo, Server, Socket } from 'node:net'
import { connect, createServer } from 'node:net'

export interface RawRequest {
  method: string
  target: string
  /** Field lines as received: names lower case. */
  headers: Record<string, string>
  body: Buffer
}

export interface RawUpstream {
  readonly url: string
  /** Every request parsed so far, in arrival order. */
  readonly requests: RawRequest[]
  /** Connections accepted so far. */
  connections(): number
  close(): Promise<void>
}

/**
 * An upstream that parses requests strictly enough to count them (Content-Length or chunked bodies)
 * and hands each to `answer`. Unparsable bytes are recorded as a request with method `?`, so a
 * test expecting zero or one request also sees garbage a proxy passed on.
 */
export async function startRawUpstream(
  answer: (req: RawRequest, socket: Socket) => void | Promise<void>,
): Promise<RawUpstream> {
  const requests: RawRequest[] = []
  const sockets = new Set<Socket>()
  let accepted = 0
  const server: Server = createServer((socket) => {
    accepted++
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.setNoDelay(true)
    socket.on('error', () => {})
    let buf = Buffer.alloc(0)
    let queue = Promise.resolve()
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        const parsed = parseOne(buf)
        if (parsed === undefined) return
        if (parsed === 'bad') {
          requests.push({ method: '?', target: buf.toString('latin1'), headers: {}, body: Buffer.alloc(0) })
          buf = Buffer.alloc(0)
          socket.destroy()
          return
        }
        buf = buf.subarray(parsed.used)
        requests.push(parsed.req)
        // One at a time, in order, as HTTP/1.1 answers pipelined requests.
        queue = queue.then(() => answer(parsed.req, socket))
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    connections: () => accepted,
    close() {
      for (const s of sockets) s.destroy()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
}

function parseOne(buf: Buffer): { req: RawRequest; used: number } | 'bad' | undefined {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return buf.length > 65_536 ? 'bad' : undefined
  const [line = '', ...fields] = buf.toString('latin1', 0, end).split('\r\n')
  const parts = line.split(' ')
  if (parts.length !== 3 || !/^HTTP\/1\.[01]$/.test(parts[2]!)) return 'bad'
  const headers: Record<string, string> = {}
  for (const f of fields) {
    const colon = f.indexOf(':')
    if (colon <= 0) return 'bad'
    const name = f.slice(0, colon).toLowerCase()
    // A repeated field would hide a second framing: join it, and let the test see it.
    // Only SP and HTAB around a value (String.prototype.trim would also eat a no-break space).
    const value = f.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  let at = end + 4
  let body: Buffer
  if (headers['transfer-encoding'] !== undefined) {
    if (headers['transfer-encoding'] !== 'chunked') return 'bad'
    const pieces: Buffer[] = []
    for (;;) {
      const eol = buf.indexOf('\r\n', at)
      if (eol < 0) return undefined
      const size = Number.parseInt(buf.toString('latin1', at, eol), 16)
      if (!Number.isFinite(size)) return 'bad'
      at = eol + 2
      if (size === 0) {
        const trailerEnd = buf.indexOf('\r\n', at)
        if (trailerEnd < 0) return undefined
        if (trailerEnd !== at) return 'bad' // the sidecar forwards no trailers
        at += 2
        break
      }
      if (buf.length < at + size + 2) return undefined
      pieces.push(buf.subarray(at, at + size))
      at += size + 2
    }
    body = Buffer.concat(pieces)
  } else {
    const length = Number(headers['content-length'] ?? 0)
    if (!Number.isInteger(length) || length < 0) return 'bad'
    if (buf.length < at + length) return undefined
    body = Buffer.from(buf.subarray(at, at + length))
    at += length
  }
  return { req: { method: parts[0]!, target: parts[1]!, headers, body }, used: at }
}

export interface Exchanged {
  /** Everything the server sent, latin1. */
  text: string
  /** The server closed (or reset) the connection before `waitMs` ran out. */
  closed: boolean
}

/**
 * Sends `bytes` (in pieces, with a timer tick between them, when given several) and reads until the
 * server closes the connection, or `waitMs` passes (then `closed` is false: a hang is an answer too).
 */
export function exchange(
  address: string,
  bytes: Buffer | Buffer[],
  waitMs = 3000,
  /** Stop reading (and close) as soon as this holds of what has come: a keep-alive answer, say. */
  enough?: (text: string) => boolean,
): Promise<Exchanged> {
  const url = new URL(address)
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname)
    socket.setNoDelay(true)
    let text = ''
    const timer = setTimeout(() => {
      socket.destroy()
      resolve({ text, closed: false })
    }, waitMs)
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1')
      if (enough?.(text)) {
        clearTimeout(timer)
        socket.destroy()
        resolve({ text, closed: false })
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ text, closed: true })
    })
    const pieces = Array.isArray(bytes) ? bytes : [bytes]
    let i = 0
    const next = () => {
      if (socket.destroyed) return
      socket.write(pieces[i++]!)
      if (i < pieces.length) setTimeout(next, 1)
    }
    socket.once('connect', next)
  })
}

/** The status codes of every response in `text`, in order (bodies are skipped by their length). */
export function statuses(text: string): number[] {
  const out: number[] = []
  let at = 0
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at)
    if (end < 0) break
    const head = text.slice(at, end)
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(head)
    if (m === null) break
    out.push(Number(m[1]))
    const length = /\r\ncontent-length: (\d+)/i.exec(head)
    at = end + 4 + (length === null ? 0 : Number(length[1]))
  }
  return out
}

export interface RawClient {
  socket: Socket
  /** Everything the server sent so far, latin1. */
  text(): string
  closed(): boolean
}

/** A connection to `address` (`http://host:port` or `host:port`) that collects what comes back. */
export async function openClient(address: string): Promise<RawClient> {
  const url = new URL(address.includes('://') ? address : `http://${address}`)
  const socket = connect(Number(url.port), url.hostname)
  socket.setNoDelay(true)
  let text = ''
  let closed = false
  socket.on('data', (c: Buffer) => {
    text += c.toString('latin1')
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    closed = true
  })
  await once(socket, 'connect')
  return { socket, text: () => text, closed: () => closed }
}

export interface RawReply {
  status: number
  /** Field lines, names lower case (a repeated one: the last). */
  headers: Record<string, string>
  body: string
}

/** The first response in `text`: its status, fields and everything after its head. */
export function parseReply(text: string): RawReply {
  const headEnd = text.indexOf('\r\n\r\n')
  const lines = text.slice(0, headEnd).split('\r\n')
  const headers: Record<string, string> = {}
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':')
    headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim()
  }
  return { status: Number(lines[0]!.split(' ')[1]), headers, body: text.slice(headEnd + 4) }
}
