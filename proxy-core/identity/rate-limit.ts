// Per-caller token buckets on the receiver (Linkerd's HTTPLocalRateLimitPolicy: a bucket per
// identity, with overrides for named callers). Time comes from the injected clock; a bucket refills
// continuously at `rps` up to `burst`.

import type { Clock, RateBucketConfig, RateLimitConfig } from '../engine/types.ts'

interface Bucket {
  tokens: number
  /** Clock ms of the last refill. */
  at: number
  readonly rps: number
  readonly burst: number
}

/**
 * 10 000 buckets per service: callers come from verified tokens of trusted issuers, so the set is the
 * mesh's workloads; a bound still holds if an issuer mints for many roles. When full, buckets that
 * have refilled (idle callers) are dropped first; a full bucket forgets nothing.
 */
const MAX_BUCKETS = 10_000

export interface RateLimiter {
  /** Takes one token for `key`; the answer is 0 when allowed, else the ms until a token is due. */
  take(key: string, override: string | undefined): number
}

export function createRateLimiter(config: RateLimitConfig, clock: Clock): RateLimiter {
  const buckets = new Map<string, Bucket>()

  function bucketConfig(override: string | undefined): RateBucketConfig {
    return (override === undefined ? undefined : config.perCaller[override]) ?? config
  }

  function prune(now: number): void {
    for (const [key, b] of buckets) {
      if (b.tokens + ((now - b.at) / 1000) * b.rps >= b.burst) buckets.delete(key)
    }
    // Still full: every caller is mid-burst. Forget the oldest half rather than grow without bound.
    if (buckets.size >= MAX_BUCKETS) {
      let n = buckets.size / 2
      for (const key of buckets.keys()) {
        if (n-- <= 0) break
        buckets.delete(key)
      }
    }
  }

  return {
    take(key, override) {
      const now = clock.now()
      let b = buckets.get(key)
      if (b === undefined) {
        if (buckets.size >= MAX_BUCKETS) prune(now)
        const c = bucketConfig(override)
        b = { tokens: c.burst, at: now, rps: c.rps, burst: c.burst }
        buckets.set(key, b)
      } else if (now > b.at) {
        b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) / 1000) * b.rps)
        b.at = now
      }
      if (b.tokens >= 1) {
        b.tokens -= 1
        return 0
      }
      return Math.ceil(((1 - b.tokens) / b.rps) * 1000)
    },
  }
}
