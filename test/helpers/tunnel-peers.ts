// Peers for the tunnel tests: WebSocket echo servers (the `ws` package), TCP echo servers, a raw
// recording upstream that sees every byte a sidecar sends it, and free loopback ports for tcp
// services' listeners (a config names its port, so port 0 cannot be used there).

import { connect, createServer, type Server, type Socket } from 'node:net'
import { WebSocketServer } from 'ws'

/** A free loopback port now (bound, read, released). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface WsEcho {
  readonly url: string
  readonly name: string
  /** Upgrades accepted so far. */
  upgrades(): number
  close(): Promise<void>
}

/** A WebSocket server that answers each message with `NAME:message`. */
export async function startWsEcho(name: string): Promise<WsEcho> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  let upgrades = 0
  wss.on('connection', (ws) => {
    upgrades++
    ws.on('message', (data) => ws.send(`${name}:${data.toString()}`))
  })
  const port = (wss.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}`,
    name,
    upgrades: () => upgrades,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate()
        wss.close(() => resolve())
      }),
  }
}

export interface TcpEcho {
  readonly port: number
  readonly address: string
  readonly name: string
  connections(): number
  close(): Promise<void>
}

/**
 * A TCP server that writes `NAME\n` on connect, echoes what it reads, and on the client's FIN writes
 * `bye\n` and ends its side (a half-close answered).
 */
export async function startTcpEcho(name: string): Promise<TcpEcho> {
  let connections = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    connections++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.write(`${name}\n`)
    socket.on('data', (d) => socket.write(d))
    socket.on('end', () => socket.end('bye\n'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    address: `127.0.0.1:${port}`,
    name,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

export interface RecordingUpstream {
  readonly url: string
  /** Every byte each connection sent, in order of connection. */
  received(): string[]
  close(): Promise<void>
}

/**
 * An HTTP upstream written on raw sockets, so a test sees exactly what the sidecar sent. Each
 * connection's first head is answered by `answer(head)`: the text to write (after which the
 * connection stays open and echoes nothing), or null to write nothing.
 */
export async function startRecordingUpstream(
  answer: (head: string, socket: Socket) => string | null,
): Promise<RecordingUpstream> {
  const received: string[] = []
  const sockets = new Set<Socket>()
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    const index = received.push('') - 1
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let answered = false
    socket.on('data', (d) => {
      received[index] += d.toString('latin1')
      if (!answered && received[index]!.includes('\r\n\r\n')) {
        answered = true
        const reply = answer(received[index]!.slice(0, received[index]!.indexOf('\r\n\r\n')), socket)
        if (reply !== null) socket.write(reply)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => [...received],
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/** Writes `text` on a new connection to `port` and collects what comes back until the peer closes or `ms` pass. */
export function rawExchange(
  port: number,
  text: string,
  opts: {
    ms?: number
    after?: (socket: Socket, soFar: () => string) => void
    /** Finish as soon as what came back satisfies this (the connection may stay open). */
    until?: (text: string) => boolean
  } = {},
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let got = ''
    let done = false
    const finish = (closed: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ text: got, closed })
    }
    const timer = setTimeout(() => finish(false), opts.ms ?? 3000)
    socket.on('data', (d) => {
      got += d.toString('latin1')
      if (opts.until?.(got)) finish(false)
    })
    socket.on('error', () => finish(true))
    socket.on('close', () => finish(true))
    socket.on('connect', () => {
      socket.write(text)
      opts.after?.(socket, () => got)
    })
  })
}
