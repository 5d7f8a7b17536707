// `meshgate rollout start|status|pause|abort|run`: the only file of the rollout module with process
// side effects (arguments, environment, stdout, signals, timers).
import { parseCommandArgs, stringOpt, UsageError } from '../cli/args.ts'
import { parseDuration } from '../config/duration.ts'
import { reportFailure } from '../control/report.ts'
import { type Clock, createRolloutController, type RolloutReport, reportOf } from './controller.ts'
import { createLiveStore, LiveConflictError, type LiveStore } from './live-store.ts'
import { createMetricReader, MetricsSpecError } from './metric-reader.ts'
import { MetricsReadError } from './prometheus-reader.ts'
import { abortRollout, findRollouts, isLive, pauseRollout, RolloutError, startRollout } from './state.ts'

/** How often the foreground controller looks (ms): a few looks per default 1m step. */
const DEFAULT_INTERVAL_MS = 15_000

export const usage = `usage: meshgate rollout start  --config URL SERVICE ROUTE --canary TARGET [--stable TARGET]
                             [--steps 1,3,10,25,50,100] [--step-duration 1m] [--min-requests 100]
                             [--max-error-rate 1] [--max-error-rate-above-stable P]
                             [--max-p99 500ms] [--max-p99-above-stable D]
                             [--metrics SOURCE] [--interval 15s] [--detach]
       meshgate rollout status --config URL [--json]
       meshgate rollout pause  --config URL SERVICE ROUTE
       meshgate rollout abort  --config URL SERVICE ROUTE
       meshgate rollout run    --config URL [--metrics SOURCE] [--interval 15s] [--once]

A metric-gated canary on one route of the live config (docs/rollout.md). Every step is a published
config version; the route's rollout block holds the step, when it started and the decision log.
start publishes step 1 (or resumes a paused rollout) and drives it to its end (--detach: leave it to
\`rollout run\` or the scheduled functions/rollout); run again, it continues a rollout in progress.
run drives every rollout of the mesh. --config defaults to MESHGATE_CONFIG.
SOURCE (default MESHGATE_ROLLOUT_METRICS, else cloudwatch): cloudwatch[:NAMESPACE] | prometheus:URL |
sidecars:URL[,URL...] (admin listeners' /metrics).
Exit: 0 promoted (or done), 1 rolled back, aborted or failed, 2 usage.`

const realClock: Clock = { now: () => Date.now() }

function configUrl(v: string | undefined): string {
  const url = v ?? process.env.MESHGATE_CONFIG
  if (url === undefined || url === '') throw new UsageError('--config URL is required (or MESHGATE_CONFIG)')
  return url
}

function intervalOf(v: string | undefined): number {
  if (v === undefined) return DEFAULT_INTERVAL_MS
  const ms = parseDuration(v)
  if (ms === undefined || ms < 100) throw new UsageError(`--interval: not a duration of 100ms or more: ${v}`)
  return ms
}

function numberOpt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new UsageError(`--${name}: not a number ≥ 0: ${v}`)
  return n
}

/** The rollout block keys the flags set, written as a person writes them (the schema checks them). */
function settingsOf(p: ReturnType<typeof parseCommandArgs>): Record<string, unknown> {
  const s: Record<string, unknown> = {}
  const steps = stringOpt(p, 'steps')
  if (steps !== undefined) {
    const list = steps.split(',').map((x) => numberOpt(x, 'steps'))
    s.steps = list
  }
  const d = stringOpt(p, 'step-duration')
  if (d !== undefined) s.stepDuration = d
  const analysis: Record<string, unknown> = {}
  const min = numberOpt(stringOpt(p, 'min-requests'), 'min-requests')
  if (min !== undefined) analysis.minRequests = min
  const errorRate: Record<string, unknown> = {}
  const maxErr = numberOpt(stringOpt(p, 'max-error-rate'), 'max-error-rate')
  if (maxErr !== undefined) errorRate.max = maxErr
  const aboveErr = numberOpt(stringOpt(p, 'max-error-rate-above-stable'), 'max-error-rate-above-stable')
  if (aboveErr !== undefined) errorRate.maxAboveStable = aboveErr
  if (Object.keys(errorRate).length > 0) analysis.errorRate = errorRate
  const latency: Record<string, unknown> = {}
  const maxP99 = stringOpt(p, 'max-p99')
  if (maxP99 !== undefined) latency.max = maxP99
  const aboveP99 = stringOpt(p, 'max-p99-above-stable')
  if (aboveP99 !== undefined) latency.maxAboveStable = aboveP99
  if (Object.keys(latency).length > 0) analysis.latencyP99 = latency
  if (Object.keys(analysis).length > 0) s.analysis = analysis
  return s
}

