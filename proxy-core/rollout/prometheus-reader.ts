// Samples from Prometheus-format metrics, two ways:
//  - a Prometheus server's HTTP query API (`/api/v1/query`): `increase(...[W])` over the window, and
//    `histogram_quantile(0.99, ...)` for the p99, evaluated at the window's end;
//  - the sidecars' own `/metrics` (no server): scraped and summed over every URL, then differenced
//    against a scrape at the window's start (the one that decided the last step), else the window's
//    first scrape, since the counters are cumulative. That baseline lives in this process: a
//    restarted controller starts the window's count again from its first scrape (it waits longer; it
//    never decides on less).
import type { TargetSeries } from './analysis.ts'
import type { MetricReader, SeriesKey } from './metric-reader.ts'

/** A scrape or query answer larger than this is refused (bytes), and one slower than this (ms). */
const MAX_BODY = 16 * 1024 * 1024
const FETCH_TIMEOUT_MS = 5_000

export class MetricsReadError extends Error {}

async function getText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error' })
  if (!res.ok) throw new MetricsReadError(`${url}: HTTP ${res.status}`)
  const declared = Number(res.headers.get('content-length') ?? 0)
  if (declared > MAX_BODY) throw new MetricsReadError(`${url}: answer over ${MAX_BODY} bytes`)
  const reader = res.body?.getReader()
  if (!reader) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > MAX_BODY) {
      await reader.cancel()
      throw new MetricsReadError(`${url}: answer over ${MAX_BODY} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

// ---------------------------------------------------------------------------------------------
// The text exposition format, only as far as meshgate's own series need it.

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** meshgate's own lines are a few hundred bytes; a longer one is skipped, not parsed (no regex on it). */
const MAX_LINE = 16 * 1024
const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y

/** Parses the sample lines; comments, blank lines and lines it cannot read are skipped. */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.split('\n')) {
    if (raw.length > MAX_LINE) continue
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const m = LINE.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    const body = m[2] ?? ''
    LABEL.lastIndex = 0
    let ok = true
    while (LABEL.lastIndex < body.length) {
      const at = LABEL.lastIndex
      const l = LABEL.exec(body)
      if (!l || LABEL.lastIndex === at) {
        ok = false
        break
      }
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    if (!ok) continue
    const value =
      m[3] === '+Inf' ? Number.POSITIVE_INFINITY : m[3] === '-Inf' ? Number.NEGATIVE_INFINITY : Number(m[3])
    out.push({ name: m[1]!, labels, value })
  }
  return out
}

interface Totals {
  requests: number
  errors: number
  /** Cumulative bucket counts by upper bound in seconds (+Inf included). */
  buckets: Map<number, number>
}

function matches(labels: Record<string, string>, k: SeriesKey): boolean {
  return (
    labels.mesh === k.mesh &&
    labels.service === k.service &&
    labels.route === k.route &&
    labels.target === k.target
  )
}

export function totalsOf(samples: readonly Sample[], k: SeriesKey): Totals {
  const t: Totals = { requests: 0, errors: 0, buckets: new Map() }
  for (const s of samples) {
    if (!Number.isFinite(s.value) || !matches(s.labels, k)) continue
    if (s.name === 'meshgate_requests_total') {
      t.requests += s.value
      if (s.labels.code_class === '5xx') t.errors += s.value
    } else if (s.name === 'meshgate_request_duration_seconds_bucket') {
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le)
      if (!Number.isNaN(le)) t.buckets.set(le, (t.buckets.get(le) ?? 0) + s.value)
    }
  }
  return t
}

/**
 * Prometheus's histogram_quantile on cumulative buckets: linear inside the bucket the rank falls in;
 * in the +Inf bucket, the highest finite bound. Milliseconds; NaN without observations.
 */
export function histogramQuantile(q: number, buckets: ReadonlyMap<number, number>): number {
  const bounds = [...buckets.keys()].sort((a, b) => a - b)
  const total = bounds.length > 0 ? buckets.get(bounds[bounds.length - 1]!)! : 0
  if (!(total > 0)) return Number.NaN
  const rank = q * total
  let prevBound = 0
  let prevCount = 0
  for (const b of bounds) {
    const c = buckets.get(b)!
    if (c >= rank) {
      if (b === Number.POSITIVE_INFINITY) return prevBound * 1000
      const inBucket = c - prevCount
      const frac = inBucket > 0 ? (rank - prevCount) / inBucket : 1
      return (prevBound + (b - prevBound) * frac) * 1000
    }
    prevBound = b
    prevCount = c
  }
  return prevBound * 1000
}

export function createScrapeReader(opts: { urls: readonly string[] }): MetricReader {
  const metricsUrl = (u: string) => `${u.replace(/\/+$/, '')}/metrics`
  return createTextReader(`sidecars (${opts.urls.join(', ')})`, () =>
    Promise.all(opts.urls.map((u) => getText(metricsUrl(u)))),
  )
}

/**
 * Cumulative Prometheus texts from anywhere (scraped, or formatted from in-process registries by
 * `meshgate dev`), summed over the texts and differenced against a read at the window's start.
 *
 * That baseline is the last read taken at or after the window's start: the controller reads the old
 * window at the very instant it starts the next step (`stepStartedAt` is that read's end), so the
 * next window counts from there and its first look already has numbers. Without such a read (a
 * controller that starts mid-window, or a read older than the window) the window's first read is the
 * baseline and counts nothing yet: the count never includes requests from before the window.
 */
export function createTextReader(name: string, texts: () => Promise<readonly string[]>): MetricReader {
  const baselines = new Map<string, { start: number; totals: Totals }>()
  /** Per series, the totals of the newest read and when it was taken (its window's end). */
  const lastRead = new Map<string, { at: number; totals: Totals }>()
  return {
    name,
    async read(keys, startMs, endMs) {
      const samples = (await texts()).flatMap(parsePrometheusText)
      return keys.map((k): TargetSeries => {
        const now = totalsOf(samples, k)
        const id = `${k.mesh}/${k.service}/${k.route}/${k.target}`
        const previous = lastRead.get(id)
        lastRead.set(id, { at: endMs, totals: now })
        let base = baselines.get(id)
        if (!base || base.start !== startMs) {
          // A new window: from the read at its start when there is one, else from this read.
          base = {
            start: startMs,
            totals: previous !== undefined && previous.at >= startMs ? previous.totals : now,
          }
          baselines.set(id, base)
        }
        // A counter that went down (a sidecar restarted): count from here.
        if (now.requests < base.totals.requests) {
          baselines.set(id, { start: startMs, totals: now })
          return { requests: [0], errors: [0], p99Ms: [] }
        }
        const delta = new Map<number, number>()
        for (const [le, c] of now.buckets) delta.set(le, Math.max(0, c - (base.totals.buckets.get(le) ?? 0)))
        const p99 = histogramQuantile(0.99, delta)
        return {
          requests: [now.requests - base.totals.requests],
          errors: [Math.max(0, now.errors - base.totals.errors)],
          p99Ms: Number.isNaN(p99) ? [] : [p99],
        }
      })
    },
  }
}

function selector(k: SeriesKey, extra = ''): string {
  const q = (v: string) => JSON.stringify(v)
  return `{mesh=${q(k.mesh)},service=${q(k.service)},route=${q(k.route)},target=${q(k.target)}${extra}}`
}

interface QueryAnswer {
  status?: string
  error?: string
  data?: { resultType?: string; result?: { value?: [number, string] }[] }
}

export function createPrometheusQueryReader(opts: { url: string }): MetricReader {
  const base = opts.url.replace(/\/+$/, '')
  async function instant(query: string, atMs: number): Promise<number[]> {
    const url = `${base}/api/v1/query?query=${encodeURIComponent(query)}&time=${atMs / 1000}`
    let answer: QueryAnswer
    try {
      answer = JSON.parse(await getText(url)) as QueryAnswer
    } catch (e) {
      if (e instanceof MetricsReadError) throw e
      throw new MetricsReadError(`${base}: not a Prometheus query answer`)
    }
    if (answer.status !== 'success') throw new MetricsReadError(`${base}: ${answer.error ?? 'query failed'}`)
    return (answer.data?.result ?? []).map((r) => Number(r.value?.[1]))
  }
  return {
    name: `prometheus (${base})`,
    async read(keys, startMs, endMs) {
      const w = `${Math.max(1, Math.ceil((endMs - startMs) / 1000))}s`
      return Promise.all(
        keys.map(async (k): Promise<TargetSeries> => {
          const [requests, errors, p99Ms] = await Promise.all([
            instant(`sum(increase(meshgate_requests_total${selector(k)}[${w}]))`, endMs),
            instant(`sum(increase(meshgate_requests_total${selector(k, ',code_class="5xx"')}[${w}]))`, endMs),
            instant(
              `histogram_quantile(0.99, sum by (le) (increase(meshgate_request_duration_seconds_bucket${selector(k)}[${w}]))) * 1000`,
              endMs,
            ),
          ])
          return { requests, errors, p99Ms }
        }),
      )
    },
  }
}
