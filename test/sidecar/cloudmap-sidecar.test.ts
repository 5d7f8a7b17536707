// A real sidecar process (the bundle the image ships: the SDK arrives there as a lazily loaded chunk)
// with a cloudmap:// target, its Cloud Map client pointed at the local endpoint
// through the SDK's own AWS_ENDPOINT_URL_SERVICEDISCOVERY, under load the whole time: instances
// appear, leave (and their servers stop), turn unhealthy (and stop) and come back, and the API fails
// for a while. Every step waits for refreshes counted on /stats, never for a span of time, and not one
// request fails while a healthy instance exists. Then Cloud Map lists nothing, and the sidecar answers
// 503 upstream_unavailable instead of calling the old instances.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CloudMapTargetStatus } from '../../proxy-core/sidecar/cloudmap-discovery.ts'
import { type CloudMapEndpoint, INTERNAL, startCloudMapEndpoint } from '../helpers/cloudmap-endpoint.ts'
import {
  meshDir,
  removeSidecarBundle,
  type SidecarProcess,
  startSidecarProcess,
} from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { type LoadResult, load, send } from './client.ts'

const NS = 'shop.local'
const pause = () => new Promise((r) => setTimeout(r, 20))

describe('cloudmap:// targets in the sidecar', () => {
  let cloudMap: CloudMapEndpoint
  let sidecar: SidecarProcess | undefined
  const upstreams = new Map<string, Upstream>()
  const files = meshDir()

  beforeAll(async () => {
    cloudMap = await startCloudMapEndpoint()
    for (const name of ['a', 'b', 'c']) upstreams.set(name, await startUpstream(name))
  })
  afterAll(async () => {
    await sidecar?.stop()
    await Promise.all([...upstreams.values()].map((u) => u.close()))
    await cloudMap?.close()
    files.remove()
    await removeSidecarBundle()
  })

  const up = (name: string) => upstreams.get(name)!
  const register = (name: string) =>
    cloudMap.register(NS, 'web', `i-${name}`, {
      AWS_INSTANCE_IPV4: '127.0.0.1',
      AWS_INSTANCE_PORT: String(up(name).port),
      version: 'v1',
    })
  const url = (name: string) => `http://127.0.0.1:${up(name).port}`

  async function status(): Promise<CloudMapTargetStatus> {
    const r = await send(sidecar!.admin, { path: '/stats' })
    return (JSON.parse(r.body).cloudMap as CloudMapTargetStatus[])[0]!
  }
  /** Waits until `n` more DiscoverInstances answers have been applied: one full refresh after a change. */
  async function refreshes(n = 2): Promise<CloudMapTargetStatus> {
    const goal = (await status()).refreshes + n
    for (let i = 0; i < 1000; i++) {
      const s = await status()
      if (s.refreshes >= goal) return s
      await pause()
    }
    throw new Error(`no ${n} refreshes: ${JSON.stringify(await status())}`)
  }
  async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
    for (let i = 0; i < 1000; i++) {
      const v = await get()
      if (ok(v)) return v
      await pause()
    }
    throw new Error(`never: ${what}`)
  }

  it('follows Cloud Map under load with no failed request, keeps the set while the API fails', async () => {
    register('a')
    register('b')
    // Another version in the same service: the ?version=v1 filter keeps it out.
    cloudMap.register(NS, 'web', 'i-v2', {
      AWS_INSTANCE_IPV4: '127.0.0.1',
      AWS_INSTANCE_PORT: '1',
      version: 'v2',
    })
    const configPath = files.write('mesh.json', {
      version: 1,
      mesh: 'cloudmap',
      services: {
        web: {
          targets: { v1: { http: `cloudmap://${NS}/web?version=v1`, cloudMapRefresh: '100ms' } },
          // No retries: a request sent to a gone instance would show as a failure, not be hidden.
          routes: [{ name: 'default', to: 'v1', retries: { attempts: 0 } }],
        },
      },
    })
    sidecar = await startSidecarProcess({
      configPath,
      service: 'client',
      entry: 'bundle',
      env: {
        AWS_ENDPOINT_URL_SERVICEDISCOVERY: cloudMap.url,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'secret',
      },
    })
    expect((await refreshes(1)).endpoints).toEqual([url('a'), url('b')].sort())

    let stop = false
    const running: Promise<LoadResult> = load(sidecar.outbound, {
      concurrency: 2,
      total: 200_000,
      durationMs: 120_000,
      stop: () => stop,
      make: () => ({ host: 'web', path: '/' }),
    })
    try {
      await until(
        'a and b serve',
        async () => 0,
        () => up('a').count() > 0 && up('b').count() > 0,
      )

      // Appears.
      register('c')
      expect((await refreshes()).endpoints).toContain(url('c'))
      await until(
        'c serves',
        async () => up('c').count(),
        (n) => n > 0,
      )

      // Leaves, and its server goes away: nothing may still be on its way there.
      cloudMap.deregister(NS, 'web', 'i-a')
      expect((await refreshes()).endpoints).not.toContain(url('a'))
      await up('a').close()

      // Turns unhealthy, its server stops; comes back on the same port and turns healthy.
      cloudMap.setHealth(NS, 'web', 'i-b', 'UNHEALTHY')
      expect((await refreshes()).endpoints).toEqual([url('c')])
      const bPort = up('b').port
      await up('b').close()
      upstreams.set('b', await startUpstream('b', {}, 1, { port: bPort }))
      cloudMap.setHealth(NS, 'web', 'i-b', 'HEALTHY')
      expect((await refreshes()).endpoints).toEqual([url('b'), url('c')].sort())
      await until(
        'b serves again',
        async () => up('b').count(),
        (n) => n > 0,
      )

      // The API fails: the last good set stays, and the sidecar says so.
      cloudMap.failWith(INTERNAL)
      const failing = await until('two failed refreshes', status, (s) => s.failures >= 2)
      expect(failing).toMatchObject({ stale: true, endpoints: [url('b'), url('c')].sort() })
      expect(failing.lastError).toMatch(/boom|InternalFailure/)
      const line = await sidecar.waitForLine(/"type":"cloudmap_error"/)
      expect(JSON.parse(line)).toMatchObject({
        service: 'web',
        target: 'v1',
        namespace: NS,
        keptEndpoints: 2,
      })
      const servedWhileFailing = up('c').count()
      await until(
        'c serves while the API fails',
        async () => up('c').count(),
        (n) => n > servedWhileFailing,
      )
      cloudMap.failWith(undefined)
      expect((await refreshes()).stale).toBe(false)
      await sidecar.waitForLine(/"type":"cloudmap_recovered"/)
    } finally {
      stop = true
    }
    const result = await running
    expect(result.errors).toEqual([])
    expect([...result.byStatus]).toEqual([[200, result.replies.length]])
    expect(result.replies.length).toBeGreaterThan(100)

    // Nothing listed: no endpoints, a 503 from the mesh, and no call to the old instances.
    cloudMap.deregister(NS, 'web', 'i-b')
    cloudMap.deregister(NS, 'web', 'i-c')
    expect((await refreshes()).endpoints).toEqual([])
    const before = up('b').count() + up('c').count()
    const r = await send(sidecar.outbound, { host: 'web' })
    expect(r.status).toBe(503)
    expect(r.headers['x-meshgate-error']).toBe('upstream_unavailable')
    expect(up('b').count() + up('c').count()).toBe(before)
    // Every call asked for healthy instances of v1 only.
    for (const call of cloudMap.calls)
      expect(call.body).toMatchObject({ HealthStatus: 'HEALTHY', QueryParameters: { version: 'v1' } })
  }, 150_000)
})
