// Istio (networking.istio.io VirtualService, DestinationRule, Gateway) → a meshgate draft.
//
// Semantics kept (istio.io reference, cited in docs/migrate.md):
// - HTTP routes are tried in order, the first match wins; a route with several `match` entries is one
//   meshgate route per entry, in order (they are ORed).
// - `uri.prefix` is a character prefix (Envoy), so it becomes a whole-path regex unless it is `/`.
// - No `retries`: Istio's default policy, 2 retries on connect-failure, refused-stream, unavailable,
//   cancelled, retriable-status-codes (503). No `timeout`: none in Istio; meshgate's 15 s applies (said
//   in the comment above `defaults`).
// - No `outlierDetection`: none (meshgate's is off unless the DestinationRule sets it); unset connection
//   pool limits: Istio's, 2^32-1.
import {
  charPrefixMatch,
  type Draft,
  type DraftRoute,
  type DraftService,
  duration,
  newDraft,
  parseGoDuration,
  type Raw,
  serviceOf,
  toName,
  uniqueName,
} from './draft.ts'
import { clusterHost, isPlainKubernetes, type K8sResource, k8sResources, servicePorts } from './kubernetes.ts'
import { asList, asNumber, asObj, asString, isObj, type Obj, type SourceDoc, type Value } from './reader.ts'
import { ImportError, type Report } from './report.ts'
import { ResourceContext } from './resource-context.ts'

const ISTIO_KINDS = new Set([
  'VirtualService',
  'DestinationRule',
  'Gateway',
  'ServiceEntry',
  'Sidecar',
  'EnvoyFilter',
  'WorkloadEntry',
  'WorkloadGroup',
  'ProxyConfig',
  'PeerAuthentication',
  'AuthorizationPolicy',
  'RequestAuthentication',
  'Telemetry',
  'WasmPlugin',
])

/** Istio's limits when a DestinationRule sets none: effectively unlimited (2^32-1). */
const ISTIO_UNLIMITED = 4294967295

/** Istio's default retry policy, in meshgate's words (refused-stream is a reset; gRPC statuses n/a on HTTP). */
export const ISTIO_DEFAULT_RETRIES = { attempts: 2, on: ['connect-failure', 'reset', '503'] }

/** Envoy retries every method the policy covers; meshgate retries idempotent ones unless told. */
const ALL_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE', 'POST', 'PATCH']

/** Match conditions that narrow a match and have no meshgate form: a match with one is left out. */
const NARROWING = [
  'scheme',
  'authority',
  'port',
  'sourceLabels',
  'sourceNamespace',
  'gateways',
  'withoutHeaders',
]
const LEFT_OUT = '; this match was left out, since without the condition it would catch more'

const RETRY_ON: Record<string, string | null> = {
  '5xx': '5xx',
  'gateway-error': 'gateway-error',
  reset: 'reset',
  'reset-before-request': 'reset',
  'connect-failure': 'connect-failure',
  'retriable-4xx': 'retriable-4xx',
  'refused-stream': 'reset',
  // The numeric codes listed beside it are the retriable status codes; 503 when none are.
  'retriable-status-codes': null,
}

interface DestinationRuleInfo {
  ctx: ResourceContext
  spec: Obj
  subsets: Map<string, Obj>
}

