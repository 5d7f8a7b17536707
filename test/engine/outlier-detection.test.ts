import { describe, expect, it } from 'vitest'
import {
  createOutlierDetector,
  DEFAULT_OUTLIER_DETECTION,
  MAX_EJECTION_TIME,
} from '../../proxy-core/engine/outlier-detection.ts'
import type { AttemptOutcome } from '../../proxy-core/engine/retry-policy.ts'
import type { OutlierConfig } from '../../proxy-core/engine/types.ts'

function manualClock(start = 0) {
  let now = start
  return {
    now: () => now,
    advance(ms: number) {
      now += ms
    },
  }
}

const ok: AttemptOutcome = { status: 200 }
const notFound: AttemptOutcome = { status: 404 }
const s500: AttemptOutcome = { status: 500 }
const s503: AttemptOutcome = { status: 503 }

function setup(overrides: Partial<OutlierConfig> = {}) {
  const clock = manualClock()
  const cfg: OutlierConfig = {
    consecutive5xx: 5,
    consecutiveGatewayErrors: 0,
    interval: 10_000,
    baseEjectionTime: 30_000,
    maxEjectionPercent: 100,
    ...overrides,
  }
  const detector = createOutlierDetector(cfg, clock)
  /** Record `n` copies of `outcome`; returns whether the last one ejected. */
  const fail = (id: string, n: number, outcome: AttemptOutcome = s500, total = 10) => {
    let ejected = false
    for (let i = 0; i < n; i++) ejected = detector.record(id, outcome, total)
    return ejected
  }
  return { clock, detector, fail }
}

