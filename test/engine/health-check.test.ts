// Active health checks on a paused clock: thresholds both ways, timeouts as failures, the interval
// between probes, endpoints coming and going.

import { describe, expect, it } from 'vitest'
import { DEFAULT_HEALTH_CHECK } from '../../proxy-core/config/defaults.ts'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import {
  createHealthChecker,
  type HealthTransition,
  newEndpointHealth,
  type ProbeResult,
  recordProbe,
} from '../../proxy-core/engine/health-check.ts'
import { createMemoryInvoker } from '../../proxy-core/engine/memory-invoker.ts'
import { createMeshRuntime } from '../../proxy-core/engine/runtime.ts'
import type { CancelSignal, HealthCheckConfig } from '../../proxy-core/engine/types.ts'
import { createManualClock, seededRandom } from '../helpers/manual-clock.ts'
import { get, ok } from '../helpers/mesh.ts'

const CHECK: HealthCheckConfig = {
  ...DEFAULT_HEALTH_CHECK,
  path: '/health',
  interval: 5_000,
  timeout: 2_000,
  healthyThreshold: 3,
  unhealthyThreshold: 2,
}
const pass: ProbeResult = { passed: true, detail: '200' }
const fail: ProbeResult = { passed: false, detail: '503' }

/**
 * A probe whose answer per endpoint the test sets: `pass`, `fail`, or `hang` (never answers, so only
 * the timeout ends it). Records every call and every abort.
 */
function scriptedProbe() {
  const answers = new Map<string, 'pass' | 'fail' | 'hang'>()
  const calls: { id: string; at: number }[] = []
  let aborted = 0
  return {
    answers,
    calls,
    aborted: () => aborted,
    callsTo: (id: string) => calls.filter((c) => c.id === id).length,
    probe(now: () => number) {
      return (id: string, _check: HealthCheckConfig, signal: CancelSignal): Promise<ProbeResult> => {
        calls.push({ id, at: now() })
        const answer = answers.get(id) ?? 'pass'
        if (answer === 'hang')
          return new Promise((_resolve, reject) =>
            signal.addEventListener('abort', () => {
              aborted++
              reject(new Error('aborted'))
            }),
          )
        return Promise.resolve(answer === 'pass' ? pass : fail)
      }
    },
  }
}

function setup(check: HealthCheckConfig = CHECK) {
  const clock = createManualClock(0)
  const script = scriptedProbe()
  const transitions: { id: string; to: HealthTransition; at: number }[] = []
  const checker = createHealthChecker(check, {
    clock,
    timers: clock,
    probe: script.probe(clock.now),
    onTransition: (id, to) => transitions.push({ id, to, at: clock.now() }),
  })
  return { clock, script, transitions, checker }
}

describe('recordProbe', () => {
  it('leaves after unhealthyThreshold failures in a row, returns after healthyThreshold passes', () => {
    const s = newEndpointHealth()
    expect(recordProbe(s, fail, CHECK, 1)).toBeUndefined()
    expect(s.healthy).toBe(true)
    expect(recordProbe(s, fail, CHECK, 2)).toBe('unhealthy')
    expect(s.healthy).toBe(false)
    expect(recordProbe(s, fail, CHECK, 3)).toBeUndefined()
    expect(recordProbe(s, pass, CHECK, 4)).toBeUndefined()
    expect(recordProbe(s, pass, CHECK, 5)).toBeUndefined()
    expect(s.healthy).toBe(false)
    expect(recordProbe(s, pass, CHECK, 6)).toBe('healthy')
    expect(s).toMatchObject({ healthy: true, checks: 6, ejections: 1, lastResult: 'pass', lastCheckAt: 6 })
  })

  it('counts only runs: a pass between failures starts the count again', () => {
    const s = newEndpointHealth()
    recordProbe(s, fail, CHECK, 1)
    recordProbe(s, pass, CHECK, 2)
    expect(recordProbe(s, fail, CHECK, 3)).toBeUndefined()
    expect(s.healthy).toBe(true)
    const out = newEndpointHealth()
    recordProbe(out, fail, CHECK, 1)
    recordProbe(out, fail, CHECK, 2)
    recordProbe(out, pass, CHECK, 3)
    recordProbe(out, pass, CHECK, 4)
    recordProbe(out, fail, CHECK, 5)
    // Two passes of three, then a failure: the way back starts over.
    for (let i = 0; i < 2; i++) recordProbe(out, pass, CHECK, 6 + i)
    expect(out.healthy).toBe(false)
    expect(recordProbe(out, pass, CHECK, 9)).toBe('healthy')
  })
})

