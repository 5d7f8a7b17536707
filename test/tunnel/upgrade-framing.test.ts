// Malformed and borderline upgrade requests over raw sockets, against an upstream that records every
// byte it receives: RFC 9110 §7.8 / RFC 9112 handling, and no request smuggled past the router.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { type RecordingUpstream, rawExchange, startRecordingUpstream } from '../helpers/tunnel-peers.ts'

let upstream: RecordingUpstream
let sidecar: SidecarProcess
const files = meshDir()

const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'

beforeAll(async () => {
  upstream = await startRecordingUpstream((head, socket) => {
    const path = head.split(' ')[1] ?? ''
    if (path.startsWith('/switch')) {
      // After the switch: echo, and answer a FIN with `bye` and a FIN of its own (half-close).
      socket.on('data', (d) => {
        if (!d.toString('latin1').includes('HTTP/1.1')) socket.write(d)
      })
      socket.on('end', () => socket.end('bye'))
      return `${SWITCH}early`
    }
    if (path.startsWith('/other'))
      return 'HTTP/1.1 101 Switching Protocols\r\nupgrade: h3-nonsense\r\nconnection: upgrade\r\n\r\n'
    // Ordinary answers close their connection: each request the sidecar sends is on a connection of
    // its own, so the recording shows one connection per request.
    setImmediate(() => socket.end())
    if (path.startsWith('/refuse'))
      return 'HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno'
    const body = `saw ${path}`
    return `HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`
  })
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'framing',
    services: {
      raw: { targets: { r: { http: upstream.url } }, routes: [{ to: 'r', retries: { attempts: 0 } }] },
    },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'raw' })
})

afterAll(async () => {
  await sidecar?.stop()
  await upstream?.close()
  files.remove()
})

const upgradeHead = (path: string, extra = '') =>
  `GET ${path} HTTP/1.1\r\nhost: raw\r\nconnection: upgrade\r\nupgrade: websocket\r\n${extra}\r\n`

/** The connections the upstream saw since `before`. */
const since = (before: number) => upstream.received().slice(before)

