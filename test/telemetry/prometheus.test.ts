import { describe, expect, it } from 'vitest'
import { createMetricsRegistry } from '../../proxy-core/telemetry/metrics.ts'
import { escapeLabelValue, formatPrometheus } from '../../proxy-core/telemetry/prometheus.ts'
import { requestEvent } from '../helpers/request-event.ts'
import { type Family, parsePrometheus, type Sample } from './prom-parse.ts'

const req = requestEvent

function seriesKey(s: Sample): string {
  const { le: _le, code_class: _c, ...rest } = s.labels
  return JSON.stringify(rest)
}

/** Buckets of each series are cumulative, le ascending, end in +Inf equal to _count. */
function checkHistogram(f: Family): void {
  expect(f.type).toBe('histogram')
  const bySeries = new Map<string, Sample[]>()
  for (const s of f.samples) {
    const k = seriesKey(s)
    bySeries.set(k, [...(bySeries.get(k) ?? []), s])
  }
  for (const samples of bySeries.values()) {
    const buckets = samples.filter((s) => s.name.endsWith('_bucket'))
    const count = samples.find((s) => s.name.endsWith('_count'))!
    const sum = samples.find((s) => s.name.endsWith('_sum'))!
    expect(count).toBeDefined()
    expect(sum).toBeDefined()
    let prevLe = Number.NEGATIVE_INFINITY
    let prev = 0
    for (const b of buckets) {
      const le = b.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(b.labels.le)
      expect(le).toBeGreaterThan(prevLe)
      expect(b.value).toBeGreaterThanOrEqual(prev)
      prevLe = le
      prev = b.value
    }
    expect(buckets.at(-1)!.labels.le).toBe('+Inf')
    expect(buckets.at(-1)!.value).toBe(count.value)
  }
}

describe('formatPrometheus', () => {
  it('parses strictly, with HELP and TYPE for every family', () => {
    const reg = createMetricsRegistry()
    const sink = reg.sink()
    sink.request!(req({ end: 0.05 }))
    sink.request!(req({ end: 3 }))
    sink.request!(req({ status: 503, end: 250, retries: 2 }))
    sink.request!(req({ target: 'v3', status: 404, end: 70_000, fault: 'abort' }))
    sink.event!('ejection', { mesh: 'bookinfo', service: 'reviews', target: 'v1' })
    const text = formatPrometheus(reg)
    const families = parsePrometheus(text)
    for (const f of families.values()) {
      expect(f.help, f.name).toBeTruthy()
      expect(['counter', 'histogram']).toContain(f.type)
    }
    const requests = families.get('meshgate_requests_total')!
    const v1 = (cls: string) =>
      requests.samples.find(
        (s) => s.labels.target === 'v1' && s.labels.route === 'default' && s.labels.code_class === cls,
      )?.value
    expect([v1('2xx'), v1('4xx'), v1('5xx')]).toEqual([2, 0, 1])
    expect(requests.samples[0]!.labels).toEqual({
      mesh: 'bookinfo',
      service: 'reviews',
      route: 'default',
      target: 'v1',
      code_class: '2xx',
    })

    const hist = families.get('meshgate_request_duration_seconds')!
    checkHistogram(hist)
    const of = (name: string, target: string, le?: string) =>
      hist.samples.find(
        (s) => s.name === name && s.labels.target === target && (le === undefined || s.labels.le === le),
      )!.value
    expect(of('meshgate_request_duration_seconds_count', 'v1')).toBe(3)
    expect(of('meshgate_request_duration_seconds_sum', 'v1')).toBeCloseTo(0.25305, 9)
    expect(of('meshgate_request_duration_seconds_bucket', 'v1', '0.0001')).toBe(1)
    expect(of('meshgate_request_duration_seconds_bucket', 'v1', '0.0016')).toBe(1)
    expect(of('meshgate_request_duration_seconds_bucket', 'v1', '0.0032')).toBe(2)
    expect(of('meshgate_request_duration_seconds_bucket', 'v1', '0.0064')).toBe(2)
    expect(of('meshgate_request_duration_seconds_bucket', 'v1', '0.2048')).toBe(2)
    expect(of('meshgate_request_duration_seconds_bucket', 'v1', '0.4096')).toBe(3)
    // 70 s is past the last finite bucket: only +Inf holds it.
    expect(of('meshgate_request_duration_seconds_bucket', 'v3', '52.4288')).toBe(0)
    expect(of('meshgate_request_duration_seconds_bucket', 'v3', '+Inf')).toBe(1)

    const value = (family: string, target: string, route = 'default') =>
      families.get(family)!.samples.find((s) => s.labels.target === target && s.labels.route === route)!.value
    expect(value('meshgate_retries_total', 'v1')).toBe(2)
    expect(value('meshgate_faults_injected_total', 'v3')).toBe(1)
    expect(value('meshgate_ejections_total', 'v1', '')).toBe(1)
    expect(value('meshgate_circuit_open_total', 'v1')).toBe(0)
  })

  it('keeps cumulative totals across drains', () => {
    const reg = createMetricsRegistry()
    reg.sink().request!(req())
    reg.drain()
    reg.sink().request!(req())
    const f = parsePrometheus(formatPrometheus(reg)).get('meshgate_request_duration_seconds')!
    expect(f.samples.find((s) => s.name.endsWith('_count'))!.value).toBe(2)
  })

  it('escapes label values so they parse back unchanged', () => {
    const nasty = 'a"b\\c\nd,e=f}'
    expect(escapeLabelValue(nasty)).toBe('a\\"b\\\\c\\nd,e=f}')
    const reg = createMetricsRegistry()
    // The mesh label is the config's own; service, route and target that no config could name are
    // `unknown` before they get here (label-bounds.test.ts).
    reg.get(nasty, 'svc', 'r', 't').recordRequest(200, 1, 0, false)
    const families = parsePrometheus(formatPrometheus(reg))
    for (const f of families.values()) for (const s of f.samples) expect(s.labels.mesh).toBe(nasty)
    checkHistogram(families.get('meshgate_request_duration_seconds')!)
  })

  it('is valid with no series at all', () => {
    const families = parsePrometheus(formatPrometheus(createMetricsRegistry()))
    expect(families.get('meshgate_requests_total')!.samples).toEqual([])
  })
})

describe('prom-parse (the test parser itself)', () => {
  it('refuses what the format does not allow', () => {
    const bad = [
      'x 1', // no final line feed
      'x{a="1} 1\n', // unterminated
      'x{a="\\t"} 1\n', // bad escape
      'x{a="1",a="2"} 1\n', // duplicate label
      'x 1 2 3\n',
      'x one\n',
      '# TYPE x wrong\n',
      '# TYPE h histogram\nh_bucket{a="1"} 1\n', // bucket without le
      'x 1\ny 1\nx 2\n', // family split
      '# TYPE x counter\nx 1\n# HELP x late\n',
    ]
    for (const text of bad) expect(() => parsePrometheus(text), JSON.stringify(text)).toThrow()
  })
})
