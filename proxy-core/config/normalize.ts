// From the schema-checked document to the MeshConfig the engine reads: defaults applied, shorthand
// expanded, and the cross-references checked (targets, mirrors, gateway services, weights).

import { DEFAULT_PATH_NORMALIZATION, type EscapedSlashAction } from '../engine/path-normalize.ts'
import type {
  AuthorizationMode,
  AuthorizationRuleConfig,
  CloudMapTargetConfig,
  GatewayRouteConfig,
  HeaderOps,
  HealthCheckConfig,
  LoadBalancer,
  MeshConfig,
  RetryConfig,
  RouteConfig,
  RouteMatchConfig,
  ServiceConfig,
  StringMatch,
  TargetConfig,
  TargetTlsConfig,
  UpstreamProtocol,
} from '../engine/types.ts'
import { checkRollout } from '../rollout/rollout-schema.ts'
import {
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_CLOUDMAP_REFRESH_MS,
  DEFAULT_DNS_REFRESH_MS,
  DEFAULT_HEALTH_CHECK,
  DEFAULT_OUTLIER,
  DEFAULT_RETRIES,
  DEFAULT_RETRY_BUDGET,
  DEFAULT_SAMPLING,
  DEFAULT_TCP_CONNECT_TIMEOUT_MS,
  DEFAULT_TCP_IDLE_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_UPGRADE_IDLE_TIMEOUT_MS,
  HEALTH_CHECK_LIMITS,
  RESERVED_TCP_PORTS,
} from './defaults.ts'
import { formatDuration } from './duration.ts'
import type { RawMesh, RawRetries } from './mesh-schema.ts'
import type { ConfigPath, Problem } from './schema.ts'

type RawMatch = NonNullable<NonNullable<RawMesh['gateway']>['routes'][number]['match']>
type RawService = RawMesh['services'][string]
type RawTarget = RawService['targets'][string]
type RawHeaderOps = { set?: Record<string, string>; add?: Record<string, string>; remove?: string[] }

function normalizeValueMatch(v: string | StringMatch): StringMatch {
  return typeof v === 'string' ? { exact: v } : v
}

/**
 * A gRPC method match as the route table reads it: the path `/SERVICE/METHOD` (exact for both, a
 * segment prefix for the service alone, a regex for the method alone) and content-type
 * application/grpc (with or without a suffix), so no plain HTTP request takes a gRPC route.
 */
function grpcConditions(g: { service?: string; method?: string }, out: RouteMatchConfig): void {
  out.grpc = { ...g }
  const dots = (name: string) => name.replaceAll('.', '\\.')
  if (g.service !== undefined && g.method !== undefined) out.path = { exact: `/${g.service}/${g.method}` }
  else if (g.service !== undefined) out.path = { prefix: `/${g.service}` }
  else if (g.method !== undefined) out.path = { regex: `/[^/]+/${dots(g.method)}` }
  out.headers ??= {}
  out.headers['content-type'] = { regex: 'application/grpc([+;].*)?' }
}

function normalizeMatch(m: RawMatch | undefined): RouteMatchConfig {
  if (!m) return {}
  const out: RouteMatchConfig = {}
  if (m.path) out.path = m.path
  if (m.method) out.methods = typeof m.method === 'string' ? [m.method] : m.method
  if (m.headers) {
    out.headers = {}
    for (const [k, v] of Object.entries(m.headers)) out.headers[k.toLowerCase()] = normalizeValueMatch(v)
  }
  if (m.query) {
    out.query = {}
    for (const [k, v] of Object.entries(m.query)) out.query[k] = normalizeValueMatch(v)
  }
  if (m.grpc) grpcConditions(m.grpc, out)
  return out
}

function mergeRetries(base: RetryConfig, raw: RawRetries | undefined): RetryConfig {
  if (!raw) return base
  return {
    attempts: raw.attempts ?? base.attempts,
    perTryTimeout: raw.perTryTimeout ?? base.perTryTimeout,
    on: raw.on ? raw.on.filter((c) => c !== undefined).map(String) : base.on,
    backoff: { base: raw.backoff?.base ?? base.backoff.base, max: raw.backoff?.max ?? base.backoff.max },
    methods: raw.methods ?? base.methods,
  }
}

