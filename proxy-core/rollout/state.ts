// A rollout's state, read from and written into the mesh document: every transition (start, promote,
// complete, rollback, pause, resume, abort) is a new document with the route's weights and its
// `rollout.status` changed, which the controller then publishes as one config version. Pure: the
// time comes in as `now` (epoch ms), and nothing here does I/O.
import type { Problem } from '../config/schema.ts'
import type { MeshDocument } from '../control/mesh-document.ts'
import type { Verdict, WindowSummary } from './analysis.ts'
import {
  type DecisionEntry,
  LIVE_PHASES,
  LOG_LIMIT,
  type RawRollout,
  ROLLOUT_DEFAULTS,
  RolloutPhases,
  type RolloutStatus,
  rolloutSchema,
} from './rollout-schema.ts'

export class RolloutError extends Error {}

export interface RolloutRef {
  service: string
  /** The route's name (or the loader's name for an unnamed one: `default`, `route-N`). */
  route: string
  index: number
  /** The block as checked by the schema: durations in ms. */
  rollout: RawRollout
}

type RawRoute = Record<string, unknown>
type RawServices = Record<string, { targets?: Record<string, unknown>; routes?: RawRoute[] }>

function routesOf(doc: MeshDocument, service: string): RawRoute[] {
  const services = doc.services as RawServices | undefined
  const svc = services && Object.hasOwn(services, service) ? services[service] : undefined
  return (svc?.routes ?? []) as RawRoute[]
}

function routeName(routes: readonly RawRoute[], i: number): string {
  const r = routes[i]!
  return typeof r.name === 'string' ? r.name : routes.length === 1 ? 'default' : `route-${i}`
}

function checked(raw: unknown): RawRollout | undefined {
  const problems: Problem[] = []
  const r = rolloutSchema.check(raw, [], problems)
  return problems.length === 0 ? r : undefined
}

/** Every route of the document that carries a (well-formed) rollout block. */
export function findRollouts(doc: MeshDocument): RolloutRef[] {
  const out: RolloutRef[] = []
  for (const service of Object.keys((doc.services as RawServices | undefined) ?? {})) {
    const routes = routesOf(doc, service)
    routes.forEach((r, index) => {
      if (r.rollout === undefined) return
      const rollout = checked(r.rollout)
      if (rollout) out.push({ service, route: routeName(routes, index), index, rollout })
    })
  }
  return out
}

export function findRoute(
  doc: MeshDocument,
  service: string,
  route: string,
): { index: number; raw: RawRoute } {
  const services = (doc.services as RawServices | undefined) ?? {}
  if (!Object.hasOwn(services, service))
    throw new RolloutError(
      `no service "${service}" (the mesh has ${Object.keys(services).join(', ') || 'none'})`,
    )
  const routes = routesOf(doc, service)
  const names = routes.map((_, i) => routeName(routes, i))
  const index = names.indexOf(route)
  if (index < 0)
    throw new RolloutError(
      routes.length === 0
        ? `service ${service} has no routes: add one before a rollout`
        : `service ${service} has no route "${route}" (its routes: ${names.join(', ')})`,
    )
  return { index, raw: routes[index]! }
}

export const isLive = (phase: string | undefined): boolean =>
  phase !== undefined && (LIVE_PHASES as readonly string[]).includes(phase)

export function stepsOf(r: RawRollout): readonly number[] {
  return r.steps ?? ROLLOUT_DEFAULTS.steps
}

export function stepDurationOf(r: RawRollout): number {
  return r.stepDuration ?? ROLLOUT_DEFAULTS.stepDurationMs
}

/** The canary's current weight (percent) as the route has it. */
export function canaryWeight(r: RawRollout, to: unknown): number {
  if (typeof to === 'string') return to === r.canary ? 100 : 0
  const weights = (to ?? {}) as Record<string, number>
  const total = Object.values(weights).reduce((n, w) => n + w, 0)
  return total > 0 ? ((weights[r.canary] ?? 0) / total) * 100 : 0
}

const iso = (ms: number) => new Date(ms).toISOString()

function numbers(w: WindowSummary): NonNullable<DecisionEntry['canary']> {
  return {
    requests: w.requests,
    ...(w.errorRate !== undefined ? { errorRate: Math.round(w.errorRate * 1000) / 1000 } : {}),
    ...(w.p99Ms !== undefined ? { p99Ms: Math.round(w.p99Ms * 1000) / 1000 } : {}),
  }
}

interface Change {
  doc: MeshDocument
  entry: DecisionEntry
  /** One line for a version's description and the controller's log. */
  summary: string
}

