// TCP services through the sidecar as a real process: `listener: { protocol: tcp, port }` routed per
// connection by weight, the connect retried (and only the connect) past a refusing target, half-close
// carried, idle connections closed, counts per target in /metrics, and live reloads that open and
// close ports without cutting open connections.

import { request } from 'node:http'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { freePort, startTcpEcho, type TcpEcho } from '../helpers/tunnel-peers.ts'

let a: TcpEcho
let b: TcpEcho
/** A server that accepts and never reads. */
let sink: Server
let sinkPort: number
let refusedPort: number
let splitPort: number
let failoverPort: number
let idlePort: number
let addedPort: number
let stalledPort: number
let sidecar: SidecarProcess
const files = meshDir()
let configPath: string

function mesh(extra: Record<string, unknown> = {}, without: string[] = []) {
  const services: Record<string, unknown> = {
    split: {
      listener: { protocol: 'tcp', port: splitPort },
      targets: { a: { tcp: a.address }, b: { tcp: b.address } },
      routes: [{ name: 'by-weight', to: { a: 90, b: 10 } }],
    },
    failover: {
      listener: { protocol: 'tcp', port: failoverPort, connectTimeout: '2s' },
      targets: { good: { tcp: a.address }, refusing: { tcp: `127.0.0.1:${refusedPort}` } },
      routes: [{ to: { good: 50, refusing: 50 }, retries: { attempts: 1 } }],
      // Never eject: every connection that draws `refusing` must go through the connect retry.
      outlierDetection: { consecutive5xx: 0 },
    },
    stalled: {
      listener: { protocol: 'tcp', port: stalledPort },
      targets: { sink: { tcp: `127.0.0.1:${sinkPort}` } },
    },
    idle: {
      listener: { protocol: 'tcp', port: idlePort },
      targets: { a: { tcp: a.address } },
      routes: [{ to: 'a', idleTimeout: '300ms' }],
    },
    ...extra,
  }
  for (const name of without) delete services[name]
  return { version: 1, mesh: 'tcp', services }
}

beforeAll(async () => {
  a = await startTcpEcho('a')
  b = await startTcpEcho('b')
  sink = createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => {})
    // Reads nothing: whatever reaches it waits in the kernel.
  })
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
  sinkPort = (sink.address() as { port: number }).port
  ;[refusedPort, splitPort, failoverPort, idlePort, addedPort, stalledPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ])
  configPath = files.write('mesh.json', mesh())
  sidecar = await startSidecarProcess({ configPath, service: 'client' })
})

afterAll(async () => {
  await sidecar?.stop()
  await Promise.all([a?.close(), b?.close()])
  sink?.close()
  files.remove()
})

/** Connects to `port`, resolves with the first line the far end sends (its name), then closes. */
function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let got = ''
    socket.on('data', (d) => {
      got += d.toString()
      const nl = got.indexOf('\n')
      if (nl >= 0) {
        resolve(got.slice(0, nl))
        socket.destroy()
      }
    })
    socket.on('error', reject)
    socket.on('close', () => reject(new Error(`closed before a greeting: ${JSON.stringify(got)}`)))
  })
}

async function metric(re: RegExp): Promise<number> {
  const text = await (await fetch(`${sidecar.admin}/metrics`)).text()
  const m = re.exec(text)
  return m === null ? 0 : Number(m[1])
}