function headerOps(raw: RawHeaderOps | undefined): HeaderOps {
  const lower = (r: Record<string, string> | undefined) =>
    Object.fromEntries(Object.entries(r ?? {}).map(([k, v]) => [k.toLowerCase(), v]))
  return {
    set: lower(raw?.set),
    add: lower(raw?.add),
    remove: (raw?.remove ?? []).map((h) => h.toLowerCase()),
  }
}

/** `arn:aws:lambda:us-east-1:123456789012:function:reviews-v1:live` or `reviews-v1:live` or `reviews-v1`. */
function lambdaTarget(name: string, spec: string): TargetConfig {
  if (spec.startsWith('arn:')) {
    const parts = spec.split(':')
    const qualifier = parts.length > 7 ? parts[7] : undefined
    return {
      kind: 'lambda',
      name,
      functionName: parts.slice(0, 7).join(':'),
      ...(qualifier ? { qualifier } : {}),
    }
  }
  const [functionName, qualifier] = spec.split(':', 2) as [string, string | undefined]
  return { kind: 'lambda', name, functionName, ...(qualifier ? { qualifier } : {}) }
}

// Cloud Map's own limits (API reference): namespace names up to 1024 characters, service names up
// to 127, attribute keys up to 255 printable ASCII characters without spaces, values up to 1024.
const CLOUDMAP_NAMESPACE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/
const CLOUDMAP_SERVICE = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/
const CLOUDMAP_ATTRIBUTE_KEY = /^[!-~]{1,255}$/
/** `?optional.zone=a` goes to OptionalParameters; every other parameter to QueryParameters. */
const OPTIONAL_PREFIX = 'optional.'

/**
 * `cloudmap://NAMESPACE[:PORT]/SERVICE[?ATTR=VALUE&optional.ATTR=VALUE...]`, taken apart by hand (the
 * WHATWG URL parser treats unknown schemes loosely) so each malformed part gets its own message.
 */
export function parseCloudMapUrl(
  url: string,
  refresh: number,
): { config: CloudMapTargetConfig } | { error: string } {
  const rest = url.slice('cloudmap://'.length)
  if (rest.includes('#')) return { error: 'a cloudmap:// URL has no #fragment' }
  const q = rest.indexOf('?')
  const location = q < 0 ? rest : rest.slice(0, q)
  const query = q < 0 ? '' : rest.slice(q + 1)
  const slash = location.indexOf('/')
  if (slash < 0) return { error: `expected cloudmap://NAMESPACE/SERVICE, got ${JSON.stringify(url)}` }
  const authority = location.slice(0, slash)
  const service = location.slice(slash + 1)
  const colon = authority.lastIndexOf(':')
  const namespace = colon < 0 ? authority : authority.slice(0, colon)
  let defaultPort: number | undefined
  if (colon >= 0) {
    const port = authority.slice(colon + 1)
    defaultPort = /^\d{1,5}$/.test(port) ? Number(port) : Number.NaN
    if (!(defaultPort >= 1 && defaultPort <= 65535))
      return { error: `the port after the namespace must be 1 to 65535, got ${JSON.stringify(port)}` }
  }
  if (namespace.length === 0 || namespace.length > 1024 || !CLOUDMAP_NAMESPACE.test(namespace))
    return {
      error: `invalid Cloud Map namespace ${JSON.stringify(namespace)}: expected a name like bookinfo.local`,
    }
  if (service.length === 0 || service.length > 127 || !CLOUDMAP_SERVICE.test(service))
    return {
      error: `invalid Cloud Map service ${JSON.stringify(service)}: expected a name like reviews (no slashes)`,
    }
  const queryParameters: Record<string, string> = {}
  const optionalParameters: Record<string, string> = {}
  if (query !== '') {
    for (const part of query.split('&')) {
      const eq = part.indexOf('=')
      let key: string
      let value: string
      try {
        key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq))
        value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1))
      } catch {
        return { error: `invalid percent-encoding in ${JSON.stringify(part)}` }
      }
      const optional = key.startsWith(OPTIONAL_PREFIX)
      const attribute = optional ? key.slice(OPTIONAL_PREFIX.length) : key
      if (!CLOUDMAP_ATTRIBUTE_KEY.test(attribute))
        return { error: `invalid attribute name ${JSON.stringify(key)} in the query` }
      if (value === '' || value.length > 1024)
        return { error: `attribute ${JSON.stringify(key)} needs a value (ATTR=VALUE, up to 1024 characters)` }
      const into = optional ? optionalParameters : queryParameters
      if (attribute in into) return { error: `attribute ${JSON.stringify(key)} given twice` }
      into[attribute] = value
    }
  }
  return {
    config: {
      namespace,
      service,
      queryParameters,
      optionalParameters,
      ...(defaultPort === undefined ? {} : { defaultPort }),
      refresh,
    },
  }
}

