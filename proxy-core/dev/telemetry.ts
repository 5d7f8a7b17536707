// What the dashboard shows, collected from the same telemetry a deployed mesh produces:
//  - the gateway's runtime: its TelemetrySink (RequestEvents and AttemptEvents);
//  - each sidecar: its JSON access log (one line per request, inbound and outbound);
//  - each Lambda function: its EMF lines on stdout (what CloudWatch turns into metrics) and the X-Ray
//    subsegments it sends to the daemon address, plus the emulator's record of each invocation.
// From these: per edge (caller → service) requests/s, error rate and p99 over a sliding window; per
// route the observed split by target; and recent traces grouped by trace id.
import type { AttemptEvent, RequestEvent, TelemetrySink } from '../engine/types.ts'
import type { InvocationRecord } from './lambda-emulator.ts'

/** Edge numbers are over the last 10 s: short enough to follow a change, long enough to be steady. */
export const EDGE_WINDOW_S = 10
/** Observed splits are over the last 30 s, and restart at each config change. */
export const SPLIT_WINDOW_S = 30
const KEEP_S = 60
const MAX_TRACES = 300

export interface EdgeStats {
  from: string
  to: string
  rps: number
  errorRate: number
  /** Milliseconds; null when nothing was seen in the window. */
  p99: number | null
  requests: number
}

export const SpanKinds = {
  request: 'request',
  attempt: 'attempt',
  inbound: 'inbound',
  lambda: 'lambda',
} as const
export type SpanKind = (typeof SpanKinds)[keyof typeof SpanKinds]

export interface Span {
  kind: SpanKind
  label: string
  service: string
  /** Epoch ms. */
  start: number
  end: number
  status?: number
  error?: string
  depth: number
}

export interface Trace {
  traceId: string
  start: number
  durationMs: number
  status?: number
  spans: Span[]
}

interface Bucket {
  n: number
  errors: number
  latencies: number[]
}

interface TraceRecord {
  spans: Span[]
  first: number
  last: number
}

export interface DevTelemetry {
  /** For an in-process runtime (the gateway): events carry performance.now() times. */
  sinkFor(caller: string): TelemetrySink
  /** One line of a sidecar's log; false when it is not an access-log line. */
  sidecarLog(caller: string, line: string): boolean
  /** One stdout line of a Lambda function; false when it is not EMF. */
  emf(caller: string, line: string): boolean
  invocation(service: string, rec: InvocationRecord): void
  /** A document a Lambda function sent to the X-Ray daemon address. */
  xray(doc: unknown): void
  /** The config changed: observed splits start over. */
  configChanged(): void
  edges(): EdgeStats[]
  /** `service/route` → target → requests, over the split window. */
  splits(): Record<string, Record<string, number>>
  traces(limit: number): Trace[]
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

function rootOf(header: string | undefined): string | undefined {
  return header ? /Root=([0-9a-f-]+)/i.exec(header)?.[1]?.toLowerCase() : undefined
}

function p99(values: number[]): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(0, Math.ceil(sorted.length * 0.99) - 1)]!
}

/** Nest each span under the latest-starting span that contains it: the waterfall's indentation. */
function withDepths(spans: Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start || b.end - a.end)
  const slack = 2
  for (let i = 0; i < sorted.length; i++) {
    const s = sorted[i]!
    s.depth = 0
    for (let j = i - 1; j >= 0; j--) {
      const p = sorted[j]!
      if (p.start <= s.start + slack && p.end + slack >= s.end) {
        s.depth = p.depth + 1
        break
      }
    }
  }
  return sorted
}

