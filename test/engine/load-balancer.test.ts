import { describe, expect, it } from 'vitest'
import { createLoadBalancer } from '../../proxy-core/engine/load-balancer.ts'
import type { Endpoint, Random } from '../../proxy-core/engine/types.ts'

function seeded(seed: number): Random {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

function endpoints(...ids: string[]): Endpoint[] {
  return ids.map((id) => ({
    id,
    target: { kind: 'http', name: 'v1', endpoints: [id], dnsRefresh: 0, loadBalancer: 'round-robin' },
  }))
}

const none = () => false

describe('round robin', () => {
  it('cycles through every endpoint in order, from a random start', () => {
    const lb = createLoadBalancer('round-robin')
    const pool = endpoints('a', 'b', 'c')
    // 0.5 × 3 → start after index 1.
    const picks = Array.from({ length: 6 }, () => lb.pick(pool, none, () => 0.5)?.id)
    expect(picks).toEqual(['c', 'a', 'b', 'c', 'a', 'b'])
  })

  it('skips ejected endpoints', () => {
    const lb = createLoadBalancer('round-robin')
    const pool = endpoints('a', 'b', 'c')
    const ejected = (id: string) => id === 'b'
    const picks = Array.from({ length: 4 }, () => lb.pick(pool, ejected, () => 0)?.id)
    expect(picks).toEqual(['c', 'a', 'c', 'a'])
  })

  it('falls back to all endpoints when every one is ejected (panic)', () => {
    const lb = createLoadBalancer('round-robin')
    const pool = endpoints('a', 'b')
    const picks = Array.from(
      { length: 4 },
      () =>
        lb.pick(
          pool,
          () => true,
          () => 0,
        )?.id,
    )
    expect(picks).toEqual(['b', 'a', 'b', 'a'])
  })

  it('has nothing to pick from an empty pool', () => {
    expect(createLoadBalancer('round-robin').pick([], none, () => 0)).toBeUndefined()
    expect(createLoadBalancer('least-request').pick([], none, () => 0)).toBeUndefined()
  })
})

describe('least request (power of two choices)', () => {
  it('with two endpoints, always the less loaded one', () => {
    const lb = createLoadBalancer('least-request')
    const pool = endpoints('a', 'b')
    for (let i = 0; i < 3; i++) lb.started('a')
    const random = seeded(5)
    for (let i = 0; i < 100; i++) expect(lb.pick(pool, none, random)?.id).toBe('b')
    for (let i = 0; i < 3; i++) lb.finished('a')
    lb.started('b')
    for (let i = 0; i < 100; i++) expect(lb.pick(pool, none, random)?.id).toBe('a')
  })

  it('never picks the single most loaded endpoint, and prefers the idle ones', () => {
    const lb = createLoadBalancer('least-request')
    const pool = endpoints('a', 'b', 'c', 'd')
    for (let i = 0; i < 10; i++) lb.started('a')
    for (let i = 0; i < 2; i++) lb.started('b')
    lb.started('c')
    const counts: Record<string, number> = { a: 0, b: 0, c: 0, d: 0 }
    const random = seeded(9)
    for (let i = 0; i < 12_000; i++) {
      const id = lb.pick(pool, none, random)?.id as string
      counts[id] = (counts[id] ?? 0) + 1
    }
    expect(counts.a).toBe(0)
    // d (idle) wins every pair it is in: 3 of the 6 pairs → half the picks; c wins 2/6, b 1/6.
    expect(Math.abs((counts.d as number) / 12_000 - 1 / 2)).toBeLessThan(0.02)
    expect(Math.abs((counts.c as number) / 12_000 - 1 / 3)).toBeLessThan(0.02)
    expect(Math.abs((counts.b as number) / 12_000 - 1 / 6)).toBeLessThan(0.02)
  })

  it('spreads evenly when loads are equal', () => {
    const lb = createLoadBalancer('least-request')
    const pool = endpoints('a', 'b', 'c')
    const counts: Record<string, number> = {}
    const random = seeded(2)
    for (let i = 0; i < 30_000; i++) {
      const id = lb.pick(pool, none, random)?.id as string
      counts[id] = (counts[id] ?? 0) + 1
    }
    for (const id of ['a', 'b', 'c'])
      expect(Math.abs((counts[id] as number) / 30_000 - 1 / 3)).toBeLessThan(0.02)
  })

  it('skips ejected endpoints even when they are idle', () => {
    const lb = createLoadBalancer('least-request')
    const pool = endpoints('a', 'b', 'c')
    lb.started('a')
    lb.started('b')
    const random = seeded(4)
    for (let i = 0; i < 100; i++) expect(lb.pick(pool, (id) => id === 'c', random)?.id).not.toBe('c')
    // All ejected: panic, and the idle one wins again.
    expect(lb.pick(endpoints('c'), () => true, random)?.id).toBe('c')
  })

  it('counts attempts in flight per endpoint', () => {
    const lb = createLoadBalancer('least-request')
    lb.started('a')
    lb.started('a')
    lb.finished('a')
    expect(lb.activeRequests('a')).toBe(1)
    lb.finished('a')
    lb.finished('a')
    expect(lb.activeRequests('a')).toBe(0)
    expect(lb.activeRequests('never')).toBe(0)
  })
})
