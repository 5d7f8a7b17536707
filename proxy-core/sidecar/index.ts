// `meshgate/sidecar`: the sidecar as a library. `startSidecar` loads the mesh config, binds the outbound,
// inbound and admin listeners, and keeps the runtime current: `reload()` validates a new config and
// swaps the runtime atomically (a request finishes on the runtime it started with); `drain()` and
// `close()` shut it down gracefully. No signals, no environment, no stdout here: command.ts does those.

import { readFile } from 'node:fs/promises'
import { loadConfigFile } from '../config/load.ts'
import { compileMesh } from '../engine/compile.ts'
import { createMeshRuntime } from '../engine/runtime.ts'
import type { MeshConfig, MeshRuntime, RequestEvent, TelemetrySink } from '../engine/types.ts'
import { systemClock, systemRandom, systemTimers } from '../engine/types.ts'
import type { EdgeTimeouts } from '../http/limits.ts'
import type { HttpInvokerOptions } from '../invokers/http-invoker.ts'
import { createHttpInvoker } from '../invokers/http-invoker.ts'
import { createLambdaInvoker } from '../invokers/lambda-invoker.ts'
import { formatAccessLog } from '../telemetry/access-log.ts'
import type { CloudWatchPublisher } from '../telemetry/cloudwatch.ts'
import { createCloudWatchPublisher } from '../telemetry/cloudwatch.ts'
import type { MetricsRegistry } from '../telemetry/metrics.ts'
import { createMetricsRegistry } from '../telemetry/metrics.ts'
import { createXRayEmitter } from '../telemetry/xray-emitter.ts'
import { createAdminHandler } from './admin.ts'
import type { CloudMapCache, CloudMapClientOptions, CloudMapDiscovery } from './cloudmap-discovery.ts'
import { cloudMapStatus, createSdkDiscover, startCloudMapForConfig } from './cloudmap-discovery.ts'
import type { DnsDiscovery } from './dns-discovery.ts'
import { dnsTargets, startDnsDiscovery } from './dns-discovery.ts'
import { createHealthChecks } from './health-prober.ts'
import { listenHttp1 } from './http1-server.ts'
import { createInboundHandler } from './inbound.ts'
import { parseListenAddress } from './listen-address.ts'
import { createOutboundHandler } from './outbound.ts'
import type { Listener } from './server.ts'
import { listen } from './server.ts'
import { createSidecarTracing } from './tracing.ts'

/** DESIGN's ports: Istio's outbound/inbound capture ports and Envoy's admin port. */
export const DEFAULT_OUTBOUND = '127.0.0.1:15001'
export const DEFAULT_INBOUND = '0.0.0.0:15006'
export const DEFAULT_ADMIN = '127.0.0.1:15000'
/** 20 s: DESIGN's `--drain` default, inside Kubernetes' 30 s termination grace period. */
export const DEFAULT_DRAIN_MS = 20_000
/** A drain closes idle connections once no request has started or ended for this long, in ms. */
const DRAIN_QUIET_MS = 250

export interface SidecarOptions {
  /** The mesh file (YAML or JSON). */
  configPath: string
  /** This sidecar's service: the name inbound traffic is reported under. */
  service: string
  /** The app's origin for inbound traffic, e.g. `http://127.0.0.1:8080`; no inbound listener without it. */
  app?: string
  /** `host:port`; port 0 picks a free port (see `addresses`). */
  outbound?: string
  inbound?: string
  /**
   * Awaited just before the inbound listener binds: a caller that holds the inbound port reserved
   * (`meshgate dev` writes it into the config first) lets it go here, not before the config loads,
   * so no other socket on the machine can take the port in between.
   */
  beforeInboundBind?: () => Promise<void>
  admin?: string
  /** Longest drain on close, in ms. */
  drainMs?: number
  /** One line per access-log entry and per notice (no trailing newline). Default: dropped. */
  log?: (line: string) => void
  /** X-Ray daemon `host:port`; null: no tracing. Default `127.0.0.1:2000`. */
  xrayDaemon?: string | null
  /** `AWS::ECS::Container` (default) or `AWS::EKS::Container`. */
  xrayOrigin?: string
  /** CloudWatch PutMetricData every 60 s; off unless given. */
  cloudWatch?: { namespace: string; dimensions?: Record<string, string>; endpoint?: string; region?: string }
  /** Resolver servers for dns:// targets; default the system's. */
  dnsServers?: string[]
  /** How the Cloud Map client for cloudmap:// targets is made (loaded only if one exists). */
  cloudMap?: CloudMapClientOptions
  /** Options for the upstream pools. */
  http?: HttpInvokerOptions
  /** Timeouts of the outbound and inbound listeners' connections (http/limits.ts has the defaults). */
  edge?: Partial<EdgeTimeouts>
}

export interface SidecarAddresses {
  outbound: string
  inbound: string | null
  admin: string
}