describe('createHealthChecker', () => {
  it('probes a new endpoint at once, then every interval after the previous probe ended', async () => {
    const { clock, script, checker } = setup()
    checker.setEndpoints(['http://a:1'])
    await clock.settle()
    expect(script.callsTo('http://a:1')).toBe(1)
    await clock.advance(4_999)
    expect(script.callsTo('http://a:1')).toBe(1)
    await clock.advance(1)
    expect(script.callsTo('http://a:1')).toBe(2)
    await clock.advance(5_000 * 10)
    expect(script.callsTo('http://a:1')).toBe(12)
    const times = script.calls.map((c) => c.at)
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(5_000)
    checker.stop()
  })

  it('takes an endpoint out after unhealthyThreshold failures and back after healthyThreshold passes', async () => {
    const { clock, script, transitions, checker } = setup()
    checker.setEndpoints(['http://a:1', 'http://b:1'])
    await clock.settle()
    script.answers.set('http://a:1', 'fail')
    // Probe 1 passed at t=0; probes 2 (t=5s) and 3 (t=10s) fail: out after the second failure.
    await clock.advance(5_000)
    expect(checker.isHealthy('http://a:1')).toBe(true)
    await clock.advance(5_000)
    expect(checker.isHealthy('http://a:1')).toBe(false)
    expect(checker.isHealthy('http://b:1')).toBe(true)
    expect(transitions).toEqual([{ id: 'http://a:1', to: 'unhealthy', at: 10_000 }])

    script.answers.set('http://a:1', 'pass')
    await clock.advance(5_000 * 2)
    expect(checker.isHealthy('http://a:1')).toBe(false)
    await clock.advance(5_000)
    expect(checker.isHealthy('http://a:1')).toBe(true)
    expect(transitions.at(-1)).toEqual({ id: 'http://a:1', to: 'healthy', at: 25_000 })
    const a = checker.snapshot().find((s) => s.endpoint === 'http://a:1')!
    expect(a).toMatchObject({ healthy: true, checks: 6, ejections: 1, successes: 3, failures: 0 })
    checker.stop()
  })

  it('counts a probe that does not answer within the timeout as failed, and cancels it', async () => {
    const { clock, script, checker } = setup()
    script.answers.set('http://slow:1', 'hang')
    checker.setEndpoints(['http://slow:1'])
    await clock.advance(1_999)
    expect(checker.snapshot()[0]).toMatchObject({ checks: 0 })
    await clock.advance(1)
    expect(checker.snapshot()[0]).toMatchObject({ checks: 1, failures: 1, lastResult: 'fail' })
    expect(checker.snapshot()[0]!.lastDetail).toMatch(/timeout/)
    expect(script.aborted()).toBe(1)
    // The next probe starts one interval after the timeout, not after the start.
    await clock.advance(4_999)
    expect(script.callsTo('http://slow:1')).toBe(1)
    await clock.advance(1)
    expect(script.callsTo('http://slow:1')).toBe(2)
    await clock.advance(2_000)
    expect(checker.isHealthy('http://slow:1')).toBe(false)
    checker.stop()
  })

  it('counts a probe that throws or rejects as failed', async () => {
    const clock = createManualClock(0)
    let n = 0
    const checker = createHealthChecker(
      { ...CHECK, unhealthyThreshold: 2 },
      {
        clock,
        timers: clock,
        probe: () => {
          n++
          if (n % 2 === 1) throw new Error('synchronous boom')
          return Promise.reject(new Error('connect ECONNREFUSED'))
        },
      },
    )
    checker.setEndpoints(['http://x:1'])
    await clock.advance(5_000)
    expect(checker.isHealthy('http://x:1')).toBe(false)
    expect(checker.snapshot()[0]!.lastDetail).toBe('connect ECONNREFUSED')
    checker.stop()
  })

  it('stops probing endpoints that left and forgets their state; stop() ends everything', async () => {
    const { clock, script, checker } = setup()
    checker.setEndpoints(['http://a:1', 'http://b:1'])
    script.answers.set('http://b:1', 'hang')
    await clock.settle()
    checker.setEndpoints(['http://a:1'])
    expect(checker.snapshot().map((s) => s.endpoint)).toEqual(['http://a:1'])
    // The hanging probe of b was cancelled, and b is never probed again.
    await clock.advance(20_000)
    expect(script.callsTo('http://b:1')).toBe(1)
    // An unknown endpoint is not held back.
    expect(checker.isHealthy('http://b:1')).toBe(true)
    checker.stop()
    const before = script.calls.length
    await clock.advance(20_000)
    expect(script.calls.length).toBe(before)
    expect(clock.pending()).toBe(0)
  })
})

