// The sidecar as a child process routing real traffic: weighted split, header matching, stickiness,
// the never-an-open-proxy rule, HTTP handling (hop-by-hop, forwarding headers, limits).

import { Agent } from 'node:http'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { load, send } from './client.ts'

let v1: Upstream
let v2: Upstream
let outsider: Upstream
let sidecar: SidecarProcess
const files = meshDir()

const noRetries = { attempts: 0 }

beforeAll(async () => {
  v1 = await startUpstream('v1')
  v2 = await startUpstream('v2')
  outsider = await startUpstream('outsider')
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'routing',
    services: {
      weighted: {
        targets: { v1: { http: v1.url }, v2: { http: v2.url } },
        routes: [{ name: 'split', to: { v1: 80, v2: 20 }, retries: noRetries }],
      },
      reviews: {
        targets: { v1: { http: v1.url }, v2: { http: v2.url } },
        routes: [
          { name: 'jason', match: { headers: { 'end-user': 'jason' } }, to: 'v2', retries: noRetries },
          { name: 'default', to: 'v1', retries: noRetries },
        ],
      },
      sticky: {
        targets: { v1: { http: v1.url }, v2: { http: v2.url } },
        routes: [
          { name: 'sticky', to: { v1: 50, v2: 50 }, stickiness: { header: 'end-user' }, retries: noRetries },
        ],
      },
    },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'productpage' })
})

afterAll(async () => {
  await sidecar?.stop()
  await Promise.all([v1?.close(), v2?.close(), outsider?.close()])
  files.remove()
})

