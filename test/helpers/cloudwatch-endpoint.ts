// A local CloudWatch endpoint that speaks the wire protocol the real @aws-sdk/client-cloudwatch uses
// (awsJson1_0 with query compatibility): POST /, `x-amz-target: GraniteServiceVersion20100801.<Op>`,
// JSON body, gzip when `content-encoding: gzip`. It records every request and answers `200 {}`, or an
// error on demand, so tests run the real client against it. No signature check: any credentials pass.
// GetMetricData answers from the PutMetricData datums it received, as CloudWatch would (see
// getMetricData below): the rollout controller's real client reads back what the sidecars published.

import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'

export const CLOUDWATCH_TARGET_PREFIX = 'GraniteServiceVersion20100801.'

export interface ReceivedStatisticSet {
  SampleCount: number
  Sum: number
  Minimum: number
  Maximum: number
}
export interface ReceivedDatum {
  MetricName: string
  Dimensions?: { Name: string; Value: string }[]
  /** Epoch seconds on the wire. */
  Timestamp?: number
  Value?: number
  StatisticValues?: ReceivedStatisticSet
  Values?: number[]
  Counts?: number[]
  Unit?: string
  StorageResolution?: number
}
export interface ReceivedRequest {
  /** The operation, e.g. `PutMetricData`. */
  operation: string
  gzip: boolean
  headers: IncomingHttpHeaders
  /** The parsed JSON body (for PutMetricData: Namespace and MetricData). */
  body: { Namespace?: string; MetricData?: ReceivedDatum[]; [k: string]: unknown }
}

export interface InjectedError {
  status: number
  /** The query-protocol error code, e.g. `Throttling`, `InternalServiceError`. */
  code: string
  message?: string
}

export interface CloudWatchEndpoint {
  /** `http://127.0.0.1:<port>`: pass as the client's `endpoint`. */
  url: string
  /** Every request answered with success, in arrival order. */
  readonly requests: ReceivedRequest[]
  /** Every request received, failed ones included. */
  readonly received: ReceivedRequest[]
  /** Answer the next `n` requests with `error` (default: a 400 Throttling, which the SDK retries). */
  failNext(n: number, error?: InjectedError): void
  /** Resolves once `n` successful requests have arrived. */
  waitForRequests(n: number): Promise<void>
  /** Every datum of every successful PutMetricData, flattened. */
  datums(): ReceivedDatum[]
  close(): Promise<void>
}

export const THROTTLING: InjectedError = { status: 400, code: 'Throttling', message: 'Rate exceeded' }
export const INTERNAL_ERROR: InjectedError = { status: 500, code: 'InternalServiceError', message: 'boom' }

