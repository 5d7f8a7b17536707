// In-memory metrics per (mesh, service, route, target): counters and a fixed-bucket latency histogram.
// Recording is allocation-free once a series exists: the series is found through nested Maps keyed by
// the label strings the event already carries (no joined key is built per request), and a caller on a
// hot path may hold the Series itself (`registry.get(...)`).
//
// Each series keeps two sets of numbers: `total` (cumulative since start, for Prometheus, which wants
// counters) and `window` (since the last `drain()`, for CloudWatch and EMF, which want deltas).
//
// One vocabulary for every output (see `MetricNames`):
//
//   meaning                    CloudWatch / EMF name (unit)   Prometheus
//   requests answered          Requests (Count)               meshgate_requests_total{code_class}
//   responses by status class  Responses2xx..5xx (Count)      meshgate_requests_total{code_class="2xx"...}
//   latency, end to end        Latency (Milliseconds)         meshgate_request_duration_seconds (histogram)
//   retries sent               Retries (Count)                meshgate_retries_total
//   faults injected            FaultsInjected (Count)         meshgate_faults_injected_total
//   endpoint ejections         Ejections (Count)              meshgate_ejections_total
//   circuit-open rejections    CircuitOpen (Count)            meshgate_circuit_open_total
//   retry budget exhausted     RetryBudgetExhausted (Count)   meshgate_retry_budget_exhausted_total
//   requests mirrored          Mirrors (Count)                meshgate_mirrors_total
//   receiver decisions         AuthzAllowed, AuthzDenied,     meshgate_authz_decisions_total{decision=
//                              AuthzAudited, Unauthenticated,   allow|deny|audit|unauthenticated|
//                              RateLimited (Count)              rate_limited}
//
// The live config's counters are per runtime, not per series: config-metrics.ts.

import { ErrorCodes } from '../engine/errors.ts'
import type { MeshEventKind, TelemetrySink } from '../engine/types.ts'

export const MetricNames = {
  requests: 'Requests',
  latency: 'Latency',
  retries: 'Retries',
  faults: 'FaultsInjected',
  ejections: 'Ejections',
  circuitOpen: 'CircuitOpen',
  retryBudgetExhausted: 'RetryBudgetExhausted',
  mirrors: 'Mirrors',
  authzAllowed: 'AuthzAllowed',
  authzDenied: 'AuthzDenied',
  authzAudited: 'AuthzAudited',
  unauthenticated: 'Unauthenticated',
  rateLimited: 'RateLimited',
} as const

/** The CloudWatch / EMF name of each receiver decision, indexed like `Decisions`. */
export const DECISION_METRICS = [
  MetricNames.authzAllowed,
  MetricNames.authzDenied,
  MetricNames.authzAudited,
  MetricNames.unauthenticated,
  MetricNames.rateLimited,
] as const

/** Receiver decisions by index (a bounded label): what `decisions[i]` counts. */
export const Decisions = ['allow', 'deny', 'audit', 'unauthenticated', 'rate_limited'] as const
const DECISION_OF_EVENT: Readonly<Partial<Record<MeshEventKind, number>>> = {
  'authz-allow': 0,
  'authz-deny': 1,
  'authz-audit': 2,
  unauthenticated: 3,
  'rate-limited': 4,
}

/** Status classes by index: 0 is anything outside 100–599, 1..5 are 1xx..5xx. */
export const CodeClasses = ['other', '1xx', '2xx', '3xx', '4xx', '5xx'] as const

/** gRPC statuses by index: 0..16 the codes, 17 any other number, 18 a call that ended without one. */
export const GRPC_OTHER_STATUS = 17
export const GRPC_NO_STATUS = 18
const GRPC_SLOTS = 19

// ---------------------------------------------------------------------------------------------
// Latency histogram. Upper bounds 0.1 ms × 2^(i/8): eight buckets per doubling, so a value is known
// within a factor 2^(1/8) and the bucket's geometric middle is within ±4.4% of any value in it (the p50,
// p90, p99 target is ~5%). 155 bounds reach 62.4 s; slower requests land in one overflow bucket.

