import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  buildMetricData,
  type CloudWatchPublisher,
  createCloudWatchPublisher,
  PUT_METRIC_DATA_LIMITS,
} from '../../proxy-core/telemetry/cloudwatch.ts'
import {
  createMetricsRegistry,
  latencyBoundsMs,
  type MetricsRegistry,
} from '../../proxy-core/telemetry/metrics.ts'
import {
  type CloudWatchEndpoint,
  INTERNAL_ERROR,
  type ReceivedDatum,
  startCloudWatchEndpoint,
} from '../helpers/cloudwatch-endpoint.ts'
import { requestEvent } from '../helpers/request-event.ts'

const credentials = { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-secret' }
const NOW = 1_700_000_040_000

const req = requestEvent

function dims(d: ReceivedDatum): Record<string, string> {
  return Object.fromEntries((d.Dimensions ?? []).map((x) => [x.Name, x.Value]))
}

function find(data: ReceivedDatum[], name: string, target: string): ReceivedDatum[] {
  return data.filter((d) => d.MetricName === name && dims(d).Target === target)
}

describe('createCloudWatchPublisher (real SDK client, local endpoint)', () => {
  let endpoint: CloudWatchEndpoint
  let registry: MetricsRegistry
  let publisher: CloudWatchPublisher | undefined

  beforeEach(async () => {
    endpoint = await startCloudWatchEndpoint()
    registry = createMetricsRegistry()
  })
  afterEach(async () => {
    await publisher?.stop()
    publisher = undefined
    await endpoint.close()
  })

  function create(over: Partial<Parameters<typeof createCloudWatchPublisher>[0]> = {}): CloudWatchPublisher {
    publisher = createCloudWatchPublisher({
      registry,
      namespace: 'meshgate',
      dimensions: { Cluster: 'prod' },
      endpoint: endpoint.url,
      region: 'eu-west-1',
      clientConfig: { credentials },
      now: () => NOW,
      intervalMs: 3_600_000,
      ...over,
    })
    return publisher
  }

  it('sends PutMetricData with namespace, dimensions, statistic sets and latency values', async () => {
    const sink = registry.sink()
    let trueSum = 0
    for (let i = 1; i <= 100; i++) {
      const status = i <= 90 ? 200 : i <= 95 ? 404 : 503
      sink.request!(req({ status, end: i, retries: i % 15 === 0 ? 1 : 0 }))
      trueSum += i
    }
    for (let i = 0; i < 10; i++) sink.request!(req({ target: 'v3', end: 20 }))
    sink.event!('ejection', { mesh: 'bookinfo', service: 'reviews', route: 'default', target: 'v3' })

    const pub = create()
    await pub.flush()
    expect(endpoint.requests).toHaveLength(1)
    const [put] = endpoint.requests
    expect(put!.operation).toBe('PutMetricData')
    expect(put!.headers['content-type']).toBe('application/x-amz-json-1.0')
    expect(String(put!.headers.authorization)).toContain('AKIDLOCALTEST')
    expect(String(put!.headers.authorization)).toContain('/eu-west-1/monitoring/aws4_request')
    expect(put!.body.Namespace).toBe('meshgate')
    const data = put!.body.MetricData!

    for (const d of data) {
      expect(dims(d)).toMatchObject({
        Mesh: 'bookinfo',
        Service: 'reviews',
        Route: 'default',
        Cluster: 'prod',
      })
      expect(d.Dimensions!.map((x) => x.Name)).toEqual(['Mesh', 'Service', 'Route', 'Target', 'Cluster'])
      expect(d.Timestamp).toBe(NOW / 1000)
      expect(['Count', 'Milliseconds']).toContain(d.Unit)
    }

    const [requests] = find(data, 'Requests', 'v1')
    expect(requests!.StatisticValues).toEqual({ SampleCount: 100, Sum: 100, Minimum: 1, Maximum: 1 })
    const [r5xx] = find(data, 'Responses5xx', 'v1')
    // One 0/1 sample per request: Average is the 5xx rate (5%).
    expect(r5xx!.StatisticValues).toEqual({ SampleCount: 100, Sum: 5, Minimum: 0, Maximum: 1 })
    const classes = ['2xx', '4xx', '5xx'].map(
      (c) => find(data, `Responses${c}`, 'v1')[0]!.StatisticValues!.Sum,
    )
    expect(classes).toEqual([90, 5, 5])
    expect(classes.reduce((a, b) => a + b)).toBe(requests!.StatisticValues!.Sum)
    expect(find(data, 'Retries', 'v1')[0]!.StatisticValues!.Sum).toBe(6)
    expect(find(data, 'Ejections', 'v3')[0]!.StatisticValues!.Sum).toBe(1)
    expect(find(data, 'Retries', 'v3')).toEqual([])

    const latency = find(data, 'Latency', 'v1')
    expect(latency).toHaveLength(1)
    const { Values, Counts, Unit } = latency[0]!
    expect(Unit).toBe('Milliseconds')
    expect(Values!.length).toBe(Counts!.length)
    expect(Counts!.reduce((a, b) => a + b)).toBe(100)
    for (const v of Values!) {
      expect(v).toBeGreaterThanOrEqual(1)
      expect(v).toBeLessThanOrEqual(100)
    }
    const approxSum = Values!.reduce((acc, v, i) => acc + v * Counts![i]!, 0)
    expect(Math.abs(approxSum - trueSum) / trueSum).toBeLessThan(0.05)
    const v3 = find(data, 'Latency', 'v3')[0]!
    expect(v3.Values).toEqual([20])
    expect(v3.Counts).toEqual([10])

    expect(pub.stats()).toMatchObject({ requests: 1, datums: data.length, failedRequests: 0 })
    // Drained: the next flush has nothing to send.
    await pub.flush()
    expect(endpoint.received).toHaveLength(1)
  })

  it('splits into ≤1000 datums per request and ≤150 values per datum, gzipping large bodies', async () => {
    // 400 series × (Requests, 3 status classes, Latency) = 2000 datums.
    for (let i = 0; i < 400; i++) registry.sink().request!(req({ target: `t${i}`, end: 1 + i }))
    // One series with a request in every histogram bucket: more than 150 distinct values.
    const wide = registry.get('bookinfo', 'ratings', 'default', 'v1')
    wide.recordRequest(200, 0.05, 0, false)
    for (let i = 1; i < latencyBoundsMs.length; i++)
      wide.recordRequest(200, latencyBoundsMs[i]! * 0.99, 0, false)
    wide.recordRequest(200, 100_000, 0, false)
    const pending = [...registry.series()].map((s) => ({ labels: s.labels, counts: s.window }))
    const expectedDatums = buildMetricData(pending, { timestamp: new Date(NOW) }).length

    await create().flush()
    expect(endpoint.requests.length).toBeGreaterThanOrEqual(3)
    for (const r of endpoint.requests) {
      expect(r.body.MetricData!.length).toBeLessThanOrEqual(PUT_METRIC_DATA_LIMITS.datumsPerRequest)
    }
    expect(endpoint.requests.some((r) => r.gzip)).toBe(true)
    const data = endpoint.datums()
    expect(data).toHaveLength(expectedDatums)
    expect(data.filter((d) => d.MetricName === 'Requests')).toHaveLength(401)

    const wideLatency = data.filter((d) => d.MetricName === 'Latency' && dims(d).Service === 'ratings')
    expect(wideLatency.length).toBe(2)
    for (const d of wideLatency) {
      expect(d.Values!.length).toBeLessThanOrEqual(PUT_METRIC_DATA_LIMITS.valuesPerDatum)
      expect(d.Values!.length).toBe(d.Counts!.length)
    }
    expect(wideLatency.flatMap((d) => d.Counts!).reduce((a, b) => a + b)).toBe(latencyBoundsMs.length + 1)
  })

  it('retries throttling and 5xx (the SDK retry strategy) and never rejects', async () => {
    registry.sink().request!(req())
    endpoint.failNext(1)
    const pub = create()
    await pub.flush()
    expect(endpoint.received).toHaveLength(2)
    expect(endpoint.requests).toHaveLength(1)
    expect(pub.stats()).toMatchObject({ requests: 1, failedRequests: 0 })

    registry.sink().request!(req())
    endpoint.failNext(1, INTERNAL_ERROR)
    await pub.flush()
    expect(endpoint.requests).toHaveLength(2)
  })

  it('counts a request that fails past the retries, and resolves anyway', async () => {
    registry.sink().request!(req())
    endpoint.failNext(5, INTERNAL_ERROR)
    const pub = create({ clientConfig: { credentials, maxAttempts: 1 } })
    await expect(pub.flush()).resolves.toBeUndefined()
    expect(endpoint.requests).toHaveLength(0)
    expect(pub.stats().failedRequests).toBe(1)
    expect(pub.stats().droppedDatums).toBeGreaterThan(0)
  })

  it('takes the endpoint from MESHGATE_CLOUDWATCH_ENDPOINT', async () => {
    const saved = process.env.MESHGATE_CLOUDWATCH_ENDPOINT
    process.env.MESHGATE_CLOUDWATCH_ENDPOINT = endpoint.url
    try {
      registry.sink().request!(req())
      await create({ endpoint: undefined }).flush()
      expect(endpoint.requests).toHaveLength(1)
    } finally {
      if (saved === undefined) delete process.env.MESHGATE_CLOUDWATCH_ENDPOINT
      else process.env.MESHGATE_CLOUDWATCH_ENDPOINT = saved
    }
  })

  it('flushes on its interval until stopped', async () => {
    registry.sink().request!(req())
    const pub = create({ intervalMs: 20 })
    await endpoint.waitForRequests(1)
    expect(endpoint.requests[0]!.body.Namespace).toBe('meshgate')
    await pub.stop()
    publisher = undefined
    registry.sink().request!(req())
    // After stop the timer is gone: nothing more is sent on its own.
    const seen = endpoint.received.length
    await new Promise((r) => setImmediate(r))
    expect(endpoint.received.length).toBe(seen)
  })
})
