// The readers against what meshgate itself publishes: the sidecar's CloudWatch publisher and the real
// @aws-sdk/client-cloudwatch on both sides of the local endpoint (reached through the SDK's own
// AWS_ENDPOINT_URL_CLOUDWATCH), and the Prometheus text of a registry served on a real socket.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMetricReader } from '../../proxy-core/rollout/metric-reader.ts'
import { histogramQuantile, parsePrometheusText } from '../../proxy-core/rollout/prometheus-reader.ts'
import { createCloudWatchPublisher } from '../../proxy-core/telemetry/cloudwatch.ts'
import { createMetricsRegistry } from '../../proxy-core/telemetry/metrics.ts'
import { formatPrometheus } from '../../proxy-core/telemetry/prometheus.ts'
import { type CloudWatchEndpoint, startCloudWatchEndpoint } from '../helpers/cloudwatch-endpoint.ts'

let cw: CloudWatchEndpoint
beforeAll(async () => {
  cw = await startCloudWatchEndpoint()
  process.env.AWS_REGION = 'us-east-1'
  process.env.AWS_ACCESS_KEY_ID = 'test'
  process.env.AWS_SECRET_ACCESS_KEY = 'test'
  process.env.AWS_ENDPOINT_URL_CLOUDWATCH = cw.url
})
afterAll(() => cw.close())

const key = (target: string) => ({ mesh: 'shop', service: 'reviews', route: 'default', target })

describe('CloudWatch reader', () => {
  it('reads back Requests, Responses5xx and the p99 the sidecar published, per target', async () => {
    const registry = createMetricsRegistry()
    const t0 = Date.UTC(2026, 0, 1, 0, 0, 10)
    let now = t0
    const publisher = createCloudWatchPublisher({
      registry,
      namespace: 'meshgate',
      endpoint: cw.url,
      now: () => now,
      intervalMs: 3_600_000,
    })
    const v1 = registry.get('shop', 'reviews', 'default', 'v1')
    const v2 = registry.get('shop', 'reviews', 'default', 'v2')
    for (let i = 0; i < 200; i++) v1.recordRequest(200, 10, 0, false)
    for (let i = 0; i < 100; i++) v2.recordRequest(i % 5 === 0 ? 503 : 200, i < 95 ? 20 : 400, 0, false)
    await publisher.flush()
    now = t0 + 2_000
    for (let i = 0; i < 50; i++) v2.recordRequest(200, 20, 0, false)
    await publisher.flush()
    now = t0 + 120_000 // outside the window read below
    v2.recordRequest(500, 9000, 0, false)
    await publisher.flush()
    await publisher.stop()

    const reader = await createMetricReader('cloudwatch')
    const [canary, stable] = await reader.read([key('v2'), key('v1')], t0, t0 + 5_000)
    expect(canary!.requests).toEqual([150])
    expect(canary!.errors).toEqual([20])
    // 5 of 150 at 400 ms: above the 99th percentile's rank, so the p99 is the slow bucket.
    expect(canary!.p99Ms[0]).toBeGreaterThan(380)
    expect(stable!.requests).toEqual([200])
    expect(stable!.errors).toEqual([0])
    expect(stable!.p99Ms[0]).toBeCloseTo(10, -1)
    const [none] = await reader.read([key('v9')], t0, t0 + 5_000)
    expect(none).toEqual({ requests: [], errors: [], p99Ms: [] })
    const get = cw.requests.filter((r) => r.operation === 'GetMetricData')
    expect(get[0]!.body.MetricDataQueries).toHaveLength(6)
  })
})

