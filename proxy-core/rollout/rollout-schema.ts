// The `rollout` block of a route (docs/rollout.md): which target is stable, which is the canary, the
// steps, and the analysis that gates each step. The controller writes its progress under `status`, so
// the published config (and its history of versions) is the whole state of a rollout.
//
// Defaults, with where each comes from:
//  - steps 1, 3, 10, 25, 50, 100 percent: the "wetten your feet" ladder (Flagger's
//    `stepWeights` and Argo Rollouts' `setWeight` steps take such a list; neither has a default one);
//  - stepDuration 1m: Flagger's analysis `interval` (its docs' examples and builtin metrics use 1m);
//  - errorRate max 1%: Flagger's builtin `request-success-rate` check, `thresholdRange: { min: 99 }`;
//  - latencyP99 max 500ms: Flagger's builtin `request-duration` check (P99), `thresholdRange: { max: 500 }`;
//  - one failed check rolls back: Argo Rollouts' `failureLimit: 0` behaviour (Flagger's `threshold: 1`);
//  - minRequests 100: neither tool has one (Flagger skips a check without traffic, Argo calls it
//    inconclusive); 100 is the smallest count at which one error is a 1% error rate, the default limit.
import { duration, list, number, object, optional, type Problem, percent, string } from '../config/schema.ts'

export const ROLLOUT_DEFAULTS = {
  steps: [1, 3, 10, 25, 50, 100],
  stepDurationMs: 60_000,
  minRequests: 100,
  errorRateMaxPercent: 1,
  latencyP99MaxMs: 500,
} as const

/** Phases of a rollout; `progressing` and `paused` are live, the others are ends. */
export const RolloutPhases = {
  progressing: 'progressing',
  paused: 'paused',
  promoted: 'promoted',
  rolledBack: 'rolled-back',
  aborted: 'aborted',
} as const
export type RolloutPhase = (typeof RolloutPhases)[keyof typeof RolloutPhases]
export const LIVE_PHASES: readonly RolloutPhase[] = [RolloutPhases.progressing, RolloutPhases.paused]

/** The decision log kept in the config; older entries live in earlier versions. */
export const LOG_LIMIT = 20

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const target = (description: string) =>
  string({ pattern: NAME, hint: 'a target name of this service', description })
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/
const time = (description: string) => string({ pattern: ISO_TIME, hint: 'an ISO 8601 UTC time', description })

const windowNumbers = object({
  requests: number({ min: 0 }),
  errorRate: optional(number({ min: 0, description: 'percent' })),
  p99Ms: optional(number({ min: 0 })),
})

export const rolloutStatusSchema = object(
  {
    phase: string({ enum: Object.values(RolloutPhases) }),
    step: number({ min: 0, integer: true, description: 'index into steps' }),
    startedAt: time('when the rollout started'),
    stepStartedAt: time('when the current step was published'),
    log: optional(
      list(
        object({
          at: time('when'),
          step: number({ min: 0, integer: true }),
          weight: percent('the canary weight after the decision'),
          decision: string({
            enum: ['start', 'promote', 'complete', 'rollback', 'pause', 'resume', 'abort'],
          }),
          detail: string(),
          canary: optional(windowNumbers),
          stable: optional(windowNumbers),
        }),
      ),
    ),
  },
  { description: 'written by the rollout controller: do not edit by hand' },
)

export const rolloutSchema = object(
  {
    stable: target('the target serving today'),
    canary: target('the target taking over'),
    steps: optional(
      list(percent(), {
        minItems: 1,
        description: 'canary weights in percent (default 1, 3, 10, 25, 50, 100)',
      }),
    ),
    stepDuration: optional(duration('least time at each step (default 1m)')),
    analysis: optional(
      object({
        minRequests: optional(
          number({
            min: 1,
            integer: true,
            description: 'canary requests per step before any decision (default 100)',
          }),
        ),
        errorRate: optional(
          object(
            {
              max: optional(percent('5xx and mesh errors, percent of requests (default 1)')),
              maxAboveStable: optional(percent('percentage points above the stable target')),
            },
            { description: 'the canary error rate' },
          ),
        ),
        latencyP99: optional(
          object(
            {
              max: optional(duration('default 500ms')),
              maxAboveStable: optional(duration("above the stable target's p99")),
            },
            { description: "the canary's p99 latency" },
          ),
        ),
      }),
    ),
    status: optional(rolloutStatusSchema),
  },
  { description: 'a metric-gated canary from stable to canary (docs/rollout.md)' },
)

export type RawRollout = NonNullable<ReturnType<typeof rolloutSchema.check>>
export type RolloutStatus = NonNullable<RawRollout['status']>
export type DecisionEntry = NonNullable<RolloutStatus['log']>[number]

/**
 * The cross-references the schema cannot check: both targets exist and differ, the steps rise, and
 * the route sends traffic to no third target (the weights are the rollout's to set).
 */
export function checkRollout(
  r: RawRollout,
  to: Record<string, number>,
  targets: readonly string[],
  path: readonly (string | number)[],
  problems: Problem[],
): void {
  for (const key of ['stable', 'canary'] as const) {
    if (!targets.includes(r[key]))
      problems.push({
        path: [...path, key],
        message: `unknown target "${r[key]}" (the service has ${targets.join(', ')})`,
      })
  }
  if (r.stable === r.canary)
    problems.push({ path: [...path, 'canary'], message: 'the canary must be another target than stable' })
  const steps = r.steps ?? []
  steps.forEach((s, i) => {
    if (s <= 0) problems.push({ path: [...path, 'steps', i], message: 'a step must be above 0%' })
    else if (i > 0 && s <= steps[i - 1]!)
      problems.push({ path: [...path, 'steps', i], message: 'steps must rise' })
  })
  for (const [t, w] of Object.entries(to)) {
    if (w > 0 && t !== r.stable && t !== r.canary)
      problems.push({
        path: [...path.slice(0, -1), 'to', t],
        message: `the route has a rollout from ${r.stable} to ${r.canary}: no weight for another target`,
        atKey: true,
      })
  }
  if (r.status && r.status.step >= (r.steps ?? ROLLOUT_DEFAULTS.steps).length)
    problems.push({ path: [...path, 'status', 'step'], message: 'past the last step' })
}