const out = (line: string) => process.stdout.write(`${line}\n`)

function describe(r: RolloutReport): string[] {
  const lines = [
    `${r.service}/${r.route}: ${r.stable} → ${r.canary}: ${r.phase}, step ${r.step} of ${r.steps.length} (steps ${r.steps.join(', ')}%), canary at ${Math.round(r.weight * 100) / 100}%`,
  ]
  if (r.stepStartedAt && isLive(r.phase)) lines.push(`  step started ${r.stepStartedAt}`)
  for (const e of r.log.slice(-8)) lines.push(`  ${e.at} ${e.decision.padEnd(8)} ${e.weight}%  ${e.detail}`)
  return lines
}

/** Ticks until the rollout of `only` (or, without it, forever) ends; resolves to the last phase. */
async function drive(
  store: LiveStore,
  metrics: string,
  intervalMs: number,
  only: { service: string; route: string } | undefined,
  once: boolean,
): Promise<number> {
  const reader = await createMetricReader(metrics)
  const controller = createRolloutController({
    store,
    reader,
    clock: realClock,
    ...(only ? { only } : {}),
    log: (line) => out(`${new Date().toISOString()} ${line}`),
  })
  let stop = false
  let wake: (() => void) | undefined
  const onSignal = () => {
    stop = true
    wake?.()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    out(
      `controlling ${only ? `${only.service}/${only.route}` : 'every rollout'} of ${store.name}; metrics from ${reader.name}`,
    )
    for (;;) {
      try {
        const t = await controller.tick()
        const mine = only
          ? t.rollouts.find((r) => r.service === only.service && r.route === only.route)
          : undefined
        if (only && (!mine || !isLive(mine.phase))) {
          out(`${only.service}/${only.route}: ${mine?.phase ?? 'no rollout'}`)
          return mine?.phase === 'promoted' ? 0 : 1
        }
      } catch (e) {
        // A failed read or publish (throttling, a conflict with another publisher) is retried next tick.
        const retryable =
          e instanceof MetricsReadError ||
          e instanceof LiveConflictError ||
          (e as { $metadata?: unknown }).$metadata !== undefined
        if (!retryable) throw e
        out(`${new Date().toISOString()} tick failed, retrying: ${(e as Error).message}`)
      }
      if (once || stop) return 0
      await new Promise<void>((resolve) => {
        wake = resolve
        setTimeout(resolve, intervalMs)
      })
      if (stop) {
        out(
          'stopped; the rollout stays where it is in the published config (run start or run again to continue)',
        )
        return 0
      }
    }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

const START_OPTIONS = {
  config: { type: 'string' },
  canary: { type: 'string' },
  stable: { type: 'string' },
  steps: { type: 'string' },
  'step-duration': { type: 'string' },
  'min-requests': { type: 'string' },
  'max-error-rate': { type: 'string' },
  'max-error-rate-above-stable': { type: 'string' },
  'max-p99': { type: 'string' },
  'max-p99-above-stable': { type: 'string' },
  metrics: { type: 'string' },
  interval: { type: 'string' },
  detach: { type: 'boolean' },
} as const

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args
  if (sub === undefined) throw new UsageError('give a subcommand: start, status, pause, abort or run')
  try {
    if (sub === 'start') {
      const p = parseCommandArgs(rest, START_OPTIONS, { maxPositionals: 2 })
      const [service, route] = p.positionals
      if (service === undefined || route === undefined) throw new UsageError('give SERVICE ROUTE')
      const store = createLiveStore(configUrl(stringOpt(p, 'config')))
      const metrics = stringOpt(p, 'metrics') ?? process.env.MESHGATE_ROLLOUT_METRICS ?? 'cloudwatch'
      const interval = intervalOf(stringOpt(p, 'interval'))
      const canary = stringOpt(p, 'canary')
      const stable = stringOpt(p, 'stable')
      const live = await store.read()
      const change = startRollout(
        live.doc,
        service,
        route,
        { settings: settingsOf(p), ...(canary ? { canary } : {}), ...(stable ? { stable } : {}) },
        realClock.now(),
      )
      if (change)
        out(
          `${change.summary} (published ${await store.publish(change.doc, `meshgate rollout: ${change.summary}`)})`,
        )
      else out(`${service}/${route}: a rollout is in progress; continuing it from the published state`)
      if (p.values.detach === true) return 0
      return await drive(store, metrics, interval, { service, route }, false)
    }
    if (sub === 'run') {
      const p = parseCommandArgs(
        rest,
        {
          config: { type: 'string' },
          metrics: { type: 'string' },
          interval: { type: 'string' },
          once: { type: 'boolean' },
        },
        { maxPositionals: 0 },
      )
      const store = createLiveStore(configUrl(stringOpt(p, 'config')))
      const metrics = stringOpt(p, 'metrics') ?? process.env.MESHGATE_ROLLOUT_METRICS ?? 'cloudwatch'
      return await drive(
        store,
        metrics,
        intervalOf(stringOpt(p, 'interval')),
        undefined,
        p.values.once === true,
      )
    }
    if (sub === 'status') {
      const p = parseCommandArgs(
        rest,
        { config: { type: 'string' }, json: { type: 'boolean' } },
        { maxPositionals: 0 },
      )
      const store = createLiveStore(configUrl(stringOpt(p, 'config')))
      const live = await store.read()
      const services = live.doc.services as Record<string, { routes?: Record<string, unknown>[] }>
      const reports = findRollouts(live.doc).map((ref) =>
        reportOf(ref, services[ref.service]?.routes?.[ref.index]?.to),
      )
      if (p.values.json === true) out(JSON.stringify({ version: live.version, rollouts: reports }, null, 2))
      else {
        out(`${store.name}: ${live.version}`)
        if (reports.length === 0) out('no rollouts')
        for (const r of reports) for (const l of describe(r)) out(l)
      }
      return 0
    }
    if (sub === 'pause' || sub === 'abort') {
      const p = parseCommandArgs(rest, { config: { type: 'string' } }, { maxPositionals: 2 })
      const [service, route] = p.positionals
      if (service === undefined || route === undefined) throw new UsageError('give SERVICE ROUTE')
      const store = createLiveStore(configUrl(stringOpt(p, 'config')))
      const live = await store.read()
      const change = (sub === 'pause' ? pauseRollout : abortRollout)(
        live.doc,
        service,
        route,
        realClock.now(),
      )
      out(
        `${change.summary} (published ${await store.publish(change.doc, `meshgate rollout: ${change.summary}`)})`,
      )
      return 0
    }
    throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (start, status, pause, abort, run)`)
  } catch (e) {
    if (e instanceof RolloutError || e instanceof MetricsSpecError || e instanceof MetricsReadError) {
      process.stderr.write(`meshgate rollout: ${e.message}\n`)
      return 1
    }
    if (e instanceof UsageError) throw e
    return reportFailure('rollout', e)
  }
}
