// The canary analysis: a pure function of the metric samples of one window and the policy. No clock,
// no I/O. A sample that is not a finite number ≥ 0 (NaN, ±Infinity, negative: a reader's gap or a
// broken series) counts as missing, never as zero errors; missing evidence means "wait", never
// "pass". Below the minimum request count nothing is decided, neither promotion nor rollback.
import { type RawRollout, ROLLOUT_DEFAULTS } from './rollout-schema.ts'

/** One target's samples over the window, as the readers return them (one value per period). */
export interface TargetSeries {
  /** Requests answered, per period. */
  requests: readonly number[]
  /** 5xx responses (mesh errors included: timeout 504, upstream_unavailable and circuit_open 503). */
  errors: readonly number[]
  /** p99 latency in ms, per period. */
  p99Ms: readonly number[]
}

export const EMPTY_SERIES: TargetSeries = Object.freeze({ requests: [], errors: [], p99Ms: [] })

export interface WindowSummary {
  requests: number
  errors: number
  /** Percent; undefined without requests. */
  errorRate?: number
  /** The highest p99 of the window's periods (a conservative merge); undefined when none is known. */
  p99Ms?: number
}

export interface AnalysisPolicy {
  minRequests: number
  errorRate: { max?: number; maxAboveStable?: number }
  latencyP99: { max?: number; maxAboveStable?: number }
}

export const CheckNames = { errorRate: 'error-rate', latencyP99: 'latency-p99' } as const
export type CheckName = (typeof CheckNames)[keyof typeof CheckNames]

export interface CheckResult {
  check: CheckName
  /** true passed, false failed, undefined not decidable (missing data). */
  ok?: boolean
  detail: string
}

export const Outcomes = { pass: 'pass', fail: 'fail', wait: 'wait' } as const
export type Outcome = (typeof Outcomes)[keyof typeof Outcomes]

export interface Verdict {
  outcome: Outcome
  canary: WindowSummary
  stable: WindowSummary
  checks: CheckResult[]
  /** One line: why this outcome, with the numbers. */
  reason: string
}

/** The policy of a rollout block, defaults filled in (Flagger's thresholds when none is given). */
export function analysisPolicy(r: RawRollout): AnalysisPolicy {
  const a = r.analysis ?? {}
  const errorRate = a.errorRate ?? {}
  const latency = a.latencyP99 ?? {}
  const noErrorLimit = errorRate.max === undefined && errorRate.maxAboveStable === undefined
  const noLatencyLimit = latency.max === undefined && latency.maxAboveStable === undefined
  return Object.freeze({
    minRequests: a.minRequests ?? ROLLOUT_DEFAULTS.minRequests,
    errorRate: Object.freeze(noErrorLimit ? { max: ROLLOUT_DEFAULTS.errorRateMaxPercent } : { ...errorRate }),
    latencyP99: Object.freeze(noLatencyLimit ? { max: ROLLOUT_DEFAULTS.latencyP99MaxMs } : { ...latency }),
  })
}

const usable = (v: number): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0

function sum(values: readonly number[]): number {
  let total = 0
  for (const v of values) if (usable(v)) total += v
  return total
}

export function summarize(series: TargetSeries): WindowSummary {
  const requests = sum(series.requests)
  const errors = sum(series.errors)
  const out: WindowSummary = { requests, errors }
  if (requests > 0) out.errorRate = (errors / requests) * 100
  let p99: number | undefined
  for (const v of series.p99Ms) if (usable(v) && (p99 === undefined || v > p99)) p99 = v
  if (p99 !== undefined) out.p99Ms = p99
  return out
}

const pct = (v: number) => `${round(v)}%`
const ms = (v: number) => `${round(v)}ms`
function round(v: number): string {
  return String(Math.round(v * 100) / 100)
}

function errorCheck(p: AnalysisPolicy, canary: WindowSummary, stable: WindowSummary): CheckResult {
  const check = CheckNames.errorRate
  const rate = canary.errorRate
  if (rate === undefined) return { check, detail: 'no canary requests' }
  const seen = `canary ${pct(rate)} (${canary.errors}/${canary.requests})`
  const { max, maxAboveStable } = p.errorRate
  if (max !== undefined && rate > max) return { check, ok: false, detail: `${seen} > max ${pct(max)}` }
  if (maxAboveStable !== undefined) {
    if (stable.errorRate === undefined || stable.requests < p.minRequests)
      return {
        check,
        detail: `${seen}; stable has ${stable.requests} of ${p.minRequests} requests to compare`,
      }
    const limit = stable.errorRate + maxAboveStable
    const vs = `stable ${pct(stable.errorRate)} + ${pct(maxAboveStable)}`
    if (rate > limit) return { check, ok: false, detail: `${seen} > ${vs}` }
    return { check, ok: true, detail: `${seen} ≤ ${vs}${max !== undefined ? ` and max ${pct(max)}` : ''}` }
  }
  return { check, ok: true, detail: `${seen} ≤ max ${pct(max ?? 0)}` }
}

function latencyCheck(p: AnalysisPolicy, canary: WindowSummary, stable: WindowSummary): CheckResult {
  const check = CheckNames.latencyP99
  const p99 = canary.p99Ms
  if (p99 === undefined) return { check, detail: 'no canary p99' }
  const seen = `canary p99 ${ms(p99)}`
  const { max, maxAboveStable } = p.latencyP99
  if (max !== undefined && p99 > max) return { check, ok: false, detail: `${seen} > max ${ms(max)}` }
  if (maxAboveStable !== undefined) {
    if (stable.p99Ms === undefined || stable.requests < p.minRequests)
      return {
        check,
        detail: `${seen}; stable has ${stable.requests} of ${p.minRequests} requests to compare`,
      }
    const limit = stable.p99Ms + maxAboveStable
    const vs = `stable ${ms(stable.p99Ms)} + ${ms(maxAboveStable)}`
    if (p99 > limit) return { check, ok: false, detail: `${seen} > ${vs}` }
    return { check, ok: true, detail: `${seen} ≤ ${vs}${max !== undefined ? ` and max ${ms(max)}` : ''}` }
  }
  return { check, ok: true, detail: `${seen} ≤ max ${ms(max ?? 0)}` }
}

/** The verdict on one window: fail at the first failed check, pass only when every check passed. */
export function analyze(
  policy: AnalysisPolicy,
  canarySeries: TargetSeries,
  stableSeries: TargetSeries,
): Verdict {
  const canary = summarize(canarySeries)
  const stable = summarize(stableSeries)
  if (!(canary.requests >= policy.minRequests))
    return {
      outcome: Outcomes.wait,
      canary,
      stable,
      checks: [],
      reason: `canary has ${canary.requests} of ${policy.minRequests} requests`,
    }
  const checks = [errorCheck(policy, canary, stable), latencyCheck(policy, canary, stable)]
  const failed = checks.find((c) => c.ok === false)
  if (failed)
    return { outcome: Outcomes.fail, canary, stable, checks, reason: `${failed.check}: ${failed.detail}` }
  const open = checks.find((c) => c.ok === undefined)
  if (open) return { outcome: Outcomes.wait, canary, stable, checks, reason: `${open.check}: ${open.detail}` }
  return {
    outcome: Outcomes.pass,
    canary,
    stable,
    checks,
    reason: checks.map((c) => `${c.check}: ${c.detail}`).join('; '),
  }
}
