// Retry backoff: fully jittered exponential, as Envoy's router does it. Full jitter (a uniform draw in
// [0, cap] rather than cap ± a little) spreads the retries of many clients that failed together, so a
// brief upstream blip does not come back as a synchronized wave.

import type { Random } from './types.ts'

/**
 * Envoy's defaults: a 25 ms base interval, and a max interval of 10 × base (250 ms). Milliseconds.
 * Routes that set `backoff` in the mesh file override both.
 */
export const DEFAULT_BACKOFF: Readonly<{ base: number; max: number }> = Object.freeze({ base: 25, max: 250 })

/**
 * How long to wait before retry number `retry` (1 for the first retry, 2 for the second, ...), in whole
 * milliseconds: uniform in [0, min(max, base · 2^(retry-1))]. A `retry` below 1 is treated as 1, so a
 * caller's off-by-one never turns into a zero cap. `random` is the injected [0, 1) source.
 */
export function backoffDelay(retry: number, base: number, max: number, random: Random): number {
  if (!(base > 0) || !(max > 0)) return 0
  const exponent = Math.max(1, Math.floor(retry)) - 1
  // 2 ** exponent overflows to Infinity for very large retry numbers; min() then yields `max`.
  const cap = Math.floor(Math.min(max, base * 2 ** exponent))
  // floor(u · (cap + 1)) is uniform over the integers 0..cap, so the cap itself is reachable and the
  // mean is exactly cap / 2. The min() guards a Random that misbehaves and returns 1.
  return Math.min(cap, Math.floor(random() * (cap + 1)))
}
