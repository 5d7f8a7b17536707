// Samples from CloudWatch: one GetMetricData call for every key of a tick, three queries per key:
// `Requests` Sum, `Responses5xx` Sum and `Latency` p99, on the exact four-dimension series the
// sidecars (PutMetricData) and Lambda functions (EMF) publish. The period is the whole window,
// rounded up to CloudWatch's 60 s, so a window is normally one datapoint per query; when CloudWatch
// returns several (a window across period boundaries), the analysis sums the counts and takes the
// highest p99.
import type { CloudWatchClient, CloudWatchClientConfig, MetricDataQuery } from '@aws-sdk/client-cloudwatch'
import { lazyModule } from '../lazy-module.ts'
import type { TargetSeries } from './analysis.ts'
import type { MetricReader, SeriesKey } from './metric-reader.ts'

/** GetMetricData takes at most 500 queries per call. */
const QUERIES_PER_CALL = 500
const STANDARD_PERIOD_S = 60
/** A window is one datapoint per query; more pages than this is an endpoint that never ends. */
const MAX_PAGES = 50

export interface CloudWatchReaderOptions {
  namespace: string
  /** For in-process callers; the CLI and the Lambda function use the SDK's own configuration. */
  clientConfig?: CloudWatchClientConfig
}

export function createCloudWatchReader(opts: CloudWatchReaderOptions): MetricReader {
  let client:
    | Promise<{ client: CloudWatchClient; sdk: typeof import('@aws-sdk/client-cloudwatch') }>
    | undefined
  const connect = () => {
    client ??= import('@aws-sdk/client-cloudwatch').then((m) => {
      const sdk = lazyModule(m, 'CloudWatchClient')
      return { sdk, client: new sdk.CloudWatchClient(opts.clientConfig ?? {}) }
    })
    return client
  }
  return {
    name: `cloudwatch (namespace ${opts.namespace})`,
    async read(keys, startMs, endMs) {
      const { client: cw, sdk } = await connect()
      const windowS = Math.max(1, Math.ceil((endMs - startMs) / 1000))
      const period = Math.ceil(windowS / STANDARD_PERIOD_S) * STANDARD_PERIOD_S
      const queries: MetricDataQuery[] = keys.flatMap((k, i) => [
        query(`r${i}`, opts.namespace, 'Requests', k, period, 'Sum'),
        query(`e${i}`, opts.namespace, 'Responses5xx', k, period, 'Sum'),
        query(`l${i}`, opts.namespace, 'Latency', k, period, 'p99'),
      ])
      const values = new Map<string, number[]>()
      for (let at = 0; at < queries.length; at += QUERIES_PER_CALL) {
        let token: string | undefined
        let pages = 0
        do {
          if (++pages > MAX_PAGES)
            throw new Error(`GetMetricData: more than ${MAX_PAGES} pages for one window`)
          const out = await cw.send(
            new sdk.GetMetricDataCommand({
              MetricDataQueries: queries.slice(at, at + QUERIES_PER_CALL),
              StartTime: new Date(startMs),
              EndTime: new Date(endMs),
              ScanBy: 'TimestampAscending',
              NextToken: token,
            }),
          )
          for (const r of out.MetricDataResults ?? []) {
            if (r.Id === undefined) continue
            values.set(r.Id, [...(values.get(r.Id) ?? []), ...(r.Values ?? [])])
          }
          token = out.NextToken
        } while (token)
      }
      return keys.map(
        (_, i): TargetSeries => ({
          requests: values.get(`r${i}`) ?? [],
          errors: values.get(`e${i}`) ?? [],
          p99Ms: values.get(`l${i}`) ?? [],
        }),
      )
    },
  }
}

function query(id: string, namespace: string, metric: string, k: SeriesKey, period: number, stat: string) {
  return {
    Id: id,
    ReturnData: true,
    MetricStat: {
      Metric: {
        Namespace: namespace,
        MetricName: metric,
        Dimensions: [
          { Name: 'Mesh', Value: k.mesh },
          { Name: 'Service', Value: k.service },
          { Name: 'Route', Value: k.route },
          { Name: 'Target', Value: k.target },
        ],
      },
      Period: period,
      Stat: stat,
    },
  } satisfies MetricDataQuery
}
