// TCP services: `services.S.listener: { protocol: tcp, port: N }` opens port N on the outbound
// listener's address; each connection to it is routed once, when it arrives: a target by the
// service's route weights and an endpoint by the target's load balancer (MeshRuntime.pickStream, the
// engine's own picker and balancer), a connect with the listener's connect timeout, and, when the
// connect fails, up to `retries.attempts` more connects, each to an endpoint not tried yet (another
// target by weight once a target has none left). A failed connect counts toward outlier detection
// as a gateway error. Only the connect is retried: once bytes flow, a broken upstream ends the
// tunnel, since nobody can know what of the stream it had taken.
//
// Live config: every connection reads the runtime current when it arrives, so new connections use a
// new config and open tunnels keep going on the old one; `reconcile` opens the ports a new config
// adds and closes those it removes (their open tunnels keep going).

import { connect, Server, type Socket } from 'node:net'
import type { MeshConfig, MeshRuntime } from '../engine/types.ts'
import { boundAddress, listen } from '../sidecar/listen-address.ts'
import type { Tunnels } from './index.ts'
import { TunnelProtocols } from './tunnel-stats.ts'

export interface TcpServicesOptions {
  /** The outbound listener's host: TCP services bind there too (loopback by default: the app's). */
  host: string
  runtime(): MeshRuntime
  tunnels: Tunnels
  /** Notices (a port that cannot be bound after a reload, a connection no target took). */
  notice(type: string, fields: Record<string, unknown>): void
}

export interface TcpServices {
  /**
   * Opens the ports of `config`'s tcp services and closes the ports of services it no longer has.
   * Rejects when a port cannot be bound (the caller decides: fatal at start, a notice on reload).
   */
  reconcile(config: MeshConfig): Promise<void>
  /** `service → host:port` bound now. */
  addresses(): Record<string, string>
  /** Stop accepting on every port; open tunnels keep going. */
  stopAccepting(): void
  /** Connections being connected now (not yet tunnels). */
  connecting(): number
}

interface Port {
  service: string
  readonly server: Server
  readonly address: string
}

/** `tcp://10.0.0.1:5432` or `tcp://[::1]:5432` → host and port. */
function hostPort(endpoint: string): { host: string; port: number } {
  const rest = endpoint.slice('tcp://'.length)
  const colon = rest.lastIndexOf(':')
  const host = rest.slice(0, colon)
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(rest.slice(colon + 1)) }
}

export function createTcpServices(opts: TcpServicesOptions): TcpServices {
  const ports = new Map<number, Port>()
  let connecting = 0
  let accepting = true

  function onConnection(port: Port, client: Socket): void {
    const service = port.service
    const runtime = opts.runtime()
    const svc = runtime.config.services[service]
    const route = svc?.routes[0]
    if (svc?.listener === undefined || route === undefined) {
      client.destroy()
      return
    }
    const connectTimeout = svc.listener.connectTimeout
    const tries = 1 + route.retries.attempts
    const tried = new Set<string>()
    const mesh = runtime.config.mesh
    client.on('error', () => {})
    let clientGone = false
    let pending: Socket | undefined
    const onClientClose = () => {
      clientGone = true
      pending?.destroy()
    }
    client.once('close', onClientClose)
    connecting++

    const attempt = (n: number): void => {
      const pick = runtime.pickStream(service, tried)
      if (pick === undefined || clientGone) {
        connecting--
        client.destroy()
        if (!clientGone) opts.notice('tcp_no_upstream', { service, port: port.address, tried: [...tried] })
        return
      }
      const { host, port: upstreamPort } = hostPort(pick.endpoint)
      const upstream = connect({ host, port: upstreamPort, noDelay: true, allowHalfOpen: true })
      pending = upstream
      upstream.setTimeout(connectTimeout)
      upstream.once('timeout', () => upstream.destroy(new Error('connect timeout')))
      const onFail = () => {
        pending = undefined
        pick.connected(false)
        opts.tunnels.stats.counts({ mesh, service, target: pick.target, protocol: TunnelProtocols.tcp })
          .connectFailures++
        tried.add(pick.endpoint)
        upstream.destroy()
        if (n + 1 < tries && !clientGone) attempt(n + 1)
        else {
          connecting--
          client.destroy()
          if (!clientGone) opts.notice('tcp_no_upstream', { service, port: port.address, tried: [...tried] })
        }
      }
      upstream.once('error', onFail)
      upstream.once('connect', () => {
        pending = undefined
        upstream.off('error', onFail)
        upstream.setTimeout(0)
        connecting--
        pick.connected(true)
        client.off('close', onClientClose)
        upstream.once('close', () => pick.closed())
        opts.tunnels.open(
          {
            mesh,
            service,
            route: pick.route,
            target: pick.target,
            endpoint: pick.endpoint,
            protocol: 'tcp',
            listener: `tcp:${port.address}`,
          },
          TunnelProtocols.tcp,
          { client, upstream },
          {},
          pick.idleTimeout,
        )
      })
    }
    attempt(0)
  }

  async function open(service: string, portNumber: number): Promise<void> {
    // Paused until the upstream is connected: the client's bytes wait in the kernel, not here.
    const server = new Server({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true })
    const entry = { service, server, address: '' } as Port
    server.on('connection', (socket: Socket) => onConnection(entry, socket))
    await listen(server, portNumber, opts.host)
    ;(entry as { address: string }).address = boundAddress(server)
    ports.set(portNumber, entry)
  }

  return {
    async reconcile(config) {
      const wanted = new Map<number, string>()
      for (const svc of Object.values(config.services))
        if (svc.listener) wanted.set(svc.listener.port, svc.name)
      for (const [portNumber, entry] of ports) {
        if (!wanted.has(portNumber)) {
          // Removed: the port closes; its open tunnels are not cut.
          entry.server.close()
          ports.delete(portNumber)
        }
      }
      if (!accepting) return
      const failures: string[] = []
      for (const [portNumber, service] of wanted) {
        const entry = ports.get(portNumber)
        if (entry !== undefined) {
          // The same port may now belong to another service: new connections go there.
          entry.service = service
          continue
        }
        try {
          await open(service, portNumber)
        } catch (err) {
          failures.push(`services.${service}.listener.port ${portNumber}: ${(err as Error).message}`)
        }
      }
      if (failures.length > 0) throw new Error(`cannot open tcp listener: ${failures.join('; ')}`)
    },
    addresses() {
      const out: Record<string, string> = {}
      for (const entry of ports.values()) out[entry.service] = entry.address
      return out
    },
    stopAccepting() {
      accepting = false
      for (const entry of ports.values()) entry.server.close()
      ports.clear()
    },
    connecting: () => connecting,
  }
}