describe('tcp services', () => {
  it('splits 1 000 connections 90/10 by the route weights', async () => {
    const total = 1000
    const seen: Record<string, number> = { a: 0, b: 0 }
    let next = 0
    const worker = async () => {
      while (next < total) {
        next++
        seen[await greeting(splitPort)]!++
      }
    }
    await Promise.all(Array.from({ length: 20 }, worker))
    expect(seen.a! + seen.b!).toBe(total)
    // Binomial(1000, 0.1): mean 100, sd 9.5; ±3.5 sd.
    expect(seen.b).toBeGreaterThanOrEqual(67)
    expect(seen.b).toBeLessThanOrEqual(133)
    expect(
      await metric(
        /meshgate_tunnel_connections_total\{mesh="tcp",service="split",target="b",protocol="tcp"\} (\d+)/,
      ),
    ).toBe(seen.b)
  })

  it('skips a refusing target after the connect retry: every connection lands', async () => {
    const total = 200
    const names = await Promise.all(Array.from({ length: total }, () => greeting(failoverPort)))
    expect(names.every((n) => n === 'a')).toBe(true)
    const failures = await metric(
      /meshgate_tunnel_connect_failures_total\{mesh="tcp",service="failover",target="refusing",protocol="tcp"\} (\d+)/,
    )
    // About half drew the refusing target first; each cost exactly one failed connect.
    expect(failures).toBeGreaterThan(60)
    expect(failures).toBeLessThan(140)
    expect(
      await metric(
        /meshgate_tunnel_connections_total\{mesh="tcp",service="failover",target="good",protocol="tcp"\} (\d+)/,
      ),
    ).toBe(total)
  })

  it('holds a bounded amount for an upstream that does not read (backpressure), not the stream', async () => {
    const socket = connect(stalledPort, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    const chunk = Buffer.alloc(1 << 20, 120)
    let offered = 0
    // Offer up to 256 MB, one chunk per drain; stop when no drain comes for a while (the pipe is full).
    for (; offered < 256 << 20; offered += chunk.length) {
      if (socket.write(chunk)) continue
      const drained = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 1500)
        socket.once('drain', () => {
          clearTimeout(t)
          resolve(true)
        })
      })
      if (!drained) break
    }
    const accepted = socket.bytesWritten - socket.writableLength
    socket.destroy()
    // What left the client sits in kernel buffers (a few MB each on loopback) and at most a socket's
    // write buffer in the sidecar: nowhere near the 256 MB an unbounded relay would have taken.
    expect(offered).toBeLessThan(256 << 20)
    expect(accepted).toBeLessThan(48 << 20)
  })

  it('answers an HTTP request for a tcp service with 404 no_route', async () => {
    const res = await new Promise<{ status: number; error: unknown; body: string }>((resolve, reject) => {
      const req = request(`${sidecar.outbound}/`, { headers: { host: 'split' } }, (r) => {
        let body = ''
        r.on('data', (d) => {
          body += d
        })
        r.on('end', () => resolve({ status: r.statusCode ?? 0, error: r.headers['x-meshgate-error'], body }))
      })
      req.on('error', reject)
      req.end()
    })
    expect(res.status).toBe(404)
    expect(res.error).toBe('no_route')
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'tcp_service' })
  })

  it('carries a half-close: the client ends its side and still reads the answer', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(splitPort, '127.0.0.1')
      let got = ''
      socket.on('data', (d) => {
        got += d.toString()
      })
      socket.on('connect', () => socket.end('hello\n'))
      socket.on('end', () => resolve(got))
      socket.on('error', reject)
    })
    // Greeting, echo, then the server's answer to our FIN: all after we stopped writing.
    expect(text).toMatch(/^[ab]\nhello\nbye\n$/)
  })

  it('closes a connection idle for its idleTimeout, after the bytes it carried', async () => {
    const events: string[] = []
    await new Promise<void>((resolve) => {
      const socket: Socket = connect(idlePort, '127.0.0.1')
      socket.on('data', (d) => events.push(`data ${d.toString().trim()}`))
      socket.on('close', () => {
        events.push('close')
        resolve()
      })
      socket.on('error', () => {})
    })
    expect(events).toEqual(['data a', 'close'])
    const line = JSON.parse(
      await sidecar.waitForLine(/"type":"tunnel".*"service":"idle".*"reason":"idle_timeout"/),
    )
    expect(line).toMatchObject({ protocol: 'tcp', target: 'a', endpoint: `tcp://${a.address}`, bytesSent: 2 })
  })

  it('opens and closes ports on reload; open connections keep going', async () => {
    // A connection opened before the reload, to a service the reload removes.
    const socket = connect(splitPort, '127.0.0.1')
    const got: string[] = []
    socket.on('data', (d) => got.push(d.toString()))
    await new Promise((resolve) => socket.once('data', resolve))
    files.write(
      'mesh.json',
      mesh(
        {
          added: {
            listener: { protocol: 'tcp', port: addedPort },
            targets: { b: { tcp: b.address } },
          },
        },
        ['split'],
      ),
    )
    await sidecar.waitForLine(/config reloaded/, 10_000)
    // The new port is bound just after the swap (a listen is asynchronous): a bounded wait for it.
    let name: string | undefined
    for (let i = 0; i < 50 && name === undefined; i++) {
      name = await greeting(addedPort).catch(() => new Promise<undefined>((r) => setTimeout(r, 20)))
    }
    expect(name).toBe('b')
    // The removed port refuses new connections.
    await expect(greeting(splitPort)).rejects.toThrow()
    // The connection from before still carries bytes both ways.
    socket.write('still here\n')
    await new Promise<void>((resolve) => {
      const wait = setInterval(() => {
        if (got.join('').includes('still here')) {
          clearInterval(wait)
          resolve()
        }
      }, 10)
    })
    socket.destroy()
  })
})