function healthCheckConfig(
  raw: NonNullable<RawTarget['healthCheck']>,
  path: ConfigPath,
  problems: Problem[],
): HealthCheckConfig {
  const hc: HealthCheckConfig = {
    ...DEFAULT_HEALTH_CHECK,
    ...(raw.path === undefined ? {} : { path: raw.path }),
    ...(raw.port === undefined ? {} : { port: raw.port }),
    interval: raw.interval ?? DEFAULT_HEALTH_CHECK.interval,
    timeout: raw.timeout ?? DEFAULT_HEALTH_CHECK.timeout,
    healthyThreshold: raw.healthyThreshold ?? DEFAULT_HEALTH_CHECK.healthyThreshold,
    unhealthyThreshold: raw.unhealthyThreshold ?? DEFAULT_HEALTH_CHECK.unhealthyThreshold,
  }
  for (const key of ['interval', 'timeout'] as const) {
    const { min, max } = HEALTH_CHECK_LIMITS[key]
    if (raw[key] !== undefined && (hc[key] < min || hc[key] > max))
      problems.push({
        path: [...path, key],
        message: `must be from ${formatDuration(min)} to ${formatDuration(max)} (App Mesh's range), got ${formatDuration(hc[key])}`,
      })
  }
  return hc
}

function httpTarget(name: string, raw: RawTarget, path: ConfigPath, problems: Problem[]): TargetConfig {
  const urls = typeof raw.http === 'string' ? [raw.http] : (raw.http ?? [])
  const base = {
    kind: 'http' as const,
    name,
    ...(raw.protocol === undefined ? {} : { protocol: raw.protocol as UpstreamProtocol }),
    loadBalancer: (raw.loadBalancer ?? 'round-robin') as LoadBalancer,
    dnsRefresh: raw.dnsRefresh ?? DEFAULT_DNS_REFRESH_MS,
    ...(raw.healthCheck === undefined
      ? {}
      : { healthCheck: healthCheckConfig(raw.healthCheck, [...path, 'healthCheck'], problems) }),
    ...(raw.tls === undefined ? {} : { tls: raw.tls as TargetTlsConfig }),
  }
  // A `tls` block says the target speaks TLS: its discovered endpoints are https, and a static
  // http:// URL beside it contradicts it.
  const protocol = raw.tls === undefined ? 'http' : 'https'
  const cloudMap = urls.filter((u) => u.startsWith('cloudmap://'))
  if (cloudMap.length > 0) {
    if (urls.length > 1)
      problems.push({
        path: [...path, 'http'],
        message: 'a cloudmap:// target must be the only URL of its target',
      })
    const parsed = parseCloudMapUrl(cloudMap[0]!, raw.cloudMapRefresh ?? DEFAULT_CLOUDMAP_REFRESH_MS)
    if ('error' in parsed) {
      problems.push({ path: [...path, 'http'], message: parsed.error })
      return { ...base, endpoints: [] }
    }
    return { ...base, endpoints: [], cloudMap: { ...parsed.config, protocol } }
  }
  if (raw.cloudMapRefresh !== undefined)
    problems.push({
      path: [...path, 'cloudMapRefresh'],
      message: 'cloudMapRefresh applies only to a cloudmap:// target',
      atKey: true,
    })
  const dns = urls.filter((u) => u.startsWith('dns://'))
  if (dns.length > 0) {
    if (urls.length > 1)
      problems.push({
        path: [...path, 'http'],
        message: 'a dns:// target must be the only URL of its target',
      })
    const [host, port] = dns[0]!.slice('dns://'.length).split(':') as [string, string]
    return { ...base, endpoints: [], dns: { host, port: Number(port), protocol } }
  }
  const endpoints: string[] = []
  urls.forEach((u, i) => {
    try {
      const url = new URL(u)
      if (raw.tls !== undefined && url.protocol === 'http:')
        problems.push({
          path: typeof raw.http === 'string' ? [...path, 'http'] : [...path, 'http', i],
          message: `the target has a tls block: write its URL as https://${url.host}`,
        })
      endpoints.push(url.origin)
    } catch {
      problems.push({
        path: typeof raw.http === 'string' ? [...path, 'http'] : [...path, 'http', i],
        message: `invalid URL ${JSON.stringify(u)}`,
      })
    }
  })
  return { ...base, endpoints }
}

