// Traffic mirroring (Istio's `mirrorPercentage`): a sampled copy of the request goes to another target,
// fire and forget. Only the sampling decision lives here; the pipeline sends the copy and drops its
// response.

import { hit } from './fault.ts'
import type { Random } from './types.ts'

/**
 * True when this request should be mirrored. `percent` is 0–100 with fractions; no mirror config means
 * never. Draws from `random` only when a draw can change the answer (0 < percent < 100).
 */
export function shouldMirror(cfg: { percent: number } | undefined, random: Random): boolean {
  return cfg !== undefined && hit(cfg.percent, random)
}
