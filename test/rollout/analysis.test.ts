import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type AnalysisPolicy, analysisPolicy, analyze, summarize } from '../../proxy-core/rollout/analysis.ts'

const policy = (p: Partial<AnalysisPolicy> = {}): AnalysisPolicy => ({
  minRequests: 100,
  errorRate: { max: 1 },
  latencyP99: { max: 500 },
  ...p,
})
const series = (requests: number[], errors: number[], p99Ms: number[]) => ({ requests, errors, p99Ms })
const usableSum = (xs: readonly number[]) =>
  xs.filter((x) => Number.isFinite(x) && x >= 0).reduce((a, b) => a + b, 0)

// Any number a reader could hand over, and the ones it should not: NaN, ±Infinity, negatives, -0.
const anyNumber = fc.oneof(
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0, -1),
  fc.nat({ max: 10_000 }),
)
const anySeries = fc.record({
  requests: fc.array(anyNumber, { maxLength: 8 }),
  errors: fc.array(anyNumber, { maxLength: 8 }),
  p99Ms: fc.array(anyNumber, { maxLength: 8 }),
})
const anyPolicy = fc.record({
  minRequests: fc.integer({ min: 1, max: 5000 }),
  errorRate: fc.record(
    {
      max: fc.double({ min: 0, max: 100, noNaN: true }),
      maxAboveStable: fc.double({ min: 0, max: 100, noNaN: true }),
    },
    { requiredKeys: [] },
  ),
  latencyP99: fc.record(
    { max: fc.nat({ max: 10_000 }), maxAboveStable: fc.nat({ max: 10_000 }) },
    { requiredKeys: [] },
  ),
})

describe('analyze', () => {
  it('no series, empty or NaN included, makes it throw or decide without the minimum count', () => {
    fc.assert(
      fc.property(anyPolicy, anySeries, anySeries, (p, canary, stable) => {
        const v = analyze(p, canary, stable)
        const n = usableSum(canary.requests)
        if (v.outcome !== 'wait') expect(n).toBeGreaterThanOrEqual(p.minRequests)
        expect(Number.isNaN(v.canary.requests)).toBe(false)
        expect(typeof v.reason).toBe('string')
      }),
      { numRuns: 3000 },
    )
  })

  it('never passes on a missing number: p99 unknown, or a relative check without the stable count', () => {
    fc.assert(
      fc.property(anyPolicy, anySeries, anySeries, (p, canary, stable) => {
        const v = analyze(p, canary, stable)
        if (v.outcome !== 'pass') return
        expect(v.canary.p99Ms).toBeDefined()
        expect(v.checks.every((c) => c.ok === true)).toBe(true)
        if (p.errorRate.maxAboveStable !== undefined || p.latencyP99.maxAboveStable !== undefined)
          expect(usableSum(stable.requests)).toBeGreaterThanOrEqual(p.minRequests)
      }),
      { numRuns: 3000 },
    )
  })

  it('empty and all-NaN series wait', () => {
    expect(analyze(policy(), series([], [], []), series([], [], [])).outcome).toBe('wait')
    const nan = series([Number.NaN], [Number.NaN], [Number.NaN])
    expect(analyze(policy({ minRequests: 1 }), nan, nan).outcome).toBe('wait')
  })

  it('waits below the minimum even for a canary failing every request', () => {
    const v = analyze(policy(), series([99], [99], [10]), series([1000], [0], [10]))
    expect(v.outcome).toBe('wait')
    expect(v.reason).toBe('canary has 99 of 100 requests')
  })

  it('fails on the absolute error rate, with its numbers', () => {
    const v = analyze(policy(), series([60, 60], [12, 12], [20]), series([1000], [0], [10]))
    expect(v.outcome).toBe('fail')
    expect(v.reason).toBe('error-rate: canary 20% (24/120) > max 1%')
  })

  it('fails on p99 relative to stable, passes within it', () => {
    const p = policy({ latencyP99: { maxAboveStable: 100 } })
    const slow = analyze(p, series([200], [0], [340]), series([800], [0], [40]))
    expect(slow.outcome).toBe('fail')
    expect(slow.reason).toBe('latency-p99: canary p99 340ms > stable 40ms + 100ms')
    expect(analyze(p, series([200], [0], [120]), series([800], [0], [40])).outcome).toBe('pass')
  })

  it('compares error rates with stable over the same window', () => {
    const p = policy({ errorRate: { maxAboveStable: 2 } })
    expect(analyze(p, series([200], [8], [10]), series([1000], [30], [10])).outcome).toBe('pass')
    expect(analyze(p, series([200], [12], [10]), series([1000], [30], [10])).reason).toBe(
      'error-rate: canary 6% (12/200) > stable 3% + 2%',
    )
  })

  it('summarize: the counts summed, the highest p99 of the periods', () => {
    expect(summarize(series([10, Number.NaN, 5, -3], [1, 1], [20, 80, Number.POSITIVE_INFINITY]))).toEqual({
      requests: 15,
      errors: 2,
      errorRate: (2 / 15) * 100,
      p99Ms: 80,
    })
  })

  it("defaults: Flagger's 1% error rate and 500 ms p99, 100 requests", () => {
    expect(analysisPolicy({ stable: 'v1', canary: 'v2' })).toEqual({
      minRequests: 100,
      errorRate: { max: 1 },
      latencyP99: { max: 500 },
    })
  })
})
