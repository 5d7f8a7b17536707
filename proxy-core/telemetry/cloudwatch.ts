// Sidecar-only adapter: every interval, drain the registry into CloudWatch PutMetricData requests.
// The SDK is imported on the first flush that has data, so the sidecar starts without it and Lambda
// never loads it (Lambda writes EMF instead). Requests never wait on this: flushes run on an unref'd
// timer, errors are counted and swallowed, throttling and 5xx are retried by the SDK's standard
// retry strategy (exponential backoff with jitter), and bodies over 10 KB go out gzipped (the SDK's
// request compression for PutMetricData).

import type { CloudWatchClient, CloudWatchClientConfig, MetricDatum } from '@aws-sdk/client-cloudwatch'
import {
  CodeClasses,
  DECISION_METRICS,
  MetricNames,
  type MetricsRegistry,
  type MetricsSnapshot,
  type SeriesCounts,
} from './metrics.ts'

/** PutMetricData limits: 1000 datums per request, 150 Values per datum, 30 dimensions per datum. */
export const PUT_METRIC_DATA_LIMITS = {
  datumsPerRequest: 1000,
  valuesPerDatum: 150,
  dimensionsPerDatum: 30,
  /** The API takes 1 MB per request; stay well under it (the estimate is the JSON size). */
  bytesPerRequest: 800_000,
} as const

const SERIES_DIMENSIONS = ['Mesh', 'Service', 'Route', 'Target'] as const
/** CloudWatch refuses empty dimension values and takes at most 1024 characters. */
const NONE = 'none'
const MAX_DIMENSION_VALUE = 1024

function dimension(value: string): string {
  if (value.length === 0) return NONE
  return value.length > MAX_DIMENSION_VALUE ? value.slice(0, MAX_DIMENSION_VALUE) : value
}

export interface CloudWatchPublisherOptions {
  registry: Pick<MetricsRegistry, 'drain'>
  namespace: string
  /** Added to every datum after Mesh/Service/Route/Target, e.g. `{ Cluster, TaskFamily }`. */
  dimensions?: Record<string, string>
  /** Default 60 000 ms: CloudWatch's standard resolution. */
  intervalMs?: number
  /** Default `MESHGATE_CLOUDWATCH_ENDPOINT`, else the SDK's regional endpoint. */
  endpoint?: string
  /** Default `AWS_REGION`, else us-east-1. */
  region?: string
  /** Passed to the client (credentials, maxAttempts, ...). */
  clientConfig?: CloudWatchClientConfig
  /** Build the client yourself instead (it is created on the first flush). */
  client?: () => CloudWatchClient | Promise<CloudWatchClient>
  /** Epoch ms for the datums' Timestamp; default Date.now. */
  now?: () => number
  /** 60 (default) or 1 for high-resolution metrics. */
  storageResolution?: 1 | 60
  /**
   * Numbers of the sidecar itself rather than of a series (the live config's ConfigReloads,
   * ConfigRejected, ConfigStale: telemetry/config-metrics.ts), asked at each flush with whether the
   * flush sends series anyway; sent as Count datums with only `dimensions`. Undefined: nothing.
   */
  runtimeMetrics?: (writing: boolean) => Readonly<Record<string, number>> | undefined
}

export interface CloudWatchPublisher {
  /** Drain and send now; resolves when the requests are done (never rejects). */
  flush(): Promise<void>
  /** Stop the timer, wait for a flush in progress, release the client. Call flush() first to keep data. */
  stop(): Promise<void>
  stats(): { requests: number; datums: number; failedRequests: number; droppedDatums: number }
}

function statistic(sampleCount: number, sum: number, min: number, max: number) {
  return { SampleCount: sampleCount, Sum: sum, Minimum: min, Maximum: max }
}

function latencyDatums(c: SeriesCounts, base: Omit<MetricDatum, 'MetricName'>): MetricDatum[] {
  const h = c.latency
  const out: MetricDatum[] = []
  let values: number[] = []
  let counts: number[] = []
  for (let i = 0; i < h.counts.length; i++) {
    const n = h.counts[i]!
    if (n === 0) continue
    values.push(Math.round(h.bucketValue(i) * 1000) / 1000)
    counts.push(n)
    if (values.length === PUT_METRIC_DATA_LIMITS.valuesPerDatum) {
      out.push({
        ...base,
        MetricName: MetricNames.latency,
        Unit: 'Milliseconds',
        Values: values,
        Counts: counts,
      })
      values = []
      counts = []
    }
  }
  if (values.length > 0) {
    out.push({
      ...base,
      MetricName: MetricNames.latency,
      Unit: 'Milliseconds',
      Values: values,
      Counts: counts,
    })
  }
  return out
}

/** The caller's dimensions (e.g. TaskFamily): never one named like a series dimension, within the limit. */
function extraDimensions(dimensions: Record<string, string> | undefined): { Name: string; Value: string }[] {
  return Object.entries(dimensions ?? {})
    .filter(([k]) => k.length > 0 && k.length <= 255 && !(SERIES_DIMENSIONS as readonly string[]).includes(k))
    .slice(0, PUT_METRIC_DATA_LIMITS.dimensionsPerDatum - SERIES_DIMENSIONS.length)
    .map(([Name, v]) => ({ Name, Value: dimension(v) }))
}

/**
 * The datums for one drained snapshot. Counters are statistic sets with one sample per event
 * (Sum = the count). Status classes are one 0/1 sample per request, so their Average is the share of
 * requests in that class (the 5xx rate) and their Sum the count. Latency is Values/Counts from the
 * histogram (bucket middles, within ~4.4%), which keeps CloudWatch percentiles available.
 */
