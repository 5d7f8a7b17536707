// AWS App Mesh → a meshgate draft. Three spellings of the same resources are read: the App Mesh API's
// JSON (`aws appmesh describe-*` output, `create-* --cli-input-json` input), CloudFormation templates
// (`AWS::AppMesh::*`, PascalCase), and the App Mesh controller's Kubernetes resources
// (`appmesh.k8s.aws/v1beta2`, with `…Ref: {name}` references). All become one camelCase shape first.
//
// The join: VirtualService → its provider (a VirtualRouter with Routes, or one VirtualNode) → the
// VirtualNodes' service discovery, which become the meshgate service's targets.
//
// Semantics kept (App Mesh user guide and API reference, cited in docs/migrate.md):
// - Routes are matched by `priority`, 0 first; App Mesh orders routes without one itself (longest
//   prefix first, aws-app-mesh-roadmap#77): the same order is used, and reported.
// - `prefix` is a character prefix (Envoy), so it becomes a whole-path regex unless it is `/`.
// - Weights are relative. No `timeout`: 15 s per request. No `retryPolicy`: App Mesh's default
//   policy (meshes since 2020-07-29), 2 retries on 503, connection errors and refused streams.
// - A gateway route rewrites the matched prefix to `/` unless `rewrite.prefix.defaultPrefix` is DISABLED.
// - Outlier detection and connection limits exist only where a listener sets them.

import { isTemplate, templateResources } from './cloudformation.ts'
import {
  charPrefixMatch,
  type Draft,
  type DraftRoute,
  type DraftService,
  duration,
  escapeRegex,
  newDraft,
  type Raw,
  serviceOf,
  toName,
  uniqueName,
} from './draft.ts'
import {
  asList,
  asNumber,
  asObj,
  asString,
  copyPosition,
  isObj,
  lineOf,
  type Obj,
  type SourceDoc,
  type Value,
} from './reader.ts'
import { ImportError, type Report } from './report.ts'
import { ResourceContext } from './resource-context.ts'

const KINDS = [
  'Mesh',
  'VirtualNode',
  'VirtualRouter',
  'Route',
  'VirtualService',
  'VirtualGateway',
  'GatewayRoute',
] as const
type Kind = (typeof KINDS)[number]

interface Entity {
  kind: Kind
  /** The App Mesh name (API, CloudFormation) or the Kubernetes name. */
  name: string
  /** The name used for meshgate (a VirtualService's first DNS label, a node's name). */
  router?: string
  gateway?: string
  meshName?: string
  spec: Obj
  ctx: ResourceContext
}

/** App Mesh's default retry policy in meshgate's words: 2 retries on 503, connection errors, refused streams. */
export const APPMESH_DEFAULT_RETRIES = { attempts: 2, on: ['connect-failure', 'reset', '503'] }
const ALL_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE', 'POST', 'PATCH']

export function translateAppMesh(
  docs: SourceDoc[],
  report: Report,
  meshName?: string,
  params: Record<string, string> = {},
): Draft {
  const entities: Entity[] = []
  const dnsNamespaces = new Set<string>()
  const httpNamespaces = new Set<string>()
  for (const doc of docs) readDoc(doc, report, entities, dnsNamespaces, httpNamespaces, params)
  const mesh =
    meshName ??
    entities.find((e) => e.kind === 'Mesh')?.name ??
    entities.find((e) => e.meshName)?.meshName ??
    'imported'
  const draft = newDraft(mesh)
  draft.defaults = {
    timeout: '15s',
    retries: { ...APPMESH_DEFAULT_RETRIES, methods: ALL_METHODS },
    outlierDetection: { consecutive5xx: 0 },
  }
  draft.defaultsNote =
    "App Mesh's defaults: 15s per request; the default retry policy (2 retries on 503, connection errors and refused streams, any method); no outlier detection"
  new AppMeshTranslator(draft, entities, dnsNamespaces, httpNamespaces).run()
  return draft
}

/** `AWSCloudMap` → `awsCloudMap`, `DNS` → `dns`, `HttpRoute` → `httpRoute`. */
function camelKey(k: string): string {
  if (/^[A-Z0-9]+$/.test(k)) return k.toLowerCase()
  const m = /^([A-Z]+)([A-Z][a-z].*)$/.exec(k)
  if (m) return m[1]!.toLowerCase() + m[2]
  return k.charAt(0).toLowerCase() + k.slice(1)
}
function camelize(v: Value): Value {
  if (Array.isArray(v)) {
    const out = v.map(camelize)
    copyPosition(v, out)
    return out
  }
  if (!isObj(v)) return v
  const out: Obj = {}
  for (const [k, x] of Object.entries(v)) out[camelKey(k)] = camelize(x)
  copyPosition(v, out, (k) => (typeof k === 'string' ? camelKey(k) : k))
  return out
}

const NAME_KEYS: [string, Kind][] = [
  ['gatewayRouteName', 'GatewayRoute'],
  ['routeName', 'Route'],
  ['virtualServiceName', 'VirtualService'],
  ['virtualNodeName', 'VirtualNode'],
  ['virtualGatewayName', 'VirtualGateway'],
  ['virtualRouterName', 'VirtualRouter'],
]

