import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { RequestEvent } from '../../proxy-core/engine/types.ts'
import {
  createMetricsRegistry,
  Histogram,
  latencyBoundsMs,
  OVERFLOW_SERVICE,
} from '../../proxy-core/telemetry/metrics.ts'

/** The exact p-th percentile: the value at rank ceil(p/100 × n) of the sorted samples. */
function exactPercentile(sorted: number[], p: number): number {
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!
}

function check(values: number[]): void {
  const h = new Histogram()
  for (const v of values) h.record(v)
  const sorted = [...values].sort((a, b) => a - b)
  for (const p of [50, 90, 99, 99.9]) {
    const want = exactPercentile(sorted, p)
    const got = h.percentile(p)
    expect(Math.abs(got - want) / want, `p${p}: got ${got}, want ${want}`).toBeLessThanOrEqual(0.05)
  }
  expect(h.count).toBe(values.length)
  expect(h.min).toBe(sorted[0])
  expect(h.max).toBe(sorted.at(-1))
  expect(h.sum).toBeCloseTo(
    values.reduce((a, b) => a + b, 0),
    6,
  )
}

describe('Histogram', () => {
  it('covers 0.1 ms to 60 s with log-spaced bounds', () => {
    expect(latencyBoundsMs[0]).toBeCloseTo(0.1, 12)
    expect(latencyBoundsMs.at(-1)).toBeGreaterThanOrEqual(60_000)
    for (let i = 1; i < latencyBoundsMs.length; i++) {
      expect(latencyBoundsMs[i]! / latencyBoundsMs[i - 1]!).toBeCloseTo(2 ** (1 / 8), 9)
    }
  })

  it('p50/p90/p99 within 5%: uniform 1..10 000 ms', () => {
    check(Array.from({ length: 10_000 }, (_, i) => i + 1))
  })

  it('p50/p90/p99 within 5%: exponential, mean 20 ms', () => {
    const n = 20_000
    check(Array.from({ length: n }, (_, i) => -Math.log(1 - (i + 0.5) / n) * 20))
  })

  it('p50/p90/p99 within 5%: log-uniform 0.2 ms .. 50 s', () => {
    const n = 5000
    check(Array.from({ length: n }, (_, i) => 0.2 * 250_000 ** (i / (n - 1))))
  })

  it('p50/p90/p99 within 5%: bimodal (fast cache hits, slow misses)', () => {
    const values: number[] = []
    for (let i = 0; i < 900; i++) values.push(1 + (i % 10) * 0.1)
    for (let i = 0; i < 100; i++) values.push(200 + i * 3)
    check(values)
  })

  it('within 5% for any sample set (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.1, max: 60_000, noNaN: true }), { minLength: 1, maxLength: 300 }),
        (v) => check(v),
      ),
      { numRuns: 200 },
    )
  })

  it('is exact for a constant, and at p0 / p100', () => {
    const h = new Histogram()
    for (let i = 0; i < 10; i++) h.record(42)
    expect(h.percentile(50)).toBe(42)
    expect(h.percentile(99)).toBe(42)
    h.record(7)
    h.record(90_000) // past the last bound: overflow bucket
    expect(h.percentile(0)).toBe(7)
    expect(h.percentile(100)).toBe(90_000)
    expect(new Histogram().percentile(50)).toBeNaN()
  })

  it('puts values on a bound into the bucket that ends there', () => {
    const h = new Histogram()
    h.record(latencyBoundsMs[16]!)
    expect(h.counts[16]).toBe(1)
    h.record(0)
    h.record(-5)
    h.record(Number.NaN)
    expect(h.counts[0]).toBe(3)
  })
})

function req(over: Partial<RequestEvent> = {}): RequestEvent {
  return {
    mesh: 'bookinfo',
    service: 'reviews',
    route: 'default',
    target: 'v1',
    method: 'GET',
    path: '/reviews/0',
    status: 200,
    start: 100,
    end: 112,
    retries: 0,
    ...over,
  }
}

