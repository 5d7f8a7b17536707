// The config `meshgate dev` runs: the user's mesh file with every HTTP target pointed at a local
// instance (its sidecar's inbound listener), written as JSON to a temp dir. Routes, weights and every
// policy stay as the user wrote them. The dashboard's controls are edits of this document, made the way
// a user would edit the file; every edit goes through the same validated reload as a file change.
import { parse } from 'yaml'
import type { MeshConfig } from '../engine/types.ts'

/** The mesh file as parsed, before validation: what gets edited and written back. */
export type RawDoc = Record<string, unknown>
type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

export function parseRawDoc(text: string): RawDoc {
  const doc: unknown = parse(text)
  if (!isObj(doc)) throw new TypeError('the mesh file is not a mapping')
  return doc
}

/** One local container instance: one endpoint of one HTTP target. */
export interface InstancePlan {
  /** Readable and unique: `reviews-v3-a` (from the endpoint's host name) or `ratings-v1`. */
  id: string
  service: string
  target: string
  /** The endpoint as written in the user's file. */
  endpoint: string
}

export interface LambdaPlan {
  service: string
  target: string
  functionName: string
}

export interface DevPlan {
  instances: InstancePlan[]
  lambdas: LambdaPlan[]
}

function endpointHostLabel(endpoint: string): string | undefined {
  const m = /^(?:https?|dns):\/\/([^/:]+)/.exec(endpoint)
  const host = m?.[1]
  if (!host || /^[\d.]+$/.test(host) || host.startsWith('[')) return undefined
  const label = host.split('.')[0]!
  return /^[a-z0-9-]+$/i.test(label) ? label.toLowerCase() : undefined
}

/** What to run for a validated config. */
export function planDev(config: MeshConfig): DevPlan {
  const instances: InstancePlan[] = []
  const lambdas: LambdaPlan[] = []
  for (const svc of Object.values(config.services)) {
    for (const t of Object.values(svc.targets)) {
      if (t.kind === 'lambda') {
        lambdas.push({ service: svc.name, target: t.name, functionName: t.functionName })
        continue
      }
      // A discovered target (dns://, cloudmap://) runs as one local instance.
      const endpoints = t.dns
        ? [`dns://${t.dns.host}:${t.dns.port}`]
        : t.cloudMap
          ? [`cloudmap://${t.cloudMap.namespace}/${t.cloudMap.service}`]
          : t.endpoints
      endpoints.forEach((endpoint, i) => {
        const base = endpoints.length === 1 ? `${svc.name}-${t.name}` : `${svc.name}-${t.name}-${i + 1}`
        instances.push({
          id: endpointHostLabel(endpoint) ?? base,
          service: svc.name,
          target: t.name,
          endpoint,
        })
      })
    }
  }
  // Host labels can repeat across targets (two `app.` hosts): fall back to positional names then.
  const counts = new Map<string, number>()
  for (const i of instances) counts.set(i.id, (counts.get(i.id) ?? 0) + 1)
  let n = 0
  for (const i of instances) if ((counts.get(i.id) ?? 0) > 1) i.id = `${i.service}-${i.target}-${++n}`
  return { instances, lambdas }
}

/**
 * A copy of `raw` whose HTTP targets list the local URLs instead (in endpoint order); targets with no
 * local instance keep what the user wrote. Access logs are switched on: the dashboard reads them.
 */
export function deriveDoc(raw: RawDoc, plan: DevPlan, urlOf: (instanceId: string) => string): RawDoc {
  const doc = structuredClone(raw)
  const services = isObj(doc.services) ? doc.services : {}
  for (const [name, svc] of Object.entries(services)) {
    if (!isObj(svc) || !isObj(svc.targets)) continue
    for (const [tname, target] of Object.entries(svc.targets)) {
      if (!isObj(target) || target.http === undefined) continue
      const mine = plan.instances.filter((i) => i.service === name && i.target === tname)
      if (mine.length === 0) continue
      const urls = mine.map((i) => urlOf(i.id))
      target.http = urls.length === 1 ? urls[0] : urls
      // Local URLs are static: the Cloud Map refresh would be refused on them.
      delete target.cloudMapRefresh
    }
  }
  doc.accessLog = true
  return doc
}

// ---------------------------------------------------------------------------------------------
// Edits: each returns a new document (the input is left as it was) or throws EditError.

export class EditError extends Error {}

function routesOf(doc: RawDoc, service: string): Obj[] {
  const svc = isObj(doc.services) ? doc.services[service] : undefined
  if (!isObj(svc)) throw new EditError(`no service "${service}"`)
  if (!Array.isArray(svc.routes)) throw new EditError(`service "${service}" has no routes to edit`)
  return svc.routes as Obj[]
}

function routeAt(doc: RawDoc, service: string, index: number): Obj {
  const route = routesOf(doc, service)[index]
  if (!isObj(route)) throw new EditError(`service "${service}" has no route #${index}`)
  return route
}

/** Replace a route's weights, e.g. `{ v1: 50, v3: 50 }`. Zero weights are kept (Gateway API style). */
export function setWeights(doc: RawDoc, service: string, index: number, to: Record<string, number>): RawDoc {
  const next = structuredClone(doc)
  const route = routeAt(next, service, index)
  for (const [t, w] of Object.entries(to)) {
    if (typeof w !== 'number' || !Number.isFinite(w)) throw new EditError(`weight of ${t} is not a number`)
  }
  route.to = { ...to }
  return next
}

/** Send all of a route's traffic to one target (e.g. switch jason from v2 to v3). */
export function setTarget(doc: RawDoc, service: string, index: number, target: string): RawDoc {
  const next = structuredClone(doc)
  routeAt(next, service, index).to = target
  return next
}

/** Set or remove (null) a route's fault. */
export function setFault(doc: RawDoc, service: string, index: number, fault: Obj | null): RawDoc {
  const next = structuredClone(doc)
  const route = routeAt(next, service, index)
  if (fault === null) delete route.fault
  else route.fault = structuredClone(fault)
  return next
}

/** Take a route out of the list (as commenting it out would); returns it for putting back later. */
export function removeRoute(doc: RawDoc, service: string, index: number): { doc: RawDoc; route: Obj } {
  const next = structuredClone(doc)
  const routes = routesOf(next, service)
  const route = routeAt(next, service, index)
  routes.splice(index, 1)
  return { doc: next, route }
}

export function insertRoute(doc: RawDoc, service: string, index: number, route: Obj): RawDoc {
  const next = structuredClone(doc)
  const routes = routesOf(next, service)
  routes.splice(Math.min(index, routes.length), 0, structuredClone(route))
  return next
}
