// Passive health checking (Envoy/Istio outlier detection, the consecutive-error detectors): an endpoint
// that keeps failing is taken out of load balancing for a while, longer each time it is ejected again.
//
// Choices where the anchors leave room, for the README:
// - Checked lazily: there is no sweep timer (the engine owns no timers). An ejected endpoint returns
//   the first time anyone asks after its ejection time has passed, which is at least as soon as Envoy's
//   sweep every `interval` would return it.
// - `interval` instead paces forgiveness: every full `interval` an endpoint spends back in service
//   without being ejected takes one off its ejection count, as Envoy does per sweep for healthy hosts.
//   So an endpoint that fails again right after returning is ejected for longer (count + 1), while one
//   that stayed healthy for a while starts over from the base time.
// - Ejection time is baseEjectionTime × ejection count, capped at Envoy's `max_ejection_time` default
//   of 300 s (or the base time, if that is longer).
// - maxEjectionPercent: an ejection is allowed if no endpoint is ejected yet (Envoy: "will eject at
//   least one host regardless of the value"), or if after it the ejected share is still within the
//   percent. Unlike Envoy, which compares before ejecting and can end above the percent, we never go
//   over it apart from that first one. 0 turns ejection off entirely.
// - A counter of 0 disables its detector (Istio: `consecutive5xxErrors: 0` disables).
// - Outcomes seen while an endpoint is ejected (traffic reaching it in panic mode) are not counted:
//   it gets a clean slate when it returns.
// - `throttled` counts for neither side: Lambda throttling is about the account's or the function's
//   concurrency, not a faulty endpoint, and ejecting the only endpoint of a function helps nobody.

import type { AttemptOutcome } from './retry-policy.ts'
import { type Clock, FailureKinds, type OutlierConfig } from './types.ts'

/**
 * Istio's DestinationRule defaults: 5 consecutive 5xx, 10 s interval, 30 s base ejection time, at most
 * 10% of endpoints ejected. Gateway-error counting is off (0), as in Istio. Durations in milliseconds.
 */
export const DEFAULT_OUTLIER_DETECTION: Readonly<OutlierConfig> = Object.freeze({
  consecutive5xx: 5,
  consecutiveGatewayErrors: 0,
  interval: 10_000,
  baseEjectionTime: 30_000,
  maxEjectionPercent: 10,
})

/** Envoy's `max_ejection_time` default, in milliseconds: however often an endpoint fails, 5 minutes. */
export const MAX_EJECTION_TIME = 300_000

export interface OutlierDetector {
  /**
   * Count one attempt's outcome against `endpointId`. `totalEndpoints` is the size of the endpoint's
   * pool right now, for the ejection cap. Returns true only when this call ejected the endpoint.
   */
  record(endpointId: string, outcome: AttemptOutcome, totalEndpoints: number): boolean
  isEjected(endpointId: string): boolean
  /** Endpoints ejected right now. */
  ejectedCount(): number
  /** Drop all state for an endpoint that left the pool (DNS change, config reload). */
  forget(endpointId: string): void
}

interface EndpointHealth {
  consecutive5xx: number
  consecutiveGateway: number
  /** Ejections so far, minus forgiveness (see above). Multiplies the base ejection time. */
  ejections: number
  /** Clock time the current or last ejection ends; -Infinity when never ejected. */
  ejectedUntil: number
}

const FAILURE = { none: 0, server: 1, gateway: 2 } as const
type Failure = (typeof FAILURE)[keyof typeof FAILURE]

/** 5xx-class (server) or also gateway-class, or neither; undefined for outcomes that count for nothing. */
function classify(outcome: AttemptOutcome): Failure | undefined {
  if ('status' in outcome) {
    const { status } = outcome
    if (status === 502 || status === 503 || status === 504) return FAILURE.gateway
    return status >= 500 && status <= 599 ? FAILURE.server : FAILURE.none
  }
  switch (outcome.failure) {
    case FailureKinds.throttled:
      return undefined
    // connect-failure and reset stand for the 503 a proxy would answer, timeout for a 504, and a
    // Lambda function error surfaces as 502: all gateway errors, as in Envoy's local-origin mapping.
    default:
      return FAILURE.gateway
  }
}

export function createOutlierDetector(cfg: OutlierConfig, clock: Clock): OutlierDetector {
  const endpoints = new Map<string, EndpointHealth>()
  const maxEjectionTime = Math.max(MAX_EJECTION_TIME, cfg.baseEjectionTime)

  function ejectedNow(now: number): number {
    let n = 0
    for (const health of endpoints.values()) if (health.ejectedUntil > now) n++
    return n
  }

  function mayEject(now: number, total: number): boolean {
    if (!(cfg.maxEjectionPercent > 0)) return false
    const ejected = ejectedNow(now)
    return ejected === 0 || (ejected + 1) * 100 <= cfg.maxEjectionPercent * total
  }

  function eject(health: EndpointHealth, now: number): void {
    if (health.ejections > 0 && cfg.interval > 0 && Number.isFinite(health.ejectedUntil)) {
      const forgiven = Math.floor((now - health.ejectedUntil) / cfg.interval)
      health.ejections = Math.max(0, health.ejections - forgiven)
    }
    health.ejections++
    health.ejectedUntil = now + Math.min(maxEjectionTime, cfg.baseEjectionTime * health.ejections)
    health.consecutive5xx = 0
    health.consecutiveGateway = 0
  }

  return {
    record(endpointId, outcome, totalEndpoints) {
      const kind = classify(outcome)
      if (kind === undefined) return false
      const now = clock.now()
      let health = endpoints.get(endpointId)
      if (health === undefined) {
        // Successes on an endpoint we know nothing about change nothing; skip the allocation.
        if (kind === FAILURE.none) return false
        health = {
          consecutive5xx: 0,
          consecutiveGateway: 0,
          ejections: 0,
          ejectedUntil: Number.NEGATIVE_INFINITY,
        }
        endpoints.set(endpointId, health)
      }
      if (health.ejectedUntil > now) return false

      if (kind === FAILURE.none) {
        health.consecutive5xx = 0
        health.consecutiveGateway = 0
        return false
      }
      health.consecutive5xx++
      // A non-gateway 5xx (500, 501, ...) breaks a run of gateway errors, as in Envoy.
      health.consecutiveGateway = kind === FAILURE.gateway ? health.consecutiveGateway + 1 : 0

      const tripped =
        (cfg.consecutive5xx > 0 && health.consecutive5xx >= cfg.consecutive5xx) ||
        (cfg.consecutiveGatewayErrors > 0 && health.consecutiveGateway >= cfg.consecutiveGatewayErrors)
      if (!tripped || !mayEject(now, totalEndpoints)) return false
      eject(health, now)
      return true
    },
    isEjected(endpointId) {
      const health = endpoints.get(endpointId)
      return health !== undefined && health.ejectedUntil > clock.now()
    },
    ejectedCount() {
      return ejectedNow(clock.now())
    },
    forget(endpointId) {
      endpoints.delete(endpointId)
    },
  }
}
