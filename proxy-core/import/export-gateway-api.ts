// `meshgate export gateway-api`: a mesh config as Gateway API HTTPRoutes, one per service bound to its
// Service (GAMMA) and one for the gateway's routes bound to a Gateway named after the mesh. Whatever
// Gateway API cannot say is reported the way imports report, at the config's own lines.
//
// The one hard part is order: meshgate takes the first route that matches, Gateway API the most
// specific one (precedence.ts). Routes are written in meshgate's order; when precedence would try a
// later route before an earlier one, that route is reported (requests matching both would change route).
import { stringify } from 'yaml'
import { DEFAULT_RETRIES } from '../config/defaults.ts'
import type {
  GatewayRouteConfig,
  MeshConfig,
  RouteConfig,
  RouteMatchConfig,
  StringMatch,
  TargetConfig,
} from '../engine/types.ts'
import { duration, escapeRegex } from './draft.ts'
import { comparePrecedence, type PrecedenceKey } from './precedence.ts'
import { Report } from './report.ts'

export interface ExportOptions {
  namespace?: string
  /** The line of a config path (`['services', 'reviews', 'routes', 0]`), for report lines. */
  lineOf?: (path: (string | number)[]) => number
}

type Obj = Record<string, unknown>

export function exportGatewayApi(
  config: MeshConfig,
  opts: ExportOptions = {},
): { yaml: string; routes: Obj[]; report: Report } {
  const ns = opts.namespace ?? 'default'
  const report = new Report()
  const lineOf = opts.lineOf ?? (() => 1)
  const note = (path: (string | number)[], field: string, why: string, instead: string) => {
    const resource = path.slice(0, 2).join('.')
    report.add({ file: config.source, line: lineOf(path), resource, field, why, instead })
  }
  const routes: Obj[] = []
  for (const svc of Object.values(config.services)) {
    const base = ['services', svc.name]
    const backend = (target: string, at: (string | number)[]): Obj =>
      backendRef(svc.targets[target], target, ns, (why, instead) =>
        note(at, `targets.${target}`, why, instead),
      )
    const rules = svc.routes.map((r, i) => ruleOf(r, [...base, 'routes', i], backend, note))
    checkOrder(
      svc.routes.map((r) => r.match),
      (i, j) =>
        note(
          [...base, 'routes', j],
          `routes[${j}]`,
          `Gateway API precedence tries this route before routes[${i}] (${svc.routes[i]!.name})`,
          'make the routes disjoint, or order them most specific first',
        ),
    )
    routes.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: svc.name, namespace: ns, annotations: { 'meshgate.dev/mesh': config.mesh } },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: svc.name }], rules },
    })
  }
  if (config.gateway.routes.length > 0) {
    const rules = config.gateway.routes.map((g, i) => gatewayRule(g, ['gateway', 'routes', i], ns, note))
    checkOrder(
      config.gateway.routes.map((g) => g.match),
      (i, j) =>
        note(
          ['gateway', 'routes', j],
          `gateway.routes[${j}]`,
          `Gateway API precedence tries this route before gateway.routes[${i}]`,
          'make the routes disjoint, or order them most specific first',
        ),
    )
    routes.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `${config.mesh}-gateway`, namespace: ns },
      spec: { parentRefs: [{ name: config.mesh }], rules },
    })
  }
  const yaml = routes.map((r) => stringify(r, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n')
  return { yaml, routes, report }
}

type Note = (path: (string | number)[], field: string, why: string, instead: string) => void

/** Calls `late(i, j)` for each route j that precedence would try before the earlier route i. */
function checkOrder(matches: RouteMatchConfig[], late: (i: number, j: number) => void): void {
  const keys: PrecedenceKey[] = []
  matches.forEach((m, i) => {
    const methods = m.methods && m.methods.length > 0 ? m.methods : [undefined]
    methods.forEach((method, j) => {
      keys.push(keyOf(m, method !== undefined, i, j))
    })
  })
  keys.sort(comparePrecedence)
  let max = -1
  const reported = new Set<number>()
  for (const k of keys) {
    if (k.rule < max && !reported.has(max)) {
      reported.add(max)
      late(k.rule, max)
    }
    max = Math.max(max, k.rule)
  }
}

function keyOf(m: RouteMatchConfig, method: boolean, rule: number, match: number): PrecedenceKey {
  const p = m.path
  return {
    pathType: p?.exact !== undefined ? 'Exact' : p?.regex !== undefined ? 'RegularExpression' : 'PathPrefix',
    pathLength: (p?.exact ?? p?.regex ?? p?.prefix ?? '/').length,
    method,
    headers: Object.keys(m.headers ?? {}).length,
    query: Object.keys(m.query ?? {}).length,
    created: 0,
    route: '',
    rule,
    match,
  }
}

function matchesOf(m: RouteMatchConfig, at: (string | number)[], note: Note): Obj[] {
  const base: Obj = {}
  if (m.path?.exact !== undefined) base.path = { type: 'Exact', value: m.path.exact }
  else if (m.path?.prefix !== undefined) base.path = { type: 'PathPrefix', value: m.path.prefix }
  else if (m.path?.regex !== undefined) base.path = { type: 'RegularExpression', value: m.path.regex }
  const conds = (
    o: Record<string, StringMatch> | undefined,
    kind: 'headers' | 'query',
  ): Obj[] | undefined => {
    if (o === undefined) return undefined
    const list: Obj[] = []
    for (const [name, sm] of Object.entries(o)) {
      const fields = Object.keys(sm).filter((k) => sm[k as keyof StringMatch] !== undefined)
      if (sm.present === false) {
        note(
          [...at, 'match', kind, name],
          `match.${kind}.${name}`,
          'Gateway API cannot match an absent header or parameter',
          'match on a value instead',
        )
        continue
      }
      if (fields.length > 1)
        note(
          [...at, 'match', kind, name],
          `match.${kind}.${name}`,
          'only the first condition of several was exported',
          'keep one of exact, prefix, regex',
        )
      if (sm.exact !== undefined) list.push({ type: 'Exact', name, value: sm.exact })
      else if (sm.regex !== undefined) list.push({ type: 'RegularExpression', name, value: sm.regex })
      else if (sm.prefix !== undefined)
        list.push({ type: 'RegularExpression', name, value: `${escapeRegex(sm.prefix)}.*` })
      else list.push({ type: 'RegularExpression', name, value: '.*' })
    }
    return list.length > 0 ? list : undefined
  }
  const headers = conds(m.headers, 'headers')
  const query = conds(m.query, 'query')
  if (headers) base.headers = headers
  if (query) base.queryParams = query
  const methods = m.methods && m.methods.length > 0 ? m.methods : [undefined]
  const out = methods.map((method) => (method === undefined ? { ...base } : { ...base, method }))
  return out.length === 1 && Object.keys(out[0]!).length === 0 ? [] : out
}

function ruleOf(
  r: RouteConfig,
  at: (string | number)[],
  backend: (t: string, at: (string | number)[]) => Obj,
  note: Note,
): Obj {
  const rule: Obj = { name: r.name }
  const matches = matchesOf(r.match, at, note)
  if (matches.length > 0) rule.matches = matches
  const weights = Object.values(r.to)
  // Gateway API weights are integers; meshgate's may be fractions: scale them together.
  const scale = weights.every((w) => Number.isInteger(w)) ? 1 : 1000
  rule.backendRefs = Object.entries(r.to).map(([t, w]) => ({
    ...backend(t, [...at, 'to']),
    weight: Math.round(w * scale),
  }))
  const filters: Obj[] = []
  const ops = (side: 'request' | 'response') => {
    const h = r.headers[side]
    const mod: Obj = {}
    const pairs = (o: Record<string, string>) => Object.entries(o).map(([name, value]) => ({ name, value }))
    if (Object.keys(h.set).length > 0) mod.set = pairs(h.set)
    if (Object.keys(h.add).length > 0) mod.add = pairs(h.add)
    if (h.remove.length > 0) mod.remove = h.remove
    if (Object.keys(mod).length === 0) return
    if (side === 'request') filters.push({ type: 'RequestHeaderModifier', requestHeaderModifier: mod })
    else filters.push({ type: 'ResponseHeaderModifier', responseHeaderModifier: mod })
  }
  ops('request')
  ops('response')
  if (r.rewrite) filters.push(urlRewrite(r.rewrite))
  if (r.mirror) {
    filters.push({
      type: 'RequestMirror',
      requestMirror: {
        backendRef: backend(r.mirror.target, [...at, 'mirror']),
        percent: Math.round(r.mirror.percent),
      },
    })
  }
  if (filters.length > 0) rule.filters = filters
  rule.timeouts = { request: gwDuration(r.timeout) }
  if (r.retries.perTryTimeout > 0) (rule.timeouts as Obj).backendRequest = gwDuration(r.retries.perTryTimeout)
  if (r.retries.attempts > 0) {
    const codes = r.retries.on.filter((c) => /^\d{3}$/.test(c)).map(Number)
    const other = r.retries.on.filter((c) => !/^\d{3}$/.test(c))
    const isDefault = other.join() === DEFAULT_RETRIES.on.filter((c) => !/^\d{3}$/.test(c)).join()
    if (other.length > 0 && !isDefault)
      note(
        [...at, 'retries', 'on'],
        'retries.on',
        `Gateway API retries on status codes only, not on ${other.join(', ')}`,
        'list the status codes to retry',
      )
    rule.retry = { attempts: r.retries.attempts, codes, backoff: gwDuration(r.retries.backoff.base) }
  }
  if (r.fault)
    note(
      [...at, 'fault'],
      'fault',
      'Gateway API has no fault injection',
      "inject faults with meshgate, or with the implementation's own policy",
    )
  if (r.stickiness)
    note(
      [...at, 'stickiness'],
      'stickiness',
      "Gateway API's sessionPersistence issues its own cookie; meshgate hashes one the client sends",
      'use sessionPersistence if a generated cookie will do',
    )
  return rule
}

function gatewayRule(g: GatewayRouteConfig, at: (string | number)[], ns: string, note: Note): Obj {
  const rule: Obj = { name: g.name }
  const matches = matchesOf(g.match, at, note)
  if (matches.length > 0) rule.matches = matches
  rule.backendRefs = [{ name: g.service, namespace: ns, port: 80 }]
  if (g.rewrite) rule.filters = [urlRewrite(g.rewrite)]
  return rule
}

function urlRewrite(rw: { prefix?: string; path?: string; host?: string }): Obj {
  const u: Obj = {}
  if (rw.host !== undefined) u.hostname = rw.host
  if (rw.prefix !== undefined) u.path = { type: 'ReplacePrefixMatch', replacePrefixMatch: rw.prefix }
  else if (rw.path !== undefined) u.path = { type: 'ReplaceFullPath', replaceFullPath: rw.path }
  return { type: 'URLRewrite', urlRewrite: u }
}

/** Gateway API durations: up to four `<n>h|m|s|ms` parts. */
function gwDuration(ms: number): string {
  const d = duration(ms)
  return d.endsWith('ms') || /^\d+[hms]$/.test(d) ? d : `${Math.round(ms)}ms`
}

/** A backendRef for a target: its Kubernetes Service when the address is one, else the target's name. */
function backendRef(
  t: TargetConfig | undefined,
  name: string,
  ns: string,
  note: (why: string, instead: string) => void,
): Obj {
  if (t?.kind === 'http') {
    const host = t.dns?.host ?? safeUrl(t.endpoints[0])?.hostname
    const port = t.dns?.port ?? Number(safeUrl(t.endpoints[0])?.port || 80)
    const m = host === undefined ? null : /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?$/.exec(host)
    if (m !== null) return { name: m[1], namespace: m[2], port }
    note(
      `${host ?? 'the address'} is not a Kubernetes Service name`,
      `create a Service ${name} (ExternalName or with Endpoints) for it`,
    )
    return { name, namespace: ns, port }
  }
  note('a Lambda function is not a Gateway API backend', `front it with a Service named ${name}`)
  return { name, namespace: ns, port: 80 }
}

function safeUrl(s: string | undefined): URL | undefined {
  try {
    return s === undefined ? undefined : new URL(s)
  } catch {
    return undefined
  }
}
