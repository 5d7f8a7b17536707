// The sidecar's metrics as a user sees them (issue 5, "done when" 2 and 4): a sidecar child process
// whose REAL @aws-sdk/client-cloudwatch sends PutMetricData to a local endpoint that speaks awsJson1_0
// (gzip included), and whose admin /metrics is read by a strict Prometheus text-format parser. The
// numbers must agree with what this test sent and measured on the client side.
//
// The publisher's interval is 60 s, longer than this test, so what arrives is the final flush that
// SIGTERM triggers after the drain.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type CloudWatchEndpoint,
  type ReceivedDatum,
  startCloudWatchEndpoint,
} from '../helpers/cloudwatch-endpoint.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { send } from '../sidecar/client.ts'
import { type Family, parsePrometheus } from './prom-parse.ts'

const NAMESPACE = 'MeshgateSidecarTest'
/** Enough routes that one flush's JSON is well past the SDK's 10 KB compression threshold. */
const ROUTES = 20
const PER_ROUTE = 3
const JASON = 10
const N = ROUTES * PER_ROUTE + JASON

let endpoint: CloudWatchEndpoint
let v1: Upstream
let v2: Upstream
let files: ReturnType<typeof meshDir>
let sidecar: SidecarProcess | undefined
let mesh: (timeout: string) => object

const routeName = (i: number) => `r${String(i).padStart(2, '0')}`

beforeAll(async () => {
  endpoint = await startCloudWatchEndpoint()
  v1 = await startUpstream('reviews-v1')
  // v2 answers 404: a status class other than 2xx, and not one that is retried.
  v2 = await startUpstream('reviews-v2', { status: 404 })
  files = meshDir()
  const routes: object[] = [{ name: 'jason', match: { headers: { 'end-user': 'jason' } }, to: 'v2' }]
  for (let i = 0; i < ROUTES; i++) {
    routes.push({ name: routeName(i), match: { path: { prefix: `/${routeName(i)}` } }, to: 'v1' })
  }
  mesh = (timeout: string) => ({
    version: 1,
    mesh: 'cw',
    defaults: { retries: { attempts: 0 }, timeout },
    services: { reviews: { targets: { v1: { http: v1.url }, v2: { http: v2.url } }, routes } },
  })
  const configPath = files.write('mesh.json', mesh('15s'))
  sidecar = await startSidecarProcess({
    configPath,
    service: 'productpage',
    drain: '2s',
    env: {
      MESHGATE_CLOUDWATCH: 'on',
      MESHGATE_CLOUDWATCH_NAMESPACE: NAMESPACE,
      MESHGATE_CLOUDWATCH_ENDPOINT: endpoint.url,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIDLOCALTEST',
      AWS_SECRET_ACCESS_KEY: 'local-test-secret',
    },
  })
})

afterAll(async () => {
  await sidecar?.stop()
  await v1?.close()
  await v2?.close()
  await endpoint?.close()
  files?.remove()
})

/** Client-side latencies (ms) per "route/target" series. */
const measured = new Map<string, number[]>()

function record(series: string, ms: number): void {
  measured.set(series, [...(measured.get(series) ?? []), ms])
}

function dims(d: ReceivedDatum): Record<string, string> {
  return Object.fromEntries((d.Dimensions ?? []).map((x) => [x.Name, x.Value]))
}

