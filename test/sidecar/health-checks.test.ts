// Active health checks with real processes: a sidecar and two upstreams; one starts failing its
// health path (its traffic path still answers 200, so only the health check can notice). It leaves the
// balancer after exactly `unhealthyThreshold` failed probes and returns after `healthyThreshold`
// passes, as /stats shows. App Mesh's shortest interval (5 s) is used, so this test takes about 20 s:
// it waits for probes to be counted, never for a span of time.

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { send } from './client.ts'

interface HealthUpstream {
  url: string
  healthy: boolean
  /** Probes answered, by verdict, and the user agent they came with. */
  probes: { passed: boolean; userAgent: string | undefined }[]
  traffic: number
  close(): Promise<void>
}

async function startHealthUpstream(name: string): Promise<HealthUpstream> {
  const state: HealthUpstream = {
    url: '',
    healthy: true,
    probes: [],
    traffic: 0,
    close: async () => {},
  }
  const server: Server = createServer((req, res) => {
    if (req.url === '/health') {
      state.probes.push({ passed: state.healthy, userAgent: req.headers['user-agent'] })
      res.writeHead(state.healthy ? 200 : 503, { 'content-type': 'text/plain' })
      res.end(state.healthy ? 'ok' : 'failing')
      return
    }
    state.traffic++
    res.writeHead(200, { 'x-upstream': name, 'content-type': 'text/plain' })
    res.end(name)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  state.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections()
      server.close(() => r())
    })
  return state
}

interface HealthStats {
  endpoints: {
    service: string
    target: string
    endpoints: { id: string; ejected: boolean; healthy: boolean }[]
  }[]
  healthChecks: {
    service: string
    target: string
    path: string
    endpoints: { endpoint: string; healthy: boolean; checks: number; failures: number; ejections: number }[]
  }[]
}

const pause = () => new Promise((r) => setTimeout(r, 50))

describe('active health checks in the sidecar', () => {
  let a: HealthUpstream
  let b: HealthUpstream
  let sidecar: SidecarProcess | undefined
  const files = meshDir()

  beforeAll(async () => {
    a = await startHealthUpstream('a')
    b = await startHealthUpstream('b')
  })
  afterAll(async () => {
    await sidecar?.stop()
    await Promise.all([a?.close(), b?.close()])
    files.remove()
  })

  async function stats(): Promise<HealthStats> {
    return JSON.parse((await send(sidecar!.admin, { path: '/stats' })).body)
  }
  async function healthOf(url: string): Promise<boolean> {
    const s = await stats()
    return s.healthChecks[0]!.endpoints.find((e) => e.endpoint === url)!.healthy
  }
  async function until(what: string, ok: () => Promise<boolean> | boolean): Promise<void> {
    // Bounded: a few intervals of 5 s at most.
    for (let i = 0; i < 800; i++) {
      if (await ok()) return
      await pause()
    }
    throw new Error(`never: ${what}`)
  }
  async function spread(n: number): Promise<Record<string, number>> {
    const seen: Record<string, number> = {}
    for (let i = 0; i < n; i++) {
      const r = await send(sidecar!.outbound, { host: 'web' })
      expect(r.status).toBe(200)
      const who = String(r.headers['x-upstream'])
      seen[who] = (seen[who] ?? 0) + 1
    }
    return seen
  }

  it('takes an endpoint out after unhealthyThreshold failed probes and back after healthyThreshold', async () => {
    const configPath = files.write('mesh.json', {
      version: 1,
      mesh: 'hc',
      services: {
        web: {
          targets: {
            v1: {
              http: [a.url, b.url],
              healthCheck: {
                path: '/health',
                interval: '5s',
                timeout: '2s',
                healthyThreshold: 2,
                unhealthyThreshold: 2,
              },
            },
          },
          routes: [{ name: 'default', to: 'v1', retries: { attempts: 0 } }],
        },
      },
    })
    sidecar = await startSidecarProcess({ configPath, service: 'client' })
    // Both are probed at once on start, and both serve.
    await until('first probes', () => a.probes.length > 0 && b.probes.length > 0)
    expect(b.probes[0]!.userAgent).toBe('meshgate-health-check')
    expect(await spread(20)).toEqual({ a: 10, b: 10 })

    b.healthy = false
    const failedBefore = b.probes.length
    await until('b unhealthy', async () => !(await healthOf(b.url)))
    // Exactly the threshold: two failed probes since b began failing, and no more yet.
    const failedProbes = b.probes.slice(failedBefore).filter((p) => !p.passed).length
    expect(failedProbes).toBe(2)
    const s = await stats()
    expect(s.healthChecks[0]).toMatchObject({ service: 'web', target: 'v1', path: '/health' })
    expect(s.healthChecks[0]!.endpoints.find((e) => e.endpoint === b.url)).toMatchObject({
      healthy: false,
      ejections: 1,
    })
    expect(s.endpoints.find((e) => e.service === 'web')!.endpoints).toEqual([
      { id: a.url, ejected: false, healthy: true },
      { id: b.url, ejected: false, healthy: false },
    ])
    const notice = JSON.parse(await sidecar.waitForLine(/"type":"health_check".*"to":"unhealthy"/))
    expect(notice).toMatchObject({ service: 'web', target: 'v1', endpoint: b.url, detail: '503' })
    // Out of the balancer: all traffic to a, none to b, though b's traffic path still works.
    const bTraffic = b.traffic
    expect(await spread(20)).toEqual({ a: 20 })
    expect(b.traffic).toBe(bTraffic)

    b.healthy = true
    const passedBefore = b.probes.length
    await until('b healthy again', () => healthOf(b.url))
    expect(b.probes.slice(passedBefore).filter((p) => p.passed).length).toBe(2)
    expect(await spread(20)).toEqual({ a: 10, b: 10 })
    // a never failed a probe.
    expect(a.probes.every((p) => p.passed)).toBe(true)
  }, 90_000)
})
