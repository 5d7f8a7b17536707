// End to end: serverless-offline runs the real gateway function behind its local HTTP API; the gateway
// routes into the mesh, whose Lambda targets are invoked by the real client-lambda through
// serverless-offline's Invoke API, and whose HTTP target is a real local server.
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServiceDir, ROOT, type ServiceDir } from '../lambda/service-dir.ts'

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

let upstream: Server
let upstreamOrigin: string
let flakyHits = 0
let offline: ChildProcess | undefined
let output = ''
let service: ServiceDir
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

async function waitReady(url: string, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    if (offline?.exitCode !== null && offline?.exitCode !== undefined) {
      throw new Error(`serverless offline exited (${offline.exitCode}):\n${output}`)
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
      await res.arrayBuffer()
      return
    } catch {
      await new Promise((r) => setTimeout(r, 250))
    }
  }
  throw new Error(`serverless offline did not become ready:\n${output}`)
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

  service = createServiceDir(readFileSync(join(ROOT, 'test/fixtures/serverless.e2e.yml'), 'utf8'))
  writeFileSync(join(service.dir, 'e2e-mesh.json'), JSON.stringify(meshConfig()))
  const [httpPort, lambdaPort, wsPort, albPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ]
  api = `http://127.0.0.1:${httpPort}`
  offline = spawn(
    'setsid',
    [
      join(ROOT, 'node_modules/.bin/serverless'),
      'offline',
      'start',
      '--websocketPort',
      String(wsPort),
      '--albPort',
      String(albPort),
    ],
    {
      cwd: service.dir,
      env: {
        ...process.env,
        SLS_TELEMETRY_DISABLED: '1',
        E2E_HTTP_PORT: String(httpPort),
        E2E_LAMBDA_PORT: String(lambdaPort),
        E2E_HTTP_ORIGIN: upstreamOrigin,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  offline.stdout?.on('data', (c: Buffer) => {
    output += c.toString()
  })
  offline.stderr?.on('data', (c: Buffer) => {
    output += c.toString()
  })
  await waitReady(`${api}/not-routed`, Date.now() + 90_000)
}, 120_000)

afterAll(async () => {
  const pid = offline?.pid
  if (pid !== undefined && offline?.exitCode === null) {
    // setsid made the CLI the leader of its own group: end it with its esbuild children.
    try {
      process.kill(-pid, 'SIGTERM')
    } catch {}
    const exited = await Promise.race([
      new Promise<boolean>((resolve) => offline!.once('exit', () => resolve(true))),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000)),
    ])
    if (!exited) {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {}
    }
  }
  upstream?.closeAllConnections()
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()))
  service?.remove()
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
