// Retries through the sidecar process against real failing upstreams: a flaky upstream made reliable
// for GETs, POSTs left alone unless the route opts in, and the retry budget capping the extra load.
//
// The flaky upstreams follow a script, not chance: request i (sent with `x-request-key: i`) fails its
// first `failures[i]` tries with 503 and then succeeds. The script is drawn once from a seeded random
// (each try fails with probability 0.3, like an upstream failing 30%), so it is the same on every run
// and independent of how concurrent requests interleave; every count below is exact.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { holdsWithin } from '../helpers/attempt.ts'
import { createGate } from '../helpers/gate.ts'
import { seededRandom } from '../helpers/manual-clock.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { load, send } from './client.ts'

/** How many tries of each request fail: consecutive seeded draws under 0.3, at most `cap`. */
function failureScript(total: number, seed: number, cap: number): number[] {
  const random = seededRandom(seed)
  return Array.from({ length: total }, () => {
    let f = 0
    while (f < cap && random() < 0.3) f++
    return f
  })
}

interface ScriptedUpstream {
  url: string
  /** Tries seen per request key, and the body bytes of each. */
  tries: Map<string, number[]>
  totalTries(): number
  reset(): void
  close(): Promise<void>
}

/** A real HTTP upstream that fails the first `failures(key)` tries of each request key. */
async function startScriptedUpstream(failures: (key: number) => number): Promise<ScriptedUpstream> {
  const tries = new Map<string, number[]>()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const key = String(req.headers['x-request-key'])
    const seen = tries.get(key) ?? []
    tries.set(key, seen)
    let bytes = 0
    req.on('data', (c: Buffer) => {
      bytes += c.length
    })
    req.on('end', () => {
      seen.push(bytes)
      const fail = seen.length <= failures(Number(key))
      res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain' }).end(fail ? 'failed' : 'ok')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tries,
    totalTries: () => [...tries.values()].reduce((n, t) => n + t.length, 0),
    reset: () => tries.clear(),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** 7 retries: 8 tries in all. */
const ATTEMPTS = 7
const GETS = 2000
const POSTS = 300
// GETs: the seeded script, except that request 0 fails one try more than the route allows.
const getFailures = failureScript(GETS, 7, ATTEMPTS + 1)
getFailures[0] = ATTEMPTS + 1
// POSTs: never more failures than the opt-in route retries.
const postFailures = failureScript(POSTS, 11, ATTEMPTS)

let flaky: ScriptedUpstream
let flakyPost: ScriptedUpstream
let down: Upstream
let burst: Upstream
let sidecar: SidecarProcess
const files = meshDir()

const fastBackoff = { base: '1ms', max: '5ms' }

beforeAll(async () => {
  flaky = await startScriptedUpstream((i) => getFailures[i] ?? 0)
  flakyPost = await startScriptedUpstream((i) => postFailures[i] ?? 0)
  down = await startUpstream('down', { failRate: 1, failStatus: 503 })
  burst = await startUpstream('burst', { status: 503 })
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
            retries: { attempts: ATTEMPTS, perTryTimeout: '2s', on: ['503'], backoff: fastBackoff },
          },
        ],
        // 100%: a retry is always within the share (each request has at most one retry in flight),
        // so only the retry policy is under test.
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
            retries: { attempts: ATTEMPTS, on: ['503'], backoff: fastBackoff, methods: ['GET', 'POST'] },
          },
          { name: 'default', to: 'v1', retries: { attempts: ATTEMPTS, on: ['503'], backoff: fastBackoff } },
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
      burst: {
        targets: { v1: { http: burst.url } },
        routes: [{ name: 'default', to: 'v1', retries: { attempts: 5, on: ['503'], backoff: fastBackoff } }],
        // The share alone, no floor: what it allows depends on the requests in flight, not on time.
        retryBudget: { percent: 20, minPerSecond: 0 },
        outlierDetection: { consecutive5xx: 0 },
      },
    },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'client' })
})

afterAll(async () => {
  await sidecar?.stop()
  await Promise.all([flaky?.close(), flakyPost?.close(), down?.close(), burst?.close()])
  files.remove()
})