export async function startCloudWatchEndpoint(): Promise<CloudWatchEndpoint> {
  const requests: ReceivedRequest[] = []
  const received: ReceivedRequest[] = []
  const failures: InjectedError[] = []
  const waiters: { n: number; resolve: () => void }[] = []

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const reply = (status: number, body: object, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', ...headers })
        res.end(JSON.stringify(body))
      }
      const target = String(req.headers['x-amz-target'] ?? '')
      if (req.method !== 'POST' || !target.startsWith(CLOUDWATCH_TARGET_PREFIX)) {
        reply(400, { __type: 'UnknownOperationException', message: `no target ${target}` })
        return
      }
      const gzip = req.headers['content-encoding'] === 'gzip'
      let body: ReceivedRequest['body']
      try {
        const raw = Buffer.concat(chunks)
        body = JSON.parse((gzip ? gunzipSync(raw) : raw).toString('utf8'))
      } catch {
        reply(400, { __type: 'SerializationException', message: 'bad body' })
        return
      }
      const entry: ReceivedRequest = {
        operation: target.slice(CLOUDWATCH_TARGET_PREFIX.length),
        gzip,
        headers: req.headers,
        body,
      }
      received.push(entry)
      const failure = failures.shift()
      if (failure !== undefined) {
        // awsJson1_0 error shape; query-compatible services also name the code in x-amzn-query-error.
        reply(
          failure.status,
          { __type: failure.code, message: failure.message ?? failure.code },
          { 'x-amzn-query-error': `${failure.code};${failure.status >= 500 ? 'Receiver' : 'Sender'}` },
        )
        return
      }
      requests.push(entry)
      if (entry.operation === 'GetMetricData') {
        const answer = getMetricData(body, requests)
        if ('error' in answer) reply(400, { __type: 'ValidationError', message: answer.error })
        else reply(200, answer)
        return
      }
      reply(200, {})
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (requests.length >= waiters[i]!.n) waiters.splice(i, 1)[0]!.resolve()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    received,
    failNext(n, error = THROTTLING) {
      for (let i = 0; i < n; i++) failures.push(error)
    },
    waitForRequests(n) {
      if (requests.length >= n) return Promise.resolve()
      return new Promise((resolve) => waiters.push({ n, resolve }))
    },
    datums: () => requests.flatMap((r) => r.body.MetricData ?? []),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

// ---------------------------------------------------------------------------------------------
// GetMetricData over the received datums. CloudWatch's rules that matter to a reader: a MetricStat
// matches a series only with exactly the same dimension set; datapoints are per Period from
// StartTime, over [StartTime, EndTime); Sum/SampleCount/Average/Minimum/Maximum use statistic sets and
// values alike; a percentile (pNN) needs the values (a statistic set alone has none); a period with
// no data has no datapoint (not a zero); ScanBy defaults to TimestampDescending. Math expressions
// and the rest are refused, so a test cannot rely on something this endpoint does not do.

interface MetricStatQuery {
  Id?: string
  ReturnData?: boolean
  Label?: string
  Expression?: string
  MetricStat?: {
    Metric?: { Namespace?: string; MetricName?: string; Dimensions?: { Name: string; Value: string }[] }
    Period?: number
    Stat?: string
    Unit?: string
  }
}

interface Bucket {
  values: { v: number; n: number }[]
  sets: ReceivedStatisticSet[]
}

const STAT = /^(Sum|SampleCount|Average|Minimum|Maximum|p(\d{1,2}(?:\.\d+)?|100))$/

function sameDimensions(
  a: { Name: string; Value: string }[] = [],
  b: { Name: string; Value: string }[] = [],
) {
  if (a.length !== b.length) return false
  const key = (d: { Name: string; Value: string }[]) =>
    d
      .map((x) => `${x.Name}=${x.Value}`)
      .sort()
      .join('\n')
  return key(a) === key(b)
}

function statOf(stat: string, b: Bucket): number | undefined {
  let sum = 0
  let count = 0
  let min = Number.POSITIVE_INFINITY
  let max = Number.NEGATIVE_INFINITY
  for (const { v, n } of b.values) {
    sum += v * n
    count += n
    min = Math.min(min, v)
    max = Math.max(max, v)
  }
  for (const s of b.sets) {
    sum += s.Sum
    count += s.SampleCount
    min = Math.min(min, s.Minimum)
    max = Math.max(max, s.Maximum)
  }
  if (count === 0) return undefined
  if (stat === 'Sum') return sum
  if (stat === 'SampleCount') return count
  if (stat === 'Average') return sum / count
  if (stat === 'Minimum') return min
  if (stat === 'Maximum') return max
  const p = Number(stat.slice(1))
  const values = b.values.filter((x) => x.n > 0).sort((x, y) => x.v - y.v)
  const total = values.reduce((t, x) => t + x.n, 0)
  if (total === 0) return undefined
  const rank = Math.max(1, Math.ceil((p / 100) * total))
  let seen = 0
  for (const x of values) {
    seen += x.n
    if (seen >= rank) return x.v
  }
  return values[values.length - 1]!.v
}

function getMetricData(
  body: ReceivedRequest['body'],
  received: readonly ReceivedRequest[],
): { error: string } | { MetricDataResults: object[]; Messages: [] } {
  const queries = body.MetricDataQueries as MetricStatQuery[] | undefined
  const start = body.StartTime as number | undefined
  const end = body.EndTime as number | undefined
  if (!Array.isArray(queries) || queries.length === 0 || queries.length > 500)
    return { error: 'MetricDataQueries: 1 to 500 queries' }
  if (typeof start !== 'number' || typeof end !== 'number' || !(end > start))
    return { error: 'StartTime and EndTime: EndTime must be after StartTime' }
  const puts = received.filter((r) => r.operation === 'PutMetricData')
  const results: object[] = []
  for (const q of queries) {
    if (typeof q.Id !== 'string' || !/^[a-z][a-zA-Z0-9_]{0,254}$/.test(q.Id))
      return { error: `Id ${JSON.stringify(q.Id)}: must start with a lower-case letter` }
    if (q.Expression !== undefined || q.MetricStat === undefined)
      return { error: `${q.Id}: only MetricStat queries are supported here` }
    const { Metric: m, Period: period, Stat: stat } = q.MetricStat
    if (typeof period !== 'number' || period < 1 || (period >= 60 && period % 60 !== 0))
      return { error: `${q.Id}: Period must be 1, 5, 10, 30 or a multiple of 60` }
    if (typeof stat !== 'string' || !STAT.test(stat)) return { error: `${q.Id}: unknown statistic ${stat}` }
    if (!m?.Namespace || !m.MetricName) return { error: `${q.Id}: Metric needs Namespace and MetricName` }
    const buckets = new Map<number, Bucket>()
    for (const put of puts) {
      if (put.body.Namespace !== m.Namespace) continue
      for (const d of put.body.MetricData ?? []) {
        if (d.MetricName !== m.MetricName || !sameDimensions(d.Dimensions, m.Dimensions)) continue
        if (q.MetricStat.Unit !== undefined && d.Unit !== q.MetricStat.Unit) continue
        const t = d.Timestamp
        if (typeof t !== 'number' || t < start || t >= end) continue
        const slot = start + Math.floor((t - start) / period) * period
        const b = buckets.get(slot) ?? { values: [], sets: [] }
        buckets.set(slot, b)
        if (d.Value !== undefined) b.values.push({ v: d.Value, n: 1 })
        for (const [i, v] of (d.Values ?? []).entries()) b.values.push({ v, n: d.Counts?.[i] ?? 1 })
        if (d.StatisticValues) b.sets.push(d.StatisticValues)
      }
    }
    if (q.ReturnData === false) continue
    const slots = [...buckets.keys()].sort((a, b) => (body.ScanBy === 'TimestampAscending' ? a - b : b - a))
    const timestamps: number[] = []
    const values: number[] = []
    for (const slot of slots) {
      const v = statOf(stat, buckets.get(slot)!)
      if (v === undefined) continue
      timestamps.push(slot)
      values.push(v)
    }
    results.push({
      Id: q.Id,
      Label: q.Label ?? m.MetricName,
      Timestamps: timestamps,
      Values: values,
      StatusCode: 'Complete',
    })
  }
  return { MetricDataResults: results, Messages: [] }
}
