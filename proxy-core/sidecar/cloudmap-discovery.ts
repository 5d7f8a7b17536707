// Endpoint discovery for `cloudmap://NAMESPACE/SERVICE` targets: AWS Cloud Map's DiscoverInstances
// (the API App Mesh's Envoy and ECS Service Connect read), HEALTHY instances only, called every
// `refresh` ms with ±10% jitter so a fleet of sidecars does not call in step. Each instance becomes
// `http://AWS_INSTANCE_IPV4:AWS_INSTANCE_PORT` (IPv6 or CNAME when that is what it registered).
//
// - An API failure keeps the last good set (a control-plane hiccup must not empty a target that is
//   serving), says so once per failure streak in the log, and marks the target `stale` on /stats.
// - A successful answer with no instances empties the target: requests get 503 upstream_unavailable
//   instead of going on to endpoints Cloud Map no longer lists.
// - The SDK client is loaded only when a config has a cloudmap:// target, and made once per process.

import type { CloudMapTargetConfig, MeshConfig, MeshRuntime } from '../engine/types.ts'
import { lazyModule } from '../lazy-module.ts'

export interface CloudMapTarget {
  service: string
  target: string
  cloudMap: CloudMapTargetConfig
}

/** The DiscoverInstances input and the part of its output that discovery reads. */
export interface DiscoverInput {
  NamespaceName: string
  ServiceName: string
  HealthStatus: 'HEALTHY'
  MaxResults: number
  QueryParameters?: Record<string, string>
  OptionalParameters?: Record<string, string>
}
export interface DiscoveredInstance {
  InstanceId?: string
  Attributes?: Record<string, string>
}
export type Discover = (input: DiscoverInput) => Promise<DiscoveredInstance[]>

/** What /stats shows per target. Times are ISO strings. */
export interface CloudMapTargetStatus {
  service: string
  target: string
  namespace: string
  cloudMapService: string
  /** The endpoints in use now (the last good answer). */
  endpoints: string[]
  /** DiscoverInstances calls answered (successfully) so far. */
  refreshes: number
  failures: number
  /** Instances skipped because they registered no address or port. */
  skipped: number
  lastSuccessAt?: string
  lastFailureAt?: string
  lastError?: string
  /** true while the latest call failed: `endpoints` is the last good set, not a fresh one. */
  stale: boolean
}

export interface CloudMapDiscoveryOptions {
  discover: Discover
  random?: () => number
  /** Epoch ms for the status times. */
  now?: () => number
  /** Told of the first failure of a streak (the last good set stays in place). */
  onError?: (t: CloudMapTarget, err: unknown, status: Readonly<CloudMapTargetStatus>) => void
  /** Told when a failure streak ends. */
  onRecovered?: (t: CloudMapTarget, status: Readonly<CloudMapTargetStatus>) => void
}

export interface CloudMapDiscovery {
  stop(): void
  /** Calls DiscoverInstances for every target once now; resolves when all answered or failed. */
  refresh(): Promise<void>
}

/** Cloud Map's largest page for DiscoverInstances (which has no paging: one call, up to this many). */
export const DISCOVER_MAX_RESULTS = 1000
/** ±10% around the refresh interval. */
const JITTER = 0.1

export function cloudMapTargets(config: MeshConfig): CloudMapTarget[] {
  const out: CloudMapTarget[] = []
  for (const svc of Object.values(config.services)) {
    for (const t of Object.values(svc.targets)) {
      if (t.kind !== 'http' || t.cloudMap === undefined) continue
      out.push({ service: svc.name, target: t.name, cloudMap: t.cloudMap })
    }
  }
  return out
}

/** Changes when anything about the target's lookup changes (the refresh interval aside). */
export function cloudMapKey(t: CloudMapTarget): string {
  const { namespace, service, queryParameters, optionalParameters, defaultPort } = t.cloudMap
  return JSON.stringify([
    t.service,
    t.target,
    namespace,
    service,
    queryParameters,
    optionalParameters,
    defaultPort,
  ])
}