/**
 * The document with the route's weights set to `weight` percent for the canary, its status replaced
 * and the entry appended to the log (the newest LOG_LIMIT kept; older ones are in older versions).
 * The `rollout` block keeps the user's own keys as written (durations as strings).
 */
function write(
  doc: MeshDocument,
  ref: { service: string; index: number },
  rawRollout: Record<string, unknown>,
  r: RawRollout,
  weight: number,
  status: Omit<RolloutStatus, 'log'>,
  entry: DecisionEntry,
  previous: readonly DecisionEntry[],
): Change {
  const next = structuredClone(doc)
  const route = routesOf(next, ref.service)[ref.index]!
  route.to = { [r.stable]: 100 - weight, [r.canary]: weight }
  const log = [...previous, entry].slice(-LOG_LIMIT)
  route.rollout = { ...rawRollout, status: { ...status, log } }
  return {
    doc: next,
    entry,
    summary: `${ref.service}/${routeName(routesOf(next, ref.service), ref.index)}: ${entry.decision} at ${weight}%: ${entry.detail}`,
  }
}

function rawRolloutOf(doc: MeshDocument, ref: { service: string; index: number }): Record<string, unknown> {
  const { status: _status, ...rest } = (routesOf(doc, ref.service)[ref.index]!.rollout ?? {}) as Record<
    string,
    unknown
  >
  return rest
}

export interface StartOptions {
  /** Keys of the rollout block to set (as a person writes them: durations as strings). */
  settings?: Record<string, unknown>
  canary?: string
  stable?: string
}

/**
 * Starts a rollout on a route (or resumes a paused one): the route's block, given settings merged
 * over it, checked; step 0's weight published. A rollout already progressing is left as it is
 * (`undefined`): the controller continues it.
 */
export function startRollout(
  doc: MeshDocument,
  service: string,
  route: string,
  opts: StartOptions,
  now: number,
): Change | undefined {
  const { index, raw } = findRoute(doc, service, route)
  const existing = (raw.rollout ?? {}) as Record<string, unknown>
  const existingStatus = checked(raw.rollout)?.status
  const { status: _s, ...base } = existing
  const block: Record<string, unknown> = { ...base, ...opts.settings }
  if (opts.canary !== undefined) block.canary = opts.canary
  if (opts.stable !== undefined) block.stable = opts.stable
  if (block.stable === undefined) block.stable = inferStable(raw.to, block.canary)
  const sameRollout = existing.canary === block.canary && existing.stable === block.stable
  if (existingStatus && sameRollout && existingStatus.phase === RolloutPhases.progressing) return undefined
  const r = checked(block)
  if (!r) {
    const problems: { path: readonly (string | number)[]; message: string }[] = []
    rolloutSchema.check(block, [], problems)
    throw new RolloutError(
      `rollout settings: ${problems.map((p) => `${p.path.join('.') || '(block)'}: ${p.message}`).join('; ')}`,
    )
  }
  const ref = { service, index }
  if (existingStatus && sameRollout && existingStatus.phase === RolloutPhases.paused) {
    const weight = stepsOf(r)[existingStatus.step]!
    const entry: DecisionEntry = {
      at: iso(now),
      step: existingStatus.step,
      weight,
      decision: 'resume',
      detail: `resumed at step ${existingStatus.step + 1} of ${stepsOf(r).length}; the step's window starts again`,
    }
    return write(
      doc,
      ref,
      block,
      r,
      weight,
      { ...existingStatus, phase: RolloutPhases.progressing, stepStartedAt: iso(now) },
      entry,
      existingStatus.log ?? [],
    )
  }
  const weight = stepsOf(r)[0]!
  const entry: DecisionEntry = {
    at: iso(now),
    step: 0,
    weight,
    decision: 'start',
    detail: `${r.stable} → ${r.canary}, steps ${stepsOf(r).join(', ')}%`,
  }
  const status = { phase: RolloutPhases.progressing, step: 0, startedAt: iso(now), stepStartedAt: iso(now) }
  return write(doc, ref, block, r, weight, status, entry, [])
}

/** The stable target a rollout starts from: the route's heaviest target other than the canary. */
function inferStable(to: unknown, canary: unknown): string {
  if (typeof to === 'string') {
    if (to === canary) throw new RolloutError(`the route already sends everything to ${to}`)
    return to
  }
  const weights = Object.entries((to ?? {}) as Record<string, number>)
    .filter(([t]) => t !== canary)
    .sort((a, b) => b[1] - a[1])
  if (weights.length === 0) throw new RolloutError('give --stable: the route has no other target')
  return weights[0]![0]
}