export interface Sidecar {
  readonly addresses: SidecarAddresses
  /** The config requests are being routed with now. */
  config(): MeshConfig
  readonly metrics: MetricsRegistry
  /**
   * Load the config file again; on success swap the runtime and resolve true, resolve false when the
   * file did not change. A bad file throws (ConfigError) and the current config stays in force.
   */
  reload(): Promise<boolean>
  /** /ready answers 503 from now on; listeners stop accepting; resolves once in-flight work is done. */
  drain(ms?: number): Promise<{ drained: boolean; inFlight: number }>
  /** Drain (if not yet), flush telemetry and release everything. */
  close(): Promise<void>
}

interface Generation {
  runtime: MeshRuntime
  /** The file's bytes, to tell a real change from an editor touching the file. */
  text: string
  dns: DnsDiscovery
  cloudMap: CloudMapDiscovery
}

function combineSinks(sinks: TelemetrySink[]): TelemetrySink {
  return {
    attempt: (ev) => {
      for (const s of sinks) s.attempt?.(ev)
    },
    request: (ev) => {
      for (const s of sinks) s.request?.(ev)
    },
    event: (kind, labels) => {
      for (const s of sinks) s.event?.(kind, labels)
    },
  }
}

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const log = opts.log ?? (() => {})
  const clock = systemClock
  const registry = createMetricsRegistry()
  const http = createHttpInvoker(opts.http)
  const lambda = createLambdaInvoker()
  const emitter =
    opts.xrayDaemon === null ? undefined : createXRayEmitter(opts.xrayDaemon ?? '127.0.0.1:2000')
  const tracing = createSidecarTracing({
    service: opts.service,
    emitter,
    clock,
    random: systemRandom,
    origin: opts.xrayOrigin ?? 'AWS::ECS::Container',
  })
  const dnsCache = new Map<string, string[]>()
  const cloudMapCache: CloudMapCache = new Map()
  const discover = createSdkDiscover(opts.cloudMap)
  const healthChecks = createHealthChecks({
    clock,
    timers: systemTimers,
    onTransition: (t, endpoint, to, state) =>
      log(notice('health_check', { ...t, endpoint, to, detail: state.lastDetail, checks: state.checks })),
  })
  let generation: Generation | undefined
  let draining = false
  let reloads = 0
  let lastReload: { at: string; ok: boolean; error?: string } | undefined
  // The text of the last file refused: the same bad file is not reported again on every touch.
  let refusedText: string | undefined
  const started = Date.now()

  const accessLog: TelemetrySink = {
    request(ev: RequestEvent) {
      if (generation?.runtime.config.accessLog !== false) log(formatAccessLog(ev, Date.now()))
    },
  }
  // No log sink given: no line is formatted at all.
  const telemetry = combineSinks(
    opts.log === undefined ? [registry.sink(), tracing.sink] : [registry.sink(), tracing.sink, accessLog],
  )

  async function buildGeneration(): Promise<Generation> {
    const text = await readFile(opts.configPath, 'utf8')
    const config = await loadConfigFile(opts.configPath)
    healthChecks.configure(config)
    const runtime = createMeshRuntime(compileMesh(config), {
      invokers: { http, lambda },
      clock,
      telemetry,
      health: healthChecks.lookup,
    })
    const cloudMap = startCloudMapForConfig(config, runtime, cloudMapCache, discover, (type, fields) =>
      log(notice(type, fields)),
    )
    const dns = startDnsDiscovery(
      dnsTargets(config),
      (t, urls) => runtime.setEndpoints(t.service, t.target, urls),
      dnsCache,
      {
        ...(opts.dnsServers === undefined ? {} : { servers: opts.dnsServers }),
        onError: (t, err) =>
          log(
            notice('dns_error', { service: t.service, target: t.target, host: t.host, error: String(err) }),
          ),
      },
    )
    return { runtime, text, dns, cloudMap }
  }

  function install(next: Generation): void {
    const prev = generation
    generation = next
    tracing.configure(next.runtime.config.tracing.sampling)
    prev?.dns.stop()
    prev?.cloudMap.stop()
  }

  install(await buildGeneration())

  const current = (): MeshRuntime => generation!.runtime
  const isDraining = (): boolean => draining
  const onError = (err: unknown) => log(notice('handler_error', { error: String(err) }))

  const cloudWatch: CloudWatchPublisher | undefined =
    opts.cloudWatch === undefined
      ? undefined
      : createCloudWatchPublisher({
          registry,
          namespace: opts.cloudWatch.namespace,
          ...(opts.cloudWatch.dimensions === undefined ? {} : { dimensions: opts.cloudWatch.dimensions }),
          ...(opts.cloudWatch.endpoint === undefined ? {} : { endpoint: opts.cloudWatch.endpoint }),
          ...(opts.cloudWatch.region === undefined ? {} : { region: opts.cloudWatch.region }),
        })

  const listeners: Listener[] = []
  const closeAll = async () => {
    await Promise.all(listeners.map((l) => l.close()))
  }
  let outbound: Listener
  let inbound: Listener | undefined
  let admin: Listener
  try {
    outbound = await listenHttp1(
      parseListenAddress(opts.outbound ?? DEFAULT_OUTBOUND),
      createOutboundHandler({ runtime: current, draining: isDraining, trace: (h) => tracing.outbound(h) }),
      onError,
      { timeouts: opts.edge },
    )
    listeners.push(outbound)
    if (opts.app !== undefined) {
      await opts.beforeInboundBind?.()
      inbound = await listenHttp1(
        parseListenAddress(opts.inbound ?? DEFAULT_INBOUND),
        createInboundHandler({
          app: opts.app,
          service: opts.service,
          mesh: () => current().config.mesh,
          pathNormalization: () => current().config.pathNormalization,
          invoker: http,
          clock,
          telemetry,
          tracing,
          draining: isDraining,
        }),
        onError,
        { timeouts: opts.edge },
      )
      listeners.push(inbound)
    }
    admin = await listen(
      parseListenAddress(opts.admin ?? DEFAULT_ADMIN),
      createAdminHandler({
        config: () => generation?.runtime.config,
        draining: isDraining,
        registry,
        refusals: () => ({ outbound: outbound.refusals(), inbound: inbound?.refusals() ?? {} }),
        stats: () => ({
          service: opts.service,
          mesh: current().config.mesh,
          uptimeSeconds: Math.round((Date.now() - started) / 1000),
          draining,
          config: { source: current().config.source, reloads, lastReload },
          inFlight: {
            outbound: outbound.inFlight(),
            inbound: inbound?.inFlight() ?? 0,
            pipeline: current().inFlight(),
          },
          connections: { outbound: outbound.connections(), inbound: inbound?.connections() ?? 0 },
          refusals: { outbound: outbound.refusals(), inbound: inbound?.refusals() ?? {} },
          upstreamPools: http.stats(),
          endpoints: current().endpoints(),
          healthChecks: healthChecks.snapshot(),
          cloudMap: cloudMapStatus(current().config, cloudMapCache),
          xray: emitter?.stats(),
          cloudWatch: cloudWatch?.stats(),
        }),
      }),
      onError,
    )
    listeners.push(admin)
  } catch (err) {
    await closeAll()
    generation?.dns.stop()
    generation?.cloudMap.stop()
    healthChecks.stop()
    discover.close()
    await cloudWatch?.stop()
    await http.close()
    emitter?.close()
    throw err
  }

  const traffic = inbound === undefined ? [outbound] : [outbound, inbound]
  const inFlight = () => traffic.reduce((n, l) => n + l.inFlight(), 0)

  let drainPromise: Promise<{ drained: boolean; inFlight: number }> | undefined
  async function drain(ms = opts.drainMs ?? DEFAULT_DRAIN_MS) {
    draining = true
    for (const l of traffic) l.stopAccepting()
    const deadline = performance.now() + ms
    const sleep = (t: number) => new Promise((r) => setTimeout(r, t))
    // Wait for quiet: no request in flight and none started for a moment, so a request a client wrote
    // on a kept-alive connection just before the signal is still read and answered.
    const quiet = () =>
      inFlight() === 0 && traffic.every((l) => performance.now() - l.lastActivity() >= DRAIN_QUIET_MS)
    while (performance.now() < deadline && !quiet()) await sleep(25)
    for (const l of traffic) l.closeIdle()
    while (performance.now() < deadline && (inFlight() > 0 || traffic.some((l) => l.connections() > 0))) {
      for (const l of traffic) l.closeIdle()
      await sleep(25)
    }
    return { drained: inFlight() === 0, inFlight: inFlight() }
  }

  let closing: Promise<void> | undefined
  return {
    addresses: { outbound: outbound.address, inbound: inbound?.address ?? null, admin: admin.address },
    metrics: registry,
    config: () => current().config,
    async reload() {
      if (draining) return false
      const text = await readFile(opts.configPath, 'utf8')
      if (generation !== undefined && text === generation.text) return false
      if (text === refusedText) return false
      try {
        const next = await buildGeneration()
        install(next)
        reloads++
        lastReload = { at: new Date().toISOString(), ok: true }
        return true
      } catch (err) {
        lastReload = {
          at: new Date().toISOString(),
          ok: false,
          error: err instanceof Error ? err.message : String(err),
        }
        refusedText = text
        throw err
      }
    },
    drain(ms?: number) {
      drainPromise ??= drain(ms)
      return drainPromise
    },
    close() {
      closing ??= (async () => {
        drainPromise ??= drain()
        await drainPromise
        generation?.dns.stop()
        generation?.cloudMap.stop()
        healthChecks.stop()
        discover.close()
        if (cloudWatch !== undefined) {
          await cloudWatch.flush()
          await cloudWatch.stop()
        }
        await closeAll()
        await http.close()
        emitter?.close()
      })()
      return closing
    },
  }
}

/** A notice line in the same JSON shape family as the access log. */
export function notice(type: string, fields: Record<string, unknown>): string {
  return JSON.stringify({ time: new Date().toISOString(), type, ...fields })
}