describe('upgrade requests on the wire', () => {
  it('switches on a 101, passes early bytes both ways after it, and carries a half-close', async () => {
    const before = upstream.received().length
    const res = await rawExchange(sidecar.outboundPort, upgradeHead('/switch'), {
      after: (socket, soFar) => {
        const wait = setInterval(() => {
          if (!soFar().includes('early')) return
          clearInterval(wait)
          socket.write('ping')
          setTimeout(() => socket.end(), 100)
        }, 10)
      },
    })
    expect(res.text.startsWith('HTTP/1.1 101 Switching Protocols\r\n')).toBe(true)
    expect(res.text).toMatch(/\r\nupgrade: websocket\r\n/)
    // The upstream's bytes after its 101, then the echo, then its answer to our FIN: in that order.
    expect(res.text.slice(res.text.indexOf('\r\n\r\n') + 4)).toBe('earlypingbye')
    expect(res.closed).toBe(true)
    const seen = since(before)
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatch(/^GET \/switch HTTP\/1\.1\r\n/)
    expect(seen[0]).toMatch(/\r\nconnection: upgrade\r\nupgrade: websocket\r\n/)
    expect(seen[0]!.endsWith('\r\n\r\nping')).toBe(true)
  })

  it('passes bytes sent ahead of the 101 through the tunnel after it, in order', async () => {
    const before = upstream.received().length
    const res = await rawExchange(sidecar.outboundPort, `${upgradeHead('/switch')}AHEAD`, {
      ms: 3000,
      until: (t) => t.endsWith('earlyAHEAD'),
    })
    expect(res.text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n[\s\S]*\r\n\r\nearlyAHEAD$/)
    const seen = since(before)
    expect(seen).toHaveLength(1)
    // One head, then the early bytes as tunnel data: never a second request.
    expect(seen[0]!.match(/HTTP\/1\.1/g)).toHaveLength(1)
    expect(seen[0]!.endsWith('\r\n\r\nAHEAD')).toBe(true)
  })

  it('ignores Upgrade without Connection: upgrade: an ordinary request, no upgrade forwarded', async () => {
    const before = upstream.received().length
    const res = await rawExchange(
      sidecar.outboundPort,
      'GET /plain HTTP/1.1\r\nhost: raw\r\nupgrade: websocket\r\n\r\n',
      { ms: 1000, until: (t) => t.endsWith('saw /plain') },
    )
    expect(res.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*saw \/plain$/)
    const seen = since(before)
    expect(seen).toHaveLength(1)
    expect(seen[0]).not.toMatch(/upgrade/i)
  })

  it('serves an upgrade request with a body as an ordinary request, its body framed as one', async () => {
    const before = upstream.received().length
    // If the body were taken as tunnel bytes, `GET /smuggled` would reach the upstream as a request.
    const smuggled = 'GET /smuggled HTTP/1.1\r\nhost: raw\r\n\r\n'
    const res = await rawExchange(
      sidecar.outboundPort,
      `POST /switch HTTP/1.1\r\nhost: raw\r\nconnection: upgrade\r\nupgrade: websocket\r\ncontent-length: ${smuggled.length}\r\n\r\n${smuggled}`,
      { ms: 1000, until: (t) => t.endsWith('saw /switch') },
    )
    expect(res.text).not.toMatch(/101/)
    const seen = since(before)
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatch(/^POST \/switch HTTP\/1\.1\r\n/)
    expect(seen[0]).not.toMatch(/upgrade/i)
    // The body arrived as a body (with its length), and nothing else followed it.
    expect(seen[0]).toMatch(new RegExp(`content-length: ${smuggled.length}\\r\\n`))
    expect(seen[0]!.endsWith(`\r\n\r\n${smuggled}`)).toBe(true)
  })

  it('never forwards bytes sent after the upgrade request before the 101, and closes after a refusal', async () => {
    const before = upstream.received().length
    const res = await rawExchange(
      sidecar.outboundPort,
      `${upgradeHead('/refuse')}GET /smuggled HTTP/1.1\r\nhost: raw\r\n\r\n`,
      { ms: 3000 },
    )
    // The refusal as an ordinary response, then the connection closes: the pipelined bytes were
    // meant for the new protocol and are not read as a request.
    expect(res.text).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/)
    expect(res.text).toMatch(/\r\nconnection: close\r\n/)
    expect(res.text.endsWith('\r\n\r\nno')).toBe(true)
    expect(res.closed).toBe(true)
    const seen = since(before)
    expect(seen).toHaveLength(1)
    expect(seen[0]).not.toMatch(/smuggled/)
  })

  it('keeps the connection for the next request after a refused upgrade with nothing sent ahead', async () => {
    const res = await rawExchange(sidecar.outboundPort, upgradeHead('/refuse'), {
      ms: 2000,
      after: (socket, soFar) => {
        const wait = setInterval(() => {
          if (!soFar().endsWith('no')) return
          clearInterval(wait)
          socket.write('GET /after HTTP/1.1\r\nhost: raw\r\nconnection: close\r\n\r\n')
        }, 10)
      },
    })
    expect(res.text).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*no/)
    expect(res.text).toMatch(/saw \/after$/)
  })

  it('does not follow a 101 to a protocol the client did not ask for', async () => {
    const res = await rawExchange(sidecar.outboundPort, upgradeHead('/other'), {
      ms: 2000,
      until: (t) => t.includes('}'),
    })
    expect(res.text).toMatch(/^HTTP\/1\.1 503 /)
    expect(res.text).toMatch(/\r\nx-meshgate-error: upstream_unavailable\r\n/)
  })

  it('refuses a malformed Upgrade field with 400', async () => {
    const res = await rawExchange(
      sidecar.outboundPort,
      'GET /x HTTP/1.1\r\nhost: raw\r\nconnection: upgrade\r\nupgrade: web socket\r\n\r\n',
      { ms: 1000 },
    )
    expect(res.text).toMatch(/^HTTP\/1\.1 400 /)
  })

  it('ignores an upgrade in HTTP/1.0 and an h2c upgrade', async () => {
    const before = upstream.received().length
    const old = await rawExchange(
      sidecar.outboundPort,
      'GET /old HTTP/1.0\r\nhost: raw\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n',
      { ms: 1000, until: (t) => t.endsWith('saw /old') },
    )
    expect(old.text).toMatch(/saw \/old$/)
    const h2c = await rawExchange(
      sidecar.outboundPort,
      'GET /h2c HTTP/1.1\r\nhost: raw\r\nconnection: upgrade, http2-settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\nconnection: close\r\n\r\n',
      { ms: 1000, until: (t) => t.endsWith('saw /h2c') },
    )
    expect(h2c.text).toMatch(/saw \/h2c$/)
    for (const seen of since(before)) expect(seen).not.toMatch(/upgrade|http2-settings/i)
  })

  it('refuses CONNECT with 405 and never opens a tunnel', async () => {
    const before = upstream.received().length
    const res = await rawExchange(
      sidecar.outboundPort,
      `CONNECT ${upstream.url.slice('http://'.length)} HTTP/1.1\r\nhost: ${upstream.url.slice('http://'.length)}\r\n\r\n`,
      { ms: 1000 },
    )
    expect(res.text).toMatch(/^HTTP\/1\.1 405 /)
    expect(res.text).toMatch(/\r\nx-meshgate-error: method_not_allowed\r\n/)
    expect(res.closed).toBe(true)
    expect(since(before)).toHaveLength(0)
  })
})
