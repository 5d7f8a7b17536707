// Cloud Map discovery in process: the real @aws-sdk/client-servicediscovery against a local endpoint
// that speaks DiscoverInstances (test/helpers/cloudmap-endpoint.ts). What is asked for, what becomes
// an endpoint, what a failure and an empty answer do.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { parseCloudMapUrl } from '../../proxy-core/config/normalize.ts'
import {
  type CloudMapCache,
  type CloudMapTarget,
  createSdkDiscover,
  instanceUrl,
  startCloudMapDiscovery,
} from '../../proxy-core/sidecar/cloudmap-discovery.ts'
import {
  type CloudMapEndpoint,
  INTERNAL,
  startCloudMapEndpoint,
  THROTTLED,
} from '../helpers/cloudmap-endpoint.ts'

let endpoint: CloudMapEndpoint
let discover: ReturnType<typeof createSdkDiscover>

beforeAll(async () => {
  endpoint = await startCloudMapEndpoint()
  discover = createSdkDiscover({
    endpoint: endpoint.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    disableHostPrefix: true,
  })
})
afterAll(async () => {
  discover?.close()
  await endpoint?.close()
})

let n = 0
/** A fresh Cloud Map service per test, so tests share the endpoint but not its registry. */
let ns: string
beforeEach(() => {
  ns = `ns${++n}.local`
})

function target(url: string, refresh = 0): CloudMapTarget {
  const parsed = parseCloudMapUrl(url, refresh)
  if ('error' in parsed) throw new Error(parsed.error)
  return { service: 'web', target: 'v1', cloudMap: parsed.config }
}

function collect() {
  const applied: string[][] = []
  const errors: unknown[] = []
  const recovered: number[] = []
  return {
    applied,
    errors,
    recovered,
    apply: (_t: CloudMapTarget, urls: string[]) => applied.push(urls),
    onError: (_t: CloudMapTarget, err: unknown) => errors.push(err),
    onRecovered: () => recovered.push(applied.length),
  }
}

const ip = (a: string, port: number) => ({ AWS_INSTANCE_IPV4: a, AWS_INSTANCE_PORT: String(port) })