export function translateIstio(docs: SourceDoc[], report: Report, meshName = 'imported'): Draft {
  const resources = k8sResources(docs)
  const draft = newDraft(meshName)
  draft.defaults = {
    retries: { ...ISTIO_DEFAULT_RETRIES, methods: ALL_METHODS },
    outlierDetection: { consecutive5xx: 0 },
    circuitBreaker: {
      maxConnections: ISTIO_UNLIMITED,
      maxPendingRequests: ISTIO_UNLIMITED,
      maxRequests: ISTIO_UNLIMITED,
    },
  }
  draft.defaultsNote =
    "Istio's defaults: no route timeout (meshgate's 15s applies); 2 retries on connect-failure, refused-stream (reset) and 503, any method; no outlier detection; no connection limits"
  const ports = servicePorts(resources)
  const virtualServices: K8sResource[] = []
  const rules = new Map<string, DestinationRuleInfo>()
  const gateways = new Set<string>()

  for (const r of resources) {
    const ctx = new ResourceContext(report, r.file, `${r.kind}/${r.name}`, r.line)
    if (
      r.group === 'networking.istio.io' ||
      r.group === 'security.istio.io' ||
      r.group.endsWith('.istio.io')
    ) {
      if (!ISTIO_KINDS.has(r.kind))
        throw new ImportError(r.file, r.kindLine, `unknown Istio kind ${r.kind} (${r.apiVersion})`)
      if (r.kind === 'VirtualService') virtualServices.push(r)
      else if (r.kind === 'DestinationRule') {
        const host = asString(r.spec.host)
        if (host === undefined) throw new ImportError(r.file, r.line, 'DestinationRule without spec.host')
        const fqdn = clusterHost(host, r.namespace).fqdn
        if (rules.has(fqdn)) {
          ctx.note(
            r.spec,
            'host',
            'spec.host',
            `a second DestinationRule for ${host}`,
            'merge the two; this one was not used',
          )
          continue
        }
        const subsets = new Map<string, Obj>()
        for (const s of asList(r.spec.subsets)) {
          const name = isObj(s) ? asString(s.name) : undefined
          if (name !== undefined && isObj(s)) subsets.set(name, s)
        }
        rules.set(fqdn, { ctx, spec: r.spec, subsets })
      } else if (r.kind === 'Gateway') {
        gateways.add(`${r.namespace}/${r.name}`)
        translateGatewayResource(ctx, r.spec)
      } else {
        ctx.note(r.obj, 'kind', 'kind', `meshgate has no equivalent of Istio's ${r.kind}`, kindAdvice(r.kind))
      }
      continue
    }
    if (isPlainKubernetes(r)) continue
    throw new ImportError(r.file, r.kindLine, `unknown kind ${r.kind} (${r.apiVersion}) for an Istio import`)
  }

  const t = new IstioTranslator(draft, report, rules, ports, gateways)
  const owner = new Map<string, ResourceContext>()
  for (const vs of virtualServices) t.virtualService(vs, owner)
  for (const [fqdn, dr] of rules) t.destinationRule(fqdn, dr)
  return draft
}

function kindAdvice(kind: string): string {
  switch (kind) {
    case 'ServiceEntry':
      return 'add the external host as a service with an http target'
    case 'AuthorizationPolicy':
    case 'PeerAuthentication':
    case 'RequestAuthentication':
      return 'use services.NAME.authorization and identity (docs/config.md)'
    default:
      return 'leave it out; no meshgate setting corresponds'
  }
}

function translateGatewayResource(ctx: ResourceContext, spec: Obj): void {
  ctx.keys(spec, 'spec', ['servers', 'selector'])
  asList(spec.servers).forEach((s, i) => {
    const server = asObj(s)
    if (server === undefined) return
    ctx.keys(server, `spec.servers[${i}]`, ['port', 'hosts', 'name', 'bind'], {
      tls: [
        'meshgate terminates TLS at API Gateway or the load balancer in front of it',
        'configure TLS there',
      ],
      defaultEndpoint: ['no equivalent', 'leave it out'],
    })
    const hosts = asList(server.hosts).map(asString)
    if (hosts.some((h) => h !== '*' && !h?.endsWith('/*'))) {
      ctx.note(
        server,
        'hosts',
        `spec.servers[${i}].hosts`,
        "meshgate's gateway answers every host",
        'route by path, or put the host filter in front of it',
      )
    }
  })
}

class IstioTranslator {
  private readonly draft: Draft
  private readonly report: Report
  private readonly rules: Map<string, DestinationRuleInfo>
  private readonly ports: Map<string, number[]>
  private readonly gateways: Set<string>
  private readonly routeNames = new Map<string, Set<string>>()
  private readonly gatewayNames = new Set<string>()
  /** Hosts whose service has been given its DestinationRule's policies. */
  constructor(
    draft: Draft,
    report: Report,
    rules: Map<string, DestinationRuleInfo>,
    ports: Map<string, number[]>,
    gateways: Set<string>,
  ) {
    this.draft = draft
    this.report = report
    this.rules = rules
    this.ports = ports
    this.gateways = gateways
  }

