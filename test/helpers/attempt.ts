// An attempt as the pipeline hands it to an invoker, and an endpoint of a plain HTTP target: what the
// invoker tests call an invoker with.

import type { AttemptRequest, Endpoint, TargetConfig } from '../../proxy-core/engine/types.ts'

const target: TargetConfig = {
  kind: 'http',
  name: 'v1',
  endpoints: [],
  dnsRefresh: 0,
  loadBalancer: 'round-robin',
}

export const endpoint = (origin: string): Endpoint => ({ id: origin, target })

export const attempt = (over: Partial<AttemptRequest> = {}): AttemptRequest => ({
  method: 'GET',
  path: '/',
  headers: {},
  body: null,
  service: 'svc',
  attempt: 1,
  ...over,
})

/**
 * Polls `check` every 5 ms until it holds or `ms` pass; returns whether it held. The bound is against a
 * hang, not a measurement: it is long (5 s) so a loaded machine cannot make it fail a test.
 */
export async function holdsWithin(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = performance.now() + ms
  while (!check()) {
    if (performance.now() > end) return false
    await new Promise((r) => setTimeout(r, 5))
  }
  return true
}
