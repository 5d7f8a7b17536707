// The sidecar's health-check adapter: the HTTP probe against real sockets, and the set of checkers
// kept across config reloads.

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { Cancellation } from '../../proxy-core/engine/cancel.ts'
import type { HealthCheckConfig } from '../../proxy-core/engine/types.ts'
import { createHealthChecks, createHttpHealthProbe } from '../../proxy-core/sidecar/health-prober.ts'
import { createManualClock } from '../helpers/manual-clock.ts'

const CHECK: HealthCheckConfig = {
  protocol: 'http',
  path: '/health?deep=1',
  interval: 5_000,
  timeout: 2_000,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

describe('createHttpHealthProbe', () => {
  const seen: { url: string | undefined; headers: IncomingHttpHeaders; port: number }[] = []
  let status = 200
  let hang = false
  const server = createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers, port: req.socket.localPort ?? 0 })
    if (hang) return
    res.writeHead(status)
    res.end('x'.repeat(100_000))
  })
  const other = createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers, port: req.socket.localPort ?? 0 })
    res.writeHead(204)
    res.end()
  })
  let origin: string
  let otherPort: number
  const probe = createHttpHealthProbe()

  beforeAll(async () => {
    origin = await listen(server)
    otherPort = Number(new URL(await listen(other)).port)
  })
  afterAll(async () => {
    probe.close()
    for (const s of [server, other]) {
      s.closeAllConnections()
      await new Promise((r) => s.close(r))
    }
  })

  it('GETs the path with the endpoint as Host; 2xx passes, anything else fails', async () => {
    expect(await probe(origin, CHECK, new Cancellation())).toEqual({ passed: true, detail: '200' })
    const last = seen.at(-1)!
    expect(last.url).toBe('/health?deep=1')
    expect(last.headers.host).toBe(new URL(origin).host)
    expect(last.headers['user-agent']).toBe('meshgate-health-check')
    status = 503
    expect(await probe(origin, CHECK, new Cancellation())).toEqual({ passed: false, detail: '503' })
    status = 302
    expect((await probe(origin, CHECK, new Cancellation())).passed).toBe(false)
    status = 200
  })

  it('probes the check port instead of the endpoint port when one is given', async () => {
    expect(await probe(origin, { ...CHECK, port: otherPort }, new Cancellation())).toEqual({
      passed: true,
      detail: '204',
    })
    expect(seen.at(-1)!.port).toBe(otherPort)
  })

  it('rejects on a refused connection and stops when cancelled', async () => {
    const closed = createServer()
    const gone = await listen(closed)
    await new Promise((r) => closed.close(r))
    await expect(probe(gone, CHECK, new Cancellation())).rejects.toThrow(/ECONNREFUSED/)

    hang = true
    const before = seen.length
    const signal = new Cancellation()
    const pending = probe(origin, CHECK, signal)
    // Cancelled once the request is in and unanswered.
    for (let i = 0; i < 200 && seen.length === before; i++) await new Promise((r) => setTimeout(r, 10))
    expect(seen.length).toBe(before + 1)
    signal.abort()
    await expect(pending).rejects.toThrow(/cancelled/)
    hang = false
  })
})

describe('createHealthChecks', () => {
  async function config(check: unknown, http: unknown = ['http://127.0.0.1:1', 'http://127.0.0.1:2']) {
    return loadConfigText(
      JSON.stringify({
        version: 1,
        mesh: 'm',
        services: {
          web: { targets: { v1: { http, healthCheck: check }, v2: { http: 'http://127.0.0.1:3' } } },
        },
      }),
      'mesh.json',
    )
  }

  it('keeps a checker and its state across a reload that leaves its check alone, and starts over otherwise', async () => {
    const clock = createManualClock(0)
    const probed: string[] = []
    const checks = createHealthChecks({
      clock,
      timers: clock,
      probe: async (id) => {
        probed.push(id)
        return { passed: false, detail: '503' }
      },
    })
    checks.configure(await config({ path: '/h' }))
    expect(checks.lookup('web', 'v2')).toBeUndefined()
    const first = checks.lookup('web', 'v1')!
    await clock.advance(5_000)
    expect(first.isHealthy('http://127.0.0.1:1')).toBe(false)

    // Same check, same endpoints: the same checker, still knowing the endpoint is down.
    checks.configure(await config({ path: '/h' }))
    expect(checks.lookup('web', 'v1')).toBe(first)
    expect(first.isHealthy('http://127.0.0.1:1')).toBe(false)
    // An endpoint left the static list: it is no longer probed.
    checks.configure(await config({ path: '/h' }, ['http://127.0.0.1:2']))
    expect(checks.snapshot()[0]!.endpoints.map((e) => e.endpoint)).toEqual(['http://127.0.0.1:2'])

    // Another check: a new checker from a clean slate; the old one stops.
    checks.configure(await config({ path: '/other' }, ['http://127.0.0.1:2']))
    const second = checks.lookup('web', 'v1')!
    expect(second).not.toBe(first)
    expect(second.isHealthy('http://127.0.0.1:2')).toBe(true)
    expect(checks.snapshot()).toMatchObject([
      { service: 'web', target: 'v1', path: '/other', interval: 5_000 },
    ])

    // The check removed: nothing runs.
    checks.configure(await config(undefined, ['http://127.0.0.1:2']))
    expect(checks.lookup('web', 'v1')).toBeUndefined()
    const count = probed.length
    await clock.advance(60_000)
    expect(probed.length).toBe(count)
    checks.stop()
  })
})
