// Prometheus text exposition format (version 0.0.4) for the sidecar's admin `/metrics`. Cumulative
// counters and a histogram from each series' `total`; the names map to the CloudWatch ones as listed in
// metrics.ts (Requests + Responses2xx.. → meshgate_requests_total{code_class}, Latency →
// meshgate_request_duration_seconds, Retries → meshgate_retries_total, ...).

import { GRPC_STATUS_NAMES } from '../engine/grpc.ts'
import {
  CodeClasses,
  Decisions,
  GRPC_NO_STATUS,
  latencyBoundsMs,
  type MetricsRegistry,
  type Series,
  type SeriesCounts,
} from './metrics.ts'

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** Every 8th bound of the internal histogram (0.1 ms × 2^k): 20 `le` buckets from 100 µs to 52 s. */
const EXPORTED_BOUNDS: readonly { index: number; le: string }[] = (() => {
  const out: { index: number; le: string }[] = []
  for (let i = 0; i < latencyBoundsMs.length; i += 8) {
    out.push({ index: i, le: String(0.0001 * 2 ** (i / 8)) })
  }
  return out
})()

/** Label values escape backslash, double quote and line feed (and nothing else). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function labelsOf(s: Series): string {
  const l = s.labels
  return (
    `mesh="${escapeLabelValue(l.mesh)}",service="${escapeLabelValue(l.service)}",` +
    `route="${escapeLabelValue(l.route)}",target="${escapeLabelValue(l.target)}"`
  )
}

function header(out: string[], name: string, type: 'counter' | 'histogram', help: string): void {
  out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
}

const COUNTERS: readonly { name: string; help: string; value: (c: SeriesCounts) => number }[] = [
  { name: 'meshgate_retries_total', help: 'Retries sent upstream.', value: (c) => c.retries },
  {
    name: 'meshgate_faults_injected_total',
    help: 'Requests with an injected fault.',
    value: (c) => c.faults,
  },
  {
    name: 'meshgate_ejections_total',
    help: 'Endpoints ejected by outlier detection.',
    value: (c) => c.ejections,
  },
  {
    name: 'meshgate_circuit_open_total',
    help: 'Requests rejected by an open circuit breaker.',
    value: (c) => c.circuitOpen,
  },
  {
    name: 'meshgate_retry_budget_exhausted_total',
    help: 'Retries not sent because the retry budget was spent.',
    value: (c) => c.retryBudgetExhausted,
  },
  { name: 'meshgate_mirrors_total', help: 'Requests mirrored to a shadow target.', value: (c) => c.mirrors },
]

/** Index → label: the status name (`UNAVAILABLE`), `NONE` for a call that ended without one. */
function grpcStatusLabel(i: number): string {
  return i < GRPC_STATUS_NAMES.length ? GRPC_STATUS_NAMES[i]! : i === GRPC_NO_STATUS ? 'NONE' : 'OTHER'
}

export function formatPrometheus(registry: Pick<MetricsRegistry, 'series'>): string {
  const all = [...registry.series()]
  const out: string[] = []

  header(out, 'meshgate_requests_total', 'counter', 'Requests answered, by response status class.')
  for (const s of all) {
    const labels = labelsOf(s)
    for (let i = 0; i < CodeClasses.length; i++) {
      const n = s.total.codes[i]!
      const cls = CodeClasses[i]!
      // 2xx/4xx/5xx exist from the start so rate() and ratios see zeros, not gaps.
      if (n > 0 || cls === '2xx' || cls === '4xx' || cls === '5xx') {
        out.push(`meshgate_requests_total{${labels},code_class="${cls}"} ${n}`)
      }
    }
  }

  // gRPC calls by their status (Istio's grpc_response_status), only for series that carried any.
  const grpcSeries = all.filter((s) => s.total.grpc !== undefined)
  if (grpcSeries.length > 0) {
    header(out, 'meshgate_grpc_responses_total', 'counter', 'gRPC calls answered, by gRPC status.')
    for (const s of grpcSeries) {
      const labels = labelsOf(s)
      const counts = s.total.grpc!
      for (let i = 0; i < counts.length; i++) {
        if (counts[i]! > 0)
          out.push(
            `meshgate_grpc_responses_total{${labels},grpc_status="${grpcStatusLabel(i)}"} ${counts[i]}`,
          )
      }
    }
  }

  header(out, 'meshgate_request_duration_seconds', 'histogram', 'Request duration through the mesh, seconds.')
  for (const s of all) {
    const labels = labelsOf(s)
    const h = s.total.latency
    let cumulative = 0
    let next = 0
    for (const b of EXPORTED_BOUNDS) {
      while (next <= b.index) cumulative += h.counts[next++]!
      out.push(`meshgate_request_duration_seconds_bucket{${labels},le="${b.le}"} ${cumulative}`)
    }
    out.push(`meshgate_request_duration_seconds_bucket{${labels},le="+Inf"} ${h.count}`)
    out.push(`meshgate_request_duration_seconds_sum{${labels}} ${h.sum / 1000}`)
    out.push(`meshgate_request_duration_seconds_count{${labels}} ${h.count}`)
  }

  for (const c of COUNTERS) {
    header(out, c.name, 'counter', c.help)
    for (const s of all) out.push(`${c.name}{${labelsOf(s)}} ${c.value(s.total)}`)
  }
  header(
    out,
    'meshgate_authz_decisions_total',
    'counter',
    'Receiver decisions: allow, deny, audit (would deny, passed), unauthenticated, rate_limited.',
  )
  for (const s of all) {
    for (let i = 0; i < Decisions.length; i++) {
      const n = s.total.decisions[i]!
      if (n > 0) out.push(`meshgate_authz_decisions_total{${labelsOf(s)},decision="${Decisions[i]}"} ${n}`)
    }
  }
  // The format wants a line feed after the last line.
  return `${out.join('\n')}\n`
}
