// Where the analysis gets its samples: meshgate's own series (docs/observability.md), one per
// (Mesh, Service, Route, Target), the same whether the target is a Lambda function or a container,
// because the caller's runtime (sidecar or Lambda middleware) records them.
import type { TargetSeries } from './analysis.ts'

export interface SeriesKey {
  mesh: string
  service: string
  route: string
  target: string
}

export interface MetricReader {
  /** `cloudwatch (namespace meshgate)`, for logs and status. */
  readonly name: string
  /** The samples of each key over [startMs, endMs), in the order of `keys`. */
  read(keys: readonly SeriesKey[], startMs: number, endMs: number): Promise<TargetSeries[]>
}

export class MetricsSpecError extends Error {}

/**
 * `--metrics` / MESHGATE_ROLLOUT_METRICS: `cloudwatch` or `cloudwatch:NAMESPACE` (default namespace
 * `meshgate`; the endpoint is the SDK's, AWS_ENDPOINT_URL_CLOUDWATCH for a local one),
 * `prometheus:URL` (a Prometheus server's query API), `sidecars:URL[,URL...]` (the sidecars' admin
 * listeners, `/metrics` scraped and differenced).
 */
export async function createMetricReader(spec: string): Promise<MetricReader> {
  const colon = spec.indexOf(':')
  const kind = colon < 0 ? spec : spec.slice(0, colon)
  const arg = colon < 0 ? '' : spec.slice(colon + 1)
  if (kind === 'cloudwatch') {
    if (arg !== '' && !/^[\w.\-/#:]{1,255}$/.test(arg))
      throw new MetricsSpecError(`not a CloudWatch namespace: ${JSON.stringify(arg)}`)
    const { createCloudWatchReader } = await import('./cloudwatch-reader.ts')
    return createCloudWatchReader({ namespace: arg || 'meshgate' })
  }
  if (kind === 'prometheus' || kind === 'sidecars') {
    const urls = arg.split(',').filter((u) => u !== '')
    if (urls.length === 0) throw new MetricsSpecError(`${kind}: give a URL (${kind}:http://host:port)`)
    for (const u of urls) {
      if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol))
        throw new MetricsSpecError(`${kind}: not an http(s) URL: ${JSON.stringify(u)}`)
    }
    const m = await import('./prometheus-reader.ts')
    return kind === 'prometheus'
      ? m.createPrometheusQueryReader({ url: urls[0]! })
      : m.createScrapeReader({ urls })
  }
  throw new MetricsSpecError(
    `unknown metrics source ${JSON.stringify(spec)} (cloudwatch[:NAMESPACE], prometheus:URL, sidecars:URL,...)`,
  )
}
