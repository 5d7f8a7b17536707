// Counters of the sidecar's tunnels (upgraded connections and TCP services' connections), per mesh,
// service, target and protocol, for /stats and Prometheus /metrics. Every label is bounded: service
// and target come from the config (or are `app` on the inbound side), and the protocol is `tcp`,
// `websocket` or `other`, never the client's own spelling.

import { escapeLabelValue } from '../telemetry/prometheus.ts'

export const TunnelProtocols = { tcp: 'tcp', websocket: 'websocket', other: 'other' } as const
export type TunnelProtocol = (typeof TunnelProtocols)[keyof typeof TunnelProtocols]

/** An upgrade's protocol as a label: `websocket` (any case), else `other`. */
export function protocolLabel(upgrade: string): TunnelProtocol {
  return upgrade.trim().toLowerCase() === 'websocket' ? TunnelProtocols.websocket : TunnelProtocols.other
}

export interface TunnelLabels {
  readonly mesh: string
  readonly service: string
  readonly target: string
  readonly protocol: TunnelProtocol
}

export interface TunnelCounts {
  /** Tunnels opened (a TCP connection connected upstream, an upgrade switched). */
  opened: number
  /** Open now. */
  active: number
  bytesReceived: number
  bytesSent: number
  /** TCP connects that failed (each retry counts). */
  connectFailures: number
  idleTimeouts: number
}

export interface TunnelStats {
  counts(labels: TunnelLabels): TunnelCounts
  /** Every series, for /stats. */
  snapshot(): { labels: TunnelLabels; counts: TunnelCounts }[]
  /** Prometheus text for /metrics. */
  prometheus(): string
}

export function createTunnelStats(): TunnelStats {
  const series = new Map<string, { labels: TunnelLabels; counts: TunnelCounts }>()
  return {
    counts(labels) {
      const key = `${labels.mesh}\u0000${labels.service}\u0000${labels.target}\u0000${labels.protocol}`
      let entry = series.get(key)
      if (entry === undefined) {
        entry = {
          labels: { ...labels },
          counts: {
            opened: 0,
            active: 0,
            bytesReceived: 0,
            bytesSent: 0,
            connectFailures: 0,
            idleTimeouts: 0,
          },
        }
        series.set(key, entry)
      }
      return entry.counts
    },
    snapshot: () => [...series.values()].map((s) => ({ labels: s.labels, counts: { ...s.counts } })),
    prometheus() {
      if (series.size === 0) return ''
      const metric = (name: string, type: string, help: string, value: (c: TunnelCounts) => number) => {
        let out = `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`
        for (const { labels: l, counts } of series.values()) {
          out +=
            `${name}{mesh="${escapeLabelValue(l.mesh)}",service="${escapeLabelValue(l.service)}",` +
            `target="${escapeLabelValue(l.target)}",protocol="${l.protocol}"} ${value(counts)}\n`
        }
        return out
      }
      return (
        metric(
          'meshgate_tunnel_connections_total',
          'counter',
          'Tunnels opened: TCP connections connected upstream, upgrades switched (101).',
          (c) => c.opened,
        ) +
        metric('meshgate_tunnel_active', 'gauge', 'Tunnels open now.', (c) => c.active) +
        metric(
          'meshgate_tunnel_received_bytes_total',
          'counter',
          'Bytes from the client to the upstream through tunnels.',
          (c) => c.bytesReceived,
        ) +
        metric(
          'meshgate_tunnel_sent_bytes_total',
          'counter',
          'Bytes from the upstream to the client through tunnels.',
          (c) => c.bytesSent,
        ) +
        metric(
          'meshgate_tunnel_connect_failures_total',
          'counter',
          'TCP connects to a target that failed (refused, unreachable, timed out); each retry counts.',
          (c) => c.connectFailures,
        ) +
        metric(
          'meshgate_tunnel_idle_timeouts_total',
          'counter',
          'Tunnels closed by their idle timeout.',
          (c) => c.idleTimeouts,
        )
      )
    },
  }
}
