// The mesh an import builds: the mesh file's own shape (durations as strings, as a user writes them),
// plus, per service, the source resources it came from (written as a YAML comment above it).
import { Document, isMap, isScalar } from 'yaml'

export type Raw = Record<string, unknown>
export interface DraftRoute {
  name: string
  match?: Raw
  to: string | Record<string, number>
  timeout?: string
  retries?: Raw
  fault?: Raw
  mirror?: { target: string; percent?: number }
  headers?: Raw
  rewrite?: Raw
}
export interface DraftService {
  name: string
  /** `VirtualService/reviews (bookinfo.yaml:12)` */
  sources: string[]
  targets: Record<string, Raw>
  routes: DraftRoute[]
  outlierDetection?: Raw
  circuitBreaker?: Raw
}
export interface DraftGatewayRoute {
  name: string
  match?: Raw
  service: string
  rewrite?: Raw
}
export interface Draft {
  mesh: string
  defaults?: Raw
  /** Comment above `defaults`: which source's defaults these are. */
  defaultsNote?: string
  gateway: DraftGatewayRoute[]
  gatewaySources: string[]
  services: Map<string, DraftService>
}

export function newDraft(mesh: string): Draft {
  return { mesh: toName(mesh), gateway: [], gatewaySources: [], services: new Map() }
}

export function serviceOf(draft: Draft, name: string, source: string): DraftService {
  let s = draft.services.get(name)
  if (s === undefined) {
    s = { name, sources: [], targets: {}, routes: [] }
    draft.services.set(name, s)
  }
  if (!s.sources.includes(source)) s.sources.push(source)
  return s
}

/** A DNS label (meshgate names appear in hosts and metric dimensions): `color_server` → `color-server`. */
export function toName(s: string): string {
  const n = s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/g, '')
  return n === '' ? 'unnamed' : n
}

/** `name`, or `name-2`, `name-3`… when taken. */
export function uniqueName(base: string, taken: Set<string>): string {
  let n = toName(base)
  for (let i = 2; taken.has(n); i++) n = `${toName(base).slice(0, 58)}-${i}`
  taken.add(n)
  return n
}

/** Milliseconds as a meshgate duration string. */
export function duration(ms: number): string {
  if (ms > 0 && ms % 60_000 === 0 && ms < 3_600_000) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${Math.round(ms)}ms`
}

const GO_UNIT: Record<string, number> = {
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
  us: 0.001,
  µs: 0.001,
  ns: 1e-6,
}
/** Go/Kubernetes/protobuf durations (`1m30s`, `0.5s`, `100ms`) in ms; undefined when not one. */
export function parseGoDuration(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined
  const s = v.trim()
  if (s === '0') return 0
  const re = /(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)/gy
  let total = 0
  let matched = 0
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * GO_UNIT[m[2]!]!
    matched = re.lastIndex
  }
  return matched === s.length && matched > 0 ? total : undefined
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * A character prefix (Envoy's, used by Istio and App Mesh: `/api` also matches `/apix`) as a meshgate
 * path match. meshgate's own `prefix` is per segment (Gateway API), so only `/` maps to it directly;
 * other prefixes become the equivalent whole-path regex.
 */
export function charPrefixMatch(prefix: string): Raw {
  if (prefix === '/' || prefix === '') return { prefix: '/' }
  return { regex: `${escapeRegex(prefix)}.*` }
}

/** The mesh file as a plain value (what the YAML below says, without its comments). */
export function draftToRaw(draft: Draft): Raw {
  const services: Record<string, unknown> = {}
  for (const s of draft.services.values()) {
    const svc: Raw = { targets: s.targets }
    if (s.routes.length > 0) svc.routes = s.routes.map(stripUndefined)
    if (s.outlierDetection) svc.outlierDetection = s.outlierDetection
    if (s.circuitBreaker) svc.circuitBreaker = s.circuitBreaker
    services[s.name] = svc
  }
  const root: Raw = { version: 1, mesh: draft.mesh }
  if (draft.defaults) root.defaults = draft.defaults
  if (draft.gateway.length > 0) root.gateway = { routes: draft.gateway.map(stripUndefined) }
  root.services = services
  return root
}

/** The YAML text of `root` (from draftToRaw), with each service's sources as a comment above it. */
export function draftToYaml(draft: Draft, root: Raw, header: string): string {
  // Routes split from one source route share objects: write them out, never as YAML aliases.
  const doc = new Document(root, { aliasDuplicateObjects: false })
  doc.commentBefore = header
  const top = doc.contents
  if (isMap(top)) {
    for (const pair of top.items) {
      if (!isScalar(pair.key)) continue
      if (pair.key.value === 'defaults' && draft.defaultsNote)
        pair.key.commentBefore = ` ${draft.defaultsNote}`
      if (pair.key.value === 'gateway' && draft.gatewaySources.length > 0)
        pair.key.commentBefore = ` from ${draft.gatewaySources.join(', ')}`
    }
  }
  const svcNode = doc.get('services', true)
  if (isMap(svcNode)) {
    for (const pair of svcNode.items) {
      if (!isScalar(pair.key)) continue
      const s = draft.services.get(String(pair.key.value))
      if (s && s.sources.length > 0)
        pair.key.commentBefore = s.sources.map((x, i) => `${i === 0 ? ' from ' : '      '}${x}`).join('\n')
    }
  }
  return doc.toString({ lineWidth: 0, flowCollectionPadding: true })
}

function stripUndefined<T extends object>(o: T): T {
  const out: Raw = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as T
}