/** A tcp service's target: `host:port` endpoints as `tcp://host:port`, or one `dns://host:port`. */
function tcpTarget(name: string, raw: RawTarget, path: ConfigPath, problems: Problem[]): TargetConfig {
  const addresses = typeof raw.tcp === 'string' ? [raw.tcp] : (raw.tcp ?? [])
  for (const key of ['healthCheck', 'cloudMapRefresh'] as const) {
    if (raw[key] === undefined) continue
    problems.push({
      path: [...path, key],
      message: `${key} applies only to http targets (a tcp target is checked by its connects: outlier detection)`,
      atKey: true,
    })
  }
  const base = {
    kind: 'http' as const,
    name,
    loadBalancer: (raw.loadBalancer ?? 'round-robin') as LoadBalancer,
    dnsRefresh: raw.dnsRefresh ?? DEFAULT_DNS_REFRESH_MS,
  }
  const endpoints: string[] = []
  for (const [i, address] of addresses.entries()) {
    const at = typeof raw.tcp === 'string' ? [...path, 'tcp'] : [...path, 'tcp', i]
    const dns = address.startsWith('dns://')
    const hostPort = dns ? address.slice('dns://'.length) : address
    const colon = hostPort.lastIndexOf(':')
    const port = Number(hostPort.slice(colon + 1))
    if (!(port >= 1 && port <= 65535)) {
      problems.push({ path: at, message: `the port must be 1 to 65535, got ${hostPort.slice(colon + 1)}` })
      continue
    }
    if (dns) {
      if (addresses.length > 1)
        problems.push({ path: at, message: 'a dns:// target must be the only address of its target' })
      return { ...base, endpoints: [], dns: { host: hostPort.slice(0, colon), port, protocol: 'tcp' } }
    }
    endpoints.push(`tcp://${hostPort}`)
  }
  return { ...base, endpoints }
}

/** Route keys that only mean something for HTTP requests: a tcp service's route may not set them. */
const L7_ROUTE_KEYS = ['match', 'stickiness', 'timeout', 'fault', 'mirror', 'headers', 'rewrite'] as const
/** Of `retries`, a tcp route keeps `attempts` (connect retries); the rest is about HTTP answers. */
const L7_RETRY_KEYS = ['perTryTimeout', 'on', 'backoff', 'methods'] as const

