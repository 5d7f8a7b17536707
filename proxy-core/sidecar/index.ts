// `meshgate/sidecar`: the sidecar as a library. `startSidecar` loads the mesh config from its source (a
// file, AppConfig or S3: config-source/), binds the outbound, inbound and admin listeners, and keeps the
// runtime current: every new version is validated and compiled, then swapped in atomically (a request
// finishes on the runtime it started with; breakers, budgets and ejections carry over); `drain()` and
// `close()` shut it down gracefully. No signals, no environment, no stdout here: command.ts does those.

import { loadConfigText } from '../config/load.ts'
import type { ConfigSource, LiveConfig, LiveConfigStatus } from '../config-source/index.ts'
import { createLiveConfig, openConfigSource } from '../config-source/index.ts'
import { compileMesh } from '../engine/compile.ts'
import { createMeshRuntime } from '../engine/runtime.ts'
import type {
  MeshConfig,
  MeshRuntime,
  RequestEvent,
  TelemetrySink,
  UpstreamProtocol,
} from '../engine/types.ts'
import { systemClock, systemRandom, systemTimers } from '../engine/types.ts'
import type { EdgeTimeouts } from '../http/limits.ts'
import { DEFAULT_HANDSHAKE_TIMEOUT } from '../http/tls-listener.ts'
import {
  createCallerIdentity,
  createJwksFetch,
  createReceiver,
  type FetchJwks,
  type Mint,
  type Receiver,
} from '../identity/index.ts'
import type { HttpInvokerOptions } from '../invokers/http-invoker.ts'
import { createHttpInvoker } from '../invokers/http-invoker.ts'
import { createLambdaInvoker } from '../invokers/lambda-invoker.ts'
import { formatAccessLog } from '../telemetry/access-log.ts'
import type { CloudWatchPublisher } from '../telemetry/cloudwatch.ts'
import { createCloudWatchPublisher } from '../telemetry/cloudwatch.ts'
import { createConfigMetrics } from '../telemetry/config-metrics.ts'
import type { MetricsRegistry } from '../telemetry/metrics.ts'
import { createMetricsRegistry } from '../telemetry/metrics.ts'
import { createXRayEmitter } from '../telemetry/xray-emitter.ts'
import type { TlsFiles, TlsMaterial } from '../tls/index.ts'
import { createTlsMaterial } from '../tls/index.ts'
import { createTcpServices, createTunnelStats, createTunnels, type TcpServices } from '../tunnel/index.ts'
import { createAdminHandler } from './admin.ts'
import type { CloudMapCache, CloudMapClientOptions, CloudMapDiscovery } from './cloudmap-discovery.ts'
import { cloudMapStatus, createSdkDiscover, startCloudMapForConfig } from './cloudmap-discovery.ts'
import type { DnsDiscovery } from './dns-discovery.ts'
import { dnsTargets, startDnsDiscovery } from './dns-discovery.ts'
import { createHealthChecks } from './health-prober.ts'
import { listenHttp1 } from './http1-server.ts'
import { APP_TARGET, createInboundHandler, INBOUND_ROUTE, inboundIdleTimeout } from './inbound.ts'
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
  /**
   * The config source: a mesh file path (YAML or JSON), inline JSON, `appconfig://APP/ENV/PROFILE` or
   * `s3://BUCKET/KEY` (DESIGN "Live config").
   */
  configPath: string
  /** An already opened source instead (tests, `meshgate dev`); `configPath` then only names it. */
  configSource?: ConfigSource
  /** Poll interval in ms (MESHGATE_CONFIG_POLL); default 45 s. */
  configPollMs?: number
  /** File sources: how long an in-place write must rest before it is read (MESHGATE_CONFIG_SETTLE); default 1 s. */
  configSettleMs?: number
  /** Notices about the config (reloads, refusals, staleness), one line each. Default: JSON lines on `log`. */
  notice?: (line: string) => void
  /** This sidecar's service: the name inbound traffic is reported under. */
  service: string
  /** The app's origin for inbound traffic, e.g. `http://127.0.0.1:8080`; no inbound listener without it. */
  app?: string
  /**
   * How the inbound side speaks to the app: `http1` (default) or HTTP/2 (`http2`, `grpc`). gRPC calls
   * go to the app over HTTP/2 whatever this says: gRPC has no HTTP/1.1 form.
   */
  appProtocol?: UpstreamProtocol
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
  /** CloudWatch PutMetricData every 60 s (`intervalMs`: another period, for tests); off unless given. */
  cloudWatch?: {
    namespace: string
    dimensions?: Record<string, string>
    endpoint?: string
    region?: string
    intervalMs?: number
  }
  /** Resolver servers for dns:// targets; default the system's. */
  dnsServers?: string[]
  /** How the Cloud Map client for cloudmap:// targets is made (loaded only if one exists). */
  cloudMap?: CloudMapClientOptions
  /** Options for the upstream pools. */
  http?: HttpInvokerOptions
  /** Timeouts of the outbound and inbound listeners' connections (http/limits.ts has the defaults). */
  edge?: Partial<EdgeTimeouts>
  /**
   * TLS between sidecars (docs/tls.md): the inbound listener speaks only TLS with this certificate
   * (and, with `ca`, requires a client certificate that chains to it); https upstreams are reached with
   * it as the client certificate and verified against `ca`. The files are watched and swapped in.
   */
  tls?: TlsFiles & { handshakeTimeoutMs?: number; mode?: 'strict' | 'permissive' }
  /**
   * Mesh identity (docs/security.md): `caFile` is a PEM bundle trusted beside the system's roots when
   * fetching issuers' JWKS (MESHGATE_IDENTITY_CA); `mint` and `fetchJwks` replace STS and HTTPS.
   */
  identity?: { caFile?: string; mint?: Mint; fetchJwks?: FetchJwks }
}