export function createDevTelemetry(now: () => number = Date.now): DevTelemetry {
  const edges = new Map<string, { from: string; to: string; first: number; buckets: Map<number, Bucket> }>()
  const splits = new Map<string, Map<number, Map<string, number>>>()
  const traces = new Map<string, TraceRecord>()
  const perfOrigin = performance.timeOrigin

  function prune(buckets: Map<number, unknown>, sec: number): void {
    for (const k of buckets.keys()) {
      if (k > sec - KEEP_S) break
      buckets.delete(k)
    }
  }

  function recordEdge(from: string, to: string, at: number, n: number, errors: number, lat: number[]): void {
    const key = `${from}\u0000${to}`
    let e = edges.get(key)
    if (!e) {
      e = { from, to, first: at, buckets: new Map() }
      edges.set(key, e)
    }
    const sec = Math.floor(at / 1000)
    let b = e.buckets.get(sec)
    if (!b) {
      b = { n: 0, errors: 0, latencies: [] }
      e.buckets.set(sec, b)
      prune(e.buckets, sec)
    }
    b.n += n
    b.errors += errors
    for (const l of lat) b.latencies.push(l)
  }

  function recordSplit(service: string, route: string | undefined, target: string | undefined, at: number) {
    if (!route || !target) return
    const key = `${service}/${route}`
    let buckets = splits.get(key)
    if (!buckets) {
      buckets = new Map()
      splits.set(key, buckets)
    }
    const sec = Math.floor(at / 1000)
    let b = buckets.get(sec)
    if (!b) {
      b = new Map()
      buckets.set(sec, b)
      prune(buckets, sec)
    }
    b.set(target, (b.get(target) ?? 0) + 1)
  }

  function addSpan(traceId: string | undefined, span: Omit<Span, 'depth'>): void {
    if (!traceId) return
    let t = traces.get(traceId)
    if (!t) {
      t = { spans: [], first: span.start, last: span.end }
      traces.set(traceId, t)
      if (traces.size > MAX_TRACES) traces.delete(traces.keys().next().value!)
    }
    if (t.spans.length >= 64) return
    t.spans.push({ ...span, depth: 0 })
    t.first = Math.min(t.first, span.start)
    t.last = Math.max(t.last, span.end)
  }

  function requestEvent(caller: string, ev: RequestEvent): void {
    const end = perfOrigin + ev.end
    const start = perfOrigin + ev.start
    const failed = ev.status >= 500 ? 1 : 0
    recordEdge(caller, ev.service, end, 1, failed, [ev.end - ev.start])
    recordSplit(ev.service, ev.route, ev.target, end)
    addSpan(ev.trace?.traceId, {
      kind: SpanKinds.request,
      label: `${caller} → ${ev.service}${ev.target ? `/${ev.target}` : ''}`,
      service: ev.service,
      start,
      end,
      status: ev.status,
      ...(ev.errorCode ? { error: ev.errorCode } : {}),
    })
  }

  function attemptEvent(caller: string, ev: AttemptEvent): void {
    addSpan(ev.trace.traceId, {
      kind: SpanKinds.attempt,
      label: `try ${ev.attempt} ${ev.service}/${ev.target} (${ev.endpoint.replace(/^https?:\/\//, '')})`,
      service: ev.service,
      start: perfOrigin + ev.start,
      end: perfOrigin + ev.end,
      ...(ev.status === undefined ? {} : { status: ev.status }),
      ...(ev.failure ? { error: ev.failure } : {}),
    })
    void caller
  }

  return {
    sinkFor(caller) {
      return {
        request: (ev) => requestEvent(caller, ev),
        attempt: (ev) => attemptEvent(caller, ev),
      }
    },

    sidecarLog(caller, line) {
      if (!line.startsWith('{') || !line.includes('"type":"access"')) return false
      let ev: Obj
      try {
        ev = JSON.parse(line) as Obj
      } catch {
        return false
      }
      const service = String(ev.service ?? '')
      const status = typeof ev.status === 'number' ? ev.status : 0
      const duration = typeof ev.durationMs === 'number' ? ev.durationMs : 0
      const end = typeof ev.time === 'string' ? Date.parse(ev.time) : now()
      const route = typeof ev.route === 'string' ? ev.route : undefined
      const target = typeof ev.target === 'string' ? ev.target : undefined
      const traceId = typeof ev.traceId === 'string' ? ev.traceId : undefined
      const error = typeof ev.errorCode === 'string' ? ev.errorCode : undefined
      if (route === 'inbound') {
        addSpan(traceId, {
          kind: SpanKinds.inbound,
          label: `${service} sidecar → app`,
          service,
          start: end - duration,
          end,
          status,
          ...(error ? { error } : {}),
        })
        return true
      }
      recordEdge(caller, service, end, 1, status >= 500 ? 1 : 0, [duration])
      recordSplit(service, route, target, end)
      addSpan(traceId, {
        kind: SpanKinds.request,
        label: `${caller} → ${service}${target ? `/${target}` : ''}`,
        service,
        start: end - duration,
        end,
        status,
        ...(error ? { error } : {}),
      })
      return true
    },

    emf(caller, line) {
      if (!line.startsWith('{"_aws"')) return false
      let doc: Obj
      try {
        doc = JSON.parse(line) as Obj
      } catch {
        return false
      }
      const service = typeof doc.Service === 'string' ? doc.Service : undefined
      const requests = typeof doc.Requests === 'number' ? doc.Requests : 0
      if (!service || requests === 0) return true
      const aws = isObj(doc._aws) ? doc._aws : {}
      const at = typeof aws.Timestamp === 'number' ? aws.Timestamp : now()
      const lat = Array.isArray(doc.Latency)
        ? doc.Latency.filter((v): v is number => typeof v === 'number')
        : typeof doc.Latency === 'number'
          ? [doc.Latency]
          : []
      const errors = typeof doc.Responses5xx === 'number' ? doc.Responses5xx : 0
      recordEdge(caller, service, at, requests, errors, lat)
      const route = typeof doc.Route === 'string' && doc.Route !== 'none' ? doc.Route : undefined
      const target = typeof doc.Target === 'string' && doc.Target !== 'none' ? doc.Target : undefined
      for (let i = 0; i < requests; i++) recordSplit(service, route, target, at)
      return true
    },

    invocation(service, rec) {
      addSpan(rootOf(rec.traceHeader), {
        kind: SpanKinds.lambda,
        label: `λ ${rec.functionName} (${service})`,
        service,
        start: rec.start,
        end: rec.end,
        ...(rec.status === undefined ? {} : { status: rec.status }),
        ...(rec.ok ? {} : { error: 'function_error' }),
      })
    },

    xray(doc) {
      if (!isObj(doc) || doc.type !== 'subsegment' || typeof doc.trace_id !== 'string') return
      const ann = isObj(doc.annotations) ? doc.annotations : {}
      const http = isObj(doc.http) ? doc.http : {}
      const response = isObj(http.response) ? http.response : {}
      const start = Number(doc.start_time) * 1000
      const end = Number(doc.end_time) * 1000
      if (!Number.isFinite(start) || !Number.isFinite(end)) return
      addSpan(doc.trace_id, {
        kind: SpanKinds.attempt,
        label: `try ${ann.attempt ?? 1} ${ann.service ?? doc.name}/${ann.target ?? '?'} (from Lambda)`,
        service: String(ann.service ?? doc.name),
        start,
        end,
        ...(typeof response.status === 'number' ? { status: response.status } : {}),
        ...(typeof ann.failure === 'string' ? { error: ann.failure } : {}),
      })
    },

    configChanged() {
      splits.clear()
    },

    edges() {
      const t = now()
      const nowSec = Math.floor(t / 1000)
      const out: EdgeStats[] = []
      for (const e of edges.values()) {
        let n = 0
        let errors = 0
        const lat: number[] = []
        for (const [sec, b] of e.buckets) {
          if (sec <= nowSec - EDGE_WINDOW_S) continue
          n += b.n
          errors += b.errors
          for (const l of b.latencies) lat.push(l)
        }
        const span = Math.min(EDGE_WINDOW_S, Math.max(1, (t - e.first) / 1000))
        const p = p99(lat)
        out.push({
          from: e.from,
          to: e.to,
          rps: Math.round((n / span) * 10) / 10,
          errorRate: n === 0 ? 0 : errors / n,
          p99: p === null ? null : Math.round(p * 10) / 10,
          requests: n,
        })
      }
      return out
    },

    splits() {
      const nowSec = Math.floor(now() / 1000)
      const out: Record<string, Record<string, number>> = {}
      for (const [key, buckets] of splits) {
        const counts: Record<string, number> = {}
        for (const [sec, b] of buckets) {
          if (sec <= nowSec - SPLIT_WINDOW_S) continue
          for (const [target, n] of b) counts[target] = (counts[target] ?? 0) + n
        }
        out[key] = counts
      }
      return out
    },

    traces(limit) {
      const t = now()
      const out: Trace[] = []
      const all = [...traces.entries()]
      for (let i = all.length - 1; i >= 0 && out.length < limit; i--) {
        const [traceId, rec] = all[i]!
        // A trace still in flight would be drawn half done: wait until it has been quiet a moment.
        if (rec.spans.length < 2 || t - rec.last < 500) continue
        const spans = withDepths(rec.spans.map((s) => ({ ...s })))
        const top = spans[0]!
        out.push({
          traceId,
          start: rec.first,
          durationMs: Math.round((rec.last - rec.first) * 10) / 10,
          ...(top.status === undefined ? {} : { status: top.status }),
          spans,
        })
      }
      return out
    },
  }
}