function sampleValue(family: Family | undefined, labels: Record<string, string>): number | undefined {
  return family?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

describe('sidecar metrics: CloudWatch PutMetricData and Prometheus /metrics', () => {
  it('answers every request sent through it', async () => {
    for (let i = 0; i < ROUTES; i++) {
      for (let k = 0; k < PER_ROUTE; k++) {
        const r = await send(sidecar!.outbound, { host: 'reviews', path: `/${routeName(i)}/${k}` })
        expect(r.status).toBe(200)
        record(`${routeName(i)}/v1`, r.ms)
      }
    }
    for (let k = 0; k < JASON; k++) {
      const r = await send(sidecar!.outbound, {
        host: 'reviews',
        path: '/r00/jason',
        headers: { 'end-user': 'jason' },
      })
      expect(r.status).toBe(404)
      record('jason/v2', r.ms)
    }
    expect(v1.count() + v2.count()).toBe(N)
  })

  it('exposes the same counts on /metrics, in valid Prometheus text', async () => {
    const res = await fetch(`${sidecar!.admin}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const families = parsePrometheus(await res.text())
    const requests = families.get('meshgate_requests_total')
    const duration = families.get('meshgate_request_duration_seconds')
    expect(requests?.type).toBe('counter')
    expect(duration?.type).toBe('histogram')

    let total = 0
    for (const [series, ms] of measured) {
      const [route, target] = series.split('/') as [string, string]
      const labels = { mesh: 'cw', service: 'reviews', route, target }
      const cls = target === 'v2' ? '4xx' : '2xx'
      expect(sampleValue(requests, { ...labels, code_class: cls }), series).toBe(ms.length)
      total += ms.length
      const count = duration?.samples.find(
        (s) => s.name === 'meshgate_request_duration_seconds_count' && s.labels.route === route,
      )
      expect(count?.value, series).toBe(ms.length)
      // The sidecar's own clock sees less than the client's round trip.
      const sum = duration?.samples.find(
        (s) => s.name === 'meshgate_request_duration_seconds_sum' && s.labels.route === route,
      )
      const clientSum = ms.reduce((a, b) => a + b, 0) / 1000
      expect(sum?.value, series).toBeGreaterThanOrEqual(0)
      expect(sum!.value, series).toBeLessThanOrEqual(clientSum + 0.001)
      // Buckets are cumulative and end at the count.
      const buckets = duration!.samples.filter(
        (s) => s.name === 'meshgate_request_duration_seconds_bucket' && s.labels.route === route,
      )
      for (let i = 1; i < buckets.length; i++) {
        expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value)
      }
      expect(buckets.at(-1)).toMatchObject({ labels: { le: '+Inf' }, value: ms.length })
    }
    expect(total).toBe(N)
  })

  it('counts a config reload', async () => {
    files.write('mesh.json', mesh('14s'))
    let reloads = 0
    for (let i = 0; i < 500 && reloads === 0; i++) {
      await new Promise((r) => setTimeout(r, 20))
      reloads = JSON.parse((await send(sidecar!.admin, { path: '/config' })).body).reloads
    }
    expect(reloads).toBe(1)
  })

  it('publishes the batches on SIGTERM: namespace, dimensions, counts and latency', async () => {
    const before = Date.now()
    await sidecar!.stop(15_000)
    const exit = await sidecar!.exited
    expect(exit).toEqual({ code: 0, signal: null })
    // One access-log line per request.
    expect(sidecar!.accessLogCount()).toBe(N)

    expect(endpoint.requests.length).toBeGreaterThan(0)
    for (const r of endpoint.requests) {
      expect(r.operation).toBe('PutMetricData')
      expect(r.body.Namespace).toBe(NAMESPACE)
      expect(r.headers['x-amz-target']).toBe('GraniteServiceVersion20100801.PutMetricData')
      expect(String(r.headers.authorization)).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDLOCALTEST\/\d{8}\/eu-west-1\/monitoring\//,
      )
      // Bodies this size go out compressed (the endpoint decoded them).
      if (JSON.stringify(r.body).length > 10_240) expect(r.gzip).toBe(true)
    }
    expect(endpoint.requests.some((r) => r.gzip)).toBe(true)

    const all = endpoint.datums()
    // The live config's counters: the sidecar's own, with only the caller's dimensions (none here).
    const config = all.filter((d) => d.MetricName.startsWith('Config'))
    const sum = (name: string) =>
      config.filter((d) => d.MetricName === name).reduce((a, d) => a + (d.Value ?? 0), 0)
    expect(new Set(config.map((d) => d.MetricName))).toEqual(
      new Set(['ConfigReloads', 'ConfigRejected', 'ConfigStale']),
    )
    for (const d of config) {
      expect(d.Unit).toBe('Count')
      expect(d.Dimensions ?? []).toEqual([])
    }
    expect({
      reloads: sum('ConfigReloads'),
      rejected: sum('ConfigRejected'),
      stale: sum('ConfigStale'),
    }).toEqual({
      reloads: 1,
      rejected: 0,
      stale: 0,
    })
    const data = all.filter((d) => !d.MetricName.startsWith('Config'))
    for (const d of data) {
      expect(Object.keys(dims(d))).toEqual(['Mesh', 'Service', 'Route', 'Target'])
      expect(d.StorageResolution).toBe(60)
      // Epoch seconds, stamped at the flush (between the start of this test and now, give or take).
      expect(d.Timestamp).toBeGreaterThanOrEqual(Math.floor(before / 1000) - 120)
      expect(d.Timestamp).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 1)
    }

    let requestSum = 0
    for (const [series, ms] of measured) {
      const [route, target] = series.split('/') as [string, string]
      const mine = data.filter((d) => {
        const x = dims(d)
        return x.Mesh === 'cw' && x.Service === 'reviews' && x.Route === route && x.Target === target
      })
      const of = (name: string) => mine.filter((d) => d.MetricName === name)

      // Requests: a statistic set with one sample per request.
      const req = of('Requests')
      const n = req.reduce((a, d) => a + (d.StatisticValues?.Sum ?? 0), 0)
      expect(n, series).toBe(ms.length)
      for (const d of req) {
        expect(d.Unit).toBe('Count')
        expect(d.StatisticValues).toMatchObject({ SampleCount: n, Minimum: 1, Maximum: 1 })
      }
      requestSum += n

      // Status classes: one 0/1 sample per request, so Sum is the count and SampleCount the requests.
      const good = target === 'v2' ? 'Responses4xx' : 'Responses2xx'
      expect(
        of(good).map((d) => d.StatisticValues),
        series,
      ).toEqual([{ SampleCount: n, Sum: n, Minimum: 1, Maximum: 1 }])
      expect(of('Responses5xx').map((d) => d.StatisticValues?.Sum)).toEqual([0])

      // Latency: values and counts from the histogram, one count per request.
      const latency = of('Latency')
      expect(latency.length).toBeGreaterThan(0)
      const values = latency.flatMap((d) => d.Values ?? [])
      const counts = latency.flatMap((d) => d.Counts ?? [])
      for (const d of latency) {
        expect(d.Unit).toBe('Milliseconds')
        expect(d.Values?.length).toBe(d.Counts?.length)
      }
      expect(
        counts.reduce((a, b) => a + b, 0),
        series,
      ).toBe(ms.length)
      // A value is its bucket's middle, within 4.4% of every sample in the bucket; each sample is part
      // of a client round trip the test timed.
      const clientMax = Math.max(...ms)
      const clientSum = ms.reduce((a, b) => a + b, 0)
      expect(Math.min(...values), series).toBeGreaterThanOrEqual(0)
      expect(Math.max(...values), series).toBeLessThanOrEqual(clientMax * 1.045 + 0.01)
      const weighted = values.reduce((a, v, i) => a + v * counts[i]!, 0)
      expect(weighted, series).toBeLessThanOrEqual(clientSum * 1.045 + 0.01)
    }
    expect(requestSum).toBe(N)
    // Nothing outside the series this test made.
    const series = new Set(data.map((d) => `${dims(d).Route}/${dims(d).Target}`))
    expect([...series].sort()).toEqual([...measured.keys()].sort())
  }, 30_000)
})