export interface SidecarAddresses {
  outbound: string
  inbound: string | null
  admin: string
  /** The tcp services' listeners bound now: service → host:port. */
  tcp(): Record<string, string>
}

export interface Sidecar {
  readonly addresses: SidecarAddresses
  /** The config requests are being routed with now. */
  config(): MeshConfig
  readonly metrics: MetricsRegistry
  /** Where the config comes from and how current it is (`/config`'s `source` block). */
  configStatus(): LiveConfigStatus
  /**
   * Ask the config source now; on a new valid version swap the runtime and resolve true, resolve false
   * when nothing changed. When the newest version is refused this rejects with the reason, and the
   * current config stays in force (the refusal is also reported through `notice`).
   */
  reload(): Promise<boolean>
  /** /ready answers 503 from now on; listeners stop accepting; resolves once in-flight work is done. */
  drain(ms?: number): Promise<{ drained: boolean; inFlight: number }>
  /** Drain (if not yet), flush telemetry and release everything. */
  close(): Promise<void>
}

interface Generation {
  runtime: MeshRuntime
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
  // Unusable files at start are an error (the sidecar does not start half secure); later versions
  // that do not load are refused and the one in use keeps serving.
  const tls: TlsMaterial | undefined =
    opts.tls === undefined
      ? undefined
      : createTlsMaterial(
          {
            cert: opts.tls.cert,
            key: opts.tls.key,
            ...(opts.tls.ca === undefined ? {} : { ca: opts.tls.ca }),
          },
          { notice: (type, fields) => log(notice(type, fields)) },
        )
  const http = createHttpInvoker({ ...opts.http, ...(tls === undefined ? {} : { tls }) })
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
  const tunnels = createTunnels({
    stats: createTunnelStats(),
    ...(opts.log === undefined ? {} : { log: opts.log }),
    logging: () => generation?.runtime.config.accessLog !== false,
    now: () => clock.now(),
  })
  /** Set once the outbound address is known; reloads reconcile the tcp listeners through it. */
  let tcp: TcpServices | undefined
  const started = Date.now()
  const configNotice = opts.notice ?? ((line: string) => log(notice('config', { message: line })))

  const accessLog: TelemetrySink = {
    request(ev: RequestEvent) {
      if (generation?.runtime.config.accessLog !== false) log(formatAccessLog(ev, Date.now()))
    },
  }
  // No log sink given: no line is formatted at all.
  const telemetry = combineSinks(
    opts.log === undefined ? [registry.sink(), tracing.sink] : [registry.sink(), tracing.sink, accessLog],
  )

  // Identity: the caller side mints only once a config names `identity` and a call is made; the
  // receiver's keys and buckets outlive config swaps.
  const callerIdentity = createCallerIdentity({
    config: () => generation!.runtime.config,
    clock,
    ...(opts.identity?.mint === undefined ? {} : { mint: opts.identity.mint }),
    onError: (message) => log(notice('identity', { message })),
  })
  const receiver: Receiver | undefined =
    opts.app === undefined
      ? undefined
      : createReceiver({
          config: () => generation!.runtime.config,
          clock,
          fetchJwks:
            opts.identity?.fetchJwks ??
            createJwksFetch(opts.identity?.caFile === undefined ? {} : { caFile: opts.identity.caFile }),
          telemetry: registry.sink(),
          labels: { route: INBOUND_ROUTE, target: APP_TARGET },
          onError: (message) => log(notice('identity', { message })),
        })

