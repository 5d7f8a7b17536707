// Gateway API (gateway.networking.k8s.io HTTPRoute, Gateway) → a meshgate draft.
//
// - An HTTPRoute whose parentRef is a Service (GAMMA, mesh traffic) becomes that service's routes.
// - An HTTPRoute whose parentRef is a Gateway becomes gateway routes: a rule with one backend and no
//   filters but URLRewrite routes straight to that backend's service; any other rule gets a service of
//   its own (`ROUTE-rN`) that carries its weights and filters, and the gateway routes to it.
// - The rules of all routes on one parent are ordered by Gateway API precedence (precedence.ts), then
//   written in that order, since meshgate takes the first match.
// - Absent fields keep Gateway API's meaning: weight 1, path prefix `/`, header and query type Exact,
//   no retries (the retry field is opt-in, GEP-1731).
import {
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
import { comparePrecedence, type PrecedenceKey } from './precedence.ts'
import { asList, asNumber, asObj, asString, isObj, type Obj, type SourceDoc } from './reader.ts'
import { ImportError, type Report } from './report.ts'
import { ResourceContext } from './resource-context.ts'

const GATEWAY_KINDS = new Set([
  'Gateway',
  'GatewayClass',
  'HTTPRoute',
  'GRPCRoute',
  'TCPRoute',
  'TLSRoute',
  'UDPRoute',
  'ReferenceGrant',
  'BackendTLSPolicy',
  'ListenerSet',
  'XListenerSet',
  'BackendTrafficPolicy',
  'XBackendTrafficPolicy',
])

interface Entry {
  key: PrecedenceKey
  route: K8sResource
  ctx: ResourceContext
  rule: Obj
  ruleIndex: number
  match: Obj | undefined
  matchIndex: number
}

export function translateGatewayApi(docs: SourceDoc[], report: Report, meshName = 'imported'): Draft {
  const resources = k8sResources(docs)
  const draft = newDraft(meshName)
  // Gateway API retries only when a rule asks (GEP-1731); no outlier detection of its own.
  draft.defaults = { retries: { attempts: 0 }, outlierDetection: { consecutive5xx: 0 } }
  draft.defaultsNote = "Gateway API's defaults: no retries unless a rule sets retry; no outlier detection"
  const ports = servicePorts(resources)
  const meshEntries = new Map<string, Entry[]>()
  const gatewayEntries: Entry[] = []
  for (const r of resources) {
    const ctx = new ResourceContext(report, r.file, `${r.kind}/${r.name}`, r.line)
    if (r.group.endsWith('gateway.networking.k8s.io') || r.group.endsWith('gateway.networking.x-k8s.io')) {
      if (!GATEWAY_KINDS.has(r.kind))
        throw new ImportError(r.file, r.kindLine, `unknown Gateway API kind ${r.kind} (${r.apiVersion})`)
      if (r.kind === 'HTTPRoute') collect(ctx, r, meshEntries, gatewayEntries)
      else if (r.kind === 'GRPCRoute') {
        ctx.note(
          r.obj,
          'kind',
          'kind',
          'gRPC routes are not in this version of meshgate (service/method matching is coming with the protocols work)',
          'route the gRPC service by path prefix /PACKAGE.SERVICE/ in an HTTPRoute, or keep it outside the mesh for now',
        )
      } else if (r.kind === 'TCPRoute' || r.kind === 'TLSRoute' || r.kind === 'UDPRoute') {
        ctx.note(
          r.obj,
          'kind',
          'kind',
          `meshgate routes HTTP; ${r.kind} is not supported`,
          'keep that traffic outside the mesh',
        )
      } else if (r.kind === 'Gateway') {
        asList(r.spec.listeners).forEach((l, i) => {
          const listener = asObj(l)
          if (listener?.tls !== undefined)
            ctx.note(
              listener,
              'tls',
              `spec.listeners[${i}].tls`,
              'meshgate terminates no TLS at its gateway',
              'terminate TLS at API Gateway or the load balancer',
            )
          if (listener?.hostname !== undefined)
            ctx.note(
              listener,
              'hostname',
              `spec.listeners[${i}].hostname`,
              "meshgate's gateway answers every host",
              'filter hosts in front of it',
            )
        })
      } else if (r.kind !== 'GatewayClass' && r.kind !== 'ReferenceGrant') {
        ctx.note(r.obj, 'kind', 'kind', `meshgate has no equivalent of ${r.kind}`, 'leave it out')
      }
      continue
    }
    if (isPlainKubernetes(r)) continue
    throw new ImportError(
      r.file,
      r.kindLine,
      `unknown kind ${r.kind} (${r.apiVersion}) for a Gateway API import`,
    )
  }
  const t = new GatewayApiTranslator(draft, ports)
  for (const [service, entries] of meshEntries) {
    // A route with no rules attaches nothing (its parent still gets no service of its own).
    if (entries.length === 0) continue
    entries.sort((a, b) => comparePrecedence(a.key, b.key))
    const svc = serviceOf(draft, service, entries[0]!.ctx.source)
    for (const e of entries) {
      if (!svc.sources.includes(e.ctx.source)) svc.sources.push(e.ctx.source)
      t.serviceRoute(svc, e)
    }
  }
  gatewayEntries.sort((a, b) => comparePrecedence(a.key, b.key))
  for (const e of gatewayEntries) t.gatewayRoute(e)
  return draft
}

function collect(ctx: ResourceContext, r: K8sResource, mesh: Map<string, Entry[]>, gateway: Entry[]): void {
  ctx.keys(r.spec, 'spec', ['parentRefs', 'rules'], {
    hostnames: [
      'meshgate matches services by name and its gateway answers every host',
      'route by path, or filter hosts in front of the gateway',
    ],
  })
  const created = Date.parse(asString(asObj(r.obj.metadata)?.creationTimestamp) ?? '')
  const parents = asList(r.spec.parentRefs)
    .map(asObj)
    .filter((p): p is Obj => p !== undefined)
  if (parents.length === 0)
    ctx.note(
      r.spec,
      undefined,
      'spec.parentRefs',
      'a route with no parent is attached to nothing',
      'add a parentRef (a Gateway, or a Service for mesh traffic)',
    )
  const targets: Entry[][] = []
  parents.forEach((p, i) => {
    ctx.keys(p, `spec.parentRefs[${i}]`, ['group', 'kind', 'name', 'namespace', 'sectionName', 'port'])
    const kind = asString(p.kind) ?? 'Gateway'
    const name = asString(p.name) ?? 'unnamed'
    if (kind === 'Service') {
      const svc = toName(clusterHost(name, asString(p.namespace) ?? r.namespace).short)
      const list = mesh.get(svc) ?? []
      mesh.set(svc, list)
      targets.push(list)
    } else if (kind === 'Gateway') {
      if (!targets.includes(gateway)) targets.push(gateway)
    } else {
      ctx.note(
        p,
        'kind',
        `spec.parentRefs[${i}].kind`,
        `a ${kind} parent has no meshgate equivalent`,
        'attach the route to a Gateway or a Service',
      )
    }
  })
  asList(r.spec.rules).forEach((rv, i) => {
    const rule = asObj(rv)
    if (rule === undefined) return
    const matches = asList(rule.matches).map(asObj)
    const list = matches.length === 0 ? [undefined] : matches
    list.forEach((m, j) => {
      const path = asObj(m?.path)
      const pathType = (asString(path?.type) ?? 'PathPrefix') as PrecedenceKey['pathType']
      const entry: Entry = {
        key: {
          pathType: ['Exact', 'RegularExpression', 'PathPrefix'].includes(pathType) ? pathType : 'PathPrefix',
          pathLength: (asString(path?.value) ?? '/').length,
          method: m?.method !== undefined,
          headers: asList(m?.headers).length,
          query: asList(m?.queryParams).length,
          // Files carry no creation time (a cluster does): ties then fall to the name.
          created: Number.isNaN(created) ? Number.POSITIVE_INFINITY : created,
          route: `${r.namespace}/${r.name}`,
          rule: i,
          match: j,
        },
        route: r,
        ctx,
        rule,
        ruleIndex: i,
        match: m,
        matchIndex: j,
      }
      for (const list2 of targets) list2.push(entry)
    })
  })
}

class GatewayApiTranslator {
  private readonly draft: Draft
  private readonly ports: Map<string, number[]>
  private readonly names = new Map<string, Set<string>>()
  private readonly gatewayNames = new Set<string>()
  constructor(draft: Draft, ports: Map<string, number[]>) {
    this.draft = draft
    this.ports = ports
  }

  private routeNames(svc: string): Set<string> {
    let s = this.names.get(svc)
    if (s === undefined) {
      s = new Set()
      this.names.set(svc, s)
    }
    return s
  }

  /** One rule × match as a route of `svc`. */
  serviceRoute(svc: DraftService, e: Entry): void {
    const route = this.route(svc, e)
    if (route !== undefined) svc.routes.push(route)
  }

  gatewayRoute(e: Entry): void {
    const { ctx, rule, ruleIndex: i, route: r } = e
    const p = `spec.rules[${i}]`
    if (!this.draft.gatewaySources.includes(ctx.source)) this.draft.gatewaySources.push(ctx.source)
    const backends = asList(rule.backendRefs)
      .map(asObj)
      .filter((b): b is Obj => b !== undefined)
    const filters = asList(rule.filters).map(asObj)
    const simple =
      backends.length === 1 &&
      asList(backends[0]!.filters).length === 0 &&
      filters.every((f) => asString(f?.type) === 'URLRewrite') &&
      Object.keys(rule).every((k) => ['name', 'matches', 'backendRefs', 'filters'].includes(k))
    const match =
      e.match === undefined ? undefined : this.match(ctx, e.match, `${p}.matches[${e.matchIndex}]`)
    if (match === null) return
    const gw: { name: string; match?: Raw; service: string; rewrite?: Raw } = {
      name: uniqueName(asString(rule.name) ?? `${r.name}-${i}`, this.gatewayNames),
      service: '',
    }
    if (match !== undefined && Object.keys(match).length > 0) gw.match = match
    if (simple) {
      const b = backends[0]!
      const backendName = asString(b.name) ?? 'unnamed'
      const h = clusterHost(backendName, asString(b.namespace) ?? r.namespace)
      gw.service = toName(h.short)
      const existing = this.draft.services.get(gw.service)
      if (existing === undefined) {
        const svc = serviceOf(this.draft, gw.service, ctx.source)
        this.backend(ctx, svc, b, r.namespace, `${p}.backendRefs[0]`)
      }
      const rw =
        filters.length > 0
          ? this.rewrite(ctx, asObj(filters[0]!.urlRewrite), `${p}.filters[0].urlRewrite`, gw.match)
          : undefined
      if (rw) gw.rewrite = rw
    } else {
      gw.service = toName(`${r.name}-r${i}`)
      const svc = serviceOf(this.draft, gw.service, ctx.source)
      const route = this.route(svc, e)
      if (route === undefined) {
        // Nothing to route to (reported): no service of its own either.
        if (Object.keys(svc.targets).length === 0 && svc.routes.length === 0)
          this.draft.services.delete(svc.name)
        return
      }
      svc.routes.push(route)
    }
    this.draft.gateway.push(gw)
  }

  private route(svc: DraftService, e: Entry): DraftRoute | undefined {
    const { ctx, rule, ruleIndex: i, route: r } = e
    const p = `spec.rules[${i}]`
    if (e.matchIndex === 0) {
      ctx.keys(rule, p, [
        'name',
        'matches',
        'backendRefs',
        'filters',
        'timeouts',
        'retry',
        'sessionPersistence',
      ])
    }
    const backends = asList(rule.backendRefs)
      .map(asObj)
      .filter((b): b is Obj => b !== undefined)
    if (backends.length === 0) {
      if (e.matchIndex === 0)
        ctx.note(
          rule,
          undefined,
          p,
          'a rule without backendRefs answers 500 in Gateway API; meshgate has no such route',
          'give it a backend, or leave it out',
        )
      return undefined
    }
    const to: Record<string, number> = {}
    backends.forEach((b, k) => {
      const name = this.backend(ctx, svc, b, r.namespace, `${p}.backendRefs[${k}]`, e.matchIndex === 0)
      to[name] = (to[name] ?? 0) + (asNumber(b.weight) ?? 1)
    })
    if (Object.values(to).every((w) => w === 0)) {
      if (e.matchIndex === 0)
        ctx.note(
          rule,
          'backendRefs',
          `${p}.backendRefs`,
          'every weight is 0: Gateway API answers 500',
          'give one backend weight',
        )
      return undefined
    }
    const names = Object.keys(to)
    const out: DraftRoute = {
      name: uniqueName(
        asString(rule.name) ?? `${r.name}-${i}${e.matchIndex > 0 ? `-${e.matchIndex}` : ''}`,
        this.routeNames(svc.name),
      ),
      to: names.length === 1 ? names[0]! : to,
    }
    if (e.match !== undefined) {
      const m = this.match(ctx, e.match, `${p}.matches[${e.matchIndex}]`)
      if (m === null) return undefined
      if (Object.keys(m).length > 0) out.match = m
    }
    const timeouts = asObj(rule.timeouts)
    const retry = asObj(rule.retry)
    const retries: Raw = {}
    if (timeouts !== undefined) {
      if (e.matchIndex === 0) ctx.keys(timeouts, `${p}.timeouts`, ['request', 'backendRequest'])
      const req = parseGoDuration(timeouts.request)
      if (req !== undefined && req > 0) out.timeout = duration(req)
      const be = parseGoDuration(timeouts.backendRequest)
      if (be !== undefined && be > 0) retries.perTryTimeout = duration(be)
    }
    if (retry !== undefined) {
      if (e.matchIndex === 0) ctx.keys(retry, `${p}.retry`, ['codes', 'attempts', 'backoff'])
      // Gateway API's attempts counts retries; its codes are the statuses to retry.
      retries.attempts = Math.min(asNumber(retry.attempts) ?? 1, 10)
      const codes = asList(retry.codes)
        .map(asNumber)
        .filter((c): c is number => c !== undefined)
      if (codes.length > 0) retries.on = codes.map(String)
      const backoff = parseGoDuration(retry.backoff)
      if (backoff !== undefined && backoff > 0)
        retries.backoff = { base: duration(backoff), max: duration(Math.max(backoff * 10, 250)) }
    }
    if (Object.keys(retries).length > 0) out.retries = retries
    const sp = asObj(rule.sessionPersistence)
    if (sp !== undefined && e.matchIndex === 0) {
      ctx.note(
        sp,
        undefined,
        `${p}.sessionPersistence`,
        'meshgate keeps users on a target by a header or cookie the client already sends, without issuing one',
        'set stickiness: {header} or {cookie} on the route',
      )
    }
    asList(rule.filters).forEach((fv, k) => {
      this.filter(ctx, svc, out, asObj(fv), `${p}.filters[${k}]`, r.namespace, e.matchIndex === 0)
    })
    return out
  }

  private filter(
    ctx: ResourceContext,
    svc: DraftService,
    out: DraftRoute,
    f: Obj | undefined,
    p: string,
    ns: string,
    report: boolean,
  ): void {
    if (f === undefined) return
    const type = asString(f.type)
    const note = (why: string, instead: string) => {
      if (report) ctx.note(f, 'type', `${p}.type`, why, instead)
    }
    switch (type) {
      case 'RequestHeaderModifier':
      case 'ResponseHeaderModifier': {
        const side = type === 'RequestHeaderModifier' ? 'request' : 'response'
        const mod = asObj(f[side === 'request' ? 'requestHeaderModifier' : 'responseHeaderModifier']) ?? {}
        const ops: Raw = {}
        const pairs = (v: unknown) => {
          const o: Record<string, string> = {}
          for (const x of asList(v))
            if (isObj(x) && typeof x.name === 'string') o[x.name] = String(x.value ?? '')
          return o
        }
        if (mod.set !== undefined) ops.set = pairs(mod.set)
        if (mod.add !== undefined) ops.add = pairs(mod.add)
        if (mod.remove !== undefined) ops.remove = asList(mod.remove).map(String)
        out.headers = { ...(out.headers ?? {}), [side]: ops }
        return
      }
      case 'URLRewrite': {
        const rw = this.rewrite(ctx, asObj(f.urlRewrite), `${p}.urlRewrite`, out.match, report)
        if (rw) out.rewrite = rw
        return
      }
      case 'RequestMirror': {
        const m = asObj(f.requestMirror) ?? {}
        const b = asObj(m.backendRef)
        if (b === undefined) return
        const target = this.backend(ctx, svc, b, ns, `${p}.requestMirror.backendRef`, report)
        let percent = asNumber(m.percent)
        const fr = asObj(m.fraction)
        if (percent === undefined && fr !== undefined) {
          const num = asNumber(fr.numerator) ?? 0
          const den = asNumber(fr.denominator) ?? 100
          percent = den > 0 ? (num / den) * 100 : 0
        }
        if (out.mirror !== undefined)
          note('meshgate mirrors to one target per route', 'keep one RequestMirror; the first was used')
        else out.mirror = percent === undefined ? { target } : { target, percent }
        return
      }
      case 'RequestRedirect':
        note('meshgate routes do not answer redirects', 'answer the redirect in the app, or at API Gateway')
        return
      case 'CORS':
        note('meshgate does not answer CORS preflights', 'configure CORS on API Gateway or in the app')
        return
      default:
        note(`filter ${type ?? '(none)'} has no meshgate equivalent`, 'leave it out, or do it in the app')
    }
  }

  private rewrite(
    ctx: ResourceContext,
    rw: Obj | undefined,
    p: string,
    match: Raw | undefined,
    report = true,
  ): Raw | undefined {
    if (rw === undefined) return undefined
    const out: Raw = {}
    if (typeof rw.hostname === 'string') out.host = rw.hostname
    const path = asObj(rw.path)
    if (path !== undefined) {
      const type = asString(path.type)
      if (type === 'ReplaceFullPath' && typeof path.replaceFullPath === 'string')
        out.path = path.replaceFullPath
      else if (type === 'ReplacePrefixMatch' && typeof path.replacePrefixMatch === 'string') {
        if (asObj(match?.path)?.prefix === undefined) {
          if (report)
            ctx.note(
              path,
              'type',
              `${p}.path.type`,
              'ReplacePrefixMatch needs a PathPrefix match',
              'match on a PathPrefix',
            )
        } else out.prefix = path.replacePrefixMatch
      }
    }
    return Object.keys(out).length > 0 ? out : undefined
  }

  /** null: a condition meshgate cannot express, so the match is left out rather than widened. */
  private match(ctx: ResourceContext, m: Obj, p: string): Raw | null {
    let never = false
    ctx.keys(m, p, ['path', 'headers', 'queryParams', 'method'])
    const out: Raw = {}
    const path = asObj(m.path)
    const type = asString(path?.type) ?? 'PathPrefix'
    const value = asString(path?.value) ?? '/'
    if (type === 'Exact') out.path = { exact: value }
    else if (type === 'RegularExpression') out.path = { regex: value }
    else if (value !== '/' || path !== undefined) out.path = { prefix: value }
    if (typeof m.method === 'string') out.method = m.method.toUpperCase()
    const conds = (list: unknown, q: string): Raw | undefined => {
      const o: Raw = {}
      asList(list).forEach((hv, k) => {
        const h = asObj(hv)
        const name = asString(h?.name)
        if (h === undefined || name === undefined) return
        // Gateway API: when a name appears twice, the first one counts.
        if (Object.keys(o).some((n) => n.toLowerCase() === name.toLowerCase())) return
        const t = asString(h.type) ?? 'Exact'
        const v = asString(h.value) ?? ''
        if (t === 'RegularExpression') o[name] = { regex: v }
        else if (t === 'Exact') o[name] = v
        else {
          never = true
          ctx.note(
            h,
            'type',
            `${q}[${k}].type`,
            `match type ${t} has no meshgate equivalent; the match was left out`,
            'use Exact or RegularExpression',
          )
        }
      })
      return Object.keys(o).length > 0 ? o : undefined
    }
    const headers = conds(m.headers, `${p}.headers`)
    if (headers) out.headers = headers
    const query = conds(m.queryParams, `${p}.queryParams`)
    if (query) out.query = query
    return never || !ctx.expressible(m, p, out) ? null : out
  }

  /** The target in `svc` for a backendRef (a Service), created on first use. */
  private backend(
    ctx: ResourceContext,
    svc: DraftService,
    b: Obj,
    ns: string,
    p: string,
    report = true,
  ): string {
    if (report)
      ctx.keys(b, p, ['name', 'namespace', 'port', 'weight', 'group', 'kind'], {
        filters: ['meshgate applies filters per route, not per backend', 'move the filter to the rule'],
      })
    const kind = asString(b.kind) ?? 'Service'
    const name = asString(b.name) ?? 'unnamed'
    const h = clusterHost(name, asString(b.namespace) ?? ns)
    const target = toName(h.short)
    if (svc.targets[target] !== undefined) return target
    if (kind !== 'Service' && report)
      ctx.note(
        b,
        'kind',
        `${p}.kind`,
        `a ${kind} backend is not a Kubernetes Service`,
        'the target points at the DNS name; check it',
      )
    let port = asNumber(b.port)
    if (port === undefined) {
      const known = this.ports.get(h.fqdn.split('.').slice(0, 2).join('.'))
      if (known?.length === 1) port = known[0]
      else {
        port = 80
        if (report)
          ctx.note(
            b,
            undefined,
            `${p}.port`,
            `no port for ${name} and no Service with one port in the input`,
            'set port (Gateway API requires it for Services); 80 was assumed',
          )
      }
    }
    svc.targets[target] = { http: `dns://${h.fqdn}:${port}` }
    return target
  }
}