  virtualService(vs: K8sResource, owner: Map<string, ResourceContext>): void {
    const ctx = new ResourceContext(this.report, vs.file, `VirtualService/${vs.name}`, vs.line)
    const spec = vs.spec
    ctx.keys(spec, 'spec', ['hosts', 'gateways', 'http', 'exportTo'], {
      tcp: [
        'meshgate routes HTTP; TCP routes are not in this version',
        'keep TCP traffic outside the mesh for now',
      ],
      tls: [
        'meshgate routes HTTP; TLS passthrough routes are not in this version',
        'terminate TLS before the mesh',
      ],
    })
    const hosts = asList(spec.hosts)
      .map(asString)
      .filter((h): h is string => h !== undefined)
    const gatewayRefs = asList(spec.gateways)
      .map(asString)
      .filter((g): g is string => g !== undefined)
    const toMesh = gatewayRefs.length === 0 || gatewayRefs.includes('mesh')
    const toGateway = gatewayRefs.filter((g) => g !== 'mesh')
    for (const g of toGateway) {
      const key = g.includes('/') ? g : `${vs.namespace}/${g}`
      if (!this.gateways.has(key)) {
        ctx.note(
          spec,
          'gateways',
          'spec.gateways',
          `gateway ${g} is not among the input files`,
          'add its Gateway resource, or check the name',
        )
      }
    }
    if (hosts.length === 0) {
      ctx.note(
        spec,
        undefined,
        'spec.hosts',
        'a delegate VirtualService (no hosts) is only reachable through its parent',
        'inline its routes into the parent',
      )
      return
    }
    if (toMesh) {
      hosts.forEach((host, hi) => {
        if (host.includes('*')) {
          if (toGateway.length === 0)
            ctx.note(
              spec.hosts,
              hi,
              `spec.hosts[${hi}]`,
              `wildcard host ${host} names no service`,
              'list the services by name',
            )
          return
        }
        const h = clusterHost(host, vs.namespace)
        const prev = owner.get(h.fqdn)
        if (prev !== undefined) {
          ctx.note(
            spec.hosts,
            hi,
            `spec.hosts[${hi}]`,
            `a second VirtualService for ${host} (the first is ${prev.source})`,
            'merge their routes into one; this one was not used',
          )
          return
        }
        owner.set(h.fqdn, ctx)
        const svc = serviceOf(this.draft, h.short, ctx.source)
        this.httpRoutes(ctx, vs, svc)
      })
    }
    if (toGateway.length > 0) this.gatewayRoutes(ctx, vs)
  }

  /** A gateway-bound VirtualService: each route to one plain destination is a gateway route to that service. */
  private gatewayRoutes(ctx: ResourceContext, vs: K8sResource): void {
    if (!this.draft.gatewaySources.includes(ctx.source)) this.draft.gatewaySources.push(ctx.source)
    asList(vs.spec.http).forEach((rv, i) => {
      const r = asObj(rv)
      if (r === undefined) return
      const dests = asList(r.route).map(asObj)
      const first = asObj(dests[0]?.destination)
      const simple =
        dests.length === 1 &&
        first !== undefined &&
        first.subset === undefined &&
        Object.keys(r).every((k) => ['name', 'match', 'route', 'rewrite'].includes(k))
      let service: string
      if (simple) {
        const h = clusterHost(asString(first.host) ?? 'unnamed', vs.namespace)
        service = h.short
        const svc = serviceOf(this.draft, service, ctx.source)
        this.target(ctx, svc, first, vs.namespace, `spec.http[${i}].route[0].destination`)
      } else {
        // Weights, subsets or policies: a service of its own carries them, and the gateway routes to it.
        service = toName(`${vs.name}-${i}`)
        const svc = serviceOf(this.draft, service, ctx.source)
        this.httpRoute(ctx, vs, svc, r, i)
      }
      const matches = asList(r.match).map(asObj)
      const list = matches.length === 0 ? [undefined] : matches
      list.forEach((m, j) => {
        const path = `spec.http[${i}].match[${j}]`
        const match = m === undefined ? undefined : this.match(ctx, m, path)
        if (match === null) return
        const route: { name: string; match?: Raw; service: string; rewrite?: Raw } = {
          name: uniqueName(asString(r.name) ?? `${vs.name}-${i}`, this.gatewayNames),
          service,
        }
        if (match !== undefined && Object.keys(match).length > 0) route.match = match
        if (simple && isObj(r.rewrite)) {
          const rw = this.rewrite(ctx, r, m, `spec.http[${i}].rewrite`, route)
          if (rw) route.rewrite = rw
        }
        this.draft.gateway.push(route)
      })
    })
  }

  private httpRoutes(ctx: ResourceContext, vs: K8sResource, svc: DraftService): void {
    asList(vs.spec.http).forEach((rv, i) => {
      const r = asObj(rv)
      if (r !== undefined) this.httpRoute(ctx, vs, svc, r, i)
    })
  }