describe('Prometheus readers', () => {
  let server: Server
  let text = ''
  let url = ''
  beforeAll(async () => {
    server = createServer((_req, res) => res.end(text))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  it("sidecars: differences of the scraped counters from the window's first scrape", async () => {
    const registry = createMetricsRegistry()
    const v2 = registry.get('shop', 'reviews', 'default', 'v2')
    for (let i = 0; i < 40; i++) v2.recordRequest(200, 5, 0, false)
    text = formatPrometheus(registry)
    const reader = await createMetricReader(`sidecars:${url}`)
    const first = await reader.read([key('v2')], 1000, 2000)
    expect(first[0]!.requests).toEqual([0])
    for (let i = 0; i < 100; i++) v2.recordRequest(i < 10 ? 502 : 200, i < 98 ? 5 : 300, 0, false)
    text = formatPrometheus(registry)
    const [w] = await reader.read([key('v2')], 1000, 3000)
    expect(w!.requests).toEqual([100])
    expect(w!.errors).toEqual([10])
    expect(w!.p99Ms[0]).toBeGreaterThan(200)
  })

  it('sidecars: the next window counts from the read that ended the last one, not from its own first look', async () => {
    const registry = createMetricsRegistry()
    const v2 = registry.get('shop', 'reviews', 'default', 'v2')
    const v1 = registry.get('shop', 'reviews', 'default', 'v1')
    text = formatPrometheus(registry)
    const reader = await createMetricReader(`sidecars:${url}`)
    await reader.read([key('v2'), key('v1')], 1000, 2000)
    for (let i = 0; i < 7; i++) v2.recordRequest(200, 5, 0, false)
    text = formatPrometheus(registry)
    // The controller decides on this read and starts the next step at its end (3000).
    const [decided] = await reader.read([key('v2'), key('v1')], 1000, 3000)
    expect(decided!.requests).toEqual([7])
    for (let i = 0; i < 5; i++) v2.recordRequest(200, 5, 0, false)
    for (let i = 0; i < 3; i++) v1.recordRequest(500, 5, 0, false)
    text = formatPrometheus(registry)
    const [c, s] = await reader.read([key('v2'), key('v1')], 3000, 4000)
    expect(c!.requests).toEqual([5])
    expect(s!.requests).toEqual([3])
    expect(s!.errors).toEqual([3])
    // A window that starts after the newest read has no read at its start: its first look counts nothing.
    for (let i = 0; i < 4; i++) v2.recordRequest(200, 5, 0, false)
    text = formatPrometheus(registry)
    const [late] = await reader.read([key('v2')], 4500, 5000)
    expect(late!.requests).toEqual([0])
    v2.recordRequest(200, 5, 0, false)
    text = formatPrometheus(registry)
    const [next] = await reader.read([key('v2')], 4500, 6000)
    expect(next!.requests).toEqual([1])
  })

  it('parses labels with escapes and skips what it cannot read', () => {
    const s = parsePrometheusText(
      '# HELP x\nmeshgate_requests_total{mesh="a\\"b",service="s",code_class="5xx"} 3\nbroken{ 1\nup 1 1700000000\n',
    )
    expect(s).toEqual([
      { name: 'meshgate_requests_total', labels: { mesh: 'a"b', service: 's', code_class: '5xx' }, value: 3 },
      { name: 'up', labels: {}, value: 1 },
    ])
  })

  it('skips a line too long to be one of ours, without reading it', () => {
    const long = `meshgate_requests_total{mesh="${'}'.repeat(20_000)} ${' '.repeat(20_000)}x`
    expect(parsePrometheusText(`${long}\nup 1\n`)).toEqual([{ name: 'up', labels: {}, value: 1 }])
  })

  it('histogramQuantile: linear in the bucket, the highest finite bound in +Inf, NaN when empty', () => {
    expect(
      histogramQuantile(
        0.5,
        new Map([
          [0.1, 0],
          [0.2, 10],
          [Number.POSITIVE_INFINITY, 10],
        ]),
      ),
    ).toBeCloseTo(150)
    expect(
      histogramQuantile(
        0.99,
        new Map([
          [0.1, 1],
          [Number.POSITIVE_INFINITY, 10],
        ]),
      ),
    ).toBe(100)
    expect(histogramQuantile(0.99, new Map())).toBeNaN()
  })

  it('refuses a metrics source it does not know', async () => {
    await expect(createMetricReader('datadog')).rejects.toThrow(/unknown metrics source/)
    await expect(createMetricReader('prometheus:ftp://x')).rejects.toThrow(/not an http/)
  })
})