/** The checks that make a service a valid tcp service (docs/sidecar.md#tcp-services). */
function checkTcpService(
  svc: RawService,
  sPath: ConfigPath,
  problems: Problem[],
  ports: Map<number, string>,
  serviceName: string,
): void {
  const port = svc.listener?.port
  if (port !== undefined) {
    const lPath = [...sPath, 'listener', 'port']
    const other = ports.get(port)
    if (other !== undefined)
      problems.push({ path: lPath, message: `port ${port} is already the listener of service "${other}"` })
    else ports.set(port, serviceName)
    if (port < 1024)
      problems.push({
        path: lPath,
        message: `port ${port} is privileged (below 1024): the sidecar runs as an unprivileged user; pick 1024 or above`,
      })
    if (RESERVED_TCP_PORTS.includes(port))
      problems.push({
        path: lPath,
        message: `port ${port} is one of the sidecar's own ports (${RESERVED_TCP_PORTS.join(', ')})`,
      })
  }
  for (const [targetName, t] of Object.entries(svc.targets ?? {})) {
    const tPath = [...sPath, 'targets', targetName]
    if (t.lambda !== undefined)
      problems.push({
        path: [...tPath, 'lambda'],
        message:
          'a tcp service cannot have Lambda targets: a function answers one event at a time, not a connection',
        atKey: true,
      })
    else if (t.http !== undefined)
      problems.push({
        path: [...tPath, 'http'],
        message: 'the targets of a tcp service are tcp: host:port (http: is for HTTP services)',
        atKey: true,
      })
  }
  const routes = svc.routes ?? []
  if (routes.length > 1)
    problems.push({
      path: [...sPath, 'routes', 1],
      message: 'a tcp service has one route: a connection carries no request to match on',
    })
  routes.forEach((r, i) => {
    if (!r) return
    const rPath = [...sPath, 'routes', i]
    for (const key of L7_ROUTE_KEYS) {
      if (r[key] === undefined) continue
      problems.push({
        path: [...rPath, key],
        message: `${key} applies to HTTP routes only; a tcp route has name, to, retries.attempts and idleTimeout`,
        atKey: true,
      })
    }
    for (const key of L7_RETRY_KEYS) {
      if (r.retries?.[key] === undefined) continue
      problems.push({
        path: [...rPath, 'retries', key],
        message: `retries.${key} applies to HTTP routes only; a tcp route retries the connect alone (retries.attempts)`,
        atKey: true,
      })
    }
  })
}

/**
 * What a gRPC route cannot be: matched on a path as well, sent to a Lambda function (Invoke carries no
 * HTTP/2 stream and no trailers), or sent to a target that speaks HTTP/1.1 only.
 */
function grpcRouteProblems(
  r: NonNullable<RawService['routes']>[number],
  rPath: ConfigPath,
  targets: Record<string, TargetConfig>,
  problems: Problem[],
): void {
  if (r.match?.path !== undefined)
    problems.push({
      path: [...rPath, 'match', 'path'],
      message: 'a gRPC match names the path itself (/SERVICE/METHOD): use grpc or path, not both',
      atKey: true,
    })
  const to = typeof r.to === 'string' ? { [r.to]: 1 } : (r.to ?? {})
  for (const name of Object.keys(to)) {
    const t = targets[name]
    if (t === undefined) continue
    const at = typeof r.to === 'string' ? [...rPath, 'to'] : [...rPath, 'to', name]
    if (t.kind === 'lambda')
      problems.push({
        path: at,
        message: `target "${name}" is a Lambda function, which cannot serve gRPC (Invoke has no HTTP/2 streams or trailers): send gRPC routes to an http target with protocol: grpc`,
      })
    else if (t.protocol !== 'grpc' && t.protocol !== 'http2')
      problems.push({
        path: at,
        message: `target "${name}" speaks HTTP/1.1, which cannot carry gRPC: set protocol: grpc on it`,
      })
  }
}

