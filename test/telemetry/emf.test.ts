import { describe, expect, it } from 'vitest'
import { formatEmf } from '../../proxy-core/telemetry/emf.ts'
import { createMetricsRegistry } from '../../proxy-core/telemetry/metrics.ts'
import { validateEmf } from '../helpers/emf-spec.ts'
import { requestEvent } from '../helpers/request-event.ts'

const req = requestEvent

const base = { namespace: 'meshgate', timestamp: 1_700_000_000_123, coldStart: false }

describe('formatEmf', () => {
  it('one valid line for one series, with counts, latency values and dimensions', () => {
    const reg = createMetricsRegistry()
    reg.sink().request!(req())
    reg.sink().request!(req({ status: 503, retries: 2, end: 40 }))
    reg.sink().request!(req({ status: 429, end: 5 }))
    const out = formatEmf(reg.drain(), { ...base, dimensions: { FunctionName: 'productpage-dev' } })
    expect(out.split('\n')).toHaveLength(1)
    const doc = validateEmf(out)
    expect(doc).toMatchObject({
      Mesh: 'bookinfo',
      Service: 'reviews',
      Route: 'default',
      Target: 'v1',
      FunctionName: 'productpage-dev',
      Requests: 3,
      Responses2xx: 1,
      Responses4xx: 1,
      Responses5xx: 1,
      Retries: 2,
    })
    const lat = doc.Latency as number[]
    expect(lat).toHaveLength(3)
    expect(Math.min(...lat)).toBe(5)
    expect(Math.max(...lat)).toBe(40)
    const directive = (doc._aws as { CloudWatchMetrics: { Dimensions: string[][] }[] }).CloudWatchMetrics[0]!
    expect(directive.Dimensions).toEqual([['Mesh', 'Service', 'Route', 'Target', 'FunctionName']])
    expect((doc._aws as { Timestamp: number }).Timestamp).toBe(1_700_000_000_123)
    expect(doc).not.toHaveProperty('ColdStart')
  })

  it('keeps value arrays at 100 when there were more requests', () => {
    const reg = createMetricsRegistry()
    for (let i = 1; i <= 1000; i++) reg.sink().request!(req({ end: i }))
    const doc = validateEmf(formatEmf(reg.drain(), base))
    expect(doc.Requests).toBe(1000)
    const lat = doc.Latency as number[]
    expect(lat).toHaveLength(100)
    const sorted = [...lat].sort((a, b) => a - b)
    // The 100 values are the distribution's quantiles: their middle is near the median.
    expect(Math.abs(sorted[50]! - 505) / 505).toBeLessThan(0.05)
  })

  it('marks a cold start once, in its own directive', () => {
    const reg = createMetricsRegistry()
    reg.sink().request!(req())
    reg.sink().request!(req({ target: 'v3' }))
    const out = formatEmf(reg.drain(), { ...base, coldStart: true, dimensions: { FunctionName: 'fn' } })
    const lines = out.split('\n')
    // Two series, two documents: a dimension has one value per document.
    expect(lines).toHaveLength(2)
    const docs = lines.map(validateEmf)
    expect(docs.map((d) => d.Target)).toEqual(['v1', 'v3'])
    expect(docs[0]!.ColdStart).toBe(1)
    expect(docs[1]).not.toHaveProperty('ColdStart')
    const directives = (
      docs[0]!._aws as { CloudWatchMetrics: { Dimensions: string[][]; Metrics: unknown[] }[] }
    ).CloudWatchMetrics
    expect(directives[1]).toEqual({
      Namespace: 'meshgate',
      Dimensions: [['FunctionName']],
      Metrics: [{ Name: 'ColdStart', Unit: 'Count' }],
    })
  })

  it('a cold start with no traffic still gets its line; nothing at all gives an empty string', () => {
    const reg = createMetricsRegistry()
    const doc = validateEmf(formatEmf(reg.drain(), { ...base, coldStart: true }))
    expect(doc.ColdStart).toBe(1)
    expect(formatEmf(reg.drain(), base)).toBe('')
  })

  it('reports mesh events and never lets an extra dimension shadow a metric or label', () => {
    const reg = createMetricsRegistry()
    reg.sink().event!('circuit-open', { mesh: 'bookinfo', service: 'reviews' })
    const dimensions: Record<string, string> = { Requests: 'x', Target: 'y', Empty: '' }
    for (let i = 0; i < 40; i++) dimensions[`D${i}`] = String(i)
    const doc = validateEmf(formatEmf(reg.drain(), { ...base, dimensions }))
    expect(doc.CircuitOpen).toBe(1)
    expect(doc).not.toHaveProperty('Requests')
    expect(doc.Target).toBe('none')
    expect(doc.Route).toBe('none')
    expect(doc.Empty).toBe('none')
  })

  it('puts the config counters in the function directive of the first line, or a line of their own', () => {
    const config = { ConfigReloads: 1, ConfigRejected: 0, ConfigStale: 0 }
    const reg = createMetricsRegistry()
    reg.sink().request!(req())
    reg.sink().request!(req({ target: 'v3' }))
    const lines = formatEmf(reg.drain(), {
      ...base,
      coldStartDimensions: { FunctionName: 'fn' },
      functionMetrics: config,
    }).split('\n')
    expect(lines).toHaveLength(2)
    const [first, second] = lines.map(validateEmf)
    expect(first).toMatchObject({ ...config, FunctionName: 'fn', Target: 'v1' })
    expect(second).not.toHaveProperty('ConfigReloads')
    const directives = (
      first!._aws as { CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string }[] }[] }
    ).CloudWatchMetrics
    expect(directives[1]).toMatchObject({
      Dimensions: [['FunctionName']],
      Metrics: [
        { Name: 'ConfigReloads', Unit: 'Count' },
        { Name: 'ConfigRejected', Unit: 'Count' },
        { Name: 'ConfigStale', Unit: 'Count' },
      ],
    })
    // No traffic in this invocation: one line with the counters alone.
    const alone = formatEmf(reg.drain(), {
      ...base,
      coldStartDimensions: { FunctionName: 'fn' },
      functionMetrics: { ...config, ConfigStale: 1 },
    })
    expect(alone.split('\n')).toHaveLength(1)
    expect(validateEmf(alone)).toMatchObject({ ConfigStale: 1, FunctionName: 'fn' })
    expect(validateEmf(alone)).not.toHaveProperty('ColdStart')
  })
})
