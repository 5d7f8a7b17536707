// The container side of the dev mesh: for each endpoint of each HTTP target, the app on a local port
// and its own sidecar (startSidecar, in this process). The mesh reaches the instance at its sidecar's
// inbound listener; the app calls other services through its sidecar's outbound listener.
import type { Server } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createServer as createNetServer } from 'node:net'
import type { MeshClient } from '../../functions/bookinfo/containers/mesh-client.ts'
import { createMeshClient } from '../../functions/bookinfo/containers/mesh-client.ts'
import type { ConfigSource } from '../config-source/index.ts'
import type { Sidecar } from '../sidecar/index.ts'
import { startSidecar } from '../sidecar/index.ts'
import { listen } from '../sidecar/listen-address.ts'
import { containerAppFor } from './catalog.ts'
import type { InstancePlan } from './derive.ts'

export interface ContainerInstance {
  readonly plan: InstancePlan
  /** Where the app listens (only its sidecar calls it). */
  readonly appUrl: string
  /** Where the mesh reaches the instance: its sidecar's inbound listener. */
  readonly inboundUrl: string
  readonly sidecar: Sidecar
  close(): Promise<void>
}

export interface PortReservation {
  readonly port: number
  /** Lets the port go, just before its real listener binds it. Idempotent. */
  release(): Promise<void>
}

/**
 * A free loopback port, for listeners whose address must be written into the config before they
 * start. It stays bound until `release()`: the other listeners started meanwhile bind port 0, and
 * the kernel could otherwise hand one of them this very port.
 */
export function reservePort(host: string): Promise<PortReservation> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const { port } = srv.address() as AddressInfo
      let released: Promise<void> | undefined
      const release = () => {
        released ??= new Promise<void>((done) => srv.close(() => done()))
        return released
      }
      resolve({ port, release })
    })
  })
}

export interface StartInstanceOptions {
  plan: InstancePlan
  host: string
  /** The inbound port reserved for this instance (already in the derived config). */
  inbound: PortReservation
  /** The config source's URL (DEV_CONFIG_URL). */
  configPath: string
  /** The source, opened with the environment a sidecar in a task would have (the agent's address). */
  configSource?: ConfigSource
  /** MESHGATE_CONFIG_POLL of the sidecar, in ms. */
  configPollMs?: number
  /** Every line the sidecar logs: access log and notices. */
  log(line: string): void
  /** Longest drain on close, ms. */
  drainMs: number
}

export async function startInstance(opts: StartInstanceOptions): Promise<ContainerInstance> {
  const { plan, host } = opts
  // The app needs its sidecar's outbound address, which exists only once the sidecar has started.
  let client: MeshClient | undefined
  const mesh: MeshClient = {
    get: (service, path, from) =>
      client
        ? client.get(service, path, from)
        : Promise.resolve({ status: 0, headers: {}, body: 'sidecar not ready' }),
    close: () => client?.close(),
  }
  const app: Server = createServer(
    { keepAliveTimeout: 5_000 },
    containerAppFor({ service: plan.service, target: plan.target, instance: plan.id, mesh }),
  )
  const appUrl = `http://${host}:${await listen(app, 0, host)}`
  const closeApp = () =>
    new Promise<void>((resolve) => {
      app.close(() => resolve())
      app.closeAllConnections()
    })
  let sidecar: Sidecar
  try {
    sidecar = await startSidecar({
      configPath: opts.configPath,
      ...(opts.configSource === undefined ? {} : { configSource: opts.configSource }),
      ...(opts.configPollMs === undefined ? {} : { configPollMs: opts.configPollMs }),
      service: plan.service,
      app: appUrl,
      outbound: `${host}:0`,
      inbound: `${host}:${opts.inbound.port}`,
      beforeInboundBind: () => opts.inbound.release(),
      admin: `${host}:0`,
      drainMs: opts.drainMs,
      xrayDaemon: null,
      log: opts.log,
    })
  } catch (err) {
    await closeApp()
    throw err
  }
  client = createMeshClient(sidecar.addresses.outbound)
  return {
    plan,
    appUrl,
    inboundUrl: `http://${sidecar.addresses.inbound}`,
    sidecar,
    async close() {
      await sidecar.close()
      mesh.close()
      await closeApp()
    },
  }
}