/** A service's principals, authorization and rate limit, with their defaults and references checked. */
function identityKeys(
  svc: RawService,
  sPath: ConfigPath,
  raw: RawMesh,
  problems: Problem[],
): Pick<ServiceConfig, 'principals' | 'authorization' | 'rateLimit'> {
  const out: Pick<ServiceConfig, 'principals' | 'authorization' | 'rateLimit'> = {}
  if (svc.principals !== undefined) out.principals = svc.principals.filter((p) => p !== undefined)
  const needsIdentity = (what: string, at: ConfigPath) => {
    if (raw.identity === undefined)
      problems.push({
        path: at,
        message: `${what} needs the mesh's identity: { issuers, audience }`,
        atKey: true,
      })
  }
  const known = (caller: string) =>
    caller === '*' ||
    caller in (raw.services ?? {}) ||
    caller.startsWith('arn:') ||
    isPrincipalName(raw, caller)
  const a = svc.authorization
  if (a !== undefined) {
    needsIdentity('authorization', [...sPath, 'authorization'])
    const rules: AuthorizationRuleConfig[] = []
    ;(a.rules ?? []).forEach((r, i) => {
      if (!r) return
      const from = (r.from ?? ['*']).filter((f) => f !== undefined)
      from.forEach((f, j) => {
        if (!known(f))
          problems.push({
            path: [...sPath, 'authorization', 'rules', i, 'from', j],
            message: `"${f}" is neither a service of the mesh nor a principal any service lists`,
          })
      })
      rules.push({
        name: r.name ?? `rule-${i}`,
        from,
        match: normalizeMatch(r.match as RawMatch | undefined),
      })
    })
    out.authorization = {
      mode: (a.mode ?? raw.authorization?.mode ?? 'enforce') as AuthorizationMode,
      default: (a.default ?? raw.authorization?.default ?? 'deny') as 'deny' | 'allow',
      rules,
    }
  }
  const rl = svc.rateLimit
  if (rl !== undefined && rl.rps !== undefined) {
    const bucket = (b: { rps: number; burst?: number }) => ({
      rps: b.rps,
      burst: b.burst ?? Math.max(1, Math.ceil(b.rps)),
    })
    const perCaller: Record<string, { rps: number; burst: number }> = {}
    for (const [caller, b] of Object.entries(rl.perCaller ?? {})) {
      if (b?.rps === undefined) continue
      if (!known(caller))
        problems.push({
          path: [...sPath, 'rateLimit', 'perCaller', caller],
          message: `"${caller}" is neither a service of the mesh nor a principal any service lists`,
          atKey: true,
        })
      perCaller[caller] = bucket(b)
    }
    out.rateLimit = { ...bucket(rl), perCaller }
  }
  return out
}

/** A listed principal, or a Lambda target's function (identity/caller.ts derives those). */
function isPrincipalName(raw: RawMesh, name: string): boolean {
  for (const svc of Object.values(raw.services ?? {})) {
    if (svc?.principals?.includes(name)) return true
    for (const t of Object.values(svc?.targets ?? {})) if (t?.lambda?.split(':')[0] === name) return true
  }
  return false
}

/** A principal names one service: two services claiming it would make every caller ambiguous. */
function checkPrincipals(raw: RawMesh, problems: Problem[]): void {
  const owner = new Map<string, string>()
  for (const [name, svc] of Object.entries(raw.services ?? {})) {
    svc?.principals?.forEach((p, i) => {
      if (p === undefined) return
      const prev = owner.get(p)
      if (prev !== undefined && prev !== name)
        problems.push({
          path: ['services', name, 'principals', i],
          message: `principal "${p}" is already service ${prev}'s: a principal names one service`,
        })
      else owner.set(p, name)
    })
  }
}

