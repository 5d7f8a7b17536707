// Fault injection (Istio's HTTPFaultInjection): delay and abort are two independent coin flips, so with
// `delay: 10%` and `abort: 1%` about 0.1% of requests are both delayed and then aborted.

import type { FaultConfig, Random } from './types.ts'

/** What to do to one request. 0 means "no delay" and "no abort" respectively. */
export interface FaultDecision {
  /** Milliseconds to wait before forwarding (or before aborting). */
  delayMs: number
  /** HTTP status to answer with instead of forwarding, or 0 to forward. */
  abortStatus: number
}

const NO_FAULT: FaultDecision = Object.freeze({ delayMs: 0, abortStatus: 0 })

/**
 * `percent` is 0–100 with fractions (0.1 means one request in a thousand). One `random()` draw per
 * configured fault, delay first, and none when a fault is absent: a seeded sequence stays predictable.
 */
export function decideFault(cfg: FaultConfig | undefined, random: Random): FaultDecision {
  if (cfg === undefined || (cfg.delay === undefined && cfg.abort === undefined)) return NO_FAULT
  const delayMs = cfg.delay !== undefined && hit(cfg.delay.percent, random) ? cfg.delay.duration : 0
  const abortStatus = cfg.abort !== undefined && hit(cfg.abort.percent, random) ? cfg.abort.status : 0
  return { delayMs, abortStatus }
}

/** True with probability percent/100; 0 never fires and 100 always does, whatever `random` returns. */
export function hit(percent: number, random: Random): boolean {
  if (!(percent > 0)) return false
  if (percent >= 100) return true
  return random() * 100 < percent
}
