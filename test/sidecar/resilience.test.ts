// Policies that protect callers, through the sidecar process: outlier ejection and return, per-try and
// route timeouts, injected faults at their percentages, and a slow mirror that never slows the primary.

import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { load, send } from './client.ts'

let good: Upstream
let bad: Upstream
let slow: Upstream
let fast: Upstream
let primary: Upstream
let mirror: Upstream
let sidecar: SidecarProcess
const files = meshDir()

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

beforeAll(async () => {
  good = await startUpstream('good')
  bad = await startUpstream('bad', { status: 503 })
  slow = await startUpstream('slow', { delayMs: 1000 })
  fast = await startUpstream('fast')
  primary = await startUpstream('primary')
  mirror = await startUpstream('mirror', { delayMs: 2000 })
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'resilience',
    services: {
      ejecting: {
        targets: { v1: { http: [good.url, bad.url] } },
        routes: [{ name: 'default', to: 'v1', retries: { attempts: 0 } }],
        outlierDetection: {
          consecutive5xx: 3,
          interval: '10s',
          baseEjectionTime: '1s',
          maxEjectionPercent: 50,
        },
      },
      pertry: {
        targets: { v1: { http: slow.url } },
        routes: [
          {
            name: 'default',
            to: 'v1',
            timeout: '5s',
            retries: {
              attempts: 2,
              perTryTimeout: '200ms',
              on: ['reset', 'connect-failure', '503'],
              backoff: { base: '1ms', max: '2ms' },
            },
          },
        ],
        outlierDetection: { consecutive5xx: 0 },
      },
      deadline: {
        targets: { v1: { http: slow.url } },
        routes: [{ name: 'default', to: 'v1', timeout: '300ms', retries: { attempts: 3 } }],
        outlierDetection: { consecutive5xx: 0 },
      },
      hanging: {
        targets: { v1: { http: slow.url } },
        routes: [{ name: 'default', to: 'v1', timeout: '10s', retries: { attempts: 0 } }],
        outlierDetection: { consecutive5xx: 0 },
      },
      delayed: {
        targets: { v1: { http: fast.url } },
        routes: [{ name: 'default', to: 'v1', fault: { delay: { percent: 50, duration: '300ms' } } }],
      },
      aborted: {
        targets: { v1: { http: fast.url } },
        routes: [{ name: 'default', to: 'v1', fault: { abort: { percent: 20, status: 418 } } }],
      },
      mirrored: {
        targets: { live: { http: primary.url }, shadow: { http: mirror.url } },
        routes: [{ name: 'default', to: 'live', mirror: { target: 'shadow', percent: 100 } }],
      },
    },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'client' })
})

afterAll(async () => {
  await sidecar?.stop()
  await Promise.all([good, bad, slow, fast, primary, mirror].map((u) => u?.close()))
  files.remove()
})

describe('sidecar resilience', () => {
  it('ejects a failing endpoint and returns it after the ejection time', async () => {
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) await send(sidecar.outbound, { host: 'ejecting' })
    }
    await round(30)
    // Round robin sends every other request to `bad` until its third consecutive 503 ejects it.
    const atEjection = bad.count()
    expect(atEjection).toBeGreaterThanOrEqual(3)
    expect(atEjection).toBeLessThanOrEqual(4)

    await round(30)
    expect(bad.count()).toBe(atEjection)

    // The endpoint recovers; after the base ejection time (1 s) it is back in the rotation.
    bad.set({ status: 200 })
    await sleep(1300)
    await round(30)
    expect(bad.count() - atEjection).toBeGreaterThanOrEqual(10)
  })

  it('ends each try at the per-try timeout and answers 504 timeout when all tries time out', async () => {
    slow.reset()
    const r = await send(sidecar.outbound, { host: 'pertry' })
    expect(r.status).toBe(504)
    expect(r.headers['x-meshgate-error']).toBe('timeout')
    // Three tries of 200 ms each, not one try of the upstream's 1 s.
    expect(slow.count()).toBe(3)
    expect(r.ms).toBeGreaterThanOrEqual(550)
    expect(r.ms).toBeLessThan(950)
  })

  it('ends the request at the route timeout with 504 timeout, retries included', async () => {
    slow.reset()
    const r = await send(sidecar.outbound, { host: 'deadline' })
    expect(r.status).toBe(504)
    expect(r.headers['x-meshgate-error']).toBe('timeout')
    expect(JSON.parse(r.body).error).toBe('timeout')
    expect(r.ms).toBeGreaterThanOrEqual(280)
    expect(r.ms).toBeLessThan(800)
    expect(slow.count()).toBe(1)
  })

  it('cancels the upstream request when the client goes away', async () => {
    slow.reset()
    const req = request({
      host: '127.0.0.1',
      port: sidecar.outboundPort,
      path: '/hang',
      headers: { host: 'hanging' },
    })
    req.on('error', () => {})
    req.end()
    const until = performance.now() + 2000
    while (slow.inFlight() === 0 && performance.now() < until) await sleep(10)
    expect(slow.inFlight()).toBe(1)
    req.destroy()
    // The upstream would answer after 1 s; its request is torn down long before that.
    const started = performance.now()
    while (slow.inFlight() > 0 && performance.now() - started < 900) await sleep(10)
    expect(slow.inFlight()).toBe(0)
    expect(performance.now() - started).toBeLessThan(500)
  })

  it('injects delays at their percentage', async () => {
    const total = 200
    const r = await load(sidecar.outbound, { concurrency: 25, total, make: () => ({ host: 'delayed' }) })
    expect(r.errors).toEqual([])
    expect(r.byStatus.get(200)).toBe(total)
    const delayed = r.replies.filter((x) => x.ms >= 290).length / total
    // 50% ± 12 points: over three standard deviations of a binomial(200, 0.5).
    expect(delayed).toBeGreaterThan(0.38)
    expect(delayed).toBeLessThan(0.62)
  })

  it('injects aborts at their percentage', async () => {
    fast.reset()
    const total = 600
    const r = await load(sidecar.outbound, { concurrency: 20, total, make: () => ({ host: 'aborted' }) })
    expect(r.errors).toEqual([])
    const aborted = r.replies.filter((x) => x.status === 418)
    for (const a of aborted) expect(a.headers['x-meshgate-error']).toBe('fault_abort')
    const share = aborted.length / total
    // 20% ± 5 points: three standard deviations of a binomial(600, 0.2).
    expect(share).toBeGreaterThan(0.15)
    expect(share).toBeLessThan(0.25)
    // Aborted requests never reached the upstream.
    expect(fast.count()).toBe(total - aborted.length)
  })

  it('mirrors to a slow target without slowing the primary', async () => {
    const times: number[] = []
    for (let i = 0; i < 10; i++) {
      const r = await send(sidecar.outbound, { host: 'mirrored', path: `/m/${i}` })
      expect(r.status).toBe(200)
      expect(r.headers['x-upstream']).toBe('primary')
      times.push(r.ms)
    }
    // The mirror answers after 2 s; the primary path must not wait for it.
    expect(Math.max(...times)).toBeLessThan(500)
    expect(primary.count()).toBe(10)
    // The copies did arrive at the mirror (sent just after each original), with Istio's -shadow host.
    const until = performance.now() + 1000
    while (mirror.count() < 10 && performance.now() < until) await sleep(10)
    expect(mirror.count()).toBe(10)
    await sleep(2200)
    const hosts = mirror.requests().map((r) => r.headers.host)
    expect(hosts.length).toBe(10)
    for (const h of hosts) expect(h).toBe('mirrored-shadow')
  })
})