const BUCKETS_PER_OCTAVE = 8
const FIRST_BOUND_MS = 0.1
const BOUND_COUNT = 155

/** Upper bound (inclusive, ms) of each bucket; bucket `BOUND_COUNT` is the overflow (> last bound). */
export const latencyBoundsMs: Float64Array = (() => {
  const b = new Float64Array(BOUND_COUNT)
  for (let i = 0; i < BOUND_COUNT; i++) b[i] = FIRST_BOUND_MS * 2 ** (i / BUCKETS_PER_OCTAVE)
  return b
})()
export const LATENCY_BUCKETS = BOUND_COUNT + 1
const HALF_STEP = 2 ** (-1 / (2 * BUCKETS_PER_OCTAVE))

function bucketOf(ms: number): number {
  if (!(ms > FIRST_BOUND_MS)) return 0 // also NaN and negatives
  let i = Math.ceil(Math.log2(ms / FIRST_BOUND_MS) * BUCKETS_PER_OCTAVE)
  // log2 may land one bucket off at an exact bound: settle against the table.
  if (i > BOUND_COUNT) return BOUND_COUNT
  while (i > 0 && ms <= latencyBoundsMs[i - 1]!) i--
  while (i < BOUND_COUNT && ms > latencyBoundsMs[i]!) i++
  return i
}

export class Histogram {
  /** Per-bucket counts, indexed like `latencyBoundsMs` plus the overflow bucket at the end. */
  readonly counts: Float64Array = new Float64Array(LATENCY_BUCKETS)
  count = 0
  /** Milliseconds. */
  sum = 0
  min = Number.POSITIVE_INFINITY
  max = Number.NEGATIVE_INFINITY

  record(ms: number): void {
    // biome-ignore lint/complexity/useMathMinMax: Math.max keeps NaN; this maps NaN to 0.
    const v = ms > 0 ? ms : 0
    this.counts[bucketOf(v)]!++
    this.count++
    this.sum += v
    if (v < this.min) this.min = v
    if (v > this.max) this.max = v
  }

  /**
   * A representative value (ms) for bucket `i`: its geometric middle, kept inside [min, max] so the
   * lowest and highest buckets never report values that were not seen.
   */
  bucketValue(i: number): number {
    let v: number
    if (i >= BOUND_COUNT) v = this.max
    else if (i === 0) v = this.min
    else v = latencyBoundsMs[i]! * HALF_STEP
    return Math.min(this.max, Math.max(this.min, v))
  }

  /** The p-th percentile (p in 0–100) in ms, within ~4.4%; NaN when empty. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN
    if (p <= 0) return this.min
    if (p >= 100) return this.max
    const rank = Math.max(1, Math.ceil((p / 100) * this.count))
    let seen = 0
    for (let i = 0; i < LATENCY_BUCKETS; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return this.bucketValue(i)
    }
    return this.max
  }

  reset(): void {
    this.counts.fill(0)
    this.count = 0
    this.sum = 0
    this.min = Number.POSITIVE_INFINITY
    this.max = Number.NEGATIVE_INFINITY
  }

  copyFrom(other: Histogram): this {
    this.counts.set(other.counts)
    this.count = other.count
    this.sum = other.sum
    this.min = other.min
    this.max = other.max
    return this
  }
}

// ---------------------------------------------------------------------------------------------
// Series

export interface SeriesLabels {
  readonly mesh: string
  readonly service: string
  /** '' when the request matched no route (no_route, unknown_service). */
  readonly route: string
  /** '' when no target was chosen. */
  readonly target: string
}

/** The numbers of one series over some span of time. */
export class SeriesCounts {
  requests = 0
  /** Responses by status class, indexed like `CodeClasses`. */
  readonly codes: Float64Array = new Float64Array(CodeClasses.length)
  retries = 0
  faults = 0
  ejections = 0
  circuitOpen = 0
  retryBudgetExhausted = 0
  mirrors = 0
  /** gRPC calls by status (indexed as GRPC_*); made on the series' first gRPC call. */
  grpc: Float64Array | undefined
  /** Receiver decisions, indexed like `Decisions`. */
  readonly decisions: Float64Array = new Float64Array(Decisions.length)
  readonly latency: Histogram = new Histogram()