describe('health checks in the runtime', () => {
  it('keeps an endpoint out of the balancer while either its health check or outlier detection says so', async () => {
    const config = await loadConfigText(
      JSON.stringify({
        version: 1,
        mesh: 'm',
        services: {
          web: {
            targets: { v1: { http: ['http://a:1', 'http://b:1'], healthCheck: { path: '/health' } } },
            routes: [{ name: 'default', to: 'v1', retries: { attempts: 0 } }],
            outlierDetection: { consecutive5xx: 1, maxEjectionPercent: 50 },
          },
        },
      }),
      'mesh.json',
    )
    const target = config.services.web!.targets.v1!
    if (target.kind !== 'http' || target.healthCheck === undefined) throw new Error('no health check')
    const clock = createManualClock(0)
    const script = scriptedProbe()
    const checker = createHealthChecker(target.healthCheck, {
      clock,
      timers: clock,
      probe: script.probe(clock.now),
    })
    checker.setEndpoints(target.endpoints)
    let failA = false
    const invoker = createMemoryInvoker((_req, endpoint) =>
      failA && endpoint.id === 'http://a:1' ? ok('no', 500) : ok(endpoint.id),
    )
    const runtime = createMeshRuntime(compileMesh(config), {
      invokers: { http: invoker, lambda: invoker },
      clock,
      timers: clock,
      random: seededRandom(7),
      health: (service, name) => (service === 'web' && name === 'v1' ? checker : undefined),
    })
    const hits = async (n: number) => {
      const seen: Record<string, number> = {}
      for (let i = 0; i < n; i++) {
        const r = await runtime.handle('web', get('/'))
        seen[String(r.body)] = (seen[String(r.body)] ?? 0) + 1
      }
      return seen
    }
    await clock.settle()
    expect(await hits(4)).toEqual({ 'http://a:1': 2, 'http://b:1': 2 })

    // b fails its health check twice (5 s apart): out.
    script.answers.set('http://b:1', 'fail')
    await clock.advance(10_000)
    expect(runtime.endpoints()).toEqual([
      {
        service: 'web',
        target: 'v1',
        endpoints: [
          { id: 'http://a:1', ejected: false, healthy: true },
          { id: 'http://b:1', ejected: false, healthy: false },
        ],
      },
    ])
    expect(await hits(4)).toEqual({ 'http://a:1': 4 })

    // b passes again; a is ejected by outlier detection after one 500: b takes everything.
    script.answers.set('http://b:1', 'pass')
    await clock.advance(10_000)
    failA = true
    // Round robin: one of the next two tries is a.
    await hits(2)
    expect(runtime.endpoints()[0]!.endpoints).toEqual([
      { id: 'http://a:1', ejected: true, healthy: true },
      { id: 'http://b:1', ejected: false, healthy: true },
    ])
    expect(await hits(4)).toEqual({ 'http://b:1': 4 })
    checker.stop()
  })

  it('hands endpoints that discovery set to the target health checks', async () => {
    const config = await loadConfigText(
      JSON.stringify({
        version: 1,
        mesh: 'm',
        services: {
          web: {
            targets: { v1: { http: 'cloudmap://shop.local/web', healthCheck: {} } },
            routes: [{ name: 'default', to: 'v1', retries: { attempts: 0 } }],
          },
        },
      }),
      'mesh.json',
    )
    const target = config.services.web!.targets.v1!
    if (target.kind !== 'http' || target.healthCheck === undefined) throw new Error('no health check')
    const clock = createManualClock(0)
    const script = scriptedProbe()
    const checker = createHealthChecker(target.healthCheck, {
      clock,
      timers: clock,
      probe: script.probe(clock.now),
    })
    const invoker = createMemoryInvoker((_req, endpoint) => ok(endpoint.id))
    const runtime = createMeshRuntime(compileMesh(config), {
      invokers: { http: invoker, lambda: invoker },
      clock,
      timers: clock,
      health: () => checker,
    })
    runtime.setEndpoints('web', 'v1', ['http://10.0.0.1:1', 'http://10.0.0.2:1'])
    await clock.settle()
    expect(checker.snapshot().map((e) => e.endpoint)).toEqual(['http://10.0.0.1:1', 'http://10.0.0.2:1'])
    expect(script.calls.map((c) => c.id).sort()).toEqual(['http://10.0.0.1:1', 'http://10.0.0.2:1'])
    runtime.setEndpoints('web', 'v1', [])
    expect(checker.snapshot()).toEqual([])
    // No endpoints: the mesh answers itself.
    const res = await runtime.handle('web', get('/'))
    expect(res.status).toBe(503)
    expect(res.headers['x-meshgate-error']).toBe('upstream_unavailable')
    checker.stop()
  })
})