  private httpRoute(ctx: ResourceContext, vs: K8sResource, svc: DraftService, r: Obj, i: number): void {
    const p = `spec.http[${i}]`
    ctx.keys(
      r,
      p,
      [
        'name',
        'match',
        'route',
        'rewrite',
        'timeout',
        'retries',
        'fault',
        'mirror',
        'mirrorPercentage',
        'mirrorPercent',
        'mirrors',
        'headers',
      ],
      {
        redirect: [
          'meshgate routes do not answer redirects',
          'answer the redirect in the app, or at API Gateway',
        ],
        directResponse: ['meshgate routes do not answer by themselves', 'answer it in the app'],
        delegate: ['delegation has no meshgate equivalent', "inline the delegate's routes here"],
        corsPolicy: [
          'meshgate does not answer CORS preflights',
          'configure CORS on API Gateway or in the app',
        ],
      },
    )
    if (r.route === undefined) return
    const names = this.routeNames.get(svc.name) ?? new Set<string>()
    this.routeNames.set(svc.name, names)
    const base: DraftRoute = { name: '', to: {} }
    // Destinations and weights.
    const dests = asList(r.route)
    const to: Record<string, number> = {}
    let sum = 0
    dests.forEach((dv, k) => {
      const d = asObj(dv)
      if (d === undefined) return
      const dp = `${p}.route[${k}]`
      ctx.keys(d, dp, ['destination', 'weight', 'headers'])
      const dest = asObj(d.destination)
      if (dest === undefined) return
      const target = this.target(ctx, svc, dest, vs.namespace, `${dp}.destination`)
      const weight = asNumber(d.weight) ?? (dests.length === 1 ? 100 : 0)
      sum += weight
      to[target] = (to[target] ?? 0) + weight
      if (d.headers !== undefined) {
        if (dests.length === 1) base.headers = headerOps(ctx, asObj(d.headers), `${dp}.headers`)
        else
          ctx.note(
            d,
            'headers',
            `${dp}.headers`,
            'meshgate sets headers per route, not per destination',
            'move them to the route, or split the route',
          )
      }
    })
    if (dests.length > 1 && sum !== 100) {
      ctx.note(
        r,
        'route',
        `${p}.route`,
        `weights sum to ${sum}, not 100 (Istio requires 100)`,
        'fix the weights; they were kept as relative weights',
      )
    }
    if (Object.values(to).every((w) => w === 0)) {
      ctx.note(
        r,
        'route',
        `${p}.route`,
        'no destination has a positive weight',
        'give one destination weight',
      )
      return
    }
    const targets = Object.keys(to)
    base.to = targets.length === 1 ? targets[0]! : to
    // Policies.
    if (r.timeout !== undefined) {
      const ms = parseGoDuration(r.timeout)
      if (ms === undefined)
        ctx.note(r, 'timeout', `${p}.timeout`, `not a duration: ${String(r.timeout)}`, 'write it like 10s')
      else if (ms === 0)
        ctx.note(
          r,
          'timeout',
          `${p}.timeout`,
          '0s disables the timeout in Istio; meshgate routes always have one',
          'set the longest time a call may take',
        )
      else base.timeout = duration(ms)
    }
    if (r.retries !== undefined) base.retries = this.retries(ctx, asObj(r.retries), `${p}.retries`)
    if (r.fault !== undefined) base.fault = this.fault(ctx, asObj(r.fault), `${p}.fault`)
    if (r.headers !== undefined) base.headers = headerOps(ctx, asObj(r.headers), `${p}.headers`)
    const mirror = this.mirror(ctx, svc, r, vs.namespace, p)
    if (mirror) base.mirror = mirror
    const matches = asList(r.match).map(asObj)
    const list = matches.length === 0 ? [undefined] : matches
    const baseName = asString(r.name) ?? `route-${i}`
    list.forEach((m, j) => {
      const match = m === undefined ? undefined : this.match(ctx, m, `${p}.match[${j}]`)
      if (match === null) return
      const route: DraftRoute = {
        ...base,
        name: uniqueName(list.length > 1 ? `${baseName}-${j}` : baseName, names),
      }
      if (match !== undefined && Object.keys(match).length > 0) route.match = match
      if (isObj(r.rewrite)) {
        const rw = this.rewrite(ctx, r, m, `${p}.rewrite`, route)
        if (rw) route.rewrite = rw
      }
      svc.routes.push(route)
    })
  }