describe('outlier detection', () => {
  it('defaults to Istio: 5 consecutive 5xx, 10 s, 30 s, 10%', () => {
    expect(DEFAULT_OUTLIER_DETECTION).toEqual({
      consecutive5xx: 5,
      consecutiveGatewayErrors: 0,
      interval: 10_000,
      baseEjectionTime: 30_000,
      maxEjectionPercent: 10,
    })
  })

  it('ejects on the fifth consecutive 5xx, and only that call says so', () => {
    const { detector, fail } = setup()
    expect(fail('a', 4)).toBe(false)
    expect(detector.isEjected('a')).toBe(false)
    expect(detector.record('a', s500, 10)).toBe(true)
    expect(detector.isEjected('a')).toBe(true)
    expect(detector.ejectedCount()).toBe(1)
    expect(detector.isEjected('b')).toBe(false)
  })

  it('a success resets the run; a 4xx is a success', () => {
    const { detector, fail } = setup()
    fail('a', 4)
    detector.record('a', ok, 10)
    expect(fail('a', 4)).toBe(false)
    detector.record('a', notFound, 10)
    expect(fail('a', 4)).toBe(false)
    expect(fail('a', 1)).toBe(true)
  })

  it('connect failures, resets, timeouts and function errors count as 5xx', () => {
    const { detector } = setup()
    const failures: AttemptOutcome[] = [
      { failure: 'connect-failure' },
      { failure: 'reset' },
      { failure: 'timeout' },
      { failure: 'function-error' },
      { status: 599 },
    ]
    expect(failures.map((f) => detector.record('a', f, 10))).toEqual([false, false, false, false, true])
  })

  it('throttling neither counts nor resets', () => {
    const { fail } = setup()
    fail('a', 4)
    expect(fail('a', 20, { failure: 'throttled' })).toBe(false)
    expect(fail('a', 1)).toBe(true)
  })

  it('consecutive gateway errors: a plain 500 breaks the run', () => {
    const { detector, fail } = setup({ consecutive5xx: 0, consecutiveGatewayErrors: 3 })
    fail('a', 2, s503)
    detector.record('a', s500, 10)
    expect(fail('a', 2, s503)).toBe(false)
    expect(detector.record('a', { failure: 'connect-failure' }, 10)).toBe(true)
    // With consecutive5xx off, 500s alone never eject.
    expect(fail('b', 50, s500)).toBe(false)
  })

  it('returns the endpoint when the ejection time has passed', () => {
    const { clock, detector, fail } = setup()
    fail('a', 5)
    clock.advance(29_999)
    expect(detector.isEjected('a')).toBe(true)
    clock.advance(1)
    expect(detector.isEjected('a')).toBe(false)
    expect(detector.ejectedCount()).toBe(0)
  })

  it('ejects for longer each time an endpoint fails right after returning', () => {
    const { clock, detector, fail } = setup()
    const ejectionLength = () => {
      expect(fail('a', 5)).toBe(true)
      let waited = 0
      while (detector.isEjected('a')) {
        clock.advance(1000)
        waited += 1000
      }
      return waited
    }
    expect([ejectionLength(), ejectionLength(), ejectionLength()]).toEqual([30_000, 60_000, 90_000])
  })

  it('forgives one ejection per interval spent healthy', () => {
    const { clock, detector, fail } = setup()
    fail('a', 5)
    clock.advance(30_000)
    fail('a', 5) // second ejection: 60 s
    clock.advance(60_000)
    expect(detector.isEjected('a')).toBe(false)
    // Two intervals (20 s) back in service take the count from 2 to 0; this is the first again.
    clock.advance(20_000)
    fail('a', 5)
    clock.advance(29_999)
    expect(detector.isEjected('a')).toBe(true)
    clock.advance(1)
    expect(detector.isEjected('a')).toBe(false)
  })

  it('caps the ejection time at 300 s', () => {
    const { clock, detector, fail } = setup({ baseEjectionTime: 100_000 })
    const ejectionLength = () => {
      expect(fail('a', 5)).toBe(true)
      let waited = 0
      while (detector.isEjected('a')) {
        clock.advance(1000)
        waited += 1000
      }
      return waited
    }
    const lengths = [1, 2, 3, 4, 5].map(ejectionLength)
    expect(lengths).toEqual([100_000, 200_000, MAX_EJECTION_TIME, MAX_EJECTION_TIME, MAX_EJECTION_TIME])
  })

  it('never ejects beyond maxEjectionPercent', () => {
    const { detector, fail } = setup({ maxEjectionPercent: 50 })
    expect(fail('a', 5, s500, 4)).toBe(true)
    expect(fail('b', 5, s500, 4)).toBe(true)
    expect(fail('c', 5, s500, 4)).toBe(false)
    expect(fail('c', 5, s500, 4)).toBe(false)
    expect(detector.ejectedCount()).toBe(2)
    expect(detector.isEjected('c')).toBe(false)
  })

  it('rounds the cap down: 50% of 3 endpoints is 1', () => {
    const { fail } = setup({ maxEjectionPercent: 50 })
    expect(fail('a', 5, s500, 3)).toBe(true)
    expect(fail('b', 5, s500, 3)).toBe(false)
  })

  it('always allows one ejection, even when the percent rounds to zero', () => {
    const { detector, fail } = setup({ maxEjectionPercent: 10 })
    expect(fail('a', 5, s500, 3)).toBe(true)
    expect(fail('b', 5, s500, 3)).toBe(false)
    // A pool of one may lose its only endpoint (the load balancer then panics and uses it anyway).
    const single = setup({ maxEjectionPercent: 10 })
    expect(single.fail('only', 5, s500, 1)).toBe(true)
    expect(detector.ejectedCount()).toBe(1)
  })

  it('ejects a held-back endpoint once room frees up', () => {
    const { clock, fail } = setup({ maxEjectionPercent: 10 })
    expect(fail('a', 5)).toBe(true)
    expect(fail('b', 5)).toBe(false)
    clock.advance(30_000)
    expect(fail('b', 1)).toBe(true)
  })

  it('maxEjectionPercent 0 or consecutive5xx 0 disables ejection', () => {
    expect(setup({ maxEjectionPercent: 0 }).fail('a', 50)).toBe(false)
    expect(setup({ consecutive5xx: 0 }).fail('a', 50)).toBe(false)
  })

  it('ignores outcomes while ejected, so the endpoint returns with a clean slate', () => {
    const { clock, detector, fail } = setup()
    fail('a', 5)
    expect(fail('a', 10)).toBe(false)
    clock.advance(30_000)
    expect(fail('a', 4)).toBe(false)
    expect(detector.isEjected('a')).toBe(false)
  })

  it('forget drops the state, ejection history included', () => {
    const { clock, detector, fail } = setup()
    fail('a', 5)
    detector.forget('a')
    expect(detector.isEjected('a')).toBe(false)
    expect(detector.ejectedCount()).toBe(0)
    fail('a', 5)
    clock.advance(30_000)
    expect(detector.isEjected('a')).toBe(false)
  })
})