  isEmpty(): boolean {
    return (
      this.requests === 0 &&
      this.decisions.every((n) => n === 0) &&
      this.retries === 0 &&
      this.faults === 0 &&
      this.ejections === 0 &&
      this.circuitOpen === 0 &&
      this.retryBudgetExhausted === 0 &&
      this.mirrors === 0
    )
  }

  /** Responses of class `cls` ('2xx'...). */
  code(cls: (typeof CodeClasses)[number]): number {
    return this.codes[CodeClasses.indexOf(cls)]!
  }

  reset(): void {
    this.requests = 0
    this.codes.fill(0)
    this.retries = 0
    this.faults = 0
    this.ejections = 0
    this.circuitOpen = 0
    this.retryBudgetExhausted = 0
    this.mirrors = 0
    this.grpc?.fill(0)
    this.decisions.fill(0)
    this.latency.reset()
  }

  copyFrom(other: SeriesCounts): this {
    this.requests = other.requests
    this.codes.set(other.codes)
    this.retries = other.retries
    this.faults = other.faults
    this.ejections = other.ejections
    this.circuitOpen = other.circuitOpen
    this.retryBudgetExhausted = other.retryBudgetExhausted
    this.mirrors = other.mirrors
    if (other.grpc !== undefined) {
      this.grpc ??= new Float64Array(GRPC_SLOTS)
      this.grpc.set(other.grpc)
    }
    this.decisions.set(other.decisions)
    this.latency.copyFrom(other.latency)
    return this
  }
}

function codeClass(status: number): number {
  return status >= 100 && status < 600 ? Math.floor(status / 100) : 0
}

export class Series {
  readonly labels: SeriesLabels
  /** Since the registry was created: Prometheus counters. */
  readonly total: SeriesCounts = new SeriesCounts()
  /** Since the last drain(): CloudWatch and EMF deltas. */
  readonly window: SeriesCounts = new SeriesCounts()

  constructor(labels: SeriesLabels) {
    this.labels = labels
  }

  /** One request answered (by the upstream or by the mesh itself). */
  recordRequest(status: number, durationMs: number, retries: number, faultInjected: boolean): void {
    const cls = codeClass(status)
    this.add(this.total, cls, durationMs, retries, faultInjected)
    this.add(this.window, cls, durationMs, retries, faultInjected)
  }

  private add(c: SeriesCounts, cls: number, durationMs: number, retries: number, fault: boolean): void {
    c.requests++
    c.codes[cls]!++
    c.retries += retries
    if (fault) c.faults++
    c.latency.record(durationMs)
  }

  /** One gRPC call's status (undefined: it ended without one). */
  recordGrpc(status: number | undefined): void {
    const i =
      status === undefined
        ? GRPC_NO_STATUS
        : status >= 0 && status < GRPC_OTHER_STATUS
          ? status
          : GRPC_OTHER_STATUS
    this.total.grpc ??= new Float64Array(GRPC_SLOTS)
    this.window.grpc ??= new Float64Array(GRPC_SLOTS)
    this.total.grpc[i]!++
    this.window.grpc[i]!++
  }

  recordEvent(kind: MeshEventKind): void {
    this.bump(this.total, kind)
    this.bump(this.window, kind)
  }

  private bump(c: SeriesCounts, kind: MeshEventKind): void {
    if (kind === 'ejection') c.ejections++
    else if (kind === 'circuit-open') c.circuitOpen++
    else if (kind === 'retry-budget-exhausted') c.retryBudgetExhausted++
    else if (kind === 'mirror') c.mirrors++
    else {
      const d = DECISION_OF_EVENT[kind]
      if (d !== undefined) c.decisions[d]!++
    }
  }
}

/** What `drain()` hands a publisher: each series that saw anything since the previous drain. */
export interface SeriesSnapshot {
  readonly labels: SeriesLabels
  readonly counts: SeriesCounts
}
export type MetricsSnapshot = readonly SeriesSnapshot[]

// ---------------------------------------------------------------------------------------------
// Registry

