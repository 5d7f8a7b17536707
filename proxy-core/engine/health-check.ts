// Active health checking (App Mesh's HealthCheckPolicy, Envoy's HTTP health checker): each endpoint of
// a target is probed every `interval`; `unhealthyThreshold` failures in a row take it out of load
// balancing, `healthyThreshold` passes in a row put it back. The probe itself (an HTTP GET) belongs to
// the runtime adapter and is injected, with the clock and the timers, so every transition is tested
// on a manual clock.
//
// Choices where the anchors leave room, for docs/config.md:
// - A new endpoint starts healthy and is probed at once: an endpoint that discovery just reported
//   (Cloud Map returns HEALTHY instances only) keeps serving, and one that is dead leaves after
//   `unhealthyThreshold` probes. Envoy instead holds new hosts back until a first pass; here passive
//   outlier detection covers that gap.
// - The next probe of an endpoint starts `interval` after the previous one ended (answered or timed
//   out), so probes of one endpoint never overlap, however slow it is.
// - A probe that has not answered within `timeout` failed; it is cancelled through its signal.
// - Outlier ejection is kept apart (outlier-detection.ts): the balancer skips an endpoint when either
//   says so, and both states are reported on their own.

import { Cancellation } from './cancel.ts'
import type { CancelSignal, Clock, HealthCheckConfig, Timers } from './types.ts'

/** What a probe found: `passed`, and a few words for /stats (`200`, `503`, `connect ECONNREFUSED`). */
export interface ProbeResult {
  passed: boolean
  detail: string
}

/**
 * One check of one endpoint. Resolves with the result (a rejection counts as a failure); must stop
 * promptly when `signal` aborts, which it does at `check.timeout`.
 */
export type HealthProbe = (
  endpointId: string,
  check: HealthCheckConfig,
  signal: CancelSignal,
) => Promise<ProbeResult>

/** One endpoint's state: the part the balancer reads (`healthy`) and the part /stats shows. */
export interface EndpointHealth {
  healthy: boolean
  /** Passes in a row (0 after a failure). */
  successes: number
  /** Failures in a row (0 after a pass). */
  failures: number
  /** Probes finished so far. */
  checks: number
  /** Times this endpoint was taken out. */
  ejections: number
  lastResult?: 'pass' | 'fail'
  lastDetail?: string
  /** Clock time the last probe ended. */
  lastCheckAt?: number
}

export function newEndpointHealth(): EndpointHealth {
  return { healthy: true, successes: 0, failures: 0, checks: 0, ejections: 0 }
}

export const HealthTransitions = { unhealthy: 'unhealthy', healthy: 'healthy' } as const
export type HealthTransition = (typeof HealthTransitions)[keyof typeof HealthTransitions]

/**
 * The decision: count one probe result into `state` and say whether the endpoint changed sides. Pure
 * apart from mutating `state`, which the checker owns.
 */
export function recordProbe(
  state: EndpointHealth,
  result: ProbeResult,
  check: Pick<HealthCheckConfig, 'healthyThreshold' | 'unhealthyThreshold'>,
  now: number,
): HealthTransition | undefined {
  state.checks++
  state.lastCheckAt = now
  state.lastResult = result.passed ? 'pass' : 'fail'
  state.lastDetail = result.detail
  if (result.passed) {
    state.successes++
    state.failures = 0
    if (!state.healthy && state.successes >= check.healthyThreshold) {
      state.healthy = true
      return HealthTransitions.healthy
    }
    return undefined
  }
  state.failures++
  state.successes = 0
  if (state.healthy && state.failures >= check.unhealthyThreshold) {
    state.healthy = false
    state.ejections++
    return HealthTransitions.unhealthy
  }
  return undefined
}

export interface HealthCheckerOptions {
  clock: Clock
  timers: Timers
  probe: HealthProbe
  /** Told of every transition (for a log line and the metrics). */
  onTransition?: (endpointId: string, to: HealthTransition, state: Readonly<EndpointHealth>) => void
}

export interface HealthChecker {
  readonly config: HealthCheckConfig
  /** The endpoints to probe now: new ones start (healthy, probed at once), gone ones stop. */
  setEndpoints(ids: readonly string[]): void
  /** false only for an endpoint that failed its threshold and has not passed its way back yet. */
  isHealthy(id: string): boolean
  /** Every endpoint's state, for /stats. */
  snapshot(): ({ endpoint: string } & Readonly<EndpointHealth>)[]
  /** Stops every timer and cancels the probes in flight. */
  stop(): void
}

interface Tracked {
  state: EndpointHealth
  /** The pending timer: the next probe, or the timeout of the one in flight. */
  timer: unknown
  inFlight: Cancellation | undefined
  removed: boolean
}

export function createHealthChecker(config: HealthCheckConfig, opts: HealthCheckerOptions): HealthChecker {
  const { clock, timers, probe } = opts
  const endpoints = new Map<string, Tracked>()
  let stopped = false

  function finish(id: string, t: Tracked, result: ProbeResult): void {
    if (t.removed || stopped) return
    t.inFlight = undefined
    const change = recordProbe(t.state, result, config, clock.now())
    if (change !== undefined) opts.onTransition?.(id, change, t.state)
    t.timer = timers.set(() => run(id, t), config.interval)
  }

  function run(id: string, t: Tracked): void {
    if (t.removed || stopped) return
    const signal = new Cancellation()
    t.inFlight = signal
    let settled = false
    const settle = (result: ProbeResult) => {
      if (settled) return
      settled = true
      timers.clear(t.timer)
      finish(id, t, result)
    }
    t.timer = timers.set(() => {
      signal.abort()
      settle({ passed: false, detail: `timeout after ${config.timeout} ms` })
    }, config.timeout)
    let pending: Promise<ProbeResult>
    try {
      pending = probe(id, config, signal)
    } catch (err) {
      pending = Promise.reject(err)
    }
    pending.then(settle, (err: unknown) =>
      settle({ passed: false, detail: err instanceof Error ? err.message : String(err) }),
    )
  }

  function remove(id: string, t: Tracked): void {
    t.removed = true
    timers.clear(t.timer)
    t.inFlight?.abort()
    endpoints.delete(id)
  }

  return {
    config,
    setEndpoints(ids) {
      if (stopped) return
      const next = new Set(ids)
      for (const [id, t] of endpoints) if (!next.has(id)) remove(id, t)
      for (const id of next) {
        if (endpoints.has(id)) continue
        const t: Tracked = {
          state: newEndpointHealth(),
          timer: undefined,
          inFlight: undefined,
          removed: false,
        }
        endpoints.set(id, t)
        run(id, t)
      }
    },
    isHealthy(id) {
      return endpoints.get(id)?.state.healthy ?? true
    },
    snapshot() {
      return [...endpoints].map(([endpoint, t]) => ({ endpoint, ...t.state }))
    },
    stop() {
      stopped = true
      for (const [id, t] of endpoints) remove(id, t)
    },
  }
}