export function buildMetricData(
  snapshot: MetricsSnapshot,
  opts: { dimensions?: Record<string, string>; timestamp: Date; storageResolution?: 1 | 60 },
): MetricDatum[] {
  const extra = extraDimensions(opts.dimensions)
  const out: MetricDatum[] = []
  for (const { labels, counts } of snapshot) {
    const base: Omit<MetricDatum, 'MetricName'> = {
      Dimensions: [
        { Name: 'Mesh', Value: dimension(labels.mesh) },
        { Name: 'Service', Value: dimension(labels.service) },
        { Name: 'Route', Value: dimension(labels.route) },
        { Name: 'Target', Value: dimension(labels.target) },
        ...extra,
      ],
      Timestamp: opts.timestamp,
      StorageResolution: opts.storageResolution ?? 60,
    }
    const counter = (name: string, n: number): void => {
      if (n > 0)
        out.push({ ...base, MetricName: name, Unit: 'Count', StatisticValues: statistic(n, n, 1, 1) })
    }
    const r = counts.requests
    if (r > 0) {
      counter(MetricNames.requests, r)
      for (let i = 0; i < CodeClasses.length; i++) {
        const n = counts.codes[i]!
        const cls = CodeClasses[i]!
        if (n === 0 && cls !== '2xx' && cls !== '4xx' && cls !== '5xx') continue
        out.push({
          ...base,
          MetricName: `Responses${cls}`,
          Unit: 'Count',
          StatisticValues: statistic(r, n, n === r ? 1 : 0, n > 0 ? 1 : 0),
        })
      }
      out.push(...latencyDatums(counts, base))
    }
    counter(MetricNames.retries, counts.retries)
    counter(MetricNames.faults, counts.faults)
    counter(MetricNames.ejections, counts.ejections)
    counter(MetricNames.circuitOpen, counts.circuitOpen)
    counter(MetricNames.retryBudgetExhausted, counts.retryBudgetExhausted)
    counter(MetricNames.mirrors, counts.mirrors)
    for (let i = 0; i < DECISION_METRICS.length; i++) counter(DECISION_METRICS[i]!, counts.decisions[i]!)
  }
  return out
}

/** Split datums into requests within the count and size limits. */
export function chunkMetricData(data: MetricDatum[]): MetricDatum[][] {
  const chunks: MetricDatum[][] = []
  let current: MetricDatum[] = []
  let bytes = 0
  for (const d of data) {
    const size = JSON.stringify(d).length + 1
    if (
      current.length > 0 &&
      (current.length === PUT_METRIC_DATA_LIMITS.datumsPerRequest ||
        bytes + size > PUT_METRIC_DATA_LIMITS.bytesPerRequest)
    ) {
      chunks.push(current)
      current = []
      bytes = 0
    }
    current.push(d)
    bytes += size
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}

export function createCloudWatchPublisher(opts: CloudWatchPublisherOptions): CloudWatchPublisher {
  const now = opts.now ?? Date.now
  let client: CloudWatchClient | undefined
  let sdk: typeof import('@aws-sdk/client-cloudwatch') | undefined
  let chain: Promise<void> = Promise.resolve()
  let requests = 0
  let datums = 0
  let failedRequests = 0
  let droppedDatums = 0

  async function connect(): Promise<CloudWatchClient> {
    sdk ??= await import('@aws-sdk/client-cloudwatch')
    if (client === undefined) {
      if (opts.client !== undefined) {
        client = await opts.client()
      } else {
        const endpoint = opts.endpoint ?? process.env.MESHGATE_CLOUDWATCH_ENDPOINT
        client = new sdk.CloudWatchClient({
          region: opts.region ?? process.env.AWS_REGION ?? 'us-east-1',
          ...(endpoint ? { endpoint } : {}),
          ...opts.clientConfig,
        })
      }
    }
    return client
  }

  async function flushNow(): Promise<void> {
    const snapshot = opts.registry.drain()
    const runtime = opts.runtimeMetrics?.(snapshot.length > 0)
    if (snapshot.length === 0 && runtime === undefined) return
    const timestamp = new Date(now())
    const data = buildMetricData(snapshot, {
      dimensions: opts.dimensions,
      timestamp,
      storageResolution: opts.storageResolution,
    })
    for (const [name, value] of Object.entries(runtime ?? {})) {
      data.push({
        MetricName: name,
        Unit: 'Count',
        Value: value,
        Dimensions: extraDimensions(opts.dimensions),
        Timestamp: timestamp,
        StorageResolution: opts.storageResolution ?? 60,
      })
    }
    let cw: CloudWatchClient
    try {
      cw = await connect()
    } catch {
      failedRequests++
      droppedDatums += data.length
      return
    }
    const { PutMetricDataCommand } = sdk!
    // Sequential: one interval's requests rarely number more than one or two, and this keeps the
    // sidecar's outbound load to CloudWatch flat.
    for (const chunk of chunkMetricData(data)) {
      try {
        await cw.send(new PutMetricDataCommand({ Namespace: opts.namespace, MetricData: chunk }))
        requests++
        datums += chunk.length
      } catch {
        // After the SDK's own retries: the interval's data is lost, not queued (the next interval
        // carries its own numbers; Prometheus keeps the totals).
        failedRequests++
        droppedDatums += chunk.length
      }
    }
  }

  function flush(): Promise<void> {
    chain = chain.then(flushNow).catch(() => {
      failedRequests++
    })
    return chain
  }

  const timer = setInterval(() => void flush(), opts.intervalMs ?? 60_000)
  timer.unref()

  return {
    flush,
    async stop(): Promise<void> {
      clearInterval(timer)
      await chain
      client?.destroy()
      client = undefined
    },
    stats: () => ({ requests, datums, failedRequests, droppedDatums }),
  }
}
