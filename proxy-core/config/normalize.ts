// From the schema-checked document to the MeshConfig the engine reads: defaults applied, shorthand
// expanded, and the cross-references checked (targets, mirrors, gateway services, weights).

import { DEFAULT_PATH_NORMALIZATION, type EscapedSlashAction } from '../engine/path-normalize.ts'
import type {
  GatewayRouteConfig,
  HeaderOps,
  LoadBalancer,
  MeshConfig,
  RetryConfig,
  RouteConfig,
  RouteMatchConfig,
  ServiceConfig,
  StringMatch,
  TargetConfig,
} from '../engine/types.ts'
import {
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_DNS_REFRESH_MS,
  DEFAULT_OUTLIER,
  DEFAULT_RETRIES,
  DEFAULT_RETRY_BUDGET,
  DEFAULT_SAMPLING,
  DEFAULT_TIMEOUT_MS,
} from './defaults.ts'
import type { RawMesh, RawRetries } from './mesh-schema.ts'
import type { ConfigPath, Problem } from './schema.ts'

type RawMatch = NonNullable<NonNullable<RawMesh['gateway']>['routes'][number]['match']>
type RawService = RawMesh['services'][string]
type RawTarget = RawService['targets'][string]
type RawHeaderOps = { set?: Record<string, string>; add?: Record<string, string>; remove?: string[] }

function normalizeValueMatch(v: string | StringMatch): StringMatch {
  return typeof v === 'string' ? { exact: v } : v
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

function httpTarget(name: string, raw: RawTarget, path: ConfigPath, problems: Problem[]): TargetConfig {
  const urls = typeof raw.http === 'string' ? [raw.http] : (raw.http ?? [])
  const base = {
    kind: 'http' as const,
    name,
    loadBalancer: (raw.loadBalancer ?? 'round-robin') as LoadBalancer,
    dnsRefresh: raw.dnsRefresh ?? DEFAULT_DNS_REFRESH_MS,
  }
  const dns = urls.filter((u) => u.startsWith('dns://'))
  if (dns.length > 0) {
    if (urls.length > 1)
      problems.push({
        path: [...path, 'http'],
        message: 'a dns:// target must be the only URL of its target',
      })
    const [host, port] = dns[0]!.slice('dns://'.length).split(':') as [string, string]
    return { ...base, endpoints: [], dns: { host, port: Number(port), protocol: 'http' } }
  }
  const endpoints: string[] = []
  urls.forEach((u, i) => {
    try {
      endpoints.push(new URL(u).origin)
    } catch {
      problems.push({
        path: typeof raw.http === 'string' ? [...path, 'http'] : [...path, 'http', i],
        message: `invalid URL ${JSON.stringify(u)}`,
      })
    }
  })
  return { ...base, endpoints }
}

export function normalizeMesh(raw: RawMesh, source: string, problems: Problem[]): MeshConfig {
  const d: NonNullable<RawMesh['defaults']> = raw.defaults ?? {}
  const defaultRetries = mergeRetries(DEFAULT_RETRIES, d.retries)
  const defaultTimeout = d.timeout ?? DEFAULT_TIMEOUT_MS
  const defaultBudget = { ...DEFAULT_RETRY_BUDGET, ...d.retryBudget }
  const defaultOutlier = { ...DEFAULT_OUTLIER, ...d.outlierDetection }
  const defaultBreaker = { ...DEFAULT_CIRCUIT_BREAKER, ...d.circuitBreaker }

  const services: Record<string, ServiceConfig> = {}
  // Parts that failed the schema are missing here (see Schema.check): skip them, their problems are
  // already reported, and check what remains.
  for (const [serviceName, svc] of Object.entries(raw.services ?? {})) {
    const sPath = ['services', serviceName]
    const targets: Record<string, TargetConfig> = {}
    for (const [targetName, t] of Object.entries(svc.targets ?? {})) {
      targets[targetName] = t.lambda
        ? lambdaTarget(targetName, t.lambda)
        : httpTarget(targetName, t, [...sPath, 'targets', targetName], problems)
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
      if (r.rewrite?.prefix !== undefined && r.match?.path?.prefix === undefined) {
        problems.push({
          path: [...rPath, 'rewrite', 'prefix'],
          message: 'a prefix rewrite needs a path prefix match',
        })
      }
      const retries = mergeRetries(defaultRetries, r.retries)
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
      })
    }
    services[serviceName] = {
      name: serviceName,
      targets,
      routes,
      outlierDetection: { ...defaultOutlier, ...svc.outlierDetection },
      circuitBreaker: { ...defaultBreaker, ...svc.circuitBreaker },
      retryBudget: { ...defaultBudget, ...svc.retryBudget },
    }
  }

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