function liveRef(doc: MeshDocument, service: string, route: string): RolloutRef & { status: RolloutStatus } {
  const ref = findRollouts(doc).find((x) => x.service === service && x.route === route)
  if (!ref) throw new RolloutError(`${service}/${route} has no rollout`)
  const status = ref.rollout.status
  if (!status || !isLive(status.phase))
    throw new RolloutError(
      `the rollout of ${service}/${route} is ${status?.phase ?? 'not started'}, not running`,
    )
  return { ...ref, status }
}

/** Holds the weights where they are; the controller leaves a paused rollout alone. */
export function pauseRollout(doc: MeshDocument, service: string, route: string, now: number): Change {
  const ref = liveRef(doc, service, route)
  if (ref.status.phase === RolloutPhases.paused)
    throw new RolloutError(`${service}/${route} is already paused`)
  const weight = stepsOf(ref.rollout)[ref.status.step]!
  const entry: DecisionEntry = {
    at: iso(now),
    step: ref.status.step,
    weight,
    decision: 'pause',
    detail: 'paused by command',
  }
  return write(
    doc,
    ref,
    rawRolloutOf(doc, ref),
    ref.rollout,
    weight,
    { ...ref.status, phase: RolloutPhases.paused },
    entry,
    ref.status.log ?? [],
  )
}

/** Everything back to the stable target, at once. */
export function abortRollout(doc: MeshDocument, service: string, route: string, now: number): Change {
  const ref = liveRef(doc, service, route)
  const entry: DecisionEntry = {
    at: iso(now),
    step: ref.status.step,
    weight: 0,
    decision: 'abort',
    detail: `aborted by command at step ${ref.status.step + 1}; all traffic to ${ref.rollout.stable}`,
  }
  return write(
    doc,
    ref,
    rawRolloutOf(doc, ref),
    ref.rollout,
    0,
    { ...ref.status, phase: RolloutPhases.aborted },
    entry,
    ref.status.log ?? [],
  )
}

/** When the current step's analysis window starts (epoch ms). */
export function stepStart(status: RolloutStatus): number {
  return Date.parse(status.stepStartedAt)
}

/**
 * The controller's decision for a progressing rollout, given the verdict on the step's window:
 * a failed check rolls back to 0% at once; a pass once the step has lasted its duration moves to the
 * next step, or completes at 100% after the last one below 100; anything else changes nothing.
 */
export function advance(
  doc: MeshDocument,
  ref: RolloutRef,
  verdict: Verdict,
  now: number,
): Change | undefined {
  const status = ref.rollout.status
  if (!status || status.phase !== RolloutPhases.progressing) return undefined
  const steps = stepsOf(ref.rollout)
  const raw = rawRolloutOf(doc, ref)
  const log = status.log ?? []
  const numbersOf = { canary: numbers(verdict.canary), stable: numbers(verdict.stable) }
  if (verdict.outcome === 'fail') {
    const entry: DecisionEntry = {
      at: iso(now),
      step: status.step,
      weight: 0,
      decision: 'rollback',
      detail: `step ${status.step + 1} (${steps[status.step]}%) failed ${verdict.reason}; all traffic to ${ref.rollout.stable}`,
      ...numbersOf,
    }
    return write(doc, ref, raw, ref.rollout, 0, { ...status, phase: RolloutPhases.rolledBack }, entry, log)
  }
  if (verdict.outcome !== 'pass' || now - stepStart(status) < stepDurationOf(ref.rollout)) return undefined
  const next = status.step + 1
  if (next < steps.length && steps[next]! < 100) {
    const entry: DecisionEntry = {
      at: iso(now),
      step: next,
      weight: steps[next]!,
      decision: 'promote',
      detail: `step ${status.step + 1} (${steps[status.step]}%) passed: ${verdict.reason}`,
      ...numbersOf,
    }
    return write(
      doc,
      ref,
      raw,
      ref.rollout,
      steps[next]!,
      { ...status, step: next, stepStartedAt: iso(now) },
      entry,
      log,
    )
  }
  const entry: DecisionEntry = {
    at: iso(now),
    step: status.step,
    weight: 100,
    decision: 'complete',
    detail: `step ${status.step + 1} (${steps[status.step]}%) passed: ${verdict.reason}; all traffic to ${ref.rollout.canary}`,
    ...numbersOf,
  }
  return write(doc, ref, raw, ref.rollout, 100, { ...status, phase: RolloutPhases.promoted }, entry, log)
}