/** The endpoint of one instance, or undefined when it registered no usable address or port. */
export function instanceUrl(
  instance: DiscoveredInstance,
  defaultPort: number | undefined,
  protocol: 'http' | 'https' = 'http',
): string | undefined {
  const a = instance.Attributes ?? {}
  const port = a.AWS_INSTANCE_PORT !== undefined ? Number(a.AWS_INSTANCE_PORT) : defaultPort
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return undefined
  const host =
    a.AWS_INSTANCE_IPV4 ??
    (a.AWS_INSTANCE_IPV6 === undefined ? a.AWS_INSTANCE_CNAME : `[${a.AWS_INSTANCE_IPV6}]`)
  if (host === undefined || host === '' || /[\s/?#@]/.test(host)) return undefined
  return `${protocol}://${host}:${port}`
}

/** One entry per target key, kept across config reloads: the last good set and its status. */
export type CloudMapCache = Map<string, CloudMapTargetStatus>

function newStatus(t: CloudMapTarget): CloudMapTargetStatus {
  return {
    service: t.service,
    target: t.target,
    namespace: t.cloudMap.namespace,
    cloudMapService: t.cloudMap.service,
    endpoints: [],
    refreshes: 0,
    failures: 0,
    skipped: 0,
    stale: false,
  }
}

/**
 * Starts discovery for `targets`. `apply` gets the full, sorted endpoint list whenever it changes (and
 * at once from `cache` when a reload finds a known target, so a new runtime never starts empty).
 */
export function startCloudMapDiscovery(
  targets: CloudMapTarget[],
  apply: (t: CloudMapTarget, urls: string[]) => void,
  cache: CloudMapCache,
  opts: CloudMapDiscoveryOptions,
): CloudMapDiscovery {
  const random = opts.random ?? Math.random
  const now = opts.now ?? Date.now
  const timers = new Set<NodeJS.Timeout>()
  let stopped = false

  async function refreshOne(t: CloudMapTarget, status: CloudMapTargetStatus): Promise<void> {
    const c = t.cloudMap
    let instances: DiscoveredInstance[]
    try {
      instances = await opts.discover({
        NamespaceName: c.namespace,
        ServiceName: c.service,
        HealthStatus: 'HEALTHY',
        MaxResults: DISCOVER_MAX_RESULTS,
        ...(Object.keys(c.queryParameters).length > 0 ? { QueryParameters: c.queryParameters } : {}),
        ...(Object.keys(c.optionalParameters).length > 0 ? { OptionalParameters: c.optionalParameters } : {}),
      })
    } catch (err) {
      if (stopped) return
      const first = !status.stale
      status.failures++
      status.stale = true
      status.lastFailureAt = new Date(now()).toISOString()
      status.lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
      if (first) opts.onError?.(t, err, status)
      return
    }
    if (stopped) return
    const urls: string[] = []
    let skipped = 0
    for (const instance of instances) {
      const url = instanceUrl(instance, c.defaultPort, c.protocol)
      if (url === undefined) skipped++
      else urls.push(url)
    }
    const next = [...new Set(urls)].sort()
    const changed = status.refreshes === 0 || status.endpoints.join(' ') !== next.join(' ')
    const recovered = status.stale
    status.endpoints = next
    status.skipped = skipped
    status.stale = false
    status.lastSuccessAt = new Date(now()).toISOString()
    // Applied before the count moves: a reader that sees `refreshes` grow sees the set it produced.
    if (changed) apply(t, next)
    status.refreshes++
    if (recovered) opts.onRecovered?.(t, status)
  }

  function schedule(t: CloudMapTarget, status: CloudMapTargetStatus): void {
    if (stopped || !(t.cloudMap.refresh > 0)) return
    const delay = t.cloudMap.refresh * (1 - JITTER + 2 * JITTER * random())
    const timer = setTimeout(() => {
      timers.delete(timer)
      void refreshOne(t, status).finally(() => schedule(t, status))
    }, delay)
    // Discovery never keeps the process alive on its own.
    timer.unref()
    timers.add(timer)
  }

  const entries = targets.map((t) => {
    const key = cloudMapKey(t)
    let status = cache.get(key)
    if (status === undefined) {
      status = newStatus(t)
      cache.set(key, status)
    } else if (status.refreshes > 0) apply(t, status.endpoints)
    return { t, status }
  })
  const first = Promise.all(
    entries.map(({ t, status }) => refreshOne(t, status).finally(() => schedule(t, status))),
  ).then(() => {})

  return {
    stop() {
      stopped = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    },
    refresh: () =>
      first.then(() => Promise.all(entries.map(({ t, status }) => refreshOne(t, status))).then(() => {})),
  }
}

/**
 * The sidecar's wiring for one config: discovery of its cloudmap:// targets into `runtime`, with a
 * notice line (`cloudmap_error`, `cloudmap_recovered`) through `note`.
 */
export function startCloudMapForConfig(
  config: MeshConfig,
  runtime: Pick<MeshRuntime, 'setEndpoints'>,
  cache: CloudMapCache,
  discover: Discover,
  note: (type: string, fields: Record<string, unknown>) => void,
): CloudMapDiscovery {
  const labels = (t: CloudMapTarget) => ({
    service: t.service,
    target: t.target,
    namespace: t.cloudMap.namespace,
    cloudMapService: t.cloudMap.service,
  })
  return startCloudMapDiscovery(
    cloudMapTargets(config),
    (t, urls) => runtime.setEndpoints(t.service, t.target, urls),
    cache,
    {
      discover,
      onError: (t, err, status) =>
        note('cloudmap_error', {
          ...labels(t),
          error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
          keptEndpoints: status.endpoints.length,
        }),
      onRecovered: (t, status) =>
        note('cloudmap_recovered', { ...labels(t), endpoints: status.endpoints.length }),
    },
  )
}

/** Each cloudmap:// target's status in `config`, for /stats. */
export function cloudMapStatus(
  config: MeshConfig,
  cache: CloudMapCache,
): (CloudMapTargetStatus | undefined)[] {
  return cloudMapTargets(config).map((t) => cache.get(cloudMapKey(t)))
}

/** What the SDK client is made with; see docs/config.md#cloud-map-targets. */
export interface CloudMapClientOptions {
  region?: string
  /** In-process callers (tests, embedders); the sidecar command leaves it to the SDK's own variables. */
  endpoint?: string
  credentials?: { accessKeyId: string; secretAccessKey: string }
  /**
   * DiscoverInstances goes to `data-servicediscovery.REGION.amazonaws.com`: the SDK puts `data-` in
   * front of the endpoint's host. A custom endpoint (AWS_ENDPOINT_URL_SERVICEDISCOVERY, a local
   * emulator, a VPC endpoint's own name) is the address to call as given, so the sidecar turns the
   * prefix off when one is set (`disableHostPrefix`, the SDK's client option for exactly this).
   */
  disableHostPrefix?: boolean
  /** Longest wait for one DiscoverInstances call, SDK retries included, in ms. Default 10 s. */
  timeoutMs?: number
}

/**
 * 10 s: the SDK sets no request timeout of its own, and a call that never returns would stop the
 * refreshes of its target for good. Well inside the 30 s refresh; the SDK's standard retries (3
 * attempts, backoff of a few hundred ms) fit in it.
 */
export const DISCOVER_TIMEOUT_MS = 10_000

/**
 * DiscoverInstances through the real `@aws-sdk/client-servicediscovery`, imported on first use: a
 * mesh without cloudmap:// targets never loads it. One client for the life of the process.
 */
export function createSdkDiscover(options: CloudMapClientOptions = {}): Discover & { close(): void } {
  let client: Promise<{ send: Discover; destroy(): void }> | undefined
  const load = () => {
    client ??= import('@aws-sdk/client-servicediscovery').then((mod) => {
      const sdk = lazyModule(mod, 'ServiceDiscoveryClient')
      const c = new sdk.ServiceDiscoveryClient({
        ...(options.region === undefined ? {} : { region: options.region }),
        ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
        ...(options.disableHostPrefix === true ? { disableHostPrefix: true } : {}),
      })
      return {
        send: async (input) => {
          const abortSignal = AbortSignal.timeout(options.timeoutMs ?? DISCOVER_TIMEOUT_MS)
          const out = await c.send(new sdk.DiscoverInstancesCommand(input), { abortSignal })
          return out.Instances ?? []
        },
        destroy: () => c.destroy(),
      }
    })
    return client
  }
  const discover: Discover = async (input) => (await load()).send(input)
  return Object.assign(discover, {
    close() {
      void client?.then((c) => c.destroy())
    },
  })
}
