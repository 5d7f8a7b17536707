// Retries through the sidecar process against real failing upstreams: a flaky upstream made reliable
// for GETs, POSTs left alone unless the route opts in, and the retry budget capping the extra load.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { load } from './client.ts'

let flaky: Upstream
let flakyPost: Upstream
let down: Upstream
let sidecar: SidecarProcess
const files = meshDir()

const fastBackoff = { base: '1ms', max: '5ms' }

beforeAll(async () => {
  flaky = await startUpstream('flaky', { failRate: 0.3, failStatus: 503 }, 7)
  flakyPost = await startUpstream('flaky-post', { failRate: 0.3, failStatus: 503 }, 11)
  down = await startUpstream('down', { failRate: 1, failStatus: 503 })
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'retries',
    services: {
      flaky: {
        targets: { v1: { http: flaky.url } },
        routes: [
          {
            name: 'default',
            to: 'v1',
            // 8 tries: 0.3^8 ≈ 7e-5 left failing, far under the 0.1% allowed.
            retries: { attempts: 7, perTryTimeout: '2s', on: ['503'], backoff: fastBackoff },
          },
        ],
        // Enough budget for 30% failures (~43% extra tries), so only the retry policy is under test.
        retryBudget: { percent: 100, minPerSecond: 1000 },
        // Keep the single endpoint in service: this test is about retries, not ejection.
        outlierDetection: { consecutive5xx: 0 },
      },
      orders: {
        targets: { v1: { http: flakyPost.url } },
        routes: [
          {
            name: 'opt-in',
            match: { path: { prefix: '/opt-in' } },
            to: 'v1',
            retries: { attempts: 7, on: ['503'], backoff: fastBackoff, methods: ['GET', 'POST'] },
          },
          { name: 'default', to: 'v1', retries: { attempts: 7, on: ['503'], backoff: fastBackoff } },
        ],
        retryBudget: { percent: 100, minPerSecond: 1000 },
        outlierDetection: { consecutive5xx: 0 },
      },
      down: {
        targets: { v1: { http: down.url } },
        routes: [{ name: 'default', to: 'v1', retries: { attempts: 5, on: ['503'], backoff: fastBackoff } }],
        // Linkerd's shape: 20% of the traffic, plus a floor of 5 retries per second.
        retryBudget: { percent: 20, minPerSecond: 5 },
        outlierDetection: { consecutive5xx: 0 },
      },
    },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'client' })
})

afterAll(async () => {
  await sidecar?.stop()
  await Promise.all([flaky?.close(), flakyPost?.close(), down?.close()])
  files.remove()
})

describe('sidecar retries', () => {
  it('turns an upstream failing 30% with 503 into at least 99.9% success for GETs', async () => {
    const total = 2000
    const r = await load(sidecar.outbound, {
      concurrency: 20,
      total,
      make: () => ({ host: 'flaky', path: '/item' }),
    })
    expect(r.errors).toEqual([])
    const ok = r.byStatus.get(200) ?? 0
    expect(ok / total).toBeGreaterThanOrEqual(0.999)
    // The upstream really failed about 30% of what it saw, and retries made up the difference.
    expect(flaky.failures() / flaky.count()).toBeGreaterThan(0.25)
    expect(flaky.count()).toBeGreaterThan(total * 1.3)
  })

  it('does not retry a POST unless the route lists POST in retries.methods', async () => {
    const total = 300
    const body = JSON.stringify({ order: 1 })
    const headers = { 'content-type': 'application/json' }

    flakyPost.reset()
    const plain = await load(sidecar.outbound, {
      concurrency: 10,
      total,
      make: () => ({ host: 'orders', path: '/orders', method: 'POST', body, headers }),
    })
    expect(plain.errors).toEqual([])
    // Exactly one try per POST: every upstream 503 reached the client.
    expect(flakyPost.count()).toBe(total)
    expect(plain.byStatus.get(503) ?? 0).toBe(flakyPost.failures())
    expect(flakyPost.failures()).toBeGreaterThan(total * 0.2)

    flakyPost.reset()
    const optIn = await load(sidecar.outbound, {
      concurrency: 10,
      total,
      make: () => ({ host: 'orders', path: '/opt-in/orders', method: 'POST', body, headers }),
    })
    expect(optIn.errors).toEqual([])
    expect(optIn.byStatus.get(200)).toBe(total)
    expect(flakyPost.count()).toBeGreaterThan(total)
    // The retried POSTs carried their body every time.
    for (const req of flakyPost.requests()) expect(req.bodyBytes).toBe(Buffer.byteLength(body))
  })

  it('caps the extra load with the retry budget when the upstream fails every request', async () => {
    const total = 400
    const started = performance.now()
    const r = await load(sidecar.outbound, { concurrency: 10, total, make: () => ({ host: 'down' }) })
    const seconds = (performance.now() - started) / 1000
    expect(r.errors).toEqual([])
    expect(r.byStatus.get(503)).toBe(total)
    const retries = down.count() - total
    // Without a budget: 5 retries each, 2000 extra tries. With it: at most 20% of the requests in
    // flight (2 of 10) plus 5 per second (the floor), with slack for timing.
    const cap = total * 0.2 + 5 * Math.ceil(seconds + 1) + 20
    expect(retries).toBeLessThanOrEqual(cap)
    expect(retries).toBeLessThan(total * 5)
    const stats = JSON.parse(await fetch(`${sidecar.admin}/stats`).then((res) => res.text())) as {
      series: { service: string; retryBudgetExhausted: number }[]
    }
    const exhausted = stats.series
      .filter((s) => s.service === 'down')
      .reduce((n, s) => n + s.retryBudgetExhausted, 0)
    expect(exhausted).toBeGreaterThan(0)
  })
})
