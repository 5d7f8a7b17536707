// CloudWatch Embedded Metric Format for Lambda: metrics written to stdout as structured log lines that
// CloudWatch Logs turns into metrics, with no API call in the handler (Powertools does the same).
//
// Spec points this file keeps to: the root holds `_aws` {Timestamp (epoch ms), CloudWatchMetrics:
// [MetricDirective]}; a directive is {Namespace, Dimensions: DimensionSet[], Metrics: [{Name, Unit}]};
// every dimension key and metric name is also a root member; at most 100 metrics per directive, 30 keys
// per dimension set, 100 numbers per value array.
//
// A dimension key has ONE value per document, so snapshots that touched several (service, route,
// target) series need one document each. The usual invocation touches one series and gets one line;
// the lines are joined with '\n' so the caller still writes once.

import { ConfigMetricNames } from './config-metrics.ts'
import {
  CodeClasses,
  DECISION_METRICS,
  MetricNames,
  type MetricsSnapshot,
  type SeriesCounts,
} from './metrics.ts'

export const EMF_LIMITS = { metricsPerDirective: 100, dimensionsPerSet: 30, valuesPerArray: 100 } as const

export interface EmfOptions {
  namespace: string
  /** Adds `ColdStart: 1` (Count) on the first line of the sandbox's first invocation. */
  coldStart: boolean
  /** Epoch milliseconds. */
  timestamp: number
  /**
   * Extra dimensions on every line, e.g. `{ FunctionName }`. Keys that clash with the series
   * dimensions (Mesh, Service, Route, Target) are dropped; the set is cut to the spec's 30 keys.
   */
  dimensions?: Record<string, string>
  /** Dimensions of the ColdStart metric only, e.g. `{ FunctionName }` (Powertools does the same). */
  coldStartDimensions?: Record<string, string>
  /**
   * Counts of the function's container rather than of a route (the live config's `ConfigReloads`,
   * `ConfigRejected`, `ConfigStale`), all Count: on the first line, in the ColdStart directive (its
   * dimensions), so no invocation writes a second line for them.
   */
  functionMetrics?: Readonly<Record<string, number>>
}

const SERIES_DIMENSIONS = ['Mesh', 'Service', 'Route', 'Target'] as const

/** CloudWatch refuses empty dimension values. */
const NONE = 'none'
/** Spec limits on a dimension: value 1024 characters, key 250. */
const MAX_DIMENSION_VALUE = 1024
const MAX_DIMENSION_KEY = 250

function dimension(value: string): string {
  if (value.length === 0) return NONE
  return value.length > MAX_DIMENSION_VALUE ? value.slice(0, MAX_DIMENSION_VALUE) : value
}

type Unit = 'Count' | 'Milliseconds'
type Member = string | number | number[] | object

interface Metric {
  Name: string
  Unit: Unit
}

/** At most `EMF_LIMITS.valuesPerArray` latency values: one per request while they fit, else quantiles. */
function latencyValues(c: SeriesCounts): number[] {
  const h = c.latency
  const out: number[] = []
  if (h.count <= EMF_LIMITS.valuesPerArray) {
    for (let i = 0; i < h.counts.length; i++) {
      const n = h.counts[i]!
      for (let k = 0; k < n; k++) out.push(round(h.bucketValue(i)))
    }
    return exactEnds(out, c)
  }
  // More requests than the array holds (rare in one invocation): 100 evenly spaced quantiles keep the
  // shape of the distribution for percentiles; `Requests` still carries the exact count.
  for (let k = 0; k < EMF_LIMITS.valuesPerArray; k++) {
    out.push(round(h.percentile(((k + 0.5) / EMF_LIMITS.valuesPerArray) * 100)))
  }
  return exactEnds(out, c)
}

