// The sidecar's tunnels, one folder: upgraded HTTP/1.1 connections (WebSocket and other upgrades,
// routed on the upgrade request by the engine like any request, then handed over here on the
// upstream's 101) and TCP services (`listener: { protocol: tcp, port }`, routed per connection).
// Both end in `splice` (two sockets joined with backpressure, half-close and an idle timeout), are
// counted in `TunnelStats`, and write one log line each when they end.

import { ErrorCodes, errorResponse, MeshError } from '../engine/errors.ts'
import type { MeshResponse, TraceContext } from '../engine/types.ts'
import type { DownstreamRequest } from '../http/http1-server.ts'
import { SocketUpgrade } from '../http/upgraded.ts'
import { splice, type Tunnel, type TunnelEndReason, TunnelEndReasons, type TunnelResult } from './splice.ts'
import { protocolLabel, type TunnelLabels, type TunnelProtocol, type TunnelStats } from './tunnel-stats.ts'

export { splice, TunnelEndReasons, type TunnelResult } from './splice.ts'
export { createTcpServices, type TcpServices, type TcpServicesOptions } from './tcp-services.ts'
export { createTunnelStats, type TunnelStats } from './tunnel-stats.ts'

/** What one tunnel's log line says (beside its bytes, duration and end reason). */
export interface TunnelInfo {
  readonly mesh: string
  readonly service: string
  readonly route: string | undefined
  readonly target: string
  readonly endpoint: string
  /** `tcp`, or the upgrade's protocol as the upstream named it (bounded in the line). */
  readonly protocol: string
  readonly trace?: TraceContext | undefined
  /** The listener it came through: outbound, inbound, or `tcp:PORT`. */
  readonly listener: string
}

/** The open tunnels of one sidecar, their counters and their log lines. */
export interface Tunnels {
  readonly stats: TunnelStats
  /** Joins two sockets and keeps account of them until both close. */
  open(
    info: TunnelInfo,
    labelProtocol: TunnelProtocol,
    sockets: { client: import('node:net').Socket; upstream: import('node:net').Socket },
    heads: { client?: Buffer | undefined; upstream?: Buffer | undefined },
    idleTimeout: number,
  ): void
  /** Tunnels open now. */
  active(): number
  /** Cuts every open tunnel (the sidecar's close, after its drain). */
  closeAll(): void
}

export interface TunnelsOptions {
  stats: TunnelStats
  /** One line per ended tunnel (JSON, no newline); undefined: none. */
  log?: ((line: string) => void) | undefined
  /** The access log is on in the current config. */
  logging(): boolean
  now(): number
}

/** Longest protocol name a log line carries as sent. */
const MAX_PROTOCOL = 64

export function createTunnels(opts: TunnelsOptions): Tunnels {
  const open = new Set<Tunnel>()
  const { stats } = opts
  return {
    stats,
    open(info, labelProtocol, sockets, heads, idleTimeout) {
      const labels: TunnelLabels = {
        mesh: info.mesh,
        service: info.service,
        target: info.target,
        protocol: labelProtocol,
      }
      const counts = stats.counts(labels)
      counts.opened++
      counts.active++
      const start = opts.now()
      const tunnel = splice(sockets.client, sockets.upstream, heads.client, heads.upstream, {
        idleTimeout,
        onEnd: (result: TunnelResult) => {
          open.delete(tunnel)
          counts.active--
          counts.bytesReceived += result.bytesReceived
          counts.bytesSent += result.bytesSent
          if (result.reason === TunnelEndReasons.idleTimeout) counts.idleTimeouts++
          if (opts.log !== undefined && opts.logging())
            opts.log(tunnelLine(info, result, opts.now() - start, Date.now()))
        },
      })
      open.add(tunnel)
    },
    active: () => open.size,
    closeAll() {
      for (const t of open) t.destroy()
    },
  }
}

/** The tunnel's one log line: what carried it, bytes each way, how long it lasted and why it ended. */
export function tunnelLine(
  info: TunnelInfo,
  result: TunnelResult,
  durationMs: number,
  epochMs: number,
): string {
  const fields: Record<string, unknown> = {
    time: new Date(epochMs).toISOString(),
    type: 'tunnel',
    listener: info.listener,
    protocol: info.protocol.slice(0, MAX_PROTOCOL),
  }
  if (info.trace !== undefined) fields.traceId = info.trace.traceId
  fields.mesh = info.mesh
  fields.service = info.service
  if (info.route !== undefined) fields.route = info.route
  fields.target = info.target
  fields.endpoint = info.endpoint
  fields.bytesReceived = result.bytesReceived
  fields.bytesSent = result.bytesSent
  fields.duration = Math.round(durationMs * 1000) / 1000
  fields.reason = result.reason satisfies TunnelEndReason
  return JSON.stringify(fields)
}

/**
 * Answers an upgrade request with what the pipeline (or the inbound invoker) returned: on a 101 with
 * a switched upstream connection, the client gets the 101 and the two are tunnelled; anything else
 * is an ordinary response. A 1xx without a switched connection is no final answer (RFC 9110 §15.2):
 * the client would take its connection as switched, so it is never passed on.
 */
export async function answerUpgrade(
  req: DownstreamRequest,
  out: MeshResponse,
  close: boolean,
  tunnels: Tunnels,
  info: Omit<TunnelInfo, 'route' | 'target' | 'endpoint' | 'protocol'> & { route?: string; target?: string },
  defaultIdleTimeout: number,
): Promise<void> {
  const up = out.upgrade
  if (up === undefined || out.status !== 101) {
    up?.destroy()
    if (out.status < 200) {
      return req.respond(badGateway('a 1xx answer without a switch'), true)
    }
    return req.respond(out, close)
  }
  if (!(up instanceof SocketUpgrade)) {
    up.destroy()
    return req.respond(badGateway('a switch this listener cannot tunnel'), true)
  }
  const down = req.switchProtocols(up.protocol, out.headers)
  if (down === undefined) {
    up.destroy()
    return
  }
  tunnels.open(
    {
      ...info,
      route: up.route ?? info.route,
      target: up.target ?? info.target ?? 'unknown',
      endpoint: up.endpoint,
      protocol: up.protocol,
    },
    protocolLabel(up.protocol),
    { client: down.socket, upstream: up.socket },
    { client: down.head, upstream: up.head },
    up.idleTimeout ?? defaultIdleTimeout,
  )
}

function badGateway(message: string): MeshResponse {
  return errorResponse(new MeshError(ErrorCodes.upstreamUnavailable, message))
}
