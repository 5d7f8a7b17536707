// `meshgate routes`: the compiled route table as a person reads it, in evaluation order.
import { formatDuration } from '../config/duration.ts'
import type {
  GatewayRouteConfig,
  MeshConfig,
  RouteConfig,
  RouteMatchConfig,
  StringMatch,
} from '../engine/types.ts'
import { type Style, table } from './style.ts'

function describeValue(m: StringMatch): string {
  if (m.present === false) return 'absent'
  if (m.present === true) return 'present'
  if (m.exact !== undefined) return `=${m.exact}`
  if (m.prefix !== undefined) return `^=${m.prefix}`
  return `~${m.regex}`
}

export function describeMatch(m: RouteMatchConfig): string {
  const parts: string[] = []
  if (m.methods) parts.push(m.methods.join('|'))
  if (m.path?.exact !== undefined) parts.push(`path = ${m.path.exact}`)
  if (m.path?.prefix !== undefined) parts.push(`path ${m.path.prefix}/*`.replace('//*', '/*'))
  if (m.path?.regex !== undefined) parts.push(`path ~ ${m.path.regex}`)
  for (const [k, v] of Object.entries(m.headers ?? {})) parts.push(`${k}${describeValue(v)}`)
  for (const [k, v] of Object.entries(m.query ?? {})) parts.push(`?${k}${describeValue(v)}`)
  return parts.length ? parts.join(' ') : '*'
}

function describeTo(to: Record<string, number>): string {
  const entries = Object.entries(to)
  if (entries.length === 1) return entries[0]![0]
  const total = entries.reduce((s, [, w]) => s + w, 0)
  return entries.map(([t, w]) => `${t} ${+((w / total) * 100).toFixed(2)}%`).join(', ')
}

function describePolicies(r: RouteConfig): string {
  const out = [`timeout ${formatDuration(r.timeout)}`]
  if (r.retries.attempts > 0) {
    const perTry = r.retries.perTryTimeout ? ` × ${formatDuration(r.retries.perTryTimeout)}` : ''
    out.push(`retries ${r.retries.attempts}${perTry} on ${r.retries.on.join(',')}`)
  }
  if (r.stickiness)
    out.push(
      `sticky ${r.stickiness.header ? `header ${r.stickiness.header}` : `cookie ${r.stickiness.cookie}`}`,
    )
  if (r.fault?.delay) out.push(`delay ${formatDuration(r.fault.delay.duration)} @${r.fault.delay.percent}%`)
  if (r.fault?.abort) out.push(`abort ${r.fault.abort.status} @${r.fault.abort.percent}%`)
  if (r.mirror) out.push(`mirror ${r.mirror.target} @${r.mirror.percent}%`)
  if (r.rewrite?.prefix) out.push(`rewrite ${r.rewrite.prefix}`)
  return out.join('; ')
}

export function renderRoutes(config: MeshConfig, style: Style, only?: string): string {
  const sections: string[] = []
  if (!only && config.gateway.routes.length) {
    const rows = config.gateway.routes.map((g: GatewayRouteConfig, i) => [
      String(i + 1),
      g.name,
      describeMatch(g.match),
      g.service + (g.rewrite?.prefix ? style.dim(` (rewrite ${g.rewrite.prefix})`) : ''),
    ])
    sections.push(`${style.bold('gateway')}\n${table(rows, style, ['#', 'ROUTE', 'MATCH', 'SERVICE'])}`)
  }
  for (const svc of Object.values(config.services)) {
    if (only && svc.name !== only) continue
    const targets = Object.values(svc.targets)
      .map(
        (t) =>
          `${t.name}=${t.kind === 'lambda' ? `λ ${t.functionName}${t.qualifier ? `:${t.qualifier}` : ''}` : t.dns ? `dns://${t.dns.host}:${t.dns.port}` : t.cloudMap ? `cloudmap://${t.cloudMap.namespace}/${t.cloudMap.service}` : t.endpoints.join(',')}`,
      )
      .join('  ')
    const rows = svc.routes.map((r, i) => [
      String(i + 1),
      r.name,
      describeMatch(r.match),
      describeTo(r.to),
      style.dim(describePolicies(r)),
    ])
    sections.push(
      `${style.bold(`service ${svc.name}`)}  ${style.dim(targets)}\n${table(rows, style, ['#', 'ROUTE', 'MATCH', 'TO', 'POLICIES'])}`,
    )
  }
  return sections.join('\n\n')
}
