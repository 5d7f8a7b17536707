// Local sampling for requests that arrive without a decision (no `Sampled=` from the caller).
// X-Ray's default rule: the first `reservoirPerSecond` requests of each second, then `rate` percent of
// the rest. Defaults 1/s and 5%: the X-Ray SDKs' built-in default rule.

import type { Clock, Random } from '../engine/types.ts'

export interface SamplerConfig {
  /** Requests per second always traced (the reservoir). Fractions are rounded down. */
  reservoirPerSecond: number
  /** Percent (0–100) of the requests past the reservoir that are traced. */
  rate: number
}

export interface Sampler {
  sample(): boolean
}

export const defaultSampling: SamplerConfig = Object.freeze({ reservoirPerSecond: 1, rate: 5 })

export function createSampler(cfg: SamplerConfig, clock: Clock, random: Random): Sampler {
  const reservoir = Math.max(0, Math.floor(cfg.reservoirPerSecond))
  const rate = Math.min(100, Math.max(0, cfg.rate))
  // The reservoir refills at each whole second of the clock (a fixed window, as in X-Ray).
  let window = Number.NaN
  let used = 0
  return {
    sample(): boolean {
      const second = Math.floor(clock.now() / 1000)
      if (second !== window) {
        window = second
        used = 0
      }
      if (used < reservoir) {
        used++
        return true
      }
      return random() * 100 < rate
    },
  }
}