  /**
   * The meshgate match of one Istio HTTPMatchRequest, or null when it has a condition meshgate cannot
   * express: dropping the condition would widen the match and steal traffic from later routes, so the
   * whole match is left out (and reported) instead.
   */
  private match(ctx: ResourceContext, m: Obj, p: string): Raw | null {
    ctx.keys(m, p, ['uri', 'method', 'headers', 'queryParams', 'name'], {
      scheme: [
        `meshgate does not match on the scheme${LEFT_OUT}`,
        'route http and https apart before the mesh',
      ],
      authority: [
        `meshgate matches services by host already; no authority match${LEFT_OUT}`,
        'split the service',
      ],
      port: [`meshgate routes per service, not per port${LEFT_OUT}`, 'give each port its own service'],
      sourceLabels: [
        `meshgate does not know the caller's pod labels${LEFT_OUT}`,
        'match on a header the caller sets',
      ],
      sourceNamespace: [
        `meshgate does not know the caller's namespace${LEFT_OUT}`,
        'match on a header the caller sets',
      ],
      gateways: [`per-match gateways are not supported${LEFT_OUT}`, 'split the VirtualService by gateway'],
      ignoreUriCase: ['meshgate compares paths case-sensitively', 'use a regex path with both cases'],
      withoutHeaders: [
        `meshgate has no negated header match beyond absence${LEFT_OUT}`,
        'use headers: {NAME: {present: false}}',
      ],
      statPrefix: ['no equivalent', 'leave it out'],
    })
    if (NARROWING.some((k) => m[k] !== undefined)) return null
    const out: Raw = {}
    const uri = asObj(m.uri)
    if (uri !== undefined) {
      ctx.keys(uri, `${p}.uri`, ['exact', 'prefix', 'regex'])
      if (typeof uri.exact === 'string') out.path = { exact: uri.exact }
      else if (typeof uri.prefix === 'string') out.path = charPrefixMatch(uri.prefix)
      else if (typeof uri.regex === 'string') out.path = { regex: uri.regex }
    }
    const method = asObj(m.method)
    if (method !== undefined) {
      if (typeof method.exact === 'string') out.method = method.exact.toUpperCase()
      else
        ctx.note(
          m,
          'method',
          `${p}.method`,
          'meshgate matches methods exactly',
          'list the methods with exact',
        )
    }
    const headers = this.stringMatches(ctx, asObj(m.headers), `${p}.headers`)
    if (headers) out.headers = headers
    const query = this.stringMatches(ctx, asObj(m.queryParams), `${p}.queryParams`)
    if (query) out.query = query
    return ctx.expressible(m, p, out) ? out : null
  }

  private stringMatches(ctx: ResourceContext, o: Obj | undefined, p: string): Raw | undefined {
    if (o === undefined) return undefined
    const out: Raw = {}
    for (const [name, v] of Object.entries(o)) {
      const sm = asObj(v)
      if (sm === undefined) continue
      ctx.keys(sm, `${p}.${name}`, ['exact', 'prefix', 'regex'])
      if (typeof sm.exact === 'string') out[name] = sm.exact
      else if (typeof sm.prefix === 'string') out[name] = { prefix: sm.prefix }
      else if (typeof sm.regex === 'string') out[name] = { regex: sm.regex }
      // `{}` matches any value: presence (Istio).
      else out[name] = { present: true }
    }
    return Object.keys(out).length > 0 ? out : undefined
  }

  private rewrite(
    ctx: ResourceContext,
    r: Obj,
    m: Obj | undefined,
    p: string,
    route: { match?: Raw },
  ): Raw | undefined {
    const rw = asObj(r.rewrite)!
    ctx.keys(rw, p, ['uri', 'authority'], {
      uriRegexRewrite: [
        'meshgate rewrites a prefix or the whole path, not by regex',
        'rewrite with uri, or in the app',
      ],
    })
    const out: Raw = {}
    if (typeof rw.authority === 'string') out.host = rw.authority
    if (typeof rw.uri === 'string') {
      const prefix = asString(asObj(asObj(m?.uri))?.prefix)
      if (prefix !== undefined && prefix !== '/') {
        // A prefix rewrite needs meshgate's (per-segment) prefix match.
        route.match = { ...route.match, path: { prefix } }
        ctx.note(
          m?.uri,
          'prefix',
          `${p.replace(/\.rewrite$/, '')}.match.uri.prefix`,
          `with a prefix rewrite the match is meshgate's per-segment prefix: ${prefix}x paths no longer match`,
          'add a route for such paths if they exist',
        )
        out.prefix = rw.uri
      } else if (prefix === '/') out.prefix = rw.uri
      else out.path = rw.uri
    }
    return Object.keys(out).length > 0 ? out : undefined
  }

