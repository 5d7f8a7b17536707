// The rollout controller: one `tick` reads the live config, analyzes the current step's window of
// every progressing rollout, and publishes one new version when any of them moves (promote, complete,
// rollback). It keeps nothing between ticks: the step and when it started are in the published
// config, so a controller that was killed, or a scheduled Lambda that runs once a minute, continues
// where the last one left off.
import { type AnalysisPolicy, analysisPolicy, analyze, type Verdict } from './analysis.ts'
import type { LiveStore } from './live-store.ts'
import type { MetricReader } from './metric-reader.ts'
import type { DecisionEntry, RolloutPhase } from './rollout-schema.ts'
import {
  advance,
  canaryWeight,
  findRollouts,
  type RolloutRef,
  startRollout,
  stepStart,
  stepsOf,
} from './state.ts'

export interface Clock {
  now(): number
}

export interface RolloutReport {
  service: string
  route: string
  stable: string
  canary: string
  phase: RolloutPhase | 'not-started'
  /** 1-based for people; 0 before the start. */
  step: number
  steps: readonly number[]
  weight: number
  stepStartedAt?: string
  policy: AnalysisPolicy
  /** The verdict on the current window, when this tick analyzed one. */
  verdict?: Verdict
  /** The decision this tick published. */
  decision?: DecisionEntry
  log: readonly DecisionEntry[]
}

export interface TickResult {
  /** The version read, and the one published if anything changed. */
  version: string
  published?: string
  rollouts: RolloutReport[]
}

export interface RolloutControllerOptions {
  store: LiveStore
  reader: MetricReader
  clock: Clock
  /** Only this route's rollout (the CLI's `start`); default every rollout of the mesh. */
  only?: { service: string; route: string }
  log?(line: string): void
}

export interface RolloutController {
  tick(): Promise<TickResult>
}

export function reportOf(ref: RolloutRef, to: unknown): RolloutReport {
  const s = ref.rollout.status
  return {
    service: ref.service,
    route: ref.route,
    stable: ref.rollout.stable,
    canary: ref.rollout.canary,
    phase: (s?.phase ?? 'not-started') as RolloutReport['phase'],
    step: s ? s.step + 1 : 0,
    steps: stepsOf(ref.rollout),
    weight: canaryWeight(ref.rollout, to),
    ...(s ? { stepStartedAt: s.stepStartedAt } : {}),
    policy: analysisPolicy(ref.rollout),
    log: s?.log ?? [],
  }
}

function routeTo(doc: Record<string, unknown>, ref: RolloutRef): unknown {
  const services = doc.services as Record<string, { routes?: Record<string, unknown>[] }>
  return services[ref.service]?.routes?.[ref.index]?.to
}

export function createRolloutController(opts: RolloutControllerOptions): RolloutController {
  const log = opts.log ?? (() => {})
  return {
    async tick() {
      const live = await opts.store.read()
      let doc = live.doc
      const mesh = String(doc.mesh)
      const refs = findRollouts(doc).filter(
        (r) => !opts.only || (r.service === opts.only.service && r.route === opts.only.route),
      )
      const now = opts.clock.now()
      const reports: RolloutReport[] = []
      const lines: string[] = []
      for (const ref of refs) {
        const report = reportOf(ref, routeTo(doc, ref))
        reports.push(report)
        // A block published without a status (written by hand, or in a mesh file) starts here.
        if (ref.rollout.status === undefined) {
          const started = startRollout(doc, ref.service, ref.route, {}, now)
          if (started) {
            doc = started.doc
            report.phase = 'progressing'
            report.step = 1
            report.weight = started.entry.weight
            report.decision = started.entry
            report.log = [started.entry]
            lines.push(started.summary)
          }
          continue
        }
        const status = ref.rollout.status
        if (status.phase !== 'progressing') continue
        const keys = [ref.rollout.canary, ref.rollout.stable].map((target) => ({
          mesh,
          service: ref.service,
          route: ref.route,
          target,
        }))
        const [canary, stable] = await opts.reader.read(keys, stepStart(status), now)
        const verdict = analyze(report.policy, canary!, stable!)
        report.verdict = verdict
        const change = advance(doc, ref, verdict, now)
        if (!change) {
          log(
            `${ref.service}/${ref.route}: step ${report.step} at ${report.weight}%: ${verdict.outcome}: ${verdict.reason}`,
          )
          continue
        }
        doc = change.doc
        report.decision = change.entry
        report.weight = change.entry.weight
        report.phase = (findRollouts(doc).find((r) => r.service === ref.service && r.route === ref.route)
          ?.rollout.status?.phase ?? report.phase) as RolloutPhase
        report.step = change.entry.step + 1
        report.log = [...report.log, change.entry]
        lines.push(change.summary)
      }
      if (lines.length === 0) return { version: live.version, rollouts: reports }
      const published = await opts.store.publish(doc, `meshgate rollout: ${lines.join(' | ')}`, live.version)
      for (const l of lines) log(`${l} (published ${published})`)
      return { version: live.version, published, rollouts: reports }
    },
  }
}