export function normalizeMesh(raw: RawMesh, source: string, problems: Problem[]): MeshConfig {
  const d: NonNullable<RawMesh['defaults']> = raw.defaults ?? {}
  const defaultRetries = mergeRetries(DEFAULT_RETRIES, d.retries)
  const defaultTimeout = d.timeout ?? DEFAULT_TIMEOUT_MS
  const upgradeIdle = d.idleTimeout ?? DEFAULT_UPGRADE_IDLE_TIMEOUT_MS
  const tcpIdle = d.idleTimeout ?? DEFAULT_TCP_IDLE_TIMEOUT_MS
  const defaultBudget = { ...DEFAULT_RETRY_BUDGET, ...d.retryBudget }
  const defaultOutlier = { ...DEFAULT_OUTLIER, ...d.outlierDetection }
  const defaultBreaker = { ...DEFAULT_CIRCUIT_BREAKER, ...d.circuitBreaker }

  const services: Record<string, ServiceConfig> = {}
  /** tcp listener port → the service that has it. */
  const tcpPorts = new Map<number, string>()
  // Parts that failed the schema are missing here (see Schema.check): skip them, their problems are
  // already reported, and check what remains.
  for (const [serviceName, svc] of Object.entries(raw.services ?? {})) {
    const sPath = ['services', serviceName]
    const tcp = svc.listener !== undefined
    if (tcp) checkTcpService(svc, sPath, problems, tcpPorts, serviceName)
    const targets: Record<string, TargetConfig> = {}
    for (const [targetName, t] of Object.entries(svc.targets ?? {})) {
      const tPath = [...sPath, 'targets', targetName]
      if (t.tcp !== undefined) {
        if (!tcp)
          problems.push({
            path: [...tPath, 'tcp'],
            message:
              'tcp targets belong to a tcp service: give the service listener: { protocol: tcp, port: N }',
            atKey: true,
          })
        targets[targetName] = tcpTarget(targetName, t, tPath, problems)
        continue
      }
      if (t.lambda) {
        for (const key of ['healthCheck', 'cloudMapRefresh', 'tls', 'protocol'] as const) {
          if (t[key] === undefined) continue
          problems.push({
            path: [...tPath, key],
            message:
              key === 'healthCheck'
                ? 'a Lambda target has no endpoints to probe: health checks apply to http targets (outlier detection still covers Lambda targets)'
                : key === 'protocol'
                  ? 'a Lambda target is invoked through the Lambda API: protocol applies to http targets'
                  : `${key} applies only to http targets`,
            atKey: true,
          })
        }
      }
      targets[targetName] = t.lambda
        ? lambdaTarget(targetName, t.lambda)
        : httpTarget(targetName, t, tPath, problems)
    }
    const targetNames = Object.keys(targets)
    const rawRoutes = svc.routes ?? []
    const routes: RouteConfig[] = []
    rawRoutes.forEach((r, i) => {
      if (!r) return
      const rPath = [...sPath, 'routes', i]
      const to = typeof r.to === 'string' ? { [r.to]: 100 } : (r.to ?? {})
      for (const t of Object.keys(to)) {
        if (!(t in targets)) {
          problems.push({
            path: typeof r.to === 'string' ? [...rPath, 'to'] : [...rPath, 'to', t],
            message: `unknown target "${t}" (service ${serviceName} has ${targetNames.join(', ')})`,
            atKey: typeof r.to !== 'string',
          })
        }
      }
      if (r.to && Object.values(to).every((w) => w === 0)) {
        problems.push({ path: [...rPath, 'to'], message: 'at least one weight must be greater than 0' })
      }
      if (r.mirror && !(r.mirror.target in targets)) {
        problems.push({
          path: [...rPath, 'mirror', 'target'],
          message: `unknown target "${r.mirror.target}" (service ${serviceName} has ${targetNames.join(', ')})`,
        })
      }
      if (r.rollout) checkRollout(r.rollout, to, targetNames, [...rPath, 'rollout'], problems)
      if (r.rewrite?.prefix !== undefined && r.match?.path?.prefix === undefined) {
        problems.push({
          path: [...rPath, 'rewrite', 'prefix'],
          message: 'a prefix rewrite needs a path prefix match',
        })
      }
      if (r.match?.grpc !== undefined) grpcRouteProblems(r, rPath, targets, problems)
      let retries = mergeRetries(defaultRetries, r.retries)
      // gRPC calls are all POSTs: on a gRPC route the match names the calls, and its retry policy is
      // the statement that they may be retried (Envoy and App Mesh ask nothing about the method).
      // A copy: `retries` may be the shared defaults object.
      if (r.match?.grpc !== undefined && r.retries?.methods === undefined)
        retries = { ...retries, methods: ['POST'] }
      if (retries.backoff.max < retries.backoff.base) {
        problems.push({
          path: [...rPath, 'retries', 'backoff'],
          message: 'max must not be smaller than base',
        })
      }
      const route: RouteConfig = {
        name: r.name ?? (rawRoutes.length === 1 ? 'default' : `route-${i}`),
        match: normalizeMatch(r.match),
        to,
        timeout: r.timeout ?? defaultTimeout,
        retries,
        headers: { request: headerOps(r.headers?.request), response: headerOps(r.headers?.response) },
        idleTimeout: r.idleTimeout ?? (tcp ? tcpIdle : upgradeIdle),
      }
      if (r.stickiness) route.stickiness = r.stickiness
      if (r.fault) route.fault = r.fault
      if (r.mirror) route.mirror = { target: r.mirror.target, percent: r.mirror.percent ?? 100 }
      if (r.rewrite) route.rewrite = r.rewrite
      routes.push(route)
    })
    const seen = new Map<string, number>()
    routes.forEach((r, i) => {
      const prev = seen.get(r.name)
      if (prev !== undefined)
        problems.push({
          path: [...sPath, 'routes', i, 'name'],
          message: `duplicate route name "${r.name}" (also routes[${prev}])`,
        })
      seen.set(r.name, i)
    })
    if (routes.length === 0) {
      // No routes: every target gets an equal share, as Kubernetes/Istio spread traffic over all
      // pods of a service when no VirtualService exists.
      routes.push({
        name: 'default',
        match: {},
        to: Object.fromEntries(targetNames.map((t) => [t, 1])),
        timeout: defaultTimeout,
        retries: defaultRetries,
        headers: { request: headerOps(undefined), response: headerOps(undefined) },
        idleTimeout: tcp ? tcpIdle : upgradeIdle,
      })
    }
    services[serviceName] = {
      name: serviceName,
      targets,
      routes,
      ...(svc.listener === undefined
        ? {}
        : {
            listener: {
              protocol: 'tcp' as const,
              port: svc.listener.port,
              connectTimeout: svc.listener.connectTimeout ?? DEFAULT_TCP_CONNECT_TIMEOUT_MS,
            },
          }),
      outlierDetection: { ...defaultOutlier, ...svc.outlierDetection },
      circuitBreaker: { ...defaultBreaker, ...svc.circuitBreaker },
      retryBudget: { ...defaultBudget, ...svc.retryBudget },
      ...identityKeys(svc, sPath, raw, problems),
    }
  }
  checkPrincipals(raw, problems)

  const gatewayRoutes: GatewayRouteConfig[] = []
  ;(raw.gateway?.routes ?? []).forEach((g, i) => {
    if (!g) return
    if (g.service !== undefined && !(g.service in services) && raw.services?.[g.service] === undefined) {
      problems.push({
        path: ['gateway', 'routes', i, 'service'],
        message: `unknown service "${g.service}" (the mesh has ${Object.keys(services).join(', ')})`,
      })
    }
    if (g.rewrite?.prefix !== undefined && g.match?.path?.prefix === undefined) {
      problems.push({
        path: ['gateway', 'routes', i, 'rewrite', 'prefix'],
        message: 'a prefix rewrite needs a path prefix match',
      })
    }
    const route: GatewayRouteConfig = {
      name: g.name ?? `gateway-${i}`,
      match: normalizeMatch(g.match),
      service: g.service,
    }
    if (g.rewrite) route.rewrite = g.rewrite
    gatewayRoutes.push(route)
  })

  return {
    version: 1,
    mesh: raw.mesh,
    gateway: { routes: gatewayRoutes },
    services,
    ...(raw.identity === undefined
      ? {}
      : { identity: { issuers: raw.identity.issuers, audience: raw.identity.audience.replace(/\/+$/, '') } }),
    ...(raw.authorization === undefined
      ? {}
      : {
          authorization: {
            mode: (raw.authorization.mode ?? 'enforce') as AuthorizationMode,
            default: (raw.authorization.default ?? 'deny') as 'deny' | 'allow',
          },
        }),
    tracing: { sampling: { ...DEFAULT_SAMPLING, ...raw.tracing?.sampling } },
    accessLog: raw.accessLog ?? true,
    pathNormalization: {
      mergeSlashes: raw.pathNormalization?.mergeSlashes ?? DEFAULT_PATH_NORMALIZATION.mergeSlashes,
      escapedSlashes: (raw.pathNormalization?.escapedSlashes ??
        DEFAULT_PATH_NORMALIZATION.escapedSlashes) as EscapedSlashAction,
    },
    source,
  }
}