  private retries(ctx: ResourceContext, o: Obj | undefined, p: string): Raw | undefined {
    if (o === undefined) return undefined
    ctx.keys(o, p, ['attempts', 'perTryTimeout', 'retryOn'], {
      retryRemoteLocalities: ['meshgate has no locality-aware retries', 'leave it out'],
      retryIgnorePreviousHosts: ['meshgate picks a fresh endpoint for each try already', 'leave it out'],
      backoff: ['meshgate backoff is set with retries.backoff.base', 'set backoff: {base} in the route'],
    })
    let attempts = asNumber(o.attempts) ?? 2
    if (attempts > 10) {
      ctx.note(
        o,
        'attempts',
        `${p}.attempts`,
        `meshgate allows at most 10 retries, not ${attempts}`,
        'rely on the retry budget; 10 were kept',
      )
      attempts = 10
    }
    const out: Raw = { attempts }
    if (o.perTryTimeout !== undefined) {
      const ms = parseGoDuration(o.perTryTimeout)
      if (ms !== undefined && ms > 0) out.perTryTimeout = duration(ms)
    }
    if (typeof o.retryOn === 'string') {
      const on = new Set<string>()
      let statusCodes = false
      let retriable = false
      for (const raw of o.retryOn
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        if (/^[1-5]\d\d$/.test(raw)) {
          on.add(raw)
          statusCodes = true
          continue
        }
        if (raw === 'retriable-status-codes') retriable = true
        const m = RETRY_ON[raw]
        if (m === undefined)
          ctx.note(
            o,
            'retryOn',
            `${p}.retryOn`,
            `${raw} has no meshgate retry condition (gRPC statuses and Envoy headers are not in this version)`,
            'retry on 5xx, reset or status codes',
          )
        else if (m !== null) on.add(m)
      }
      if (retriable && !statusCodes) on.add('503')
      out.on = [...on]
    } else {
      out.on = ISTIO_DEFAULT_RETRIES.on
    }
    return out
  }

  private fault(ctx: ResourceContext, o: Obj | undefined, p: string): Raw | undefined {
    if (o === undefined) return undefined
    ctx.keys(o, p, ['delay', 'abort'])
    const out: Raw = {}
    const percent = (x: Obj, q: string): number => {
      const v = asNumber(asObj(x.percentage)?.value) ?? asNumber(x.percent)
      if (v === undefined) {
        ctx.note(x, undefined, `${q}.percentage`, 'no percentage given', 'state it; 100 was assumed')
        return 100
      }
      return v
    }
    const d = asObj(o.delay)
    if (d !== undefined) {
      ctx.keys(d, `${p}.delay`, ['fixedDelay', 'percentage', 'percent'], {
        exponentialDelay: ['meshgate delays are fixed', 'use fixedDelay'],
      })
      const ms = parseGoDuration(d.fixedDelay)
      if (ms !== undefined) out.delay = { percent: percent(d, `${p}.delay`), duration: duration(ms) }
    }
    const a = asObj(o.abort)
    if (a !== undefined) {
      ctx.keys(a, `${p}.abort`, ['httpStatus', 'percentage', 'percent'], {
        grpcStatus: ['gRPC aborts are not in this version', 'abort with an HTTP status'],
        http2Error: ['no equivalent', 'abort with an HTTP status'],
      })
      const status = asNumber(a.httpStatus)
      if (status !== undefined) out.abort = { percent: percent(a, `${p}.abort`), status }
    }
    return Object.keys(out).length > 0 ? out : undefined
  }

  private mirror(
    ctx: ResourceContext,
    svc: DraftService,
    r: Obj,
    ns: string,
    p: string,
  ): DraftRoute['mirror'] {
    let dest = asObj(r.mirror)
    let pct = asNumber(asObj(r.mirrorPercentage)?.value) ?? asNumber(r.mirrorPercent)
    let field = `${p}.mirror`
    const mirrors = asList(r.mirrors)
    if (dest === undefined && mirrors.length > 0) {
      const first = asObj(mirrors[0])
      dest = asObj(first?.destination)
      pct = asNumber(asObj(first?.percentage)?.value)
      field = `${p}.mirrors[0].destination`
      if (mirrors.length > 1)
        ctx.note(
          r,
          'mirrors',
          `${p}.mirrors`,
          'meshgate mirrors to one target per route',
          'keep one mirror; the first was used',
        )
    }
    if (dest === undefined) return undefined
    const target = this.target(ctx, svc, dest, ns, field)
    return pct === undefined ? { target } : { target, percent: pct }
  }

