// The admin listener (Envoy's admin port, read-only): readiness for the orchestrator, liveness, stats,
// Prometheus metrics and the effective config. Bound to loopback by default: it says a lot about the mesh.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { LiveConfigStatus } from '../config-source/index.ts'
import type { MeshConfig } from '../engine/types.ts'
import type { MetricsRegistry } from '../telemetry/metrics.ts'
import { CodeClasses } from '../telemetry/metrics.ts'
import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from '../telemetry/prometheus.ts'
import type { TlsStats } from '../tls/index.ts'

/** The TLS material's counters and the inbound listener's failed handshakes, by reason. */
export type AdminTlsStats = TlsStats & {
  handshakeFailures: Readonly<Record<string, number>>
  /** Cleartext connections a permissive inbound listener served. */
  plaintextConnections: number
}

export interface AdminState {
  config(): MeshConfig | undefined
  /** The config source's state: version, last check, last error, staleness. */
  configStatus(): LiveConfigStatus
  draining(): boolean
  /** Extra JSON for `/stats`: listeners, pools, reloads. */
  stats(): Record<string, unknown>
  registry: MetricsRegistry
  /** Requests the HTTP edge refused itself, by listener and error code (a closed set of each). */
  refusals?(): Record<string, Readonly<Record<string, number>>>
  /** More Prometheus text for /metrics (the tunnels' counters). */
  extraMetrics?(): string
  /** TLS between sidecars, when on. */
  tls?(): AdminTlsStats | undefined
}

/** TLS reloads, refusals, the certificate's expiry and failed handshakes; reasons are a closed set. */
function tlsMetrics(tls: AdminTlsStats | undefined): string {
  if (tls === undefined) return ''
  const lines = [
    '# HELP meshgate_tls_reloads_total Certificate and key versions swapped in after the first.',
    '# TYPE meshgate_tls_reloads_total counter',
    `meshgate_tls_reloads_total ${tls.reloads}`,
    '# HELP meshgate_tls_rejected_total Certificate and key versions refused (incomplete, mismatched, expired); the one in use kept serving.',
    '# TYPE meshgate_tls_rejected_total counter',
    `meshgate_tls_rejected_total ${tls.rejected}`,
    '# HELP meshgate_tls_cert_expiry_seconds When the certificate in use expires (Unix time).',
    '# TYPE meshgate_tls_cert_expiry_seconds gauge',
    `meshgate_tls_cert_expiry_seconds ${Math.floor(Date.parse(tls.cert.notAfter) / 1000)}`,
    '# HELP meshgate_tls_plaintext_connections_total Cleartext connections a permissive inbound listener served.',
    '# TYPE meshgate_tls_plaintext_connections_total counter',
    `meshgate_tls_plaintext_connections_total ${tls.plaintextConnections}`,
    '# HELP meshgate_tls_handshake_failures_total Inbound TLS handshakes that failed, by reason.',
    '# TYPE meshgate_tls_handshake_failures_total counter',
  ]
  for (const reason in tls.handshakeFailures)
    lines.push(`meshgate_tls_handshake_failures_total{reason="${reason}"} ${tls.handshakeFailures[reason]}`)
  return `${lines.join('\n')}\n`
}

/** The edge's refusals as one Prometheus counter: `listener` and `code` are closed sets, never input. */
function refusalMetrics(refusals: Record<string, Readonly<Record<string, number>>>): string {
  let out =
    '# HELP meshgate_edge_refusals_total Requests the HTTP edge refused itself (malformed, too large, timed out).\n' +
    '# TYPE meshgate_edge_refusals_total counter\n'
  for (const listener in refusals) {
    const codes = refusals[listener]!
    for (const code in codes) {
      out += `meshgate_edge_refusals_total{listener="${listener}",code="${code}"} ${codes[code]}\n`
    }
  }
  return out
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.statusCode = status
  res.setHeader('content-type', type)
  res.setHeader('content-length', Buffer.byteLength(body))
  res.setHeader('cache-control', 'no-store')
  res.end(body)
}

/**
 * The config source's counters and staleness in Prometheus text, after the registry's series. They
 * live beside the request metrics rather than in them: they are per process, with no route labels.
 */
function configMetrics(status: LiveConfigStatus): string {
  const source = status.source.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n')
  const labels = `{source="${source}"}`
  return [
    '# HELP meshgate_config_reloads_total Config versions swapped in after the first.',
    '# TYPE meshgate_config_reloads_total counter',
    `meshgate_config_reloads_total${labels} ${status.reloads}`,
    '# HELP meshgate_config_rejected_total Config versions refused (invalid); the last good one kept serving.',
    '# TYPE meshgate_config_rejected_total counter',
    `meshgate_config_rejected_total${labels} ${status.rejected}`,
    '# HELP meshgate_config_stale 1 while the config source has been unreachable for several checks in a row.',
    '# TYPE meshgate_config_stale gauge',
    `meshgate_config_stale${labels} ${status.stale ? 1 : 0}`,
    '',
  ].join('\n')
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json', `${JSON.stringify(value, null, 2)}\n`)
}

/** Per-series totals for `/stats`: the same numbers as `/metrics`, in one JSON document. */
function seriesStats(registry: MetricsRegistry): unknown[] {
  const out: unknown[] = []
  for (const s of registry.series()) {
    const t = s.total
    const codes: Record<string, number> = {}
    CodeClasses.forEach((cls, i) => {
      if (t.codes[i]! > 0) codes[cls] = t.codes[i]!
    })
    const round = (v: number) => (Number.isNaN(v) ? null : Math.round(v * 1000) / 1000)
    out.push({
      ...s.labels,
      requests: t.requests,
      codes,
      retries: t.retries,
      faults: t.faults,
      ejections: t.ejections,
      circuitOpen: t.circuitOpen,
      retryBudgetExhausted: t.retryBudgetExhausted,
      mirrors: t.mirrors,
      latencyMs: {
        p50: round(t.latency.percentile(50)),
        p90: round(t.latency.percentile(90)),
        p99: round(t.latency.percentile(99)),
      },
    })
  }
  return out
}

export function createAdminHandler(state: AdminState) {
  return async function handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return json(res, 405, { error: 'method_not_allowed' })
    }
    const path = (req.url ?? '/').split('?', 1)[0]
    switch (path) {
      case '/ready': {
        // Not ready while draining: the orchestrator stops sending before the listeners close.
        if (state.draining()) return send(res, 503, 'text/plain', 'draining\n')
        if (state.config() === undefined) return send(res, 503, 'text/plain', 'no config\n')
        return send(res, 200, 'text/plain', 'ready\n')
      }
      case '/healthz':
        return send(res, 200, 'text/plain', 'ok\n')
      case '/stats':
        return json(res, 200, { ...state.stats(), series: seriesStats(state.registry) })
      case '/metrics':
        return send(
          res,
          200,
          PROMETHEUS_CONTENT_TYPE,
          formatPrometheus(state.registry) +
            configMetrics(state.configStatus()) +
            (state.refusals ? refusalMetrics(state.refusals()) : '') +
            (state.extraMetrics?.() ?? '') +
            tlsMetrics(state.tls?.()),
        )
      case '/config': {
        // DESIGN: where the config came from and how current it is, beside the effective config.
        const cfg = state.config()
        return cfg === undefined
          ? json(res, 503, { error: 'no config' })
          : json(res, 200, { ...state.configStatus(), config: cfg })
      }
      default:
        return json(res, 404, {
          error: 'not_found',
          endpoints: ['/ready', '/healthz', '/stats', '/metrics', '/config'],
        })
    }
  }
}
