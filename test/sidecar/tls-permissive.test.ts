// The inbound listener in PERMISSIVE mode (docs/tls.md), a real sidecar process on loopback: cleartext
// HTTP and mutual TLS on the same port, told apart by the first byte; TLS still verified (no client
// certificate, no entry); a client that says nothing cut off after the handshake timeout.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCa, makeTlsDir } from '../helpers/certs.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const files = meshDir()
const certs = mkdtempSync(join(tmpdir(), 'meshgate-permissive-'))
let app: Upstream
let sidecar: SidecarProcess
let client: ReturnType<typeof makeTlsDir>
let port: number

beforeAll(async () => {
  const ca = makeCa(certs, 'mesh')
  const server = makeTlsDir(join(certs, 'server'), ca, 'reviews', ['IP:127.0.0.1'])
  client = makeTlsDir(join(certs, 'client'), ca, 'caller', ['DNS:caller'])
  app = await startUpstream('reviews')
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'permissive',
    services: { reviews: { targets: { v1: { http: 'http://127.0.0.1:1' } } } },
  })
  sidecar = await startSidecarProcess({
    configPath,
    service: 'reviews',
    app: app.url,
    env: {
      MESHGATE_TLS_DIR: server.dir,
      MESHGATE_TLS_MODE: 'permissive',
      MESHGATE_TLS_HANDSHAKE_TIMEOUT: '500ms',
    },
  })
  port = Number(new URL(sidecar.inbound!).port)
}, 30_000)

afterAll(async () => {
  await sidecar?.stop()
  await app?.close()
  files.remove()
  rmSync(certs, { recursive: true, force: true })
})

function plainGet(): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/plain', headers: { host: 'reviews' } }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => {
        body += c.toString()
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** One request over TLS; the status line, or the error that stopped it. */
function tlsGet(withCert: boolean): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(client.ca),
      ...(withCert ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
    })
    let reply = ''
    socket.on('secureConnect', () =>
      socket.write('GET /tls HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n'),
    )
    socket.on('data', (c: Buffer) => {
      reply += c.toString('latin1')
    })
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`))
    socket.on('close', () => resolve(reply.split('\r\n')[0] ?? ''))
  })
}

describe('inbound listener, permissive', () => {
  it('serves cleartext HTTP and mutual TLS on one port', async () => {
    const plain = await plainGet()
    expect(plain.status).toBe(200)
    expect(JSON.parse(plain.body).headers['x-forwarded-client-cert']).toBeUndefined()
    expect(await tlsGet(true)).toBe('HTTP/1.1 200 OK')
    const seen = app.requests().find((r) => r.url === '/tls')!
    expect(seen.headers['x-forwarded-client-cert']).toContain(
      `Hash=${client.leaf.fingerprint.replaceAll(':', '').toLowerCase()}`,
    )
  })

  it('still refuses TLS without a client certificate, and a client that says nothing', async () => {
    expect(await tlsGet(false)).toMatch(/^error /)
    const closedBy = await new Promise<string>((resolve) => {
      const s = netConnect(port, '127.0.0.1')
      const timer = setTimeout(() => {
        s.destroy()
        resolve('client')
      }, 10_000)
      s.on('error', () => {})
      s.on('close', () => {
        clearTimeout(timer)
        resolve('server')
      })
    })
    expect(closedBy).toBe('server')
    const stats = JSON.parse(
      await new Promise<string>((resolve, reject) => {
        request(`${sidecar.admin}/stats`, (res) => {
          let b = ''
          res.on('data', (c: Buffer) => {
            b += c.toString()
          })
          res.on('end', () => resolve(b))
        })
          .on('error', reject)
          .end()
      }),
    ) as { tls: { handshakeFailures: Record<string, number>; plaintextConnections: number } }
    expect(stats.tls.handshakeFailures.timeout).toBe(1)
    // The first test's cleartext request: one connection (node's agent closed it after the answer).
    expect(stats.tls.plaintextConnections).toBe(1)
    expect(stats.tls.handshakeFailures.no_client_certificate).toBe(1)
    expect(await plainGet()).toMatchObject({ status: 200 })
  })
})
