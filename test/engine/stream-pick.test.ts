// MeshRuntime.pickStream (a TCP service's per-connection choice) and the pipeline's handling of
// upgrade requests, on the real loader, compiler and runtime with a seeded random and a manual clock.

import { describe, expect, it } from 'vitest'
import type { MeshResponse, Upgraded } from '../../proxy-core/engine/types.ts'
import { get, meshFromYaml, ok } from '../helpers/mesh.ts'

const TCP = `
version: 1
mesh: m
services:
  db:
    listener: { protocol: tcp, port: 6000 }
    targets:
      a: { tcp: [10.0.0.1:1, 10.0.0.2:1] }
      b: { tcp: 10.0.0.3:1 }
    routes: [{ to: { a: 90, b: 10 }, idleTimeout: 2m }]
`

describe('pickStream', () => {
  it('draws targets by weight and carries the route and idle timeout', async () => {
    const { runtime } = await meshFromYaml(TCP, () => ok())
    const count: Record<string, number> = { a: 0, b: 0 }
    for (let i = 0; i < 10_000; i++) {
      const pick = runtime.pickStream('db', new Set())!
      count[pick.target]!++
      expect(pick.route).toBe('default')
      expect(pick.idleTimeout).toBe(120_000)
      pick.closed()
    }
    // Seeded: exact each run; 90/10 within 1.5 points.
    expect(count.b! / 10_000).toBeGreaterThan(0.085)
    expect(count.b! / 10_000).toBeLessThan(0.115)
  })

  it('never picks an endpoint already tried, and moves to another target when one has none left', async () => {
    const { runtime } = await meshFromYaml(TCP, () => ok())
    const tried = new Set(['tcp://10.0.0.1:1', 'tcp://10.0.0.2:1'])
    for (let i = 0; i < 100; i++) {
      const pick = runtime.pickStream('db', tried)!
      expect(pick.endpoint).toBe('tcp://10.0.0.3:1')
      expect(pick.target).toBe('b')
      pick.closed()
    }
    tried.add('tcp://10.0.0.3:1')
    expect(runtime.pickStream('db', tried)).toBeUndefined()
    expect(runtime.pickStream('nope', new Set())).toBeUndefined()
  })

  it('counts failed connects for outlier detection: a refusing endpoint is ejected', async () => {
    const { runtime, events } = await meshFromYaml(
      `${TCP}    outlierDetection: { consecutive5xx: 3, maxEjectionPercent: 50 }\n`,
      () => ok(),
    )
    for (let i = 0; i < 3; i++) {
      const pick = runtime.pickStream('db', new Set(['tcp://10.0.0.2:1', 'tcp://10.0.0.3:1']))!
      expect(pick.endpoint).toBe('tcp://10.0.0.1:1')
      pick.connected(false)
    }
    expect(events).toContain('ejection')
    const a = runtime.endpoints().find((t) => t.target === 'a')!
    expect(a.endpoints.find((e) => e.id === 'tcp://10.0.0.1:1')?.ejected).toBe(true)
  })
})

describe('upgrade requests in the pipeline', () => {
  const HTTP = `
version: 1
mesh: m
services:
  chat:
    targets: { a: { http: http://a:1 }, fn: { lambda: chat-fn } }
    routes:
      - { name: fn, match: { path: { prefix: /fn } }, to: fn }
      - { name: ws, to: a, idleTimeout: 45s, mirror: { target: a, percent: 100 } }
`
  it('annotates the upstream switch with route, target and idle timeout, and never mirrors it', async () => {
    let destroyed = 0
    const upgraded: Upgraded = { protocol: 'websocket', endpoint: 'http://a:1', destroy: () => destroyed++ }
    const { runtime, invoker } = await meshFromYaml(HTTP, (req): MeshResponse => {
      if (req.upgrade === undefined) return ok()
      return { status: 101, headers: {}, body: null, upgrade: upgraded }
    })
    const res = await runtime.handle('chat', { ...get('/socket'), upgrade: 'websocket' })
    await new Promise((r) => setTimeout(r, 0))
    expect(res.status).toBe(101)
    expect(res.upgrade).toBe(upgraded)
    expect(upgraded).toMatchObject({ route: 'ws', target: 'a', idleTimeout: 45_000 })
    // One attempt: the mirror (100%) sent no copy of the upgrade.
    expect(invoker.calls).toHaveLength(1)
    expect(invoker.calls[0]!.req.upgrade).toBe('websocket')
    expect(destroyed).toBe(0)
  })

  it('refuses an upgrade routed to a Lambda target with 501 upgrade_not_supported', async () => {
    const { runtime, invoker } = await meshFromYaml(HTTP, () => ok())
    const res = await runtime.handle('chat', { ...get('/fn'), upgrade: 'websocket' })
    expect(res.status).toBe(501)
    expect(res.headers['x-meshgate-error']).toBe('upgrade_not_supported')
    expect(invoker.calls).toHaveLength(0)
  })
})

describe('HTTP requests for a tcp service', () => {
  it('have no route, in every runtime (the engine refuses them)', async () => {
    const { runtime, invoker } = await meshFromYaml(TCP, () => ok())
    const res = await runtime.handle('db', get('/'))
    expect(res.status).toBe(404)
    expect(res.headers['x-meshgate-error']).toBe('no_route')
    expect(JSON.parse(res.body as string)).toEqual({ error: 'no_route', reason: 'tcp_service' })
    expect(invoker.calls).toHaveLength(0)
  })
})

describe('tcp connections and the circuit breaker', () => {
  it('bounds a target’s open connections by circuitBreaker.maxConnections', async () => {
    const { runtime, events } = await meshFromYaml(
      `${TCP}    circuitBreaker: { maxConnections: 2 }\n`.replace('to: { a: 90, b: 10 }', 'to: a'),
      () => ok(),
    )
    const first = runtime.pickStream('db', new Set())!
    const second = runtime.pickStream('db', new Set())!
    expect(runtime.pickStream('db', new Set())).toBeUndefined()
    expect(events).toContain('circuit-open')
    first.closed()
    first.closed() // idempotent: frees one slot, not two
    const third = runtime.pickStream('db', new Set())!
    expect(third).toBeDefined()
    expect(runtime.pickStream('db', new Set())).toBeUndefined()
    second.connected(false) // a failed connect frees its slot too
    expect(runtime.pickStream('db', new Set())).toBeDefined()
  })
})
