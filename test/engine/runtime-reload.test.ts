// A config swap keeps the policy state of what still exists: ejections, breaker counts, balancer load
// and retry budgets carry over to the runtime built from the previous one; changed policies start
// afresh; requests that started on the old runtime finish on it.

import { describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import { createMemoryInvoker, type MemoryHandler } from '../../proxy-core/engine/memory-invoker.ts'
import { createMeshRuntime } from '../../proxy-core/engine/runtime.ts'
import type { MeshEventKind, MeshRuntime } from '../../proxy-core/engine/types.ts'
import { createManualClock, seededRandom } from '../helpers/manual-clock.ts'
import { get, ok } from '../helpers/mesh.ts'

function harness(handler: MemoryHandler) {
  const clock = createManualClock()
  const invoker = createMemoryInvoker(handler)
  const events: MeshEventKind[] = []
  const random = seededRandom(7)
  async function build(yaml: string, previous?: MeshRuntime): Promise<MeshRuntime> {
    const config = await loadConfigText(yaml, 'test.yaml')
    return createMeshRuntime(
      compileMesh(config),
      {
        invokers: { http: invoker, lambda: invoker },
        clock,
        timers: clock,
        random,
        telemetry: { event: (k) => events.push(k) },
      },
      previous,
    )
  }
  return { clock, invoker, events, build }
}

const pool = (extra: string, route = '[{ to: v1, retries: { attempts: 0 } }]') => `
version: 1
mesh: test
services:
  api:
    targets: { v1: { http: [http://a.local:9080, http://b.local:9080] }, v2: { http: http://c.local:9080 } }
    routes: ${route}
    outlierDetection: { consecutive5xx: 3, baseEjectionTime: 30s, maxEjectionPercent: 50 }
${extra}`

describe('runtime state across a config swap', () => {
  it('keeps an ejection when only the routes changed, and lets it end on the same clock', async () => {
    const h = harness((_req, ep) => (ep.id.startsWith('http://a') ? ok('bad', 500) : ok()))
    const first = await h.build(pool(''))
    for (let i = 0; i < 10; i++) await first.handle('api', get('/'))
    expect(h.events).toContain('ejection')

    // A new config with another route (a header match in front) but the same targets and policy.
    const second = await h.build(
      pool(
        '',
        '[{ name: canary, match: { headers: { x-canary: "1" } }, to: v2 }, { to: v1, retries: { attempts: 0 } }]',
      ),
      first,
    )
    const before = h.invoker.calls.length
    for (let i = 0; i < 10; i++) await second.handle('api', get('/'))
    expect(h.invoker.calls.slice(before).map((c) => c.endpoint)).toEqual(
      Array(10).fill('http://b.local:9080'),
    )

    await h.clock.advance(30_000)
    const after = h.invoker.calls.length
    for (let i = 0; i < 4; i++) await second.handle('api', get('/'))
    expect(h.invoker.calls.slice(after).some((c) => c.endpoint === 'http://a.local:9080')).toBe(true)
  })

  it('starts outlier state afresh when the outlier policy changed', async () => {
    const h = harness((_req, ep) => (ep.id.startsWith('http://a') ? ok('bad', 500) : ok()))
    const first = await h.build(pool(''))
    for (let i = 0; i < 10; i++) await first.handle('api', get('/'))
    const second = await h.build(pool('').replace('consecutive5xx: 3', 'consecutive5xx: 50'), first)
    const before = h.invoker.calls.length
    for (let i = 0; i < 4; i++) await second.handle('api', get('/'))
    expect(h.invoker.calls.slice(before).some((c) => c.endpoint === 'http://a.local:9080')).toBe(true)
  })

  it('counts requests in flight on the old runtime against the new runtime breaker', async () => {
    const gates: (() => void)[] = []
    const h = harness(() => new Promise((resolve) => gates.push(() => resolve(ok()))))
    const yaml = pool('    circuitBreaker: { maxRequests: 2 }', '[{ to: v1 }]')
    const first = await h.build(yaml)
    const inFlight = [first.handle('api', get('/')), first.handle('api', get('/'))]
    await h.clock.settle()
    const second = await h.build(yaml.replace('[{ to: v1 }]', '[{ name: renamed, to: v1 }]'), first)
    const refused = await second.handle('api', get('/'))
    expect(refused.headers['x-meshgate-error']).toBe('circuit_open')

    // The old requests finish on the old runtime (its route), and free the shared breaker.
    for (const open of gates.splice(0)) open()
    const done = await Promise.all(inFlight)
    expect(done.map((r) => r.status)).toEqual([200, 200])
    const next = second.handle('api', get('/'))
    await h.clock.settle()
    for (const open of gates.splice(0)) open()
    expect((await next).status).toBe(200)
  })

  it('gives a changed breaker limit fresh counts, and a new target fresh state', async () => {
    const gates: (() => void)[] = []
    const h = harness(() => new Promise((resolve) => gates.push(() => resolve(ok()))))
    const yaml = pool('    circuitBreaker: { maxRequests: 1 }', '[{ to: v1 }]')
    const first = await h.build(yaml)
    void first.handle('api', get('/'))
    await h.clock.settle()
    const second = await h.build(yaml.replace('maxRequests: 1', 'maxRequests: 2'), first)
    const pending = second.handle('api', get('/'))
    await h.clock.settle()
    expect(gates.length).toBe(2)
    for (const open of gates.splice(0)) open()
    expect((await pending).status).toBe(200)
  })

  it('keeps least-request load counts for endpoints that stay', async () => {
    const gates: { ep: string; open: () => void }[] = []
    const h = harness(
      (_req, ep) => new Promise((resolve) => gates.push({ ep: ep.id, open: () => resolve(ok(ep.id)) })),
    )
    const yaml = `
version: 1
mesh: test
services:
  api:
    targets: { v1: { http: [http://a.local:9080, http://b.local:9080], loadBalancer: least-request } }
    routes: [{ to: v1 }]
`
    const first = await h.build(yaml)
    void first.handle('api', get('/'))
    await h.clock.settle()
    const busy = gates[0]!.ep
    const second = await h.build(yaml.replace('[{ to: v1 }]', '[{ name: r2, to: v1 }]'), first)
    // With one request still on `busy`, least request (two choices out of two) picks the other, every
    // time: each try below ends before the next starts.
    for (let i = 0; i < 5; i++) {
      const res = second.handle('api', get('/'))
      await h.clock.settle()
      gates.pop()!.open()
      expect((await res).body).not.toBe(busy)
    }
    for (const g of gates.splice(0)) g.open()
  })
})