  /** Parse, validate and compile one version; DNS and Cloud Map discovery start only once it is accepted. */
  async function buildGeneration(text: string, name: string, previous?: Generation): Promise<Generation> {
    const config = await loadConfigText(text, name)
    const compiled = compileMesh(config)
    healthChecks.configure(config)
    const runtime = createMeshRuntime(
      compiled,
      { invokers: { http, lambda }, clock, telemetry, health: healthChecks.lookup, identity: callerIdentity },
      previous?.runtime,
    )
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
    return { runtime, dns, cloudMap }
  }

  /** Requests per service so far, to tell which services a reload takes away from live traffic. */
  function requestsByService(): Map<string, number> {
    const out = new Map<string, number>()
    for (const s of registry.series()) {
      out.set(s.labels.service, (out.get(s.labels.service) ?? 0) + s.total.requests)
    }
    return out
  }
  let requestsAtSwap = new Map<string, number>()

  function install(next: Generation, prev: Generation | undefined): void {
    generation = next
    // New tcp ports open, removed ones close; a port that cannot be bound is said, not fatal here.
    tcp?.reconcile(next.runtime.config).catch((err: unknown) => configNotice(String((err as Error).message)))
    tracing.configure(next.runtime.config.tracing.sampling)
    prev?.dns.stop()
    prev?.cloudMap.stop()
    if (prev === undefined) return
    // A service that took traffic since the last swap and is gone now: said loudly, since its callers
    // get 404 unknown_service from here on (issue 16: a reload must never drop a service quietly).
    const now = requestsByService()
    for (const name of Object.keys(prev.runtime.config.services)) {
      if (name in next.runtime.config.services) continue
      const taken = (now.get(name) ?? 0) - (requestsAtSwap.get(name) ?? 0)
      if (taken > 0) {
        configNotice(
          `WARNING: the new config removes service "${name}", which took ${taken} requests since the last reload; its callers now get 404 unknown_service`,
        )
      }
    }
    requestsAtSwap = now
  }