/** The values come out in ascending order; the smallest and largest samples are known exactly. */
function exactEnds(values: number[], c: SeriesCounts): number[] {
  if (values.length > 0) {
    values[0] = round(c.latency.min)
    values[values.length - 1] = round(c.latency.max)
  }
  return values
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

function extraDimensions(dimensions: Record<string, string> | undefined): [string, string][] {
  // A dimension must not shadow a series dimension or a metric member of the same document.
  const reserved = new Set<string>([
    ...SERIES_DIMENSIONS,
    ...Object.values(MetricNames),
    ...CodeClasses.map((c) => `Responses${c}`),
    'ColdStart',
    ...Object.values(ConfigMetricNames),
    '_aws',
  ])
  const out: [string, string][] = []
  for (const [k, v] of Object.entries(dimensions ?? {})) {
    if (reserved.has(k) || k.length === 0 || k.length > MAX_DIMENSION_KEY) continue
    if (out.length + SERIES_DIMENSIONS.length >= EMF_LIMITS.dimensionsPerSet) break
    out.push([k, dimension(v)])
  }
  return out
}

/**
 * EMF documents for one invocation's snapshot (from `registry.drain()`), one per series, joined with
 * '\n' (no trailing newline). Empty string when there is nothing to report.
 */
export function formatEmf(snapshot: MetricsSnapshot, opts: EmfOptions): string {
  const extra = extraDimensions(opts.dimensions)
  // The cold-start metric's own dimensions (e.g. FunctionName), so cold starts do not add up across
  // every function in a namespace; members of the document, never dimensions of a route series.
  const coldExtra = extraDimensions(opts.coldStartDimensions).filter(
    ([k]) => !opts.dimensions || !(k in opts.dimensions),
  )
  const coldKeys = [...extra.map(([k]) => k), ...coldExtra.map(([k]) => k)]
  // The schema wants an integer (epoch ms).
  const timestamp = Math.round(opts.timestamp)
  const extraKeys = extra.map(([k]) => k)
  const lines: string[] = []
  // The function-level directive: ColdStart and the container's own counts, on the first line only.
  const fnMetrics: Metric[] = []
  const fnValues: Record<string, number> = {}
  if (opts.coldStart) {
    fnMetrics.push({ Name: 'ColdStart', Unit: 'Count' })
    fnValues.ColdStart = 1
  }
  for (const [name, value] of Object.entries(opts.functionMetrics ?? {})) {
    if (!Number.isFinite(value) || name in fnValues) continue
    fnMetrics.push({ Name: name, Unit: 'Count' })
    fnValues[name] = value
  }
  const fnDirective = () => ({ Namespace: opts.namespace, Dimensions: [coldKeys], Metrics: fnMetrics })

  for (const { labels, counts } of snapshot) {
    const doc: Record<string, Member> = {}
    const metrics: Metric[] = []
    const put = (name: string, unit: Unit, value: number | number[]): void => {
      metrics.push({ Name: name, Unit: unit })
      doc[name] = value
    }
    if (counts.requests > 0) {
      put(MetricNames.requests, 'Count', counts.requests)
      // 2xx, 4xx and 5xx always (zeros make error-rate math work); the others when they happened.
      for (let i = 0; i < CodeClasses.length; i++) {
        const n = counts.codes[i]!
        const cls = CodeClasses[i]!
        if (n > 0 || cls === '2xx' || cls === '4xx' || cls === '5xx') put(`Responses${cls}`, 'Count', n)
      }
      put(MetricNames.latency, 'Milliseconds', latencyValues(counts))
      put(MetricNames.retries, 'Count', counts.retries)
    }
    if (counts.faults > 0) put(MetricNames.faults, 'Count', counts.faults)
    if (counts.ejections > 0) put(MetricNames.ejections, 'Count', counts.ejections)
    if (counts.circuitOpen > 0) put(MetricNames.circuitOpen, 'Count', counts.circuitOpen)
    if (counts.retryBudgetExhausted > 0) {
      put(MetricNames.retryBudgetExhausted, 'Count', counts.retryBudgetExhausted)
    }
    if (counts.mirrors > 0) put(MetricNames.mirrors, 'Count', counts.mirrors)
    for (let i = 0; i < DECISION_METRICS.length; i++) {
      if (counts.decisions[i]! > 0) put(DECISION_METRICS[i]!, 'Count', counts.decisions[i]!)
    }

    const directives: object[] = [
      {
        Namespace: opts.namespace,
        Dimensions: [[...SERIES_DIMENSIONS, ...extraKeys]],
        Metrics: metrics.slice(0, EMF_LIMITS.metricsPerDirective),
      },
    ]
    if (fnMetrics.length > 0 && lines.length === 0) {
      // Its own directive: a cold start belongs to the function (extra dimensions), not to a route.
      directives.push(fnDirective())
      Object.assign(doc, fnValues)
      for (const [k, v] of coldExtra) doc[k] = v
    }
    doc.Mesh = dimension(labels.mesh)
    doc.Service = dimension(labels.service)
    doc.Route = dimension(labels.route)
    doc.Target = dimension(labels.target)
    for (const [k, v] of extra) doc[k] = v
    lines.push(JSON.stringify({ _aws: { Timestamp: timestamp, CloudWatchMetrics: directives }, ...doc }))
  }

  if (lines.length === 0 && fnMetrics.length > 0) {
    const doc: Record<string, Member> = {
      _aws: { Timestamp: timestamp, CloudWatchMetrics: [fnDirective()] },
      ...fnValues,
    }
    for (const [k, v] of [...extra, ...coldExtra]) doc[k] = v
    lines.push(JSON.stringify(doc))
  }
  return lines.join('\n')
}
