// The retry budget of one destination service: retries may add only a bounded amount of load on top of
// the original requests, so a failing upstream sees at most a little more traffic, not a retry storm
// multiplied by `attempts`.
//
// The model (one rule, two allowances, either suffices):
// 1. Concurrency share (Envoy's `retry_budget.budget_percent`): a retry may start while the retries in
//    flight, this one included, are at most `percent`% of the requests in flight. With 20% and 50
//    active requests, 10 retries may run at once.
// 2. A floor (Linkerd's `minRetriesPerSecond`): a retry may start while fewer than `minPerSecond`
//    retries started in the last second, whatever the concurrency. This lets a service with little
//    traffic (one request at a time makes 20% of it zero) still retry.
// Counting "in flight" rather than a 10 s rate window (Linkerd) keeps the state to two counters and a
// small ring, and it recovers as soon as retries finish; the floor recovers as the clock moves on.

import type { Clock, RetryBudgetConfig } from './types.ts'

/** 20% of active requests plus 10 retries per second: Linkerd's retry budget default. */
export const DEFAULT_RETRY_BUDGET: Readonly<RetryBudgetConfig> = Object.freeze({
  percent: 20,
  minPerSecond: 10,
})

export interface RetryBudgetSnapshot {
  activeRequests: number
  activeRetries: number
  /** Retries refused since creation, for the `retry-budget-exhausted` metric. */
  exhausted: number
}

export interface RetryBudget {
  /** A request (not an attempt) to this service began. Call once per request, before its first try. */
  requestStarted(): void
  /** That request finished, however it ended. */
  requestFinished(): void
  /** Ask to start one retry; true reserves it, and the caller must call `retryFinished` when it ends. */
  tryAcquireRetry(): boolean
  /** A retry that `tryAcquireRetry` allowed has finished. */
  retryFinished(): void
  snapshot(): RetryBudgetSnapshot
}

/** The floor's window is one second, in milliseconds; a fractional rate stretches it (see below). */
const SECOND_MS = 1000

export function createRetryBudget(cfg: RetryBudgetConfig, clock: Clock): RetryBudget {
  const percent = Math.max(0, cfg.percent)
  // "N per second" is kept as "at most `slots` retries in any `windowMs`": for a whole N that is N per
  // 1000 ms; a fraction such as 0.5/s becomes 1 per 2000 ms instead of rounding down to never.
  const rate = Math.max(0, cfg.minPerSecond)
  const slots = rate > 0 ? Math.max(1, Math.floor(rate)) : 0
  const windowMs = slots > 0 ? (SECOND_MS * slots) / rate : 0
  // Start times of the most recent `slots` retries, oldest at `next`. Fixed size: no growth with load.
  const starts = new Array<number>(slots).fill(Number.NEGATIVE_INFINITY)
  let next = 0

  let activeRequests = 0
  let activeRetries = 0
  let exhausted = 0

  function floorAllows(now: number): boolean {
    // The oldest of the last `slots` starts fell out of the window, so fewer than `slots` are in it.
    return slots > 0 && (starts[next] as number) <= now - windowMs
  }

  return {
    requestStarted() {
      activeRequests++
    },
    requestFinished() {
      if (activeRequests > 0) activeRequests--
    },
    tryAcquireRetry() {
      const now = clock.now()
      // Compared as percent × requests, not a fraction: 0.29 × 100 is 28.999…, which would refuse the 29th.
      const withinShare = (activeRetries + 1) * 100 <= percent * activeRequests
      if (!withinShare && !floorAllows(now)) {
        exhausted++
        return false
      }
      activeRetries++
      if (slots > 0) {
        starts[next] = now
        next = (next + 1) % slots
      }
      return true
    },
    retryFinished() {
      if (activeRetries > 0) activeRetries--
    },
    snapshot() {
      return { activeRequests, activeRetries, exhausted }
    },
  }
}
