// Endpoint selection within one HTTP target. Two kinds, as in Envoy: round robin, and least request
// with the power of two choices (sample two distinct endpoints, take the one with fewer requests in
// flight), which avoids the herd that "always the global minimum" causes when many callers share stale
// counts, at O(1) per pick.
//
// Ejected endpoints are skipped. If every endpoint is ejected we pick among all of them anyway: Envoy's
// panic mode (below a healthy share of 50% it balances over all hosts) exists because sending to a
// suspect endpoint beats failing every request. We panic only at 0% healthy, because outlier detection
// already caps ejections at maxEjectionPercent; with a cap of 50% or less, the only way to fall below
// half healthy is its "always allow one ejection" rule on a pool of one, which is exactly "all ejected".

import { type Endpoint, type LoadBalancer, LoadBalancers, type Random } from './types.ts'

export interface LoadBalancerState {
  /** The endpoint for the next attempt, or undefined when `endpoints` is empty. */
  pick(
    endpoints: readonly Endpoint[],
    isEjected: (id: string) => boolean,
    random: Random,
  ): Endpoint | undefined
  /** An attempt to `id` began; least-request counts it. */
  started(id: string): void
  /** That attempt ended, however it ended. */
  finished(id: string): void
  /** Attempts in flight to `id`, as counted by `started`/`finished`. */
  activeRequests(id: string): number
}

export function createLoadBalancer(kind: LoadBalancer): LoadBalancerState {
  const active = new Map<string, number>()
  // Round robin starts at a random offset: short-lived Lambda instances each build a fresh balancer,
  // and starting all of them at index 0 would send every first request to the same endpoint.
  let cursor = -1

  const load = (id: string) => active.get(id) ?? 0

  function candidates(
    endpoints: readonly Endpoint[],
    isEjected: (id: string) => boolean,
  ): readonly Endpoint[] {
    let healthy: Endpoint[] | undefined
    for (let i = 0; i < endpoints.length; i++) {
      const endpoint = endpoints[i] as Endpoint
      if (isEjected(endpoint.id)) {
        // Copy only once something is ejected: the common all-healthy pick allocates nothing.
        healthy ??= endpoints.slice(0, i)
      } else {
        healthy?.push(endpoint)
      }
    }
    if (healthy === undefined) return endpoints
    return healthy.length > 0 ? healthy : endpoints
  }

  function roundRobin(pool: readonly Endpoint[], random: Random): Endpoint {
    if (cursor < 0) cursor = Math.floor(random() * pool.length)
    cursor = (cursor + 1) % pool.length
    return pool[cursor] as Endpoint
  }

  function leastRequest(pool: readonly Endpoint[], random: Random): Endpoint {
    const n = pool.length
    if (n === 1) return pool[0] as Endpoint
    const i = Math.min(n - 1, Math.floor(random() * n))
    // Draw the second from the other n - 1 so the two are always distinct.
    let j = Math.min(n - 2, Math.floor(random() * (n - 1)))
    if (j >= i) j++
    const a = pool[i] as Endpoint
    const b = pool[j] as Endpoint
    // Ties go to the first draw, which is itself uniform, so ties stay unbiased.
    return load(b.id) < load(a.id) ? b : a
  }

  return {
    pick(endpoints, isEjected, random) {
      if (endpoints.length === 0) return undefined
      const pool = candidates(endpoints, isEjected)
      return kind === LoadBalancers.leastRequest ? leastRequest(pool, random) : roundRobin(pool, random)
    },
    started(id) {
      active.set(id, load(id) + 1)
    },
    finished(id) {
      const n = load(id)
      // Delete at zero so endpoints that come and go (DNS) do not accumulate entries.
      if (n <= 1) active.delete(id)
      else active.set(id, n - 1)
    },
    activeRequests(id) {
      return load(id)
    },
  }
}
