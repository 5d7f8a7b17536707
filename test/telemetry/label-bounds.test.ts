// Labels an outsider chooses (the Host of an unknown service, a label that is no config name) land in
// one `unknown` bucket in every metrics output; the access log keeps the raw value, bounded.
import { describe, expect, it } from 'vitest'
import { ACCESS_LOG_BOUNDS, formatAccessLog } from '../../proxy-core/telemetry/access-log.ts'
import { buildMetricData } from '../../proxy-core/telemetry/cloudwatch.ts'
import { formatEmf } from '../../proxy-core/telemetry/emf.ts'
import { createMetricsRegistry, UNKNOWN_LABEL } from '../../proxy-core/telemetry/metrics.ts'
import { formatPrometheus } from '../../proxy-core/telemetry/prometheus.ts'
import { validateEmf } from '../helpers/emf-spec.ts'
import { requestEvent } from '../helpers/request-event.ts'

const unknownHost = (i: number) =>
  requestEvent({
    service: `host-${i}.example.com`,
    route: undefined,
    target: undefined,
    status: 404,
    errorCode: 'unknown_service',
  })

describe('metric labels from outside', () => {
  it('every unknown service is one series, in Prometheus, EMF and CloudWatch alike', () => {
    const reg = createMetricsRegistry()
    reg.sink().request!(requestEvent())
    for (let i = 0; i < 5000; i++) reg.sink().request!(unknownHost(i))
    // A Host that happens to be a valid name is still a client's choice when the service is unknown.
    reg.sink().request!(
      requestEvent({ service: 'reviewz', route: undefined, target: undefined, errorCode: 'unknown_service' }),
    )
    const series = [...reg.series()].map((s) => s.labels)
    expect(series).toEqual([
      { mesh: 'bookinfo', service: 'reviews', route: 'default', target: 'v1' },
      { mesh: 'bookinfo', service: UNKNOWN_LABEL, route: '', target: '' },
    ])
    expect(reg.get('bookinfo', UNKNOWN_LABEL).total.requests).toBe(5001)

    const prom = formatPrometheus(reg)
    expect(prom).not.toContain('example.com')
    expect(prom).toContain('service="unknown"')

    const snapshot = reg.drain()
    const emf = formatEmf(snapshot, { namespace: 'meshgate', coldStart: false, timestamp: 0 })
    const lines = emf.split('\n')
    expect(lines).toHaveLength(2)
    for (const l of lines) validateEmf(l)
    expect(lines.map((l) => JSON.parse(l).Service).sort()).toEqual(['reviews', 'unknown'])

    const data = buildMetricData(snapshot, { timestamp: new Date(0) })
    const services = new Set(data.map((d) => d.Dimensions?.find((x) => x.Name === 'Service')?.Value))
    expect(services).toEqual(new Set(['reviews', 'unknown']))
  })

  it('a service, route or target label that no config could name is unknown', () => {
    const reg = createMetricsRegistry()
    reg.get('m', 'Weird Host', 'r', 't').recordRequest(200, 1, 0, false)
    reg.get('m', 'svc', 'route\n{x}', 't').recordRequest(200, 1, 0, false)
    reg.get('m', 'svc', 'r', 'x'.repeat(100)).recordRequest(200, 1, 0, false)
    expect([...reg.series()].map((s) => s.labels)).toEqual([
      { mesh: 'm', service: 'unknown', route: 'r', target: 't' },
      { mesh: 'm', service: 'svc', route: 'unknown', target: 't' },
      { mesh: 'm', service: 'svc', route: 'r', target: 'unknown' },
    ])
  })
})

describe('access log bounds', () => {
  it('keeps the raw values, cut to their bounds', () => {
    const long = requestEvent({
      service: 'h'.repeat(70_000),
      path: `/${'p'.repeat(70_000)}`,
      method: 'M'.repeat(500),
      errorCode: 'unknown_service',
    })
    const doc = JSON.parse(formatAccessLog(long, 0))
    expect(doc.service).toBe(`${'h'.repeat(ACCESS_LOG_BOUNDS.service)}…`)
    expect(doc.path).toBe(`/${'p'.repeat(ACCESS_LOG_BOUNDS.path - 1)}…`)
    expect(doc.method).toBe(`${'M'.repeat(ACCESS_LOG_BOUNDS.method)}…`)
    const short = JSON.parse(formatAccessLog(requestEvent({ service: 'scanner.example.com' }), 0))
    expect(short.service).toBe('scanner.example.com')
  })
})
