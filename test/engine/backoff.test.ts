import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { backoffDelay, DEFAULT_BACKOFF } from '../../proxy-core/engine/backoff.ts'
import type { Random } from '../../proxy-core/engine/types.ts'

/** A small LCG (Numerical Recipes constants): a repeatable [0, 1) source for the tests. */
function seeded(seed: number): Random {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

/** The largest double below 1: what a Random can return at most. */
const ALMOST_ONE = 1 - 2 ** -53

describe('backoffDelay', () => {
  it('defaults to Envoy: 25 ms base, 10 × base max', () => {
    expect(DEFAULT_BACKOFF).toEqual({ base: 25, max: 250 })
  })

  it('doubles the cap per retry until max', () => {
    const caps = [1, 2, 3, 4, 5, 6].map((retry) => backoffDelay(retry, 25, 250, () => ALMOST_ONE))
    expect(caps).toEqual([25, 50, 100, 200, 250, 250])
  })

  it('can be zero', () => {
    expect(backoffDelay(3, 25, 250, () => 0)).toBe(0)
  })

  it('treats retry numbers below 1 as the first retry', () => {
    expect(backoffDelay(0, 25, 250, () => ALMOST_ONE)).toBe(25)
    expect(backoffDelay(-3, 25, 250, () => ALMOST_ONE)).toBe(25)
  })

  it('survives huge retry numbers', () => {
    expect(backoffDelay(5000, 25, 250, () => ALMOST_ONE)).toBe(250)
  })

  it('is always a whole number of ms in [0, min(max, base · 2^(retry-1))]', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: 0, max: ALMOST_ONE, noNaN: true }),
        (retry, base, max, u) => {
          const delay = backoffDelay(retry, base, max, () => u)
          const cap = Math.min(max, base * 2 ** (retry - 1))
          return Number.isInteger(delay) && delay >= 0 && delay <= cap && delay <= max
        },
      ),
    )
  })

  it('averages cap / 2 (full jitter)', () => {
    const random = seeded(42)
    for (const [retry, cap] of [
      [1, 25],
      [3, 100],
      [9, 250],
    ] as const) {
      const draws = 50_000
      let sum = 0
      let min = Number.POSITIVE_INFINITY
      let max = 0
      for (let i = 0; i < draws; i++) {
        const d = backoffDelay(retry, 25, 250, random)
        sum += d
        min = Math.min(min, d)
        max = Math.max(max, d)
      }
      expect(Math.abs(sum / draws - cap / 2)).toBeLessThan(cap * 0.01)
      // Full jitter reaches both ends of the range.
      expect(min).toBe(0)
      expect(max).toBe(cap)
    }
  })
})