describe('createMetricsRegistry', () => {
  it('counts per (mesh, service, route, target) through the sink', () => {
    const reg = createMetricsRegistry()
    const sink = reg.sink()
    sink.request!(req())
    sink.request!(req({ status: 503, retries: 2 }))
    sink.request!(req({ status: 404, fault: 'abort' }))
    sink.request!(req({ target: 'v3', status: 201 }))
    sink.request!(req({ route: undefined, target: undefined, status: 404, errorCode: 'no_route' }))
    sink.event!('ejection', { mesh: 'bookinfo', service: 'reviews', target: 'v1' })
    sink.event!('circuit-open', { mesh: 'bookinfo', service: 'reviews', route: 'default', target: 'v1' })
    sink.event!('retry-budget-exhausted', {
      mesh: 'bookinfo',
      service: 'reviews',
      route: 'default',
      target: 'v1',
    })
    sink.event!('mirror', { mesh: 'bookinfo', service: 'reviews', route: 'default', target: 'v1' })

    const v1 = reg.get('bookinfo', 'reviews', 'default', 'v1').total
    expect(v1.requests).toBe(3)
    expect([v1.code('2xx'), v1.code('4xx'), v1.code('5xx')]).toEqual([1, 1, 1])
    expect(v1.retries).toBe(2)
    expect(v1.faults).toBe(1)
    expect(v1.circuitOpen).toBe(1)
    expect(v1.retryBudgetExhausted).toBe(1)
    expect(v1.mirrors).toBe(1)
    expect(v1.latency.count).toBe(3)
    expect(v1.latency.sum).toBe(36)
    expect(reg.get('bookinfo', 'reviews', '', 'v1').total.ejections).toBe(1)
    expect(reg.get('bookinfo', 'reviews').total.requests).toBe(1)
    expect([...reg.series()].map((s) => s.labels)).toEqual([
      { mesh: 'bookinfo', service: 'reviews', route: 'default', target: 'v1' },
      { mesh: 'bookinfo', service: 'reviews', route: 'default', target: 'v3' },
      { mesh: 'bookinfo', service: 'reviews', route: '', target: '' },
      { mesh: 'bookinfo', service: 'reviews', route: '', target: 'v1' },
    ])
  })

  it('hands out one Series object per key (callers may hold it)', () => {
    const reg = createMetricsRegistry()
    const a = reg.get('m', 's', 'r', 't')
    expect(reg.get('m', 's', 'r', 't')).toBe(a)
    expect(reg.get('m', 's', 'r', 'u')).not.toBe(a)
    // Labels that would collide if joined with a separator stay apart.
    expect(reg.get('m', 's', 'r|t', '')).not.toBe(reg.get('m', 's', 'r', 't|'))
    expect(reg.sink()).toBe(reg.sink())
  })

  it('drain() returns the window and resets it, totals stay', () => {
    const reg = createMetricsRegistry()
    const sink = reg.sink()
    sink.request!(req())
    sink.request!(req({ status: 500 }))
    const first = reg.drain()
    expect(first).toHaveLength(1)
    expect(first[0]!.counts.requests).toBe(2)
    expect(first[0]!.counts.code('5xx')).toBe(1)
    expect(reg.drain()).toEqual([])
    sink.request!(req())
    const second = reg.drain()
    expect(second[0]!.counts.requests).toBe(1)
    // The first snapshot is a copy: later traffic does not change it.
    expect(first[0]!.counts.requests).toBe(2)
    expect(reg.get('bookinfo', 'reviews', 'default', 'v1').total.requests).toBe(3)
  })

  it('caps the number of series', () => {
    const reg = createMetricsRegistry({ maxSeries: 3 })
    for (let i = 0; i < 10; i++) reg.sink().request!(req({ service: `scan-${i}` }))
    const labels = [...reg.series()].map((s) => s.labels.service)
    expect(labels).toEqual(['scan-0', 'scan-1', 'scan-2', OVERFLOW_SERVICE])
    expect(reg.get('bookinfo', OVERFLOW_SERVICE).total.requests).toBe(7)
  })
})
