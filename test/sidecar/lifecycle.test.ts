// The sidecar's life as a process: admin endpoints, config reload under load (good and bad configs),
// and SIGTERM under load, each with zero failed requests.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { load, send } from './client.ts'

let blue: Upstream
let green: Upstream
let app: Upstream
const files = meshDir()
const running: SidecarProcess[] = []

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function meshTo(target: 'blue' | 'green', extra: Record<string, unknown> = {}) {
  return {
    version: 1,
    mesh: 'lifecycle',
    services: {
      reviews: {
        targets: { blue: { http: blue.url }, green: { http: green.url } },
        routes: [{ name: 'default', to: target, ...extra }],
      },
    },
  }
}

async function start(name: string, config: unknown, more: { drain?: string; app?: string } = {}) {
  const configPath = files.write(name, config)
  const sc = await startSidecarProcess({ configPath, service: 'productpage', ...more })
  running.push(sc)
  return { sc, configPath }
}

beforeAll(async () => {
  blue = await startUpstream('blue', { delayMs: 5 })
  green = await startUpstream('green', { delayMs: 5 })
  app = await startUpstream('app')
})

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()))
  await Promise.all([blue?.close(), green?.close(), app?.close()])
  files.remove()
})

describe('sidecar lifecycle', () => {
  it('serves the admin endpoints and passes inbound traffic to the app', async () => {
    const { sc } = await start('admin.json', meshTo('blue'), { app: app.url })
    expect((await send(sc.admin, { path: '/ready' })).status).toBe(200)
    expect((await send(sc.admin, { path: '/healthz' })).status).toBe(200)

    await send(sc.outbound, { host: 'reviews' })
    const inbound = await send(sc.inbound!, { path: '/hello', host: 'productpage' })
    expect(inbound.status).toBe(200)
    expect(inbound.headers['x-upstream']).toBe('app')
    const seen = JSON.parse(inbound.body) as { url: string; headers: Record<string, string> }
    expect(seen.url).toBe('/hello')
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen.headers['x-amzn-trace-id']).toMatch(
      /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]$/,
    )

    const metrics = await send(sc.admin, { path: '/metrics' })
    expect(metrics.status).toBe(200)
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/)
    expect(metrics.body).toMatch(/meshgate_requests_total\{[^}]*service="reviews"[^}]*code_class="2xx"\} 1/)
    expect(metrics.body).toMatch(
      /meshgate_requests_total\{[^}]*service="productpage",route="inbound"[^}]*code_class="2xx"\} 1/,
    )
    expect(metrics.body).toMatch(/meshgate_request_duration_seconds_bucket/)
    // A body goes through to the app as sent.
    const posted = await send(sc.inbound!, {
      path: '/up',
      host: 'productpage',
      method: 'POST',
      body: 'x'.repeat(70_000),
    })
    expect(JSON.parse(posted.body)).toMatchObject({ method: 'POST', url: '/up', bodyBytes: 70_000 })

    const stats = JSON.parse((await send(sc.admin, { path: '/stats' })).body)
    expect(stats.service).toBe('productpage')
    expect(stats.mesh).toBe('lifecycle')
    expect(stats.series.length).toBeGreaterThan(0)

    const shown = JSON.parse((await send(sc.admin, { path: '/config' })).body)
    expect(shown).toMatchObject({ kind: 'file', lastError: null, stale: false, reloads: 0, rejected: 0 })
    expect(shown.source).toMatch(/admin\.json$/)
    expect(shown.version).toMatch(/^sha256:[0-9a-f]{16}$/)
    expect(Date.parse(shown.loadedAt)).not.toBeNaN()
    expect(shown.config.mesh).toBe('lifecycle')
    expect(shown.config.services.reviews.routes[0].to).toEqual({ blue: 100 })

    expect((await send(sc.admin, { path: '/nope' })).status).toBe(404)
    expect((await send(sc.admin, { path: '/ready', method: 'POST' })).status).toBe(405)
  })

  it('reloads the config under load with zero failed requests, and refuses a bad one', async () => {
    const { sc } = await start('reload.json', meshTo('blue'))
    let phase: 'blue' | 'green' = 'blue'
    let mismatches = 0
    let switchedAt = Number.POSITIVE_INFINITY
    const loading = load(sc.outbound, { concurrency: 8, durationMs: 4000, make: () => ({ host: 'reviews' }) })

    await sleep(800)
    files.write('reload.json', meshTo('green'))
    // Within a second of the write every new request goes to green.
    const deadline = performance.now() + 3000
    while (performance.now() < deadline) {
      const r = await send(sc.outbound, { host: 'reviews' })
      if (r.headers['x-upstream'] === 'green') break
      await sleep(20)
    }
    phase = 'green'
    switchedAt = performance.now()
    await sleep(300)
    for (let i = 0; i < 20; i++) {
      const r = await send(sc.outbound, { host: 'reviews' })
      if (r.headers['x-upstream'] !== phase) mismatches++
    }

    // A broken file: one clear line about it, and traffic keeps flowing on the last good config.
    files.write(
      'reload.json',
      '{ "version": 1, "mesh": "lifecycle", "services": { "reviews": { "targets": {} ',
    )
    const line = await sc.waitForLine(/config reload refused/, 3000)
    expect(line).toMatch(/reload\.json:\d+:\d+: /)
    expect(line.includes('\n')).toBe(false)
    const r = await send(sc.outbound, { host: 'reviews' })
    expect(r.headers['x-upstream']).toBe('green')

    // An invalid (well-formed) config is refused with its path in the config.
    files.write('reload.json', meshTo('green', { to: 'purple' }))
    const line2 = await sc.waitForLine(/config reload refused.*purple/, 3000)
    expect(line2).toMatch(/services\.reviews\.routes/)

    const result = await loading
    expect(result.errors).toEqual([])
    expect([...result.byStatus.keys()]).toEqual([200])
    expect(result.replies.length).toBeGreaterThan(100)
    expect(result.byUpstream.get('blue')).toBeGreaterThan(0)
    expect(result.byUpstream.get('green')).toBeGreaterThan(0)
    expect(mismatches).toBe(0)
    expect(switchedAt).toBeLessThan(Number.POSITIVE_INFINITY)

    // SIGHUP reloads too (the file changed back to blue without a watch event being needed).
    files.write('reload.json', meshTo('blue'))
    sc.signal('SIGHUP')
    await sc.waitForLine(/config reloaded/, 3000)
    const until = performance.now() + 3000
    let upstream: unknown
    while (performance.now() < until) {
      upstream = (await send(sc.outbound, { host: 'reviews' })).headers['x-upstream']
      if (upstream === 'blue') break
      await sleep(20)
    }
    expect(upstream).toBe('blue')
  })

  it('drains on SIGTERM under load with zero failed requests and exits 0', async () => {
    // Slow enough that the drain outlasts the /ready polling below even on a loaded machine.
    blue.set({ delayMs: 600 })
    const { sc } = await start('drain.json', meshTo('blue'), { drain: '10s' })
    let stopped = false
    const loading = load(sc.outbound, {
      concurrency: 10,
      durationMs: 8000,
      stop: () => stopped,
      make: () => ({ host: 'reviews' }),
    })
    await sleep(1000)
    const inFlightAtSignal = blue.inFlight()
    // As an orchestrator does: take the task out of service (no new requests), then SIGTERM.
    stopped = true
    sc.signal('SIGTERM')
    // Not ready from the moment the drain starts (the signal takes a moment to arrive).
    let ready: number | undefined
    for (let i = 0; i < 100 && ready !== 503; i++) {
      ready = (await send(sc.admin, { path: '/ready' }).catch(() => undefined))?.status
      if (ready !== 503) await sleep(10)
    }
    const result = await loading
    const exit = await sc.exited
    blue.set({ delayMs: 5 })

    expect(inFlightAtSignal).toBeGreaterThan(0)
    expect(ready).toBe(503)
    expect(result.errors).toEqual([])
    expect([...result.byStatus.keys()]).toEqual([200])
    // 10 connections: one round before the signal, the round in flight drained after it.
    expect(result.replies.length).toBeGreaterThanOrEqual(20)
    expect(exit).toEqual({ code: 0, signal: null })
  })
})
