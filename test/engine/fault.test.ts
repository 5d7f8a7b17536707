import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decideFault } from '../../proxy-core/engine/fault.ts'
import { shouldMirror } from '../../proxy-core/engine/mirror.ts'
import type { Random } from '../../proxy-core/engine/types.ts'

function seeded(seed: number): Random {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

/** A Random that fails the test if it is called. */
const untouched: Random = () => {
  throw new Error('random() was called')
}

describe('decideFault', () => {
  it('no config, no fault, no draw', () => {
    expect(decideFault(undefined, untouched)).toEqual({ delayMs: 0, abortStatus: 0 })
    expect(decideFault({}, untouched)).toEqual({ delayMs: 0, abortStatus: 0 })
  })

  it('100% always fires, 0% never, without drawing', () => {
    const cfg = { delay: { percent: 100, duration: 5000 }, abort: { percent: 100, status: 503 } }
    expect(decideFault(cfg, untouched)).toEqual({ delayMs: 5000, abortStatus: 503 })
    const off = { delay: { percent: 0, duration: 5000 }, abort: { percent: 0, status: 503 } }
    expect(decideFault(off, untouched)).toEqual({ delayMs: 0, abortStatus: 0 })
  })

  it('draws delay first, then abort', () => {
    const draws = [0.05, 0.5]
    const random = () => draws.shift() ?? 0
    const cfg = { delay: { percent: 10, duration: 200 }, abort: { percent: 10, status: 500 } }
    expect(decideFault(cfg, random)).toEqual({ delayMs: 200, abortStatus: 0 })
  })

  it('converges to the configured percent, fractions included', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.integer({ min: 1, max: 2 ** 31 }),
        (percent, seed) => {
          const random = seeded(seed)
          const n = 20_000
          let hits = 0
          for (let i = 0; i < n; i++) {
            if (decideFault({ abort: { percent, status: 503 } }, random).abortStatus === 503) hits++
          }
          const p = percent / 100
          // Five standard deviations of a binomial share, plus a little for p near 0 or 1.
          const tolerance = 5 * Math.sqrt((p * (1 - p)) / n) + 1e-3
          return Math.abs(hits / n - p) <= tolerance
        },
      ),
      { numRuns: 30, seed: 7 },
    )
  })

  it('decides delay and abort independently', () => {
    const random = seeded(1)
    const cfg = { delay: { percent: 50, duration: 10 }, abort: { percent: 20, status: 503 } }
    const n = 100_000
    let both = 0
    let delayed = 0
    let aborted = 0
    for (let i = 0; i < n; i++) {
      const d = decideFault(cfg, random)
      if (d.delayMs > 0) delayed++
      if (d.abortStatus > 0) aborted++
      if (d.delayMs > 0 && d.abortStatus > 0) both++
    }
    expect(Math.abs(delayed / n - 0.5)).toBeLessThan(0.01)
    expect(Math.abs(aborted / n - 0.2)).toBeLessThan(0.01)
    expect(Math.abs(both / n - 0.1)).toBeLessThan(0.01)
  })

  it('keeps a tenth of a percent apart from zero', () => {
    const random = seeded(3)
    let hits = 0
    for (let i = 0; i < 200_000; i++) {
      if (decideFault({ delay: { percent: 0.1, duration: 1 } }, random).delayMs > 0) hits++
    }
    expect(hits).toBeGreaterThan(120)
    expect(hits).toBeLessThan(280)
  })
})

describe('shouldMirror', () => {
  it('never without config or at 0%, always at 100%, without drawing', () => {
    expect(shouldMirror(undefined, untouched)).toBe(false)
    expect(shouldMirror({ percent: 0 }, untouched)).toBe(false)
    expect(shouldMirror({ percent: 100 }, untouched)).toBe(true)
  })

  it('samples the configured percent', () => {
    const random = seeded(11)
    let mirrored = 0
    for (let i = 0; i < 100_000; i++) if (shouldMirror({ percent: 5 }, random)) mirrored++
    expect(Math.abs(mirrored / 100_000 - 0.05)).toBeLessThan(0.005)
  })
})
