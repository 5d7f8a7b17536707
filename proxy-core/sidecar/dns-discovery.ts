// Endpoint discovery for `dns://host:port` targets (Envoy's STRICT_DNS): every `dnsRefresh` ms the name
// is resolved for A and AAAA records, each address becomes an endpoint, and the runtime gets the new
// set when it changed. A failed resolution keeps the last good set: a DNS hiccup must not empty a
// target that is serving fine.

import { lookup, Resolver } from 'node:dns/promises'
import type { MeshConfig } from '../engine/types.ts'

export interface DnsTarget {
  service: string
  target: string
  host: string
  port: number
  protocol: 'http' | 'https' | 'tcp'
  refreshMs: number
}

export interface DnsDiscoveryOptions {
  /** Resolver servers (`127.0.0.1:5353`); default: the system's (/etc/resolv.conf). */
  servers?: string[]
  /** Told of each resolution that failed (the last good set stays in place). */
  onError?: (target: DnsTarget, err: unknown) => void
}

export interface DnsDiscovery {
  stop(): void
  /** Resolves every target once now (also done at start); resolves when all answered. */
  refresh(): Promise<void>
}

/** The dns:// targets of a config. */
export function dnsTargets(config: MeshConfig): DnsTarget[] {
  const out: DnsTarget[] = []
  for (const svc of Object.values(config.services)) {
    for (const t of Object.values(svc.targets)) {
      if (t.kind !== 'http' || t.dns === undefined) continue
      out.push({ service: svc.name, target: t.name, ...t.dns, refreshMs: t.dnsRefresh })
    }
  }
  return out
}

/** A cache key that changes when anything about the target's resolution changes. */
export function dnsKey(t: DnsTarget): string {
  return `${t.service}/${t.target}/${t.protocol}://${t.host}:${t.port}`
}

function endpointUrl(t: DnsTarget, address: string): string {
  return `${t.protocol}://${address.includes(':') ? `[${address}]` : address}:${t.port}`
}

/**
 * The addresses of `host`: A and AAAA from DNS. When DNS knows neither (a name only /etc/hosts has,
 * like `localhost`, or a test machine without DNS), getaddrinfo is asked instead, so names that work
 * for every other program work here too.
 */
async function resolveAddresses(resolver: Resolver, host: string): Promise<string[]> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)])
  const found = [
    ...(v4.status === 'fulfilled' ? v4.value : []),
    ...(v6.status === 'fulfilled' ? v6.value : []),
  ]
  if (found.length > 0) return found
  if (v4.status === 'fulfilled' || v6.status === 'fulfilled')
    throw new Error(`no A or AAAA records for ${host}`)
  try {
    const all = await lookup(host, { all: true })
    if (all.length > 0) return all.map((a) => a.address)
  } catch {
    // fall through to the resolver's own error, which says more
  }
  throw v4.reason
}

/**
 * Starts resolving the targets. `apply` gets the full, sorted endpoint list whenever it changes (and
 * the first time); `cache` carries the last good sets across config reloads, so a new runtime starts
 * with endpoints instead of waiting for its first resolution.
 */
export function startDnsDiscovery(
  targets: DnsTarget[],
  apply: (t: DnsTarget, urls: string[]) => void,
  cache: Map<string, string[]>,
  opts: DnsDiscoveryOptions = {},
): DnsDiscovery {
  const resolver = new Resolver({ timeout: 2000, tries: 2 })
  if (opts.servers !== undefined && opts.servers.length > 0) resolver.setServers(opts.servers)
  const timers: NodeJS.Timeout[] = []
  let stopped = false

  async function resolveOne(t: DnsTarget): Promise<void> {
    try {
      const addresses = await resolveAddresses(resolver, t.host)
      if (stopped) return
      const urls = [...new Set(addresses.map((a) => endpointUrl(t, a)))].sort()
      const key = dnsKey(t)
      const prev = cache.get(key)
      cache.set(key, urls)
      if (prev === undefined || prev.join(' ') !== urls.join(' ')) apply(t, urls)
    } catch (err) {
      if (!stopped) opts.onError?.(t, err)
    }
  }

  for (const t of targets) {
    const known = cache.get(dnsKey(t))
    if (known !== undefined) apply(t, known)
    if (t.refreshMs > 0) {
      const timer = setInterval(() => void resolveOne(t), t.refreshMs)
      // Discovery never keeps the process alive on its own.
      timer.unref()
      timers.push(timer)
    }
  }
  const first = Promise.all(targets.map(resolveOne)).then(() => {})

  return {
    stop() {
      stopped = true
      for (const t of timers) clearInterval(t)
      resolver.cancel()
    },
    refresh: () => (targets.length === 0 ? first : Promise.all(targets.map(resolveOne)).then(() => {})),
  }
}