  /** The meshgate target (in `svc`) for an Istio Destination; created on first use. */
  private target(ctx: ResourceContext, svc: DraftService, dest: Obj, ns: string, p: string): string {
    ctx.keys(dest, p, ['host', 'subset', 'port'])
    const host = asString(dest.host) ?? 'unnamed'
    const h = clusterHost(host, ns)
    const subset = asString(dest.subset)
    const name = toName(
      h.short === svc.name ? (subset ?? h.short) : subset ? `${h.short}-${subset}` : h.short,
    )
    if (svc.targets[name] !== undefined) return name
    let port = asNumber(asObj(dest.port)?.number)
    if (port === undefined) {
      const known = h.inCluster ? this.ports.get(h.fqdn.split('.').slice(0, 2).join('.')) : undefined
      if (known?.length === 1) port = known[0]
      else {
        port = 80
        ctx.note(
          dest,
          undefined,
          `${p}.port`,
          `no port for ${host}${known && known.length > 1 ? ' (its Service has several)' : ' and no Service for it in the input'}`,
          'set port.number, or pass the Service manifest; 80 was assumed',
        )
      }
    }
    let address = h.fqdn
    if (subset !== undefined) {
      const dr = this.rules.get(h.fqdn)
      const def = dr?.subsets.get(subset)
      if (def === undefined) {
        ctx.note(
          dest,
          'subset',
          `${p}.subset`,
          `subset ${subset} of ${host} is defined by no DestinationRule in the input`,
          'add the DestinationRule; the per-version Service name was assumed',
        )
      } else {
        const labels = asObj(def.labels) ?? {}
        const sel = Object.entries(labels)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(',')
        dr!.ctx.note(
          def,
          'labels',
          `spec.subsets[${subset}].labels`,
          `meshgate targets are addresses, not pod labels (${sel})`,
          `create a Service ${h.short}-${subset} selecting ${sel}; the target points at it`,
        )
      }
      const rest = h.inCluster ? h.fqdn.slice(h.fqdn.indexOf('.')) : ''
      address = h.inCluster ? `${h.short}-${subset}${rest}` : h.fqdn
    }
    svc.targets[name] = { http: `dns://${address}:${port}` }
    const dr = this.rules.get(h.fqdn)
    const lb = asString(asObj(asObj(dr?.spec.trafficPolicy)?.loadBalancer)?.simple)
    if (lb === 'LEAST_REQUEST' || lb === 'LEAST_CONN') svc.targets[name]!.loadBalancer = 'least-request'
    return name
  }

