// End to end: serverless-offline runs the real gateway function behind its local HTTP API; the gateway
// routes into the mesh, whose Lambda targets are invoked by the real client-lambda through
// serverless-offline's Invoke API, and whose HTTP target is a real local server.
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type OfflineService, prepareOffline } from '../helpers/serverless-offline.ts'
import { ROOT } from '../lambda/service-dir.ts'

let upstream: Server
let upstreamOrigin: string
let flakyHits = 0
let offline: OfflineService | undefined
let api: string

function meshConfig(): object {
  return {
    version: 1,
    mesh: 'e2e',
    gateway: {
      routes: [
        {
          name: 'reviews',
          match: { path: { prefix: '/api/reviews' } },
          service: 'reviews',
          rewrite: { prefix: '/reviews' },
        },
        { name: 'flaky', match: { path: { prefix: '/flaky' } }, service: 'flaky' },
      ],
    },
    services: {
      reviews: {
        targets: {
          v1: { lambda: 'e2e-reviews-v1' },
          v2: { lambda: 'e2e-reviews-v2' },
          v3: { http: upstreamOrigin },
        },
        routes: [
          { name: 'jason', match: { headers: { 'end-user': 'jason' } }, to: 'v2' },
          { name: 'split', match: { path: { prefix: '/' } }, to: { v1: 40, v2: 30, v3: 30 } },
        ],
      },
      ratings: { targets: { v1: { http: upstreamOrigin } } },
      flaky: {
        targets: { v1: { lambda: 'e2e-flaky' } },
        routes: [
          {
            name: 'default',
            match: { path: { prefix: '/' } },
            to: 'v1',
            timeout: '25s',
            retries: {
              attempts: 2,
              perTryTimeout: '10s',
              on: ['5xx'],
              backoff: { base: '10ms', max: '20ms' },
            },
          },
        ],
      },
    },
  }
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (req.url === '/flaky-hit') {
        flakyHits++
        res.writeHead(204).end()
      } else if (req.url?.startsWith('/ratings/')) {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}')
      } else {
        res
          .writeHead(200, { 'content-type': 'application/json', 'x-served-by': 'reviews-v3' })
          .end(JSON.stringify({ version: 'v3', path: req.url }))
      }
    })
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  upstreamOrigin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

  offline = await prepareOffline(readFileSync(join(ROOT, 'test/fixtures/serverless.e2e.yml'), 'utf8'))
  writeFileSync(join(offline.service.dir, 'e2e-mesh.json'), JSON.stringify(meshConfig()))
  api = offline.api
  await offline.start({
    ...process.env,
    E2E_HTTP_PORT: String(offline.httpPort),
    E2E_LAMBDA_PORT: String(offline.lambdaPort),
    E2E_HTTP_ORIGIN: upstreamOrigin,
  })
}, 120_000)

afterAll(async () => {
  await offline?.stop()
  upstream?.closeAllConnections()
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()))
}, 30_000)

async function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; servedBy: string | null; body: string; error: string | null }> {
  const res = await fetch(`${api}${path}`, { headers, signal: AbortSignal.timeout(30_000) })
  return {
    status: res.status,
    servedBy: res.headers.get('x-served-by'),
    body: await res.text(),
    error: res.headers.get('x-meshgate-error'),
  }
}

describe('gateway on serverless-offline', () => {
  it('answers an unrouted path with the mesh error table', async () => {
    const res = await get('/nothing-here')
    expect(res.status).toBe(404)
    expect(res.error).toBe('no_route')
  })

  it('splits by weight between two Lambda functions and a real HTTP service', async () => {
    const counts: Record<string, number> = {}
    const n = 100
    for (let i = 0; i < n; i++) {
      const res = await get(`/api/reviews/${i}`)
      expect(res.status).toBe(200)
      const by = res.servedBy ?? 'none'
      counts[by] = (counts[by] ?? 0) + 1
      if (by === 'reviews-v2') {
        // v2 asked ratings through context.mesh.fetch inside its own Lambda.
        expect(JSON.parse(res.body).reviews[0].rating).toEqual({ stars: 5, color: 'black' })
      }
      if (by === 'reviews-v3') expect(JSON.parse(res.body).path).toBe(`/reviews/${i}`)
    }
    // 40/30/30 of 100: each share within ~4 standard deviations.
    expect(counts['reviews-v1'] ?? 0).toBeGreaterThanOrEqual(20)
    expect(counts['reviews-v1'] ?? 0).toBeLessThanOrEqual(60)
    expect(counts['reviews-v2'] ?? 0).toBeGreaterThanOrEqual(12)
    expect(counts['reviews-v2'] ?? 0).toBeLessThanOrEqual(48)
    expect(counts['reviews-v3'] ?? 0).toBeGreaterThanOrEqual(12)
    expect(counts['reviews-v3'] ?? 0).toBeLessThanOrEqual(48)
    expect(Object.keys(counts).sort()).toEqual(['reviews-v1', 'reviews-v2', 'reviews-v3'])
  }, 120_000)

  it('routes by user: end-user jason always reaches v2', async () => {
    for (let i = 0; i < 10; i++) {
      const res = await get('/api/reviews/1', { 'end-user': 'jason' })
      expect(res.status).toBe(200)
      expect(res.servedBy).toBe('reviews-v2')
    }
  }, 60_000)

  it('retries a throwing Lambda target per the policy, then answers 502', async () => {
    flakyHits = 0
    const res = await get('/flaky/x')
    expect(res.status).toBe(502)
    expect(res.error).toBe('function_error')
    // attempts: 2 → one try and two retries.
    expect(flakyHits).toBe(3)
  }, 60_000)
})