  const live: LiveConfig<Generation> = await createLiveConfig<Generation>({
    source:
      opts.configSource ??
      openConfigSource(opts.configPath, {
        ...(opts.configPollMs === undefined ? {} : { pollMs: opts.configPollMs }),
        ...(opts.configSettleMs === undefined ? {} : { settleMs: opts.configSettleMs }),
        log: configNotice,
      }),
    build: (v, previous) => buildGeneration(v.text, v.name, previous),
    onSwap: (next, prev) => install(next, prev),
    log: configNotice,
    ...(opts.configPollMs === undefined ? {} : { pollMs: opts.configPollMs }),
  })
  install(live.current(), undefined)

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
          ...(opts.cloudWatch.intervalMs === undefined ? {} : { intervalMs: opts.cloudWatch.intervalMs }),
          runtimeMetrics: createConfigMetrics(() => live.status()),
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
      createOutboundHandler({
        runtime: current,
        draining: isDraining,
        trace: (h) => tracing.outbound(h),
        tunnels,
      }),
      onError,
      { timeouts: opts.edge },
    )
    listeners.push(outbound)
    tcp = createTcpServices({
      host: parseListenAddress(opts.outbound ?? DEFAULT_OUTBOUND).host,
      runtime: current,
      tunnels,
      notice: (type, fields) => log(notice(type, fields)),
    })
    await tcp.reconcile(current().config)
    if (opts.app !== undefined) {
      await opts.beforeInboundBind?.()
      inbound = await listenHttp1(
        parseListenAddress(opts.inbound ?? DEFAULT_INBOUND),
        createInboundHandler({
          app: opts.app,
          ...(opts.appProtocol === undefined ? {} : { appProtocol: opts.appProtocol }),
          service: opts.service,
          mesh: () => current().config.mesh,
          pathNormalization: () => current().config.pathNormalization,
          invoker: http,
          clock,
          telemetry,
          tracing,
          draining: isDraining,
          tunnels,
          idleTimeout: () => inboundIdleTimeout(current().config, opts.service),
          ...(receiver === undefined ? {} : { receiver }),
        }),
        onError,
        {
          timeouts: opts.edge,
          ...(tls === undefined
            ? {}
            : {
                tls: {
                  material: tls,
                  handshakeTimeout: opts.tls?.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT,
                  permissive: opts.tls?.mode === 'permissive',
                },
              }),
        },
      )
      listeners.push(inbound)
    }
    admin = await listen(
      parseListenAddress(opts.admin ?? DEFAULT_ADMIN),
      createAdminHandler({
        config: () => generation?.runtime.config,
        configStatus: () => live.status(),
        draining: isDraining,
        registry,
        refusals: () => ({ outbound: outbound.refusals(), inbound: inbound?.refusals() ?? {} }),
        extraMetrics: () => tunnels.stats.prometheus(),
        tls: () =>
          tls === undefined
            ? undefined
            : {
                ...tls.stats(),
                handshakeFailures: inbound?.handshakeFailures() ?? {},
                plaintextConnections: inbound?.plaintextConnections() ?? 0,
              },
        stats: () => ({
          service: opts.service,
          mesh: current().config.mesh,
          uptimeSeconds: Math.round((Date.now() - started) / 1000),
          draining,
          config: live.status(),
          inFlight: {
            outbound: outbound.inFlight(),
            inbound: inbound?.inFlight() ?? 0,
            pipeline: current().inFlight(),
          },
          connections: { outbound: outbound.connections(), inbound: inbound?.connections() ?? 0 },
          tunnels: {
            active: tunnels.active(),
            tcp: tcp?.addresses() ?? {},
            series: tunnels.stats.snapshot(),
          },
          refusals: { outbound: outbound.refusals(), inbound: inbound?.refusals() ?? {} },
          upstreamPools: http.stats(),
          tls:
            tls === undefined
              ? null
              : {
                  ...tls.stats(),
                  handshakeFailures: inbound?.handshakeFailures() ?? {},
                  plaintextConnections: inbound?.plaintextConnections() ?? 0,
                },
          endpoints: current().endpoints(),
          healthChecks: healthChecks.snapshot(),
          cloudMap: cloudMapStatus(current().config, cloudMapCache),
          xray: emitter?.stats(),
          identity: { mints: callerIdentity.mints(), jwksFetches: receiver?.jwksFetches() ?? {} },
          cloudWatch: cloudWatch?.stats(),
        }),
      }),
      onError,
    )
    listeners.push(admin)
  } catch (err) {
    tcp?.stopAccepting()
    await closeAll()
    tls?.close()
    live.close()
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
    tcp?.stopAccepting()
    const deadline = performance.now() + ms
    const sleep = (t: number) => new Promise((r) => setTimeout(r, t))
    // Wait for quiet: no request in flight and none started for a moment, so a request a client wrote
    // on a kept-alive connection just before the signal is still read and answered.
    const quiet = () =>
      inFlight() === 0 && traffic.every((l) => performance.now() - l.lastActivity() >= DRAIN_QUIET_MS)
    while (performance.now() < deadline && !quiet()) await sleep(25)
    for (const l of traffic) l.closeIdle()
    // Tunnels (upgraded and TCP) are not cut before the deadline: like requests, they get to finish.
    while (
      performance.now() < deadline &&
      (inFlight() > 0 || tunnels.active() > 0 || traffic.some((l) => l.connections() > 0))
    ) {
      for (const l of traffic) l.closeIdle()
      await sleep(25)
    }
    return { drained: inFlight() === 0, inFlight: inFlight() }
  }

  let closing: Promise<void> | undefined
  return {
    addresses: {
      outbound: outbound.address,
      inbound: inbound?.address ?? null,
      admin: admin.address,
      tcp: () => tcp?.addresses() ?? {},
    },
    metrics: registry,
    config: () => current().config,
    configStatus: () => live.status(),
    async reload() {
      if (draining) return false
      const swapped = await live.checkNow()
      const status = live.status()
      if (!swapped && status.rejectedVersion !== null) throw new Error(status.lastError ?? 'refused')
      return swapped
    },
    drain(ms?: number) {
      drainPromise ??= drain(ms)
      return drainPromise
    },
    close() {
      closing ??= (async () => {
        drainPromise ??= drain()
        await drainPromise
        live.close()
        generation?.dns.stop()
        generation?.cloudMap.stop()
        healthChecks.stop()
        discover.close()
        if (cloudWatch !== undefined) {
          await cloudWatch.flush()
          await cloudWatch.stop()
        }
        tunnels.closeAll()
        await closeAll()
        tls?.close()
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
