// Rollouts inside `meshgate dev`: the same controller, on the dev mesh's running config (a decision is
// published through dev's own edit path, so the gateway, sidecars and functions all reload), reading
// the Prometheus form of the in-process metrics registries (the gateway's and every sidecar's; a
// Lambda caller's EMF is not counted here). A block in the mesh file starts by itself.
import type { MeshDocument } from '../control/mesh-document.ts'
import type { TelemetrySink } from '../engine/types.ts'
import { createMetricsRegistry, type MetricsRegistry } from '../telemetry/metrics.ts'
import { formatPrometheus } from '../telemetry/prometheus.ts'
import type { WindowSummary } from './analysis.ts'
import { type Clock, createRolloutController, type RolloutReport, reportOf } from './controller.ts'
import { LiveConflictError, type LiveStore } from './live-store.ts'
import { createTextReader } from './prometheus-reader.ts'
import type { DecisionEntry } from './rollout-schema.ts'
import { findRollouts } from './state.ts'

/** dev looks once a second: steps there are seconds long. */
const DEV_TICK_MS = 1_000

export interface DevRolloutView {
  service: string
  route: string
  stable: string
  canary: string
  phase: string
  /** 1-based. */
  step: number
  steps: readonly number[]
  weight: number
  stepStartedAt?: string
  /** The current step's window, as the last look saw it. */
  canaryWindow?: WindowSummary
  stableWindow?: WindowSummary
  /** Why the last look decided what it did (`wait: canary has 12 of 100 requests`). */
  reason?: string
  log: readonly DecisionEntry[]
}

export interface DevRolloutsOptions {
  /** The running mesh document. */
  read(): MeshDocument
  /** Publish a document through dev's reload path. */
  publish(doc: MeshDocument, why: string): Promise<{ ok: boolean; error?: string }>
  /** The registries of the in-process sidecars (their outbound calls are the callers' series). */
  registries(): Iterable<MetricsRegistry>
  notice(line: string): void
  clock?: Clock
  tickMs?: number
}

export interface DevRollouts {
  /** The gateway's sink, also counted for the analysis. */
  observe(sink: TelemetrySink): TelemetrySink
  views(): DevRolloutView[]
  close(): void
}

function view(r: RolloutReport): DevRolloutView {
  return {
    service: r.service,
    route: r.route,
    stable: r.stable,
    canary: r.canary,
    phase: r.phase,
    step: r.step,
    steps: r.steps,
    weight: r.weight,
    ...(r.stepStartedAt ? { stepStartedAt: r.stepStartedAt } : {}),
    ...(r.verdict
      ? {
          canaryWindow: r.verdict.canary,
          stableWindow: r.verdict.stable,
          reason: `${r.verdict.outcome}: ${r.verdict.reason}`,
        }
      : {}),
    log: r.log,
  }
}

export function createDevRollouts(opts: DevRolloutsOptions): DevRollouts {
  const gateway = createMetricsRegistry()
  // dev's running document is replaced whole on every reload: its identity is its version.
  const versions = new WeakMap<object, string>()
  let counter = 0
  const versionOf = (doc: MeshDocument): string => {
    let v = versions.get(doc)
    if (v === undefined) {
      v = `dev #${++counter}`
      versions.set(doc, v)
    }
    return v
  }
  const store: LiveStore = {
    name: 'meshgate dev',
    read: async () => {
      const doc = opts.read()
      return { doc, version: versionOf(doc) }
    },
    async publish(doc, description, basedOn) {
      // A dashboard edit (or a file change) between the look and this write is not overwritten.
      if (basedOn !== undefined && versionOf(opts.read()) !== basedOn)
        throw new LiveConflictError('the dev config changed during the look')
      const r = await opts.publish(doc, description)
      if (!r.ok) throw new Error(r.error ?? 'refused')
      return 'dev'
    },
  }
  const reader = createTextReader('meshgate dev (gateway and sidecars)', async () =>
    [gateway, ...opts.registries()].map((r) => formatPrometheus(r)),
  )
  const controller = createRolloutController({
    store,
    reader,
    clock: opts.clock ?? { now: () => Date.now() },
    log: () => {},
  })
  let last = new Map<string, DevRolloutView>()
  let busy = false
  const timer = setInterval(() => {
    if (busy || findRollouts(opts.read()).length === 0) return
    busy = true
    controller
      .tick()
      .then((t) => {
        last = new Map(t.rollouts.map((r) => [`${r.service}/${r.route}`, view(r)]))
        for (const r of t.rollouts) {
          if (r.decision)
            opts.notice(
              `rollout ${r.service}/${r.route}: ${r.decision.decision} at ${r.decision.weight}%: ${r.decision.detail}`,
            )
        }
      })
      .catch((e: unknown) => {
        // A conflict is decided again on the next look.
        if (!(e instanceof LiveConflictError))
          opts.notice(`rollout: ${e instanceof Error ? e.message : String(e)}`)
      })
      .finally(() => {
        busy = false
      })
  }, opts.tickMs ?? DEV_TICK_MS)
  timer.unref()
  const sink = gateway.sink()
  return {
    observe(inner) {
      return {
        attempt: (ev) => {
          inner.attempt?.(ev)
          sink.attempt?.(ev)
        },
        request: (ev) => {
          inner.request?.(ev)
          sink.request?.(ev)
        },
        event: (kind, labels) => {
          inner.event?.(kind, labels)
          sink.event?.(kind, labels)
        },
      }
    },
    views() {
      const doc = opts.read()
      const services = doc.services as Record<string, { routes?: Record<string, unknown>[] }>
      // The document is the truth (a decision may be newer than the last look); the look adds numbers.
      return findRollouts(doc).map((ref) => {
        const fromDoc = view(reportOf(ref, services[ref.service]?.routes?.[ref.index]?.to))
        const seen = last.get(`${ref.service}/${ref.route}`)
        if (seen && seen.step === fromDoc.step && seen.phase === fromDoc.phase) {
          const { canaryWindow, stableWindow, reason } = seen
          return {
            ...fromDoc,
            ...(canaryWindow ? { canaryWindow } : {}),
            ...(stableWindow ? { stableWindow } : {}),
            ...(reason ? { reason } : {}),
          }
        }
        // No look at this step yet: the numbers the last decision was made on.
        const decided = [...fromDoc.log].reverse().find((e) => e.canary !== undefined)
        if (!decided?.canary || !decided.stable) return fromDoc
        const window = (w: NonNullable<DecisionEntry['canary']>): WindowSummary => ({
          requests: w.requests,
          errors: Math.round(((w.errorRate ?? 0) * w.requests) / 100),
          ...(w.errorRate !== undefined ? { errorRate: w.errorRate } : {}),
          ...(w.p99Ms !== undefined ? { p99Ms: w.p99Ms } : {}),
        })
        return {
          ...fromDoc,
          canaryWindow: window(decided.canary),
          stableWindow: window(decided.stable),
          reason: `${decided.decision}: ${decided.detail}`,
        }
      })
    },
    close() {
      clearInterval(timer)
    },
  }
}
