import { describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import { createMemoryInvoker } from '../../proxy-core/engine/memory-invoker.ts'
import { createMeshRuntime } from '../../proxy-core/engine/runtime.ts'
import { type Timers, UpstreamFailure } from '../../proxy-core/engine/types.ts'
import { createManualClock } from '../helpers/manual-clock.ts'
import { get, meshFromYaml, ok } from '../helpers/mesh.ts'

const REVIEWS = `
version: 1
mesh: test
services:
  reviews:
    targets:
      v1: { http: http://v1.local:9080 }
      v2: { http: http://v2.local:9080 }
      v3: { http: [http://v3a.local:9080, http://v3b.local:9080] }
    routes:
      - name: jason
        match: { headers: { end-user: jason } }
        to: v2
      - name: split
        match: { path: { prefix: /reviews } }
        to: { v1: 90, v3: 10 }
`

describe('routing', () => {
  it('splits by weight and routes by header', async () => {
    const m = await meshFromYaml(REVIEWS, (_req, ep) => ok(ep.id))
    const counts: Record<string, number> = {}
    for (let i = 0; i < 2000; i++) {
      const res = await m.runtime.handle('reviews', get('/reviews/1'))
      counts[String(res.body)] = (counts[String(res.body)] ?? 0) + 1
    }
    const v3 = (counts['http://v3a.local:9080'] ?? 0) + (counts['http://v3b.local:9080'] ?? 0)
    expect(v3 / 2000).toBeGreaterThan(0.08)
    expect(v3 / 2000).toBeLessThan(0.12)
    // v3's two endpoints share its traffic (round robin).
    expect(
      Math.abs((counts['http://v3a.local:9080'] ?? 0) - (counts['http://v3b.local:9080'] ?? 0)),
    ).toBeLessThanOrEqual(1)
    const jason = await m.runtime.handle('reviews', get('/reviews/1', { 'end-user': 'jason' }))
    expect(jason.body).toBe('http://v2.local:9080')
  })

  it('answers unknown services and unmatched paths from the error table', async () => {
    const m = await meshFromYaml(REVIEWS, () => ok())
    const unknown = await m.runtime.handle('nope', get('/'))
    expect(unknown.status).toBe(404)
    expect(unknown.headers['x-meshgate-error']).toBe('unknown_service')
    expect(JSON.parse(String(unknown.body))).toEqual({ error: 'unknown_service', service: 'nope' })
    const noRoute = await m.runtime.handle('reviews', get('/other'))
    expect(noRoute.status).toBe(404)
    expect(noRoute.headers['x-meshgate-error']).toBe('no_route')
    expect(m.requests.map((r) => r.errorCode)).toEqual(['unknown_service', 'no_route'])
  })

  it('routes gateway traffic with a prefix rewrite', async () => {
    const m = await meshFromYaml(
      `${REVIEWS}
gateway:
  routes:
    - match: { path: { prefix: /api/reviews } }
      service: reviews
      rewrite: { prefix: /reviews }
`,
      (req) => ok(req.path),
    )
    const res = await m.runtime.handleGateway(get('/api/reviews/7?x=1'))
    expect(res.body).toBe('/reviews/7?x=1')
    expect((await m.runtime.handleGateway(get('/elsewhere'))).headers['x-meshgate-error']).toBe('no_route')
  })

  it('propagates trace headers with a new span per attempt', async () => {
    const m = await meshFromYaml(REVIEWS, () => ok())
    await m.runtime.handle(
      'reviews',
      get('/reviews/1', {
        'x-amzn-trace-id': 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1',
      }),
    )
    const sent = m.invoker.calls[0]!.req.headers
    expect(sent['x-amzn-trace-id']).toMatch(
      /^Root=1-5759e988-bd862e3fe1be46a994272793;Parent=[0-9a-f]{16};Sampled=1$/,
    )
    expect(sent.traceparent).toMatch(/^00-5759e988bd862e3fe1be46a994272793-[0-9a-f]{16}-01$/)
    expect(m.attempts[0]!.trace.parentId).toBe('53995c3f42cd8ad8')
  })
})

describe('retries', () => {
  const flaky = (extra = '') => `
version: 1
mesh: test
services:
  api:
    targets:
      v1: { http: http://api.local:9080 }
    routes:
      - match: { path: { prefix: / } }
        to: v1
        timeout: 1s
        retries: { attempts: 3, perTryTimeout: 100ms, on: [5xx], backoff: { base: 25ms, max: 250ms } ${extra} }
    retryBudget: { percent: 100, minPerSecond: 100 }
`

  it('retries a 503 until it succeeds', async () => {
    let n = 0
    const m = await meshFromYaml(flaky(), () => (++n < 3 ? ok('busy', 503) : ok('fine')))
    const p = m.runtime.handle('api', get('/'))
    await m.clock.advance(1000)
    const res = await p
    expect(res.status).toBe(200)
    expect(m.invoker.calls).toHaveLength(3)
    expect(m.requests[0]!.retries).toBe(2)
  })

  it('does not retry a POST unless the route lists it', async () => {
    const m = await meshFromYaml(flaky(), () => ok('busy', 503))
    const res = await m.runtime.handle('api', { method: 'POST', path: '/', headers: {}, body: 'x' })
    expect(res.status).toBe(503)
    expect(m.invoker.calls).toHaveLength(1)
    const opted = await meshFromYaml(flaky(', methods: [GET, POST]'), () => ok('busy', 503))
    const p = opted.runtime.handle('api', { method: 'POST', path: '/', headers: {}, body: 'x' })
    await opted.clock.advance(1000)
    expect((await p).status).toBe(503)
    expect(opted.invoker.calls).toHaveLength(4)
  })

  it('never retries a streamed body', async () => {
    const m = await meshFromYaml(flaky(', methods: [PUT]'), () => ok('busy', 503))
    async function* stream() {
      yield new Uint8Array([1, 2, 3])
    }
    const res = await m.runtime.handle('api', { method: 'PUT', path: '/', headers: {}, body: stream() })
    expect(res.status).toBe(503)
    expect(m.invoker.calls).toHaveLength(1)
  })

  it('turns per-try timeouts into 504 once the tries are spent', async () => {
    const m = await meshFromYaml(flaky(), () => new Promise(() => {}))
    const p = m.runtime.handle('api', get('/'))
    await m.clock.advance(2000)
    const res = await p
    expect(res.status).toBe(504)
    expect(res.headers['x-meshgate-error']).toBe('timeout')
    expect(m.invoker.calls).toHaveLength(4)
  })

  it('bounds all tries by the route timeout', async () => {
    const m = await meshFromYaml(
      `
version: 1
mesh: test
services:
  api:
    targets: { v1: { http: http://api.local:9080 } }
    routes:
      - to: v1
        timeout: 250ms
        retries: { attempts: 10, perTryTimeout: 100ms, on: [5xx] }
    retryBudget: { percent: 100, minPerSecond: 100 }
`,
      () => new Promise(() => {}),
    )
    const started = m.clock.now()
    const p = m.runtime.handle('api', get('/'))
    await m.clock.advance(1000)
    const res = await p
    expect(res.headers['x-meshgate-error']).toBe('timeout')
    // 100 ms tries plus backoff cannot fit more than 3 tries into 250 ms.
    expect(m.invoker.calls.length).toBeLessThanOrEqual(3)
    expect(m.requests[0]!.end - started).toBeLessThanOrEqual(250)
  })

  it('starts no try in the sliver between the route timeout firing and the clock reaching it', async () => {
    // node's timers count whole milliseconds: one due at 300 ms may fire while the clock reads 299.6.
    const config = await loadConfigText(
      `
version: 1
mesh: test
services:
  api:
    targets: { v1: { http: http://api.local:9080 } }
    routes:
      - to: v1
        timeout: 300ms
        retries: { attempts: 3, on: [reset], backoff: { base: 25ms, max: 250ms } }
    retryBudget: { percent: 100, minPerSecond: 100 }
`,
      'test.yaml',
    )
    const clock = createManualClock()
    const early: Timers = { set: (fn, ms) => clock.set(fn, ms - 0.5), clear: (t) => clock.clear(t) }
    const invoker = createMemoryInvoker(() => new Promise(() => {}))
    const runtime = createMeshRuntime(compileMesh(config), {
      invokers: { http: invoker, lambda: invoker },
      clock,
      timers: early,
      // Backoff 0 ms: a retry would fit in what is left, were the deadline judged by the clock alone.
      random: () => 0,
    })
    const p = runtime.handle('api', get('/'))
    await clock.advance(1000)
    expect((await p).headers['x-meshgate-error']).toBe('timeout')
    expect(invoker.calls).toHaveLength(1)
  })

  it('stops retrying when the budget is spent', async () => {
    const m = await meshFromYaml(
      flaky().replace(
        'retryBudget: { percent: 100, minPerSecond: 100 }',
        'retryBudget: { percent: 0, minPerSecond: 2 }',
      ),
      () => ok('down', 503),
    )
    const all = Array.from({ length: 5 }, () => m.runtime.handle('api', get('/')))
    await m.clock.advance(500)
    await Promise.all(all)
    // 5 requests, but only 2 retries allowed in this second.
    expect(m.invoker.calls).toHaveLength(7)
    expect(m.events.filter((e) => e === 'retry-budget-exhausted').length).toBeGreaterThan(0)
  })

  it('maps connection failures and Lambda errors', async () => {
    const refused = await meshFromYaml(flaky(), () => {
      throw new UpstreamFailure('connect-failure', 'refused')
    })
    const p = refused.runtime.handle('api', get('/'))
    await refused.clock.advance(1000)
    expect((await p).headers['x-meshgate-error']).toBe('upstream_unavailable')
    const failing = await meshFromYaml(flaky().replace('on: [5xx]', 'on: [connect-failure]'), () => {
      throw new UpstreamFailure('function-error', 'boom')
    })
    const res = await failing.runtime.handle('api', get('/'))
    expect(res.status).toBe(502)
    expect(res.headers['x-meshgate-error']).toBe('function_error')
  })
})

describe('faults, mirrors, breakers, ejection', () => {
  it('aborts and delays at the configured percentages', async () => {
    const m = await meshFromYaml(
      `
version: 1
mesh: test
services:
  ratings:
    targets: { v1: { http: http://r.local:9080 } }
    routes:
      - to: v1
        fault: { delay: { percent: 10, duration: 5s }, abort: { percent: 20, status: 418 } }
`,
      () => ok(),
    )
    let aborted = 0
    for (let i = 0; i < 1000; i++) {
      const p = m.runtime.handle('ratings', get('/'))
      await m.clock.advance(5000)
      const res = await p
      if (res.status === 418) {
        aborted++
        expect(res.headers['x-meshgate-error']).toBe('fault_abort')
      }
    }
    const delayed = m.requests.filter((r) => r.end - r.start >= 5000).length
    expect(aborted).toBeGreaterThan(160)
    expect(aborted).toBeLessThan(240)
    expect(delayed).toBeGreaterThan(70)
    expect(delayed).toBeLessThan(130)
  })

  it('mirrors without waiting for the mirror', async () => {
    const m = await meshFromYaml(
      `
version: 1
mesh: test
services:
  api:
    targets: { v1: { http: http://v1.local:9080 }, shadow: { http: http://shadow.local:9080 } }
    routes:
      - to: v1
        mirror: { target: shadow, percent: 100 }
`,
      (_req, ep) => (ep.id.includes('shadow') ? new Promise(() => {}) : ok()),
    )
    const res = await m.runtime.handle('api', get('/', { host: 'api' }))
    expect(res.status).toBe(200)
    await m.clock.settle()
    const shadow = m.invoker.calls.find((c) => c.endpoint.includes('shadow'))
    expect(shadow?.req.headers.host).toBe('api-shadow')
    expect(m.events).toContain('mirror')
  })

  it('rejects beyond maxRequests with circuit_open', async () => {
    const m = await meshFromYaml(
      `
version: 1
mesh: test
services:
  api:
    targets: { v1: { http: http://v1.local:9080 } }
    circuitBreaker: { maxRequests: 2 }
`,
      () => new Promise(() => {}),
    )
    void m.runtime.handle('api', get('/'))
    void m.runtime.handle('api', get('/'))
    await m.clock.settle()
    const third = await m.runtime.handle('api', get('/'))
    expect(third.status).toBe(503)
    expect(third.headers['x-meshgate-error']).toBe('circuit_open')
    expect(m.runtime.inFlight()).toBe(2)
  })

  it('ejects a failing endpoint and brings it back', async () => {
    const m = await meshFromYaml(
      `
version: 1
mesh: test
services:
  api:
    targets: { v1: { http: [http://a.local:9080, http://b.local:9080] } }
    routes: [{ to: v1, retries: { attempts: 0 } }]
    outlierDetection: { consecutive5xx: 3, baseEjectionTime: 30s, maxEjectionPercent: 50 }
`,
      (_req, ep) => (ep.id.startsWith('http://a') ? ok('bad', 500) : ok()),
    )
    for (let i = 0; i < 10; i++) await m.runtime.handle('api', get('/'))
    expect(m.events).toContain('ejection')
    const before = m.invoker.calls.length
    for (let i = 0; i < 10; i++) await m.runtime.handle('api', get('/'))
    expect(m.invoker.calls.slice(before).every((c) => c.endpoint === 'http://b.local:9080')).toBe(true)
    await m.clock.advance(30_000)
    const after = m.invoker.calls.length
    for (let i = 0; i < 4; i++) await m.runtime.handle('api', get('/'))
    expect(m.invoker.calls.slice(after).some((c) => c.endpoint === 'http://a.local:9080')).toBe(true)
  })

  it('applies header operations both ways', async () => {
    const m = await meshFromYaml(
      `
version: 1
mesh: test
services:
  api:
    targets: { v1: { http: http://v1.local:9080 } }
    routes:
      - to: v1
        headers: { request: { set: { x-canary: "1" }, remove: [x-secret] }, response: { remove: [server], add: { x-served: mesh } } }
`,
      (req) => ({
        status: 200,
        headers: { server: 'nginx', echo: String(req.headers['x-canary']) },
        body: null,
      }),
    )
    const res = await m.runtime.handle('api', get('/', { 'x-secret': 's' }))
    expect(m.invoker.calls[0]!.req.headers['x-secret']).toBeUndefined()
    expect(res.headers).toMatchObject({ echo: '1', 'x-served': 'mesh' })
    expect(res.headers.server).toBeUndefined()
  })
})