describe('sidecar retries', () => {
  it('turns an upstream failing 30% of tries with 503 into success for every request within the attempts', async () => {
    const r = await load(sidecar.outbound, {
      concurrency: 20,
      total: GETS,
      make: (i) => ({ host: 'flaky', path: '/item', headers: { 'x-request-key': String(i) } }),
    })
    expect(r.errors).toEqual([])
    // The script really is an upstream failing about 30% of its tries (fixed by the seed).
    const tries = getFailures.reduce((n, f) => n + Math.min(f + 1, ATTEMPTS + 1), 0)
    const failedTries = getFailures.reduce((n, f) => n + Math.min(f, ATTEMPTS + 1), 0)
    expect(failedTries / tries).toBeGreaterThan(0.25)
    // Every request that fails at most 7 times succeeds; the one failing 8 times gets the last 503.
    const beyond = getFailures.filter((f) => f > ATTEMPTS).length
    expect(beyond).toBe(1)
    expect(r.byStatus.get(200)).toBe(GETS - beyond)
    expect(r.byStatus.get(503)).toBe(beyond)
    // Exactly one try per failure plus the one that succeeded, never more than 8.
    expect(flaky.tries.get('0')).toHaveLength(ATTEMPTS + 1)
    for (let i = 0; i < GETS; i++)
      expect(flaky.tries.get(String(i))?.length).toBe(Math.min(getFailures[i]! + 1, 8))
    expect(flaky.totalTries()).toBe(tries)
  })

  it('does not retry a POST unless the route lists POST in retries.methods', async () => {
    const body = JSON.stringify({ order: 1 })
    const headers = { 'content-type': 'application/json' }
    const failing = postFailures.filter((f) => f > 0).length
    expect(failing).toBeGreaterThan(POSTS * 0.2)

    flakyPost.reset()
    const plain = await load(sidecar.outbound, {
      concurrency: 10,
      total: POSTS,
      make: (i) => ({
        host: 'orders',
        path: '/orders',
        method: 'POST',
        body,
        headers: { ...headers, 'x-request-key': String(i) },
      }),
    })
    expect(plain.errors).toEqual([])
    // Exactly one try per POST: every upstream 503 reached the client.
    expect(flakyPost.totalTries()).toBe(POSTS)
    for (const t of flakyPost.tries.values()) expect(t).toHaveLength(1)
    expect(plain.byStatus.get(503)).toBe(failing)
    expect(plain.byStatus.get(200)).toBe(POSTS - failing)

    flakyPost.reset()
    const optIn = await load(sidecar.outbound, {
      concurrency: 10,
      total: POSTS,
      make: (i) => ({
        host: 'orders',
        path: '/opt-in/orders',
        method: 'POST',
        body,
        headers: { ...headers, 'x-request-key': String(i) },
      }),
    })
    expect(optIn.errors).toEqual([])
    expect(optIn.byStatus.get(200)).toBe(POSTS)
    for (let i = 0; i < POSTS; i++) {
      // One try per scripted failure plus the success, each carrying the whole body.
      const t = flakyPost.tries.get(String(i))!
      expect(t).toEqual(Array.from({ length: postFailures[i]! + 1 }, () => Buffer.byteLength(body)))
    }
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

  it('lets 20% of the requests in flight retry when they all fail at once, and no more', async () => {
    // The first tries are held until all ten are at the upstream, then fail together; the retries
    // that follow are held on a second gate, so what the budget allowed can be counted.
    const first = createGate()
    const second = createGate()
    burst.set({ status: 503, hold: first.opened })
    const replies = Promise.all(Array.from({ length: 10 }, () => send(sidecar.outbound, { host: 'burst' })))
    expect(await holdsWithin(() => burst.inFlight() === 10, 10_000)).toBe(true)
    burst.set({ status: 503, hold: second.opened })
    first.open()
    // 20% of 10 in flight: two retries; the other eight requests end at once with the first 503.
    expect(await holdsWithin(() => burst.count() === 12 && burst.inFlight() === 2, 10_000)).toBe(true)
    second.open()
    const all = await replies
    expect(all.map((r) => r.status)).toEqual(Array(10).fill(503))
    // With two requests left in flight, 20% allows no third retry: twelve tries in all.
    expect(burst.count()).toBe(12)
    const stats = JSON.parse(await fetch(`${sidecar.admin}/stats`).then((res) => res.text())) as {
      series: { service: string; retries: number; retryBudgetExhausted: number }[]
    }
    const series = stats.series.filter((x) => x.service === 'burst')
    expect(series.reduce((n, x) => n + x.retries, 0)).toBe(2)
    expect(series.reduce((n, x) => n + x.retryBudgetExhausted, 0)).toBe(10)
  })
})