function readDoc(
  doc: SourceDoc,
  report: Report,
  out: Entity[],
  dns: Set<string>,
  http: Set<string>,
  params: Record<string, string>,
): void {
  const v = doc.value
  const file = doc.file
  if (isTemplate(v)) {
    const resources = templateResources(
      file,
      v,
      (name, line) =>
        report.add({
          file,
          line,
          resource: 'template',
          field: name,
          why: `a pseudo parameter has no value outside a stack; a placeholder was used`,
          instead: 'replace it with the value, or import `aws appmesh describe-*` output',
        }),
      params,
    )
    for (const r of resources) {
      if (
        r.type === 'AWS::ServiceDiscovery::PrivateDnsNamespace' ||
        r.type === 'AWS::ServiceDiscovery::PublicDnsNamespace'
      ) {
        const n = asString(r.properties.Name)
        if (n) dns.add(n)
        continue
      }
      if (r.type === 'AWS::ServiceDiscovery::HttpNamespace') {
        const n = asString(r.properties.Name)
        if (n) http.add(n)
        continue
      }
      const kind = r.type.slice('AWS::AppMesh::'.length) as Kind
      if (!KINDS.includes(kind))
        throw new ImportError(file, r.line, `unknown App Mesh resource type ${r.type}`)
      const props = camelize(r.properties) as Obj
      const ctx = new ResourceContext(report, file, `${r.type}/${r.logicalId}`, r.line)
      const nameKey = NAME_KEYS.find(([, k]) => k === kind)?.[0] ?? 'meshName'
      ctx.keys(props, 'Properties', [
        'meshName',
        'meshOwner',
        'spec',
        'tags',
        nameKey,
        'virtualRouterName',
        'virtualGatewayName',
      ])
      out.push(entity(kind, props, nameKey, ctx))
    }
    return
  }
  const obj = asObj(v)
  if (obj === undefined)
    throw new ImportError(
      file,
      doc.line,
      'expected an App Mesh resource, a CloudFormation template or a Kubernetes resource',
    )
  if (typeof obj.apiVersion === 'string' || typeof obj.kind === 'string') {
    readKubernetes(doc, obj, report, out)
    return
  }
  // API JSON: describe output wraps the resource (`{"virtualNode": {...}}`); create input is bare.
  const keys = Object.keys(obj)
  const wrapped = keys.length === 1 && isObj(obj[keys[0]!]) ? asObj(obj[keys[0]!])! : undefined
  const res = wrapped !== undefined && [...KINDS].some((k) => camelKey(k) === keys[0]) ? wrapped : obj
  const kind = apiKind(res)
  if (kind === undefined)
    throw new ImportError(
      file,
      lineOf(res, undefined, doc.line),
      'unknown App Mesh resource: no routeName, virtualNodeName, … and no spec to tell its kind by (add the name field, as `create-* --cli-input-json` accepts it, or use `describe-*` output)',
    )
  const nameKey = NAME_KEYS.find(([, k]) => k === kind)?.[0] ?? 'meshName'
  const base = file.replace(/^.*\//, '').replace(/\.[^.]*$/, '')
  const name = asString(res[nameKey]) ?? base
  const ctx = new ResourceContext(report, file, `${kind}/${name}`, lineOf(res, undefined, doc.line))
  ctx.keys(res, '', [
    'meshName',
    'meshOwner',
    'spec',
    'tags',
    'metadata',
    'status',
    'clientToken',
    nameKey,
    'virtualRouterName',
    'virtualGatewayName',
  ])
  const e = entity(kind, res, nameKey, ctx)
  e.name = name
  out.push(e)
}

function apiKind(res: Obj): Kind | undefined {
  for (const [key, kind] of NAME_KEYS) if (typeof res[key] === 'string') return kind
  const spec = asObj(res.spec)
  if (spec === undefined) return typeof res.meshName === 'string' ? 'Mesh' : undefined
  if (spec.provider !== undefined) return 'VirtualService'
  if (spec.serviceDiscovery !== undefined || spec.backends !== undefined) return 'VirtualNode'
  const http = asObj(spec.httpRoute) ?? asObj(spec.http2Route) ?? asObj(spec.grpcRoute)
  if (http !== undefined) return asObj(asObj(http.action)?.target) !== undefined ? 'GatewayRoute' : 'Route'
  if (spec.tcpRoute !== undefined) return 'Route'
  return undefined
}

function entity(kind: Kind, props: Obj, nameKey: string, ctx: ResourceContext): Entity {
  const e: Entity = { kind, name: asString(props[nameKey]) ?? 'unnamed', spec: asObj(props.spec) ?? {}, ctx }
  const router = asString(props.virtualRouterName)
  const gateway = asString(props.virtualGatewayName)
  const mesh = asString(props.meshName)
  if (router !== undefined) e.router = router
  if (gateway !== undefined) e.gateway = gateway
  if (mesh !== undefined) e.meshName = mesh
  return e
}

function readKubernetes(doc: SourceDoc, obj: Obj, report: Report, out: Entity[]): void {
  const apiVersion = asString(obj.apiVersion) ?? ''
  const kind = asString(obj.kind) ?? ''
  const line = lineOf(obj, undefined, doc.line)
  const kindLine = lineOf(obj, 'kind', line)
  if (kind === 'List') {
    for (const item of asList(obj.items)) readKubernetes(doc, asObj(item) ?? {}, report, out)
    return
  }
  if (!apiVersion.startsWith('appmesh.k8s.aws/')) {
    // Deployments, Services and the like travel with the mesh resources; they say nothing about routing.
    if (
      !apiVersion.includes('.') ||
      apiVersion.includes('k8s.io') ||
      apiVersion.startsWith('apps/') ||
      apiVersion.startsWith('batch/')
    )
      return
    throw new ImportError(doc.file, kindLine, `unknown kind ${kind} (${apiVersion}) for an App Mesh import`)
  }
  if (kind === 'BackendGroup') {
    new ResourceContext(report, doc.file, `${kind}/${asString(asObj(obj.metadata)?.name)}`, line).note(
      obj,
      'kind',
      'kind',
      'meshgate lets every service call every other',
      'leave it out (authorization rules restrict callers)',
    )
    return
  }
  if (!KINDS.includes(kind as Kind))
    throw new ImportError(doc.file, kindLine, `unknown App Mesh kind ${kind} (${apiVersion})`)
  const meta = asObj(obj.metadata) ?? {}
  const name = asString(meta.name) ?? 'unnamed'
  const ctx = new ResourceContext(report, doc.file, `${kind}/${name}`, line)
  const spec = asObj(obj.spec) ?? {}
  const e: Entity = { kind: kind as Kind, name, spec, ctx }
  out.push(e)
  if (kind === 'VirtualRouter') {
    // The controller embeds routes in the router.
    asList(spec.routes).forEach((rv) => {
      const r = asObj(rv)
      if (r === undefined) return
      const rname = asString(r.name) ?? 'route'
      const rctx = new ResourceContext(
        report,
        doc.file,
        `VirtualRouter/${name}/routes/${rname}`,
        lineOf(r, undefined, line),
      )
      out.push({ kind: 'Route', name: rname, router: name, spec: r, ctx: rctx })
    })
  }
  if (kind === 'GatewayRoute' || kind === 'VirtualService' || kind === 'VirtualNode') {
    const gw = asString(asObj(spec.virtualGatewayRef)?.name)
    if (gw !== undefined) e.gateway = gw
  }
}

/** `virtualNode: x`, `virtualNodeRef: {name: x}`, `virtualNodeARN: arn…/x` → `x`. */
function refName(o: Obj | undefined, what: string): string | undefined {
  if (o === undefined) return undefined
  const direct = asString(o[what]) ?? asString(o[`${what}Name`])
  if (direct !== undefined)
    return direct.includes(':') && direct.includes('/') ? direct.slice(direct.lastIndexOf('/') + 1) : direct
  const ref = asString(asObj(o[`${what}Ref`])?.name)
  if (ref !== undefined) return ref
  const arn = asString(o[`${what}ARN`]) ?? asString(o[`${what}Arn`])
  return arn?.slice(arn.lastIndexOf('/') + 1)
}

function awsDuration(d: unknown): number | undefined {
  const o = asObj(d)
  const value = asNumber(o?.value)
  if (o === undefined || value === undefined) return undefined
  return asString(o.unit) === 'ms' ? value : value * 1000
}

class AppMeshTranslator {
  private readonly draft: Draft
  private readonly byKind = new Map<Kind, Map<string, Entity>>()
  private readonly routesOf = new Map<string, Entity[]>()
  private readonly gatewayRoutes: Entity[] = []
  private readonly dns: Set<string>
  private readonly http: Set<string>
  /** Nodes whose listener policies were applied, by meshgate service. */
  private readonly policyFrom = new Map<string, string>()

  constructor(draft: Draft, entities: Entity[], dns: Set<string>, http: Set<string>) {
    this.draft = draft
    this.dns = dns
    this.http = http
    for (const k of KINDS) this.byKind.set(k, new Map())
    for (const e of entities) {
      if (e.kind === 'Route') {
        const list = this.routesOf.get(e.router ?? '') ?? []
        list.push(e)
        this.routesOf.set(e.router ?? '', list)
      } else if (e.kind === 'GatewayRoute') this.gatewayRoutes.push(e)
      else {
        const map = this.byKind.get(e.kind)!
        if (map.has(e.name))
          e.ctx.note(
            e.spec,
            undefined,
            'name',
            `a second ${e.kind} named ${e.name}`,
            'remove one; this one was not used',
          )
        else map.set(e.name, e)
      }
    }
  }

  run(): void {
    const names = new Set<string>()
    // Node names a route may reference → the meshgate service name, for gateway routes.
    const serviceNames = new Map<string, string>()
    for (const vs of this.byKind.get('VirtualService')!.values()) {
      const aws = asString(vs.spec.awsName) ?? vs.name
      const name = uniqueName(aws.split('.')[0] ?? aws, names)
      serviceNames.set(vs.name, name)
      serviceNames.set(aws, name)
      this.virtualService(vs, name)
    }
    for (const n of this.byKind.get('VirtualNode')!.values()) this.nodeFields(n)
    for (const g of this.byKind.get('VirtualGateway')!.values()) this.gatewayFields(g)
    const usedRouters = new Set(
      [...this.byKind.get('VirtualService')!.values()].map((vs) =>
        refName(asObj(asObj(vs.spec.provider)?.virtualRouter), 'virtualRouter'),
      ),
    )
    for (const r of this.byKind.get('VirtualRouter')!.values()) {
      if (!usedRouters.has(r.name)) {
        r.ctx.note(
          r.spec,
          undefined,
          'spec',
          'no VirtualService in the input uses this router',
          'add the VirtualService whose provider it is',
        )
      }
    }
    this.gateway(serviceNames)
  }

  private virtualService(vs: Entity, name: string): void {
    const { ctx, spec } = vs
    ctx.keys(spec, 'spec', ['provider', 'awsName', 'meshRef'])
    const provider = asObj(spec.provider)
    const routerName = refName(asObj(provider?.virtualRouter), 'virtualRouter')
    const nodeName = refName(asObj(provider?.virtualNode), 'virtualNode')
    if (routerName === undefined && nodeName === undefined) {
      ctx.note(
        spec,
        'provider',
        'spec.provider',
        'a virtual service without a provider has nowhere to send traffic',
        'give it a virtual router or node',
      )
      return
    }
    const svc = serviceOf(this.draft, name, ctx.source)
    if (nodeName !== undefined) {
      this.target(svc, nodeName, ctx, provider, 'spec.provider.virtualNode')
      return
    }
    const router = this.byKind.get('VirtualRouter')!.get(routerName!)
    if (router === undefined) {
      ctx.note(
        provider,
        'virtualRouter',
        'spec.provider.virtualRouter',
        `virtual router ${routerName} is not in the input`,
        'add its files',
      )
      return
    }
    if (!svc.sources.includes(router.ctx.source)) svc.sources.push(router.ctx.source)
    router.ctx.keys(router.spec, 'spec', ['listeners', 'routes', 'awsName', 'meshRef'])
    const listeners = asList(router.spec.listeners)
    if (listeners.length > 1)
      router.ctx.note(
        router.spec,
        'listeners',
        'spec.listeners',
        'meshgate routes per service, not per port',
        'give each port its own virtual service',
      )
    const routes = [...(this.routesOf.get(routerName!) ?? [])]
    this.order(routes)
    const routeNames = new Set<string>()
    for (const r of routes) {
      if (!svc.sources.includes(r.ctx.source)) svc.sources.push(r.ctx.source)
      const route = this.route(svc, r, routeNames, listeners.length)
      if (route !== undefined) svc.routes.push(route)
    }
  }

  /** Priority first (0 is highest); routes without one after them, longest prefix first, as App Mesh does. */
  private order(routes: Entity[]): void {
    const prefixLength = (e: Entity) => {
      const m = asObj(asObj(asObj(e.spec.httpRoute) ?? asObj(e.spec.http2Route))?.match)
      return (asString(m?.prefix) ?? asString(asObj(m?.path)?.exact) ?? '').length
    }
    const unprioritized = routes.filter((r) => asNumber(r.spec.priority) === undefined)
    if (routes.length > 1) {
      for (const r of unprioritized) {
        r.ctx.note(
          r.spec,
          undefined,
          'spec.priority',
          'no priority: App Mesh orders such routes itself (longest prefix first, after routes with a priority); meshgate kept that order',
          'set priority to make the order explicit',
        )
      }
    }
    routes.sort((a, b) => {
      const pa = asNumber(a.spec.priority) ?? Number.POSITIVE_INFINITY
      const pb = asNumber(b.spec.priority) ?? Number.POSITIVE_INFINITY
      return pa - pb || prefixLength(b) - prefixLength(a)
    })
  }

  private route(svc: DraftService, e: Entity, names: Set<string>, listeners: number): DraftRoute | undefined {
    const { ctx, spec } = e
    ctx.keys(spec, 'spec', ['priority', 'httpRoute', 'http2Route', 'name'], {
      grpcRoute: [
        'gRPC routes (service/method matching) are not in this version of meshgate',
        'route the gRPC service by its path prefix /PACKAGE.SERVICE/ in an httpRoute, or keep it outside the mesh for now',
      ],
      tcpRoute: [
        'meshgate routes HTTP; TCP routes are not in this version',
        'keep TCP traffic outside the mesh for now',
      ],
    })
    const key = spec.httpRoute !== undefined ? 'httpRoute' : 'http2Route'
    const hr = asObj(spec[key])
    if (hr === undefined) return undefined
    const p = `spec.${key}`
    ctx.keys(hr, p, ['match', 'action', 'retryPolicy', 'timeout'])
    const action = asObj(hr.action)
    const to: Record<string, number> = {}
    asList(action?.weightedTargets).forEach((tv, i) => {
      const t = asObj(tv)
      if (t === undefined) return
      ctx.keys(t, `${p}.action.weightedTargets[${i}]`, [
        'virtualNode',
        'virtualNodeRef',
        'virtualNodeARN',
        'weight',
        'port',
      ])
      const node = refName(t, 'virtualNode')
      if (node === undefined) return
      const target = this.target(svc, node, ctx, t, `${p}.action.weightedTargets[${i}]`)
      to[target] = (to[target] ?? 0) + (asNumber(t.weight) ?? 0)
    })
    if (Object.keys(to).length === 0 || Object.values(to).every((w) => w === 0)) {
      ctx.note(
        hr,
        'action',
        `${p}.action`,
        'no weighted target with a positive weight',
        'give one target weight',
      )
      return undefined
    }
    const targets = Object.keys(to)
    const match = this.match(ctx, asObj(hr.match), `${p}.match`, listeners)
    if (match === null) return undefined
    const route: DraftRoute = { name: uniqueName(e.name, names), to: targets.length === 1 ? targets[0]! : to }
    if (match !== undefined && Object.keys(match).length > 0) route.match = match
    const timeout = asObj(hr.timeout)
    if (timeout !== undefined) {
      ctx.keys(timeout, `${p}.timeout`, ['perRequest'], {
        idle: ['meshgate has no idle timeout for requests', 'leave it out; perRequest bounds each request'],
      })
      const ms = awsDuration(timeout.perRequest)
      if (ms === 0)
        ctx.note(
          timeout,
          'perRequest',
          `${p}.timeout.perRequest`,
          '0 disables the timeout in App Mesh; meshgate routes always have one',
          'set the longest time a call may take',
        )
      else if (ms !== undefined) route.timeout = duration(ms)
    }
    const rp = asObj(hr.retryPolicy)
    if (rp !== undefined) route.retries = this.retries(ctx, rp, `${p}.retryPolicy`)
    return route
  }

  private retries(ctx: ResourceContext, rp: Obj, p: string): Raw {
    ctx.keys(rp, p, ['maxRetries', 'perRetryTimeout', 'httpRetryEvents', 'tcpRetryEvents'], {
      grpcRetryEvents: ['gRPC status retries are not in this version', 'retry on server-error'],
    })
    let attempts = asNumber(rp.maxRetries) ?? 1
    if (attempts > 10) {
      ctx.note(
        rp,
        'maxRetries',
        `${p}.maxRetries`,
        `meshgate allows at most 10 retries, not ${attempts}`,
        'rely on the retry budget; 10 were kept',
      )
      attempts = 10
    }
    const out: Raw = { attempts }
    const per = awsDuration(rp.perRetryTimeout)
    if (per !== undefined && per > 0) out.perTryTimeout = duration(per)
    const on = new Set<string>()
    for (const ev of asList(rp.httpRetryEvents).map(asString)) {
      // server-error: 500–511 and Envoy's reset policy; gateway-error: 502–504 and resets too (API reference).
      if (ev === 'server-error') on.add('5xx')
      else if (ev === 'gateway-error') on.add('gateway-error')
      else if (ev === 'client-error') on.add('409')
      else if (ev === 'stream-error') on.add('reset')
      else
        ctx.note(
          rp,
          'httpRetryEvents',
          `${p}.httpRetryEvents`,
          `unknown retry event ${ev}`,
          'use server-error, gateway-error, client-error or stream-error',
        )
    }
    for (const ev of asList(rp.tcpRetryEvents).map(asString)) {
      if (ev === 'connection-error') on.add('connect-failure')
      else
        ctx.note(
          rp,
          'tcpRetryEvents',
          `${p}.tcpRetryEvents`,
          `unknown retry event ${ev}`,
          'use connection-error',
        )
    }
    out.on = [...on]
    return out
  }

  private match(
    ctx: ResourceContext,
    m: Obj | undefined,
    p: string,
    listeners: number,
    forGateway = false,
  ): Raw | undefined | null {
    // null: a condition meshgate cannot express; dropping it would widen the route, so the route goes.
    if (m === undefined) return undefined
    let never = false
    const known: Record<string, [string, string]> = {
      scheme: [
        'meshgate does not match on the scheme; the route was left out, since without the condition it would catch more',
        'route http and https apart before the mesh',
      ],
      hostname: [
        "meshgate's gateway answers every host; the route was left out, since without the condition it would catch more",
        'route by path, or filter hosts in front of the gateway',
      ],
    }
    if (listeners > 1 || forGateway)
      known.port = [
        'meshgate routes per service, not per port; the route was left out, since without the condition it would catch more',
        'give each port its own service',
      ]
    ctx.keys(
      m,
      p,
      [
        'prefix',
        'path',
        'headers',
        'method',
        'queryParameters',
        ...(listeners <= 1 && !forGateway ? ['port'] : []),
      ],
      known,
    )
    if (m.scheme !== undefined || m.hostname !== undefined || (m.port !== undefined && known.port))
      never = true
    const out: Raw = {}
    const path = asObj(m.path)
    if (typeof m.prefix === 'string') out.path = forGateway ? { prefix: m.prefix } : charPrefixMatch(m.prefix)
    else if (path !== undefined) {
      ctx.keys(path, `${p}.path`, ['exact', 'regex'])
      if (typeof path.exact === 'string') out.path = { exact: path.exact }
      else if (typeof path.regex === 'string') out.path = { regex: path.regex }
    }
    if (typeof m.method === 'string') out.method = m.method.toUpperCase()
    const headers: Raw = {}
    asList(m.headers).forEach((hv, i) => {
      const h = asObj(hv)
      const name = asString(h?.name)
      if (h === undefined || name === undefined) return
      const hp = `${p}.headers[${i}]`
      ctx.keys(h, hp, ['name', 'match', 'invert'])
      if (h.invert === true) {
        ctx.note(
          h,
          'invert',
          `${hp}.invert`,
          'meshgate has no inverted header match beyond absence; the route was left out, since without the condition it would catch more',
          'match the values you want, or {present: false}',
        )
        never = true
        return
      }
      const hm = asObj(h.match)
      if (hm === undefined) {
        headers[name] = { present: true }
        return
      }
      const v = this.stringMatch(ctx, hm, `${hp}.match`)
      if (v !== undefined) headers[name] = v
      else never = true
    })
    if (Object.keys(headers).length > 0) out.headers = headers
    const query: Raw = {}
    asList(m.queryParameters).forEach((qv, i) => {
      const q = asObj(qv)
      const name = asString(q?.name)
      if (q === undefined || name === undefined) return
      ctx.keys(q, `${p}.queryParameters[${i}]`, ['name', 'match'])
      const exact = asString(asObj(q.match)?.exact)
      query[name] = exact === undefined ? { present: true } : exact
    })
    if (Object.keys(query).length > 0) out.query = query
    return never || !ctx.expressible(m, p, out) ? null : out
  }

  private stringMatch(ctx: ResourceContext, hm: Obj, p: string): Raw | string | undefined {
    ctx.keys(hm, p, ['exact', 'prefix', 'suffix', 'regex'], {
      range: [
        'meshgate has no numeric range match; the route was left out, since without the condition it would catch more',
        'use a regex over the digits',
      ],
    })
    if (typeof hm.exact === 'string') return hm.exact
    if (typeof hm.prefix === 'string') return { prefix: hm.prefix }
    if (typeof hm.suffix === 'string') return { regex: `.*${escapeRegex(hm.suffix)}` }
    if (typeof hm.regex === 'string') return { regex: hm.regex }
    return undefined
  }

  /** The meshgate target for a virtual node (named after it), with its address from service discovery. */
  private target(svc: DraftService, node: string, ctx: ResourceContext, at: unknown, p: string): string {
    const name = toName(node)
    if (svc.targets[name] !== undefined) return name
    const n = this.byKind.get('VirtualNode')!.get(node)
    if (n === undefined) {
      ctx.note(
        at,
        undefined,
        p,
        `virtual node ${node} is not in the input`,
        'add its files; the target points at a placeholder address',
      )
      svc.targets[name] = { http: `http://${name}.invalid:80` }
      return name
    }
    if (!svc.sources.includes(n.ctx.source)) svc.sources.push(n.ctx.source)
    const listener = asObj(asList(n.spec.listeners)[0])
    const port = asNumber(asObj(listener?.portMapping)?.port) ?? 80
    const sd = asObj(n.spec.serviceDiscovery)
    const dns = asObj(sd?.dns)
    const cm = asObj(sd?.awsCloudMap)
    if (dns !== undefined && typeof dns.hostname === 'string') {
      n.ctx.keys(dns, 'spec.serviceDiscovery.dns', ['hostname', 'responseType'], {
        ipPreference: ['meshgate uses the addresses DNS returns', 'leave it out'],
      })
      // LOADBALANCER (the default): one address, a load balancer's; ENDPOINTS: every record is an endpoint.
      svc.targets[name] =
        asString(dns.responseType) === 'ENDPOINTS'
          ? { http: `dns://${dns.hostname}:${port}` }
          : { http: `http://${dns.hostname}:${port}` }
    } else if (cm !== undefined) {
      n.ctx.keys(cm, 'spec.serviceDiscovery.awsCloudMap', ['namespaceName', 'serviceName', 'attributes'], {
        ipPreference: ['meshgate uses the addresses discovery returns', 'leave it out'],
      })
      const ns = asString(cm.namespaceName) ?? 'local'
      const service = asString(cm.serviceName) ?? name
      const host = `${service}.${ns}`
      const attrs = asList(cm.attributes)
        .map(asObj)
        .filter((a): a is Obj => a !== undefined)
        .map((a) => `${String(a.key)}=${String(a.value)}`)
      if (this.http.has(ns)) {
        n.ctx.note(
          cm,
          undefined,
          'spec.serviceDiscovery.awsCloudMap',
          `Cloud Map namespace ${ns} is an HTTP namespace: its instances have no DNS names, and this meshgate has no cloudmap:// targets`,
          'register the service in a DNS namespace, or list its endpoints as http targets; the target is a dns:// placeholder',
        )
      } else if (!this.dns.has(ns)) {
        n.ctx.note(
          cm,
          'namespaceName',
          'spec.serviceDiscovery.awsCloudMap.namespaceName',
          `Cloud Map namespace ${ns} is not defined in the input, so whether it has DNS is unknown; the target resolves ${host} by DNS`,
          'check that the namespace is a DNS namespace (pass the template that defines it), or list the endpoints as http targets',
        )
      }
      if (attrs.length > 0) {
        n.ctx.note(
          cm,
          'attributes',
          'spec.serviceDiscovery.awsCloudMap.attributes',
          `DNS cannot select instances by attribute (${attrs.join(', ')}): every instance of ${host} is an endpoint of this target`,
          `register these instances as their own Cloud Map service (e.g. ${service}-${name}) and point the target at it`,
        )
      }
      svc.targets[name] = { http: `dns://${host}:${port}` }
    } else {
      n.ctx.note(
        n.spec,
        undefined,
        'spec.serviceDiscovery',
        'a virtual node without service discovery has no address',
        'add dns or awsCloudMap; the target points at a placeholder address',
      )
      svc.targets[name] = { http: `http://${name}.invalid:${port}` }
    }
    this.listenerPolicies(svc, n, listener)
    return name
  }

  /** Outlier detection and connection limits of the node's listener, on the meshgate service. */
  private listenerPolicies(svc: DraftService, n: Entity, listener: Obj | undefined): void {
    if (listener === undefined) return
    const od = asObj(listener.outlierDetection)
    const cp = asObj(listener.connectionPool)
    if (od === undefined && cp === undefined) return
    const prev = this.policyFrom.get(svc.name)
    if (prev !== undefined && prev !== n.name) {
      n.ctx.note(
        listener,
        undefined,
        'spec.listeners[0]',
        `meshgate sets outlier detection and connection limits per service; ${prev}'s were used for ${svc.name}`,
        'give the nodes of one service the same limits',
      )
      return
    }
    this.policyFrom.set(svc.name, n.name)
    if (od !== undefined) {
      const out: Raw = { consecutive5xx: asNumber(od.maxServerErrors) ?? 5 }
      const interval = awsDuration(od.interval)
      const base = awsDuration(od.baseEjectionDuration)
      if (interval !== undefined) out.interval = duration(interval)
      if (base !== undefined) out.baseEjectionTime = duration(base)
      const max = asNumber(od.maxEjectionPercent)
      if (max !== undefined) out.maxEjectionPercent = max
      svc.outlierDetection = out
    }
    if (cp !== undefined) {
      const pool = asObj(cp.http) ?? asObj(cp.http2) ?? asObj(cp.grpc) ?? asObj(cp.tcp) ?? {}
      const out: Raw = {}
      const mc = asNumber(pool.maxConnections)
      const mp = asNumber(pool.maxPendingRequests)
      const mr = asNumber(pool.maxRequests)
      if (mc !== undefined) out.maxConnections = mc
      if (mp !== undefined) out.maxPendingRequests = mp
      if (mr !== undefined) out.maxRequests = mr
      if (Object.keys(out).length > 0) svc.circuitBreaker = out
    }
  }

  /** Fields of a virtual node that no target carries: reported once per node. */
  private nodeFields(n: Entity): void {
    const { ctx, spec } = n
    ctx.keys(spec, 'spec', ['listeners', 'serviceDiscovery', 'awsName', 'meshRef', 'podSelector'], {
      backends: [
        'meshgate lets every service call every other; there is no backend list',
        'leave it out (authorization rules restrict callers)',
      ],
      backendDefaults: [
        'client policies (TLS origination) are not translated',
        'use https:// targets or a tls block; the sidecar verifies against --tls-ca (docs/tls.md)',
      ],
      logging: [
        'meshgate writes an access log line per request by default',
        'leave it out (accessLog: false turns it off)',
      ],
    })
    asList(spec.listeners).forEach((lv, i) => {
      const l = asObj(lv)
      if (l === undefined) return
      const p = `spec.listeners[${i}]`
      ctx.keys(l, p, ['portMapping', 'outlierDetection', 'connectionPool'], {
        healthCheck: [
          'meshgate has no active health checks; outlier detection ejects failing endpoints',
          'set outlierDetection',
        ],
        tls: [
          "the sidecar's inbound TLS comes from certificate files, not ACM or SDS, and is not translated",
          'run the sidecar with --tls-dir and call it through https:// targets (docs/tls.md)',
        ],
        timeout: [
          "a listener's timeout bounds requests into the node; meshgate bounds calls by the route timeout",
          'set timeout on the routes to this service',
        ],
      })
      if (i > 0)
        ctx.note(
          l,
          undefined,
          p,
          'meshgate addresses a node by its first listener',
          'give each port its own virtual node',
        )
      const proto = asString(asObj(l.portMapping)?.protocol)
      if (proto === 'grpc' || proto === 'http2')
        ctx.note(
          l,
          'portMapping',
          `${p}.portMapping.protocol`,
          `${proto} targets are not in this version of meshgate`,
          'serve HTTP/1.1 on this port, or keep the node outside the mesh for now',
        )
      if (proto === 'tcp')
        ctx.note(
          l,
          'portMapping',
          `${p}.portMapping.protocol`,
          'meshgate routes HTTP; TCP listeners are not in this version',
          'keep TCP traffic outside the mesh for now',
        )
    })
  }

  private gatewayFields(g: Entity): void {
    g.ctx.keys(
      g.spec,
      'spec',
      ['listeners', 'awsName', 'meshRef', 'podSelector', 'namespaceSelector', 'gatewayRouteSelector'],
      {
        backendDefaults: [
          'client policies (TLS origination) are not translated',
          'use https:// targets or a tls block; the sidecar verifies against --tls-ca (docs/tls.md)',
        ],
        logging: ['meshgate writes an access log line per request by default', 'leave it out'],
      },
    )
    asList(g.spec.listeners).forEach((lv, i) => {
      g.ctx.keys(asObj(lv), `spec.listeners[${i}]`, ['portMapping'], {
        tls: [
          "meshgate's gateway runs behind API Gateway or a load balancer, which terminates TLS",
          'configure TLS there',
        ],
        healthCheck: ['the gateway has its own health endpoint', 'leave it out'],
        connectionPool: ['no equivalent at the gateway', 'leave it out'],
      })
    })
  }

  private gateway(serviceNames: Map<string, string>): void {
    const routes = [...this.gatewayRoutes]
    routes.sort(
      (a, b) =>
        (asNumber(a.spec.priority) ?? Number.POSITIVE_INFINITY) -
        (asNumber(b.spec.priority) ?? Number.POSITIVE_INFINITY),
    )
    const names = new Set<string>()
    for (const e of routes) {
      const { ctx, spec } = e
      if (!this.draft.gatewaySources.includes(ctx.source)) this.draft.gatewaySources.push(ctx.source)
      ctx.keys(
        spec,
        'spec',
        ['priority', 'httpRoute', 'http2Route', 'awsName', 'meshRef', 'virtualGatewayRef'],
        {
          grpcRoute: [
            'gRPC gateway routes are not in this version of meshgate',
            'route the gRPC service by its path prefix /PACKAGE.SERVICE/ in an httpRoute, or keep it outside the mesh for now',
          ],
        },
      )
      const key = spec.httpRoute !== undefined ? 'httpRoute' : 'http2Route'
      const hr = asObj(spec[key])
      if (hr === undefined) continue
      const p = `spec.${key}`
      ctx.keys(hr, p, ['match', 'action'])
      const action = asObj(hr.action) ?? {}
      ctx.keys(action, `${p}.action`, ['target', 'rewrite'])
      const target = asObj(action.target)
      ctx.keys(target, `${p}.action.target`, ['virtualService', 'port'])
      const vsName = refName(asObj(target?.virtualService), 'virtualService')
      const service = vsName === undefined ? undefined : (serviceNames.get(vsName) ?? undefined)
      if (service === undefined) {
        ctx.note(
          action,
          'target',
          `${p}.action.target`,
          `virtual service ${vsName ?? '(none)'} is not in the input`,
          'add its files',
        )
        continue
      }
      const found = this.match(ctx, asObj(hr.match), `${p}.match`, 1, true)
      if (found === null) continue
      const match = found ?? {}
      const gw: { name: string; match?: Raw; service: string; rewrite?: Raw } = {
        name: uniqueName(e.name, names),
        service,
      }
      if (Object.keys(match).length > 0) gw.match = match
      const prefix = asString(asObj(hr.match)?.prefix)
      const rw = asObj(action.rewrite)
      const rwPrefix = asObj(rw?.prefix)
      const rwPath = asObj(rw?.path)
      if (rw !== undefined)
        ctx.keys(rw, `${p}.action.rewrite`, ['prefix', 'path'], {
          hostname: ['meshgate sends the service name as the host already', 'leave it out'],
        })
      if (rwPath !== undefined && typeof rwPath.exact === 'string') gw.rewrite = { path: rwPath.exact }
      else if (prefix !== undefined && prefix !== '/') {
        // App Mesh rewrites the matched prefix to `/` unless told otherwise (defaultPrefix ENABLED).
        const value = asString(rwPrefix?.value)
        const disabled = asString(rwPrefix?.defaultPrefix) === 'DISABLED'
        if (value !== undefined) gw.rewrite = { prefix: value }
        else if (!disabled) gw.rewrite = { prefix: '/' }
        if (!prefix.endsWith('/') && (value !== undefined || !disabled)) {
          ctx.note(
            hr.match,
            'prefix',
            `${p}.match.prefix`,
            `with a prefix rewrite meshgate matches ${prefix} per segment: App Mesh also matched ${prefix}x`,
            'end the prefix with / in App Mesh terms, or add a route for such paths',
          )
        } else if (disabled) {
          gw.match = { ...gw.match, path: charPrefixMatch(prefix) }
        }
      }
      this.draft.gateway.push(gw)
    }
  }
}