export interface MetricsRegistry {
  /** The series for these labels, created on first use. Hold it to skip the lookup. */
  get(mesh: string, service: string, route?: string, target?: string): Series
  /** Feeds the registry from the pipeline's events (the same object every call). */
  sink(): TelemetrySink
  /** Every series, in creation order, with cumulative totals. */
  series(): Iterable<Series>
  /** Snapshot of the window since the previous drain, then reset the windows (totals are kept). */
  drain(): MetricsSnapshot
}

export interface MetricsRegistryOptions {
  /**
   * Series beyond this many share one overflow series (service `_other`): a last bound behind the
   * `unknown` bucket, should a caller hand the registry label values that are names but not the
   * config's.
   */
  maxSeries?: number
}

/** 2000: a mesh of 50 services × 10 routes × 4 targets, with room to spare. */
const DEFAULT_MAX_SERIES = 2000
export const OVERFLOW_SERVICE = '_other'

/**
 * The one bucket for label values an outsider chooses: the Host of a request for a service the mesh
 * does not have, and any service, route or target label that is not a name the config could hold.
 * Config names are DNS labels, so a made-up value is told apart without knowing the config; the
 * access log keeps the raw value (bounded), metrics never do.
 */
export const UNKNOWN_LABEL = 'unknown'
/** The config's name rule (config/mesh-schema.ts NAME). */
const CONFIG_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/** `value` when it can be a config name (or is empty: no route, no target), else `unknown`. */
function boundedLabel(value: string): string {
  return value === '' || value === OVERFLOW_SERVICE || CONFIG_NAME.test(value) ? value : UNKNOWN_LABEL
}

type Level<T> = Map<string, T>

export function createMetricsRegistry(options: MetricsRegistryOptions = {}): MetricsRegistry {
  const maxSeries = options.maxSeries ?? DEFAULT_MAX_SERIES
  const tree: Level<Level<Level<Level<Series>>>> = new Map()
  const all: Series[] = []

  function child<T>(level: Level<T>, key: string, make: () => T): T {
    let v = level.get(key)
    if (v === undefined) {
      v = make()
      level.set(key, v)
    }
    return v
  }

  function get(mesh: string, service: string, route = '', target = ''): Series {
    const found = tree.get(mesh)?.get(service)?.get(route)?.get(target)
    if (found !== undefined) return found
    // Checked only when a series would be created: the hot path is the lookup above.
    const s = boundedLabel(service)
    const r = boundedLabel(route)
    const t = boundedLabel(target)
    if (s !== service || r !== route || t !== target) return get(mesh, s, r, t)
    if (all.length >= maxSeries && service !== OVERFLOW_SERVICE) return get(mesh, OVERFLOW_SERVICE)
    const byService = child(tree, mesh, () => new Map())
    const byRoute = child(byService, service, () => new Map())
    const byTarget = child(byRoute, route, () => new Map())
    const series = new Series(Object.freeze({ mesh, service, route, target }))
    byTarget.set(target, series)
    all.push(series)
    return series
  }

  const sink: TelemetrySink = {
    request(ev) {
      // An unknown service's name is the Host the client sent: whatever it is, it is one bucket.
      const service = ev.errorCode === ErrorCodes.unknownService ? UNKNOWN_LABEL : ev.service
      const series = get(ev.mesh, service, ev.route, ev.target)
      series.recordRequest(ev.status, ev.end - ev.start, ev.retries, ev.fault !== undefined)
      if (ev.grpcStatus !== undefined || ev.grpc === true) series.recordGrpc(ev.grpcStatus)
    },
    event(kind, labels) {
      get(labels.mesh, labels.service, labels.route, labels.target).recordEvent(kind)
    },
  }

  return {
    get,
    sink: () => sink,
    series: () => all.values(),
    drain(): MetricsSnapshot {
      const out: SeriesSnapshot[] = []
      for (const s of all) {
        if (s.window.isEmpty()) continue
        out.push({ labels: s.labels, counts: new SeriesCounts().copyFrom(s.window) })
        s.window.reset()
      }
      return out
    },
  }
}
