// `meshgate shift`: change some weights of one route in a mesh document, and say what changed.
// Only the named targets move; the others keep their weights (relative, Gateway API semantics).
import type { MeshDocument } from './mesh-document.ts'

export interface WeightChange {
  target: string
  before: number
  after: number
}

export class ShiftError extends Error {}

/** `v1=97` → ['v1', 97]; weights are numbers ≥ 0 (fractions allowed, as in the config). */
export function parseAssignments(args: readonly string[]): [string, number][] {
  if (args.length === 0) throw new ShiftError('give at least one TARGET=WEIGHT')
  return args.map((a) => {
    const m = /^([^=\s]+)=(\d+(?:\.\d+)?)$/.exec(a)
    if (!m) throw new ShiftError(`"${a}" is not TARGET=WEIGHT (a weight is a number ≥ 0)`)
    return [m[1]!, Number(m[2])]
  })
}

/**
 * A copy of `doc` with the weights set, and the changes. The route is found by its name, or by the
 * name the loader gives an unnamed one (`default` for a lone route, else `route-N`).
 */
export function shiftWeights(
  doc: MeshDocument,
  service: string,
  route: string,
  assignments: readonly [string, number][],
): { doc: MeshDocument; changes: WeightChange[] } {
  const next = structuredClone(doc)
  const services = next.services as
    | Record<string, { targets?: Record<string, unknown>; routes?: unknown[] }>
    | undefined
  const svc = services && Object.hasOwn(services, service) ? services[service] : undefined
  if (!svc)
    throw new ShiftError(
      `no service "${service}" (the mesh has ${Object.keys(services ?? {}).join(', ') || 'none'})`,
    )
  const routes = (svc.routes ?? []) as Record<string, unknown>[]
  const names = routes.map((r, i) =>
    typeof r.name === 'string' ? r.name : routes.length === 1 ? 'default' : `route-${i}`,
  )
  const index = names.indexOf(route)
  if (index < 0)
    throw new ShiftError(
      routes.length === 0
        ? `service ${service} has no routes: add one with a "to" before shifting`
        : `service ${service} has no route "${route}" (its routes: ${names.join(', ')})`,
    )
  const r = routes[index]!
  const targets = Object.keys(svc.targets ?? {})
  // A single target (`to: v1`) is all of the traffic: the same as a weight of 100.
  const to: Record<string, number> =
    typeof r.to === 'string' ? { [r.to]: 100 } : { ...((r.to as Record<string, number> | undefined) ?? {}) }
  const changes: WeightChange[] = []
  for (const [target, weight] of assignments) {
    if (!targets.includes(target))
      throw new ShiftError(
        `service ${service} has no target "${target}" (its targets: ${targets.join(', ')})`,
      )
    changes.push({ target, before: to[target] ?? 0, after: weight })
    to[target] = weight
  }
  r.to = to
  return { doc: next, changes }
}

/** `reviews/default: v1 100 → 97, v3 0 → 3` */
export function describeChanges(service: string, route: string, changes: readonly WeightChange[]): string {
  return `${service}/${route}: ${changes.map((c) => `${c.target} ${c.before} → ${c.after}`).join(', ')}`
}