  /** The DestinationRule's traffic policy on the service of its host. */
  destinationRule(fqdn: string, dr: DestinationRuleInfo): void {
    const { ctx, spec } = dr
    ctx.keys(spec, 'spec', ['host', 'trafficPolicy', 'subsets', 'exportTo'], {
      workloadSelector: ['meshgate policies apply to every caller', 'leave it out'],
    })
    const short = fqdn.split('.')[0]!
    let svc = this.draft.services.get(toName(short))
    if (svc === undefined) {
      // No VirtualService routes to the host: Istio sends its traffic to all of the Service's pods.
      svc = serviceOf(this.draft, toName(short), ctx.source)
      this.target(ctx, svc, { host: fqdn }, 'default', 'spec.host')
    }
    const policy = asObj(spec.trafficPolicy)
    asList(spec.subsets).forEach((s, i) => {
      const sub = asObj(s)
      ctx.keys(sub, `spec.subsets[${i}]`, ['name', 'labels'], {
        trafficPolicy: [
          'meshgate sets policies per service, not per subset',
          'move it to the top-level trafficPolicy',
        ],
      })
    })
    if (policy === undefined) return
    if (!svc.sources.includes(ctx.source)) svc.sources.push(ctx.source)
    ctx.keys(policy, 'spec.trafficPolicy', ['connectionPool', 'outlierDetection', 'loadBalancer'], {
      tls: [
        "mutual TLS between sidecars is set per target and by the sidecar's certificate files, not translated",
        'give the targets https:// URLs or a tls block, and the sidecars --tls-dir (docs/tls.md)',
      ],
      portLevelSettings: [
        'meshgate sets policies per service, not per port',
        'move them to the trafficPolicy',
      ],
      tunnel: ['no equivalent', 'leave it out'],
      proxyProtocol: ['no equivalent', 'leave it out'],
    })
    const lb = asObj(policy.loadBalancer)
    if (lb !== undefined) {
      ctx.keys(lb, 'spec.trafficPolicy.loadBalancer', ['simple'], {
        consistentHash: [
          'meshgate keeps users on a target with route stickiness, not endpoint hashing',
          'set stickiness: {header} on the route',
        ],
        localityLbSetting: ['meshgate has no locality-aware balancing', 'leave it out'],
        warmupDurationSecs: ['no slow start', 'leave it out'],
      })
      const simple = asString(lb.simple)
      if (
        simple !== undefined &&
        !['ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN', 'UNSPECIFIED'].includes(simple)
      ) {
        ctx.note(
          lb,
          'simple',
          'spec.trafficPolicy.loadBalancer.simple',
          `${simple} has no meshgate equivalent`,
          'round-robin was used',
        )
      }
    }
    const pool = asObj(policy.connectionPool)
    if (pool !== undefined) {
      const cb: Raw = {}
      const tcp = asObj(pool.tcp)
      const http = asObj(pool.http)
      ctx.keys(pool, 'spec.trafficPolicy.connectionPool', ['tcp', 'http'])
      ctx.keys(tcp, 'spec.trafficPolicy.connectionPool.tcp', ['maxConnections'], {
        connectTimeout: ['meshgate bounds connecting within the route timeout', 'use perTryTimeout'],
        tcpKeepalive: ['no equivalent', 'leave it out'],
        maxConnectionDuration: ['no equivalent', 'leave it out'],
        idleTimeout: ['no equivalent', 'leave it out'],
      })
      ctx.keys(
        http,
        'spec.trafficPolicy.connectionPool.http',
        ['http1MaxPendingRequests', 'http2MaxRequests'],
        {
          maxRequestsPerConnection: [
            'meshgate keeps connections alive without a request cap',
            'leave it out',
          ],
          maxRetries: ['meshgate bounds retries with its retry budget', 'set retryBudget on the service'],
          idleTimeout: ['no equivalent', 'leave it out'],
          h2UpgradePolicy: ['targets set protocol: http2 instead', 'leave it out'],
          useClientProtocol: ['no equivalent', 'leave it out'],
          maxConcurrentStreams: ['no equivalent', 'leave it out'],
        },
      )
      const mc = asNumber(tcp?.maxConnections)
      const mp = asNumber(http?.http1MaxPendingRequests)
      const mr = asNumber(http?.http2MaxRequests)
      if (mc !== undefined) cb.maxConnections = mc
      if (mp !== undefined) cb.maxPendingRequests = mp
      if (mr !== undefined) cb.maxRequests = mr
      if (Object.keys(cb).length > 0) svc.circuitBreaker = cb
    }
    const od = asObj(policy.outlierDetection)
    if (od !== undefined) {
      ctx.keys(
        od,
        'spec.trafficPolicy.outlierDetection',
        [
          'consecutive5xxErrors',
          'consecutiveErrors',
          'consecutiveGatewayErrors',
          'interval',
          'baseEjectionTime',
          'maxEjectionPercent',
        ],
        {
          minHealthPercent: ['meshgate always keeps one endpoint and never ejects all', 'leave it out'],
          splitExternalLocalOriginErrors: ['meshgate counts connect failures as 5xx', 'leave it out'],
          consecutiveLocalOriginFailures: ['meshgate counts connect failures as 5xx', 'leave it out'],
        },
      )
      // Istio's defaults for the fields left out: 5, 10 s, 30 s, 10%.
      const out: Raw = {
        consecutive5xx: asNumber(od.consecutive5xxErrors) ?? asNumber(od.consecutiveErrors) ?? 5,
      }
      const gw = asNumber(od.consecutiveGatewayErrors)
      if (gw !== undefined) out.consecutiveGatewayErrors = gw
      const interval = parseGoDuration(od.interval)
      if (interval !== undefined) out.interval = duration(interval)
      const base = parseGoDuration(od.baseEjectionTime)
      if (base !== undefined) out.baseEjectionTime = duration(base)
      const max = asNumber(od.maxEjectionPercent)
      if (max !== undefined) out.maxEjectionPercent = max
      svc.outlierDetection = out
    }
  }
}

function headerOps(ctx: ResourceContext, o: Obj | undefined, p: string): Raw | undefined {
  if (o === undefined) return undefined
  ctx.keys(o, p, ['request', 'response'])
  const out: Raw = {}
  for (const side of ['request', 'response'] as const) {
    const ops = asObj(o[side])
    if (ops === undefined) continue
    ctx.keys(ops, `${p}.${side}`, ['set', 'add', 'remove'])
    const x: Raw = {}
    const strMap = (v: Value | undefined) =>
      isObj(v) ? Object.fromEntries(Object.entries(v).map(([k, s]) => [k, String(s)])) : undefined
    const set = strMap(ops.set)
    const add = strMap(ops.add)
    if (set) x.set = set
    if (add) x.add = add
    if (Array.isArray(ops.remove)) x.remove = ops.remove.map(String)
    out[side] = x
  }
  return out
}
