// dns:// targets: every A and AAAA record an endpoint, re-resolved on schedule, the last good set kept
// when resolution fails; then the same through the sidecar process, traffic following DNS.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DnsTarget, startDnsDiscovery } from '../../proxy-core/sidecar/dns-discovery.ts'
import { holdsWithin } from '../helpers/attempt.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { send } from './client.ts'
import { type DnsServer, startDnsServer } from './dns-server.ts'

let dns: DnsServer
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

beforeAll(async () => {
  dns = await startDnsServer()
})

afterAll(async () => {
  await dns?.close()
})

describe('dns discovery', () => {
  it('turns every A and AAAA record into an endpoint and follows changes', async () => {
    dns.set('reviews.test', ['127.0.0.2', '127.0.0.1', '::1'])
    const target: DnsTarget = {
      service: 'reviews',
      target: 'v2',
      host: 'reviews.test',
      port: 9080,
      protocol: 'http',
      refreshMs: 100,
    }
    const applied: string[][] = []
    const errors: unknown[] = []
    const discovery = startDnsDiscovery([target], (_t, urls) => applied.push(urls), new Map(), {
      servers: [dns.address],
      onError: (_t, err) => errors.push(err),
    })
    try {
      await discovery.refresh()
      expect(applied[0]).toEqual(['http://127.0.0.1:9080', 'http://127.0.0.2:9080', 'http://[::1]:9080'])

      // The schedule (every 100 ms) picks the change up by itself.
      dns.set('reviews.test', ['127.0.0.3'])
      expect(await holdsWithin(() => applied.length >= 2, 10_000)).toBe(true)
      expect(applied.at(-1)).toEqual(['http://127.0.0.3:9080'])

      // Resolution failing: over two failed refreshes the last good set stays, and nothing is applied.
      const before = applied.length
      const failedBefore = errors.length
      dns.failing = true
      expect(await holdsWithin(() => errors.length >= failedBefore + 2, 10_000)).toBe(true)
      expect(applied.length).toBe(before)
      dns.failing = false
    } finally {
      discovery.stop()
    }
  })

  it('hands a new runtime the last known endpoints at once', async () => {
    dns.set('ratings.test', ['127.0.0.1'])
    const target: DnsTarget = {
      service: 'ratings',
      target: 'v1',
      host: 'ratings.test',
      port: 80,
      protocol: 'http',
      refreshMs: 0,
    }
    const cache = new Map<string, string[]>()
    const first = startDnsDiscovery([target], () => {}, cache, { servers: [dns.address] })
    await first.refresh()
    first.stop()
    dns.failing = true
    const applied: string[][] = []
    const second = startDnsDiscovery([target], (_t, urls) => applied.push(urls), cache, {
      servers: [dns.address],
    })
    // Before any answer (the server is failing anyway), the cached set is already in place.
    expect(applied).toEqual([['http://127.0.0.1:80']])
    second.stop()
    dns.failing = false
  })
})

describe('dns discovery in the sidecar', () => {
  let a: Upstream
  let b: Upstream
  let sidecar: SidecarProcess
  const files = meshDir()

  beforeAll(async () => {
    // The same port on two loopback addresses: DNS alone decides which one gets the traffic.
    a = await startUpstream('a')
    b = await startUpstream('b', {}, 1, { host: '127.0.0.2', port: a.port })
  })
  afterAll(async () => {
    await sidecar?.stop()
    await Promise.all([a?.close(), b?.close()])
    files.remove()
  })

  it('routes to the addresses DNS returns and follows a change', async () => {
    dns.set('web.test', ['127.0.0.1'])
    const configPath = files.write('mesh.json', {
      version: 1,
      mesh: 'dns',
      services: {
        web: {
          targets: { v1: { http: `dns://web.test:${a.port}`, dnsRefresh: '100ms' } },
          routes: [{ name: 'default', to: 'v1', retries: { attempts: 0 } }],
        },
      },
    })
    sidecar = await startSidecarProcess({
      configPath,
      service: 'client',
      env: { MESHGATE_DNS_SERVERS: dns.address },
    })
    let r = await send(sidecar.outbound, { host: 'web' })
    for (let i = 0; i < 50 && r.status !== 200; i++) {
      await sleep(50)
      r = await send(sidecar.outbound, { host: 'web' })
    }
    expect(r.status).toBe(200)
    expect(r.headers['x-upstream']).toBe('a')
    expect(b.count()).toBe(0)

    dns.set('web.test', ['127.0.0.2'])
    // Bounded only against a hang: the sidecar re-resolves every 100 ms.
    for (let i = 0; i < 500 && r.headers['x-upstream'] !== 'b'; i++) {
      await sleep(20)
      r = await send(sidecar.outbound, { host: 'web' })
    }
    expect(r.headers['x-upstream']).toBe('b')
    // Once moved, it stays: every request goes to the new address.
    const before = a.count()
    for (let i = 0; i < 10; i++)
      expect((await send(sidecar.outbound, { host: 'web' })).headers['x-upstream']).toBe('b')
    expect(a.count()).toBe(before)
  })
})