describe('sidecar routing', () => {
  it('splits traffic by weight within tolerance', async () => {
    const r = await load(sidecar.outbound, {
      concurrency: 10,
      total: 1000,
      make: () => ({ host: 'weighted' }),
    })
    expect(r.errors).toEqual([])
    expect(r.byStatus.get(200)).toBe(1000)
    const share = (r.byUpstream.get('v2') ?? 0) / 1000
    // 20% ± 4 points: over three standard deviations of a binomial(1000, 0.2).
    expect(share).toBeGreaterThan(0.16)
    expect(share).toBeLessThan(0.24)
  })

  it('routes by header', async () => {
    for (let i = 0; i < 10; i++) {
      const jason = await send(sidecar.outbound, {
        host: 'reviews',
        path: '/reviews/0',
        headers: { 'end-user': 'jason' },
      })
      expect(jason.headers['x-upstream']).toBe('v2')
      const other = await send(sidecar.outbound, {
        host: 'reviews',
        path: '/reviews/0',
        headers: { 'end-user': 'amy' },
      })
      expect(other.headers['x-upstream']).toBe('v1')
      const nobody = await send(sidecar.outbound, { host: 'reviews.mesh:9080', path: '/reviews/0' })
      expect(nobody.headers['x-upstream']).toBe('v1')
    }
  })

  it('keeps a user on one target with sticky routing', async () => {
    const seen = new Map<string, Set<string>>()
    for (let round = 0; round < 5; round++) {
      const r = await load(sidecar.outbound, {
        concurrency: 8,
        total: 40,
        make: (i) => ({ host: 'sticky', headers: { 'end-user': `user-${i}` } }),
      })
      expect(r.errors).toEqual([])
      for (const reply of r.replies) {
        const user = (JSON.parse(reply.body) as { headers: Record<string, string> }).headers['end-user']!
        const set = seen.get(user) ?? new Set()
        set.add(reply.headers['x-upstream'] as string)
        seen.set(user, set)
      }
    }
    expect(seen.size).toBe(40)
    for (const targets of seen.values()) expect(targets.size).toBe(1)
    const onV2 = [...seen.values()].filter((s) => s.has('v2')).length
    // 50/50 by user: both targets get a fair share of the 40 users.
    expect(onV2).toBeGreaterThan(8)
    expect(onV2).toBeLessThan(32)
  })

  it('answers 404 unknown_service for a host outside the mesh, in any form', async () => {
    const byHost = await send(sidecar.outbound, { host: 'example.com', path: '/' })
    expect(byHost.status).toBe(404)
    expect(byHost.headers['x-meshgate-error']).toBe('unknown_service')
    expect(JSON.parse(byHost.body)).toEqual({ error: 'unknown_service', service: 'example.com' })

    // Absolute form, as apps with HTTP_PROXY send it: to an arbitrary URL, and to a real server that is
    // reachable from here but not in the mesh. Neither is contacted.
    const before = outsider.count()
    const absolute = await send(sidecar.outbound, {
      path: 'http://example.com/anything?x=1',
      host: 'example.com',
    })
    expect(absolute.status).toBe(404)
    expect(JSON.parse(absolute.body)).toEqual({ error: 'unknown_service', service: 'example.com' })
    const direct = await send(sidecar.outbound, {
      path: `${outsider.url}/secret`,
      host: `127.0.0.1:${outsider.port}`,
    })
    expect(direct.status).toBe(404)
    expect(direct.headers['x-meshgate-error']).toBe('unknown_service')
    // The Host header cannot smuggle a mesh name past an absolute URL either (the URL wins).
    const smuggled = await send(sidecar.outbound, { path: `${outsider.url}/secret`, host: 'reviews' })
    expect(smuggled.status).toBe(404)
    expect(outsider.count()).toBe(before)

    // Absolute form to a mesh service is routed.
    const meshAbsolute = await send(sidecar.outbound, { path: 'http://reviews/reviews/1', host: 'reviews' })
    expect(meshAbsolute.status).toBe(200)
    expect(JSON.parse(meshAbsolute.body).url).toBe('/reviews/1')

    // CONNECT would be a tunnel to anywhere.
    const connectReply = await rawExchange(
      sidecar.outboundPort,
      `CONNECT 127.0.0.1:${outsider.port} HTTP/1.1\r\nHost: 127.0.0.1:${outsider.port}\r\n\r\n`,
    )
    expect(connectReply).toMatch(/^HTTP\/1\.1 405/)
    expect(outsider.count()).toBe(before)
  })

  it('drops hop-by-hop headers and sets the forwarding headers', async () => {
    const r = await send(sidecar.outbound, {
      host: 'reviews',
      path: '/h',
      headers: {
        connection: 'keep-alive, x-private',
        'x-private': 'secret',
        'keep-alive': 'timeout=5',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        te: 'trailers, gzip',
        'x-keep': 'yes',
        'x-forwarded-for': '203.0.113.9',
      },
    })
    expect(r.status).toBe(200)
    const headers = (JSON.parse(r.body) as { headers: Record<string, string> }).headers
    expect(headers['x-private']).toBeUndefined()
    expect(headers['keep-alive']).toBeUndefined()
    expect(headers['proxy-authorization']).toBeUndefined()
    expect(headers.te).toBe('trailers')
    expect(headers['x-keep']).toBe('yes')
    expect(headers.host).toBe('reviews')
    expect(headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
    expect(headers['x-forwarded-proto']).toBe('http')
    expect(headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)

    const own = await send(sidecar.outbound, { host: 'reviews', headers: { 'x-request-id': 'req-42' } })
    expect((JSON.parse(own.body) as { headers: Record<string, string> }).headers['x-request-id']).toBe(
      'req-42',
    )
  })

  it('refuses too many or too large headers with 431 and malformed requests with 400', async () => {
    const many: Record<string, string> = {}
    for (let i = 0; i < 120; i++) many[`x-h-${i}`] = 'v'
    const tooMany = await send(sidecar.outbound, { host: 'reviews', headers: many })
    expect(tooMany.status).toBe(431)
    expect(tooMany.headers['x-meshgate-error']).toBe('headers_too_large')

    const big = await rawExchange(
      sidecar.outboundPort,
      `GET / HTTP/1.1\r\nHost: reviews\r\nx-big: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
    )
    expect(big).toMatch(/^HTTP\/1\.1 431/)

    const garbage = await rawExchange(sidecar.outboundPort, 'NOT A REQUEST\r\n\r\n')
    expect(garbage).toMatch(/^HTTP\/1\.1 400/)
    const noHost = await rawExchange(sidecar.outboundPort, 'GET / HTTP/1.1\r\n\r\n')
    expect(noHost).toMatch(/^HTTP\/1\.1 400/)

    // Still serving.
    expect((await send(sidecar.outbound, { host: 'reviews' })).status).toBe(200)
  })

  it('keeps connections alive on both sides', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    for (let i = 0; i < 5; i++) {
      const reply = await send(sidecar.outbound, { host: 'reviews', agent })
      expect(reply.headers.connection).toBe('keep-alive')
    }
    const stats = JSON.parse((await send(sidecar.admin, { path: '/stats' })).body) as {
      connections: { outbound: number }
      upstreamPools: Record<string, { connected: number }>
    }
    agent.destroy()
    // One connection from the app carried all five; the pool to v1 reused its connections too.
    expect(stats.connections.outbound).toBe(1)
    expect(stats.upstreamPools[v1.url]!.connected).toBeGreaterThan(0)
    expect(stats.upstreamPools[v1.url]!.connected).toBeLessThanOrEqual(10)
  })
})

/** Writes `text` on a fresh connection and returns whatever comes back until the server closes or 2 s pass. */
function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let out = ''
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(out)
    }, 2000)
    socket.on('data', (c) => {
      out += c.toString('latin1')
    })
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(out)
    })
    socket.write(text)
  })
}