describe('cloud map discovery', () => {
  it('asks DiscoverInstances for HEALTHY instances with the filters, without the data- host prefix', async () => {
    endpoint.register(ns, 'web', 'i-1', { ...ip('127.0.0.1', 9080), version: 'v2', zone: 'a' })
    endpoint.register(ns, 'web', 'i-2', { ...ip('127.0.0.2', 9080), version: 'v2', zone: 'b' })
    endpoint.register(ns, 'web', 'i-3', { ...ip('127.0.0.3', 9080), version: 'v1', zone: 'a' })
    endpoint.register(ns, 'web', 'i-4', { ...ip('127.0.0.4', 9080), version: 'v2' }, 'UNHEALTHY')
    const c = collect()
    const before = endpoint.calls.length
    const d = startCloudMapDiscovery([target(`cloudmap://${ns}/web?version=v2`)], c.apply, new Map(), {
      discover,
      onError: c.onError,
    })
    await d.refresh()
    d.stop()
    expect(c.errors).toEqual([])
    expect(c.applied[0]).toEqual(['http://127.0.0.1:9080', 'http://127.0.0.2:9080'])
    const call = endpoint.calls[before]!
    expect(call.status).toBe(200)
    expect(call.body).toEqual({
      NamespaceName: ns,
      ServiceName: 'web',
      HealthStatus: 'HEALTHY',
      MaxResults: 1000,
      QueryParameters: { version: 'v2' },
    })
    expect(call.headers.host).toBe(new URL(endpoint.url).host)
    expect(call.headers['x-amz-target']).toBe('Route53AutoNaming_v20170314.DiscoverInstances')

    // OptionalParameters: preferred when some instance has them, ignored when none does.
    const preferred = collect()
    const d2 = startCloudMapDiscovery(
      [target(`cloudmap://${ns}/web?version=v2&optional.zone=b`)],
      preferred.apply,
      new Map(),
      { discover },
    )
    await d2.refresh()
    d2.stop()
    expect(preferred.applied[0]).toEqual(['http://127.0.0.2:9080'])
    expect(endpoint.calls.at(-1)!.body.OptionalParameters).toEqual({ zone: 'b' })
    const ignored = collect()
    const d3 = startCloudMapDiscovery(
      [target(`cloudmap://${ns}/web?version=v2&optional.zone=nowhere`)],
      ignored.apply,
      new Map(),
      { discover },
    )
    await d3.refresh()
    d3.stop()
    expect(ignored.applied[0]).toEqual(['http://127.0.0.1:9080', 'http://127.0.0.2:9080'])
  })

  it('follows instances that appear, leave, turn unhealthy and come back', async () => {
    endpoint.register(ns, 'web', 'i-1', ip('127.0.0.1', 1001))
    const c = collect()
    const t = target(`cloudmap://${ns}/web`)
    const d = startCloudMapDiscovery([t], c.apply, new Map(), { discover })
    await d.refresh()
    endpoint.register(ns, 'web', 'i-2', ip('127.0.0.1', 1002))
    await d.refresh()
    endpoint.setHealth(ns, 'web', 'i-1', 'UNHEALTHY')
    await d.refresh()
    endpoint.deregister(ns, 'web', 'i-2')
    endpoint.setHealth(ns, 'web', 'i-1', 'HEALTHY')
    await d.refresh()
    // Nothing changed: nothing applied.
    await d.refresh()
    d.stop()
    expect(c.applied).toEqual([
      ['http://127.0.0.1:1001'],
      ['http://127.0.0.1:1001', 'http://127.0.0.1:1002'],
      ['http://127.0.0.1:1002'],
      ['http://127.0.0.1:1001'],
    ])
  })

  it('keeps the last good set when the API fails, says so once per streak, and recovers', async () => {
    endpoint.register(ns, 'web', 'i-1', ip('127.0.0.1', 2001))
    const c = collect()
    const cache: CloudMapCache = new Map()
    const d = startCloudMapDiscovery([target(`cloudmap://${ns}/web`)], c.apply, cache, {
      discover,
      onError: c.onError,
      onRecovered: c.onRecovered,
    })
    await d.refresh()
    endpoint.failWith(INTERNAL)
    endpoint.register(ns, 'web', 'i-2', ip('127.0.0.1', 2002))
    await d.refresh()
    await d.refresh()
    const status = [...cache.values()][0]!
    expect(c.applied).toEqual([['http://127.0.0.1:2001']])
    expect(c.errors).toHaveLength(1)
    expect(String(c.errors[0])).toMatch(/InternalFailure|boom/)
    expect(status).toMatchObject({ stale: true, failures: 2, endpoints: ['http://127.0.0.1:2001'] })
    expect(status.lastError).toMatch(/boom/)

    endpoint.failWith(THROTTLED)
    await d.refresh()
    expect(status.failures).toBe(3)
    expect(c.errors).toHaveLength(1)

    endpoint.failWith(undefined)
    await d.refresh()
    d.stop()
    expect(status.stale).toBe(false)
    expect(c.recovered).toHaveLength(1)
    expect(c.applied.at(-1)).toEqual(['http://127.0.0.1:2001', 'http://127.0.0.1:2002'])
  })

  it('treats a successful empty answer as no endpoints, and a missing service as a failure', async () => {
    endpoint.register(ns, 'web', 'i-1', ip('127.0.0.1', 3001))
    const c = collect()
    const d = startCloudMapDiscovery([target(`cloudmap://${ns}/web`)], c.apply, new Map(), {
      discover,
      onError: c.onError,
    })
    await d.refresh()
    endpoint.setHealth(ns, 'web', 'i-1', 'UNHEALTHY')
    await d.refresh()
    d.stop()
    expect(c.applied).toEqual([['http://127.0.0.1:3001'], []])

    const missing = collect()
    const d2 = startCloudMapDiscovery([target(`cloudmap://${ns}/nothing`)], missing.apply, new Map(), {
      discover,
      onError: missing.onError,
    })
    await d2.refresh()
    d2.stop()
    expect(missing.applied).toEqual([])
    expect(String(missing.errors[0])).toMatch(/ServiceNotFound|no such service/)
  })

  it('hands a new discovery (a reloaded config) the last good set before it asks', async () => {
    endpoint.register(ns, 'web', 'i-1', ip('127.0.0.1', 4001))
    const cache: CloudMapCache = new Map()
    const first = startCloudMapDiscovery([target(`cloudmap://${ns}/web`)], () => {}, cache, { discover })
    await first.refresh()
    first.stop()
    endpoint.failWith(INTERNAL)
    const c = collect()
    const second = startCloudMapDiscovery([target(`cloudmap://${ns}/web`)], c.apply, cache, { discover })
    expect(c.applied).toEqual([['http://127.0.0.1:4001']])
    await second.refresh()
    second.stop()
    endpoint.failWith(undefined)
    expect(c.applied).toEqual([['http://127.0.0.1:4001']])
  })

  it('gives up on a call that never returns, keeping the set, and goes on refreshing', async () => {
    endpoint.register(ns, 'web', 'i-1', ip('127.0.0.1', 6001))
    const quick = createSdkDiscover({
      endpoint: endpoint.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      disableHostPrefix: true,
      timeoutMs: 200,
    })
    const c = collect()
    const cache: CloudMapCache = new Map()
    const d = startCloudMapDiscovery([target(`cloudmap://${ns}/web`)], c.apply, cache, {
      discover: quick,
      onError: c.onError,
    })
    await d.refresh()
    endpoint.hang(true)
    await d.refresh()
    endpoint.hang(false)
    const status = [...cache.values()][0]!
    expect(status).toMatchObject({ stale: true, failures: 1, endpoints: ['http://127.0.0.1:6001'] })
    expect(String(c.errors[0])).toMatch(/abort/i)
    endpoint.register(ns, 'web', 'i-2', ip('127.0.0.1', 6002))
    await d.refresh()
    d.stop()
    quick.close()
    expect(c.applied.at(-1)).toEqual(['http://127.0.0.1:6001', 'http://127.0.0.1:6002'])
  })

  it('refreshes on its interval, jittered, and stops when told', async () => {
    endpoint.register(ns, 'web', 'i-1', ip('127.0.0.1', 5001))
    const cache: CloudMapCache = new Map()
    const d = startCloudMapDiscovery([target(`cloudmap://${ns}/web`, 20)], () => {}, cache, { discover })
    const status = () => [...cache.values()][0]!
    for (let i = 0; i < 500 && status().refreshes < 4; i++) await new Promise((r) => setTimeout(r, 10))
    expect(status().refreshes).toBeGreaterThanOrEqual(4)
    d.stop()
    const calls = endpoint.calls.length
    await new Promise((r) => setTimeout(r, 100))
    expect(endpoint.calls.length).toBeLessThanOrEqual(calls + 1)
  })
})

describe('instanceUrl', () => {
  it('maps the registered address and port, falling back to the URL port, skipping the unusable', () => {
    expect(instanceUrl({ Attributes: ip('10.0.0.1', 80) }, undefined)).toBe('http://10.0.0.1:80')
    expect(
      instanceUrl({ Attributes: { AWS_INSTANCE_IPV6: '::1', AWS_INSTANCE_PORT: '81' } }, undefined),
    ).toBe('http://[::1]:81')
    expect(instanceUrl({ Attributes: { AWS_INSTANCE_CNAME: 'web.internal' } }, 9080)).toBe(
      'http://web.internal:9080',
    )
    expect(instanceUrl({ Attributes: { AWS_INSTANCE_IPV4: '10.0.0.1' } }, undefined)).toBeUndefined()
    expect(instanceUrl({ Attributes: { AWS_INSTANCE_PORT: '80' } }, undefined)).toBeUndefined()
    expect(instanceUrl({ Attributes: ip('10.0.0.1', 70000) }, undefined)).toBeUndefined()
    expect(
      instanceUrl({ Attributes: { AWS_INSTANCE_IPV4: 'a/b', AWS_INSTANCE_PORT: '1' } }, 1),
    ).toBeUndefined()
  })
})
