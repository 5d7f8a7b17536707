// The sidecar's life as a process: admin endpoints, config reload under load (good and bad configs),
// and SIGTERM under load, each with zero failed requests.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { holdsWithin } from '../helpers/attempt.ts'
import { createGate } from '../helpers/gate.ts'
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
    const reloads = () => sc.lines().filter((l) => /config reloaded/.test(l)).length
    let stopped = false
    const loading = load(sc.outbound, {
      concurrency: 8,
      total: 50_000,
      stop: () => stopped,
      make: () => ({ host: 'reviews' }),
    })
    expect(await holdsWithin(() => blue.count() >= 50, 10_000)).toBe(true)

    const before = reloads()
    const greenBefore = green.count()
    files.write('reload.json', meshTo('green'))
    // Once the sidecar says it swapped, every new request goes to green, and the load goes on there.
    expect(await holdsWithin(() => reloads() === before + 1, 10_000)).toBe(true)
    let mismatches = 0
    for (let i = 0; i < 20; i++) {
      const r = await send(sc.outbound, { host: 'reviews' })
      if (r.headers['x-upstream'] !== 'green') mismatches++
    }
    expect(mismatches).toBe(0)
    expect(await holdsWithin(() => green.count() >= greenBefore + 20 + 50, 10_000)).toBe(true)

    // A broken file: one clear line about it, and traffic keeps flowing on the last good config.
    files.write(
      'reload.json',
      '{ "version": 1, "mesh": "lifecycle", "services": { "reviews": { "targets": {} ',
    )
    const line = await sc.waitForLine(/config reload refused/)
    expect(line).toMatch(/reload\.json:\d+:\d+: /)
    expect(line.includes('\n')).toBe(false)
    const r = await send(sc.outbound, { host: 'reviews' })
    expect(r.headers['x-upstream']).toBe('green')

    // An invalid (well-formed) config is refused with its path in the config.
    files.write('reload.json', meshTo('green', { to: 'purple' }))
    const line2 = await sc.waitForLine(/config reload refused.*purple/)
    expect(line2).toMatch(/services\.reviews\.routes/)

    stopped = true
    const result = await loading
    expect(result.errors).toEqual([])
    expect([...result.byStatus.keys()]).toEqual([200])
    expect(result.replies.length).toBeGreaterThan(100)
    expect(result.byUpstream.get('blue')).toBeGreaterThan(0)
    expect(result.byUpstream.get('green')).toBeGreaterThan(0)

    // SIGHUP reloads too (the file changed back to blue without a watch event being needed).
    const beforeHup = reloads()
    files.write('reload.json', meshTo('blue'))
    sc.signal('SIGHUP')
    expect(await holdsWithin(() => reloads() > beforeHup, 10_000)).toBe(true)
    expect((await send(sc.outbound, { host: 'reviews' })).headers['x-upstream']).toBe('blue')
  })

  it('drains on SIGTERM under load with zero failed requests and exits 0', async () => {
    // Blue holds every answer until the gate opens: the signal comes with ten requests in flight.
    const gate = createGate()
    blue.set({ hold: gate.opened })
    const { sc } = await start('drain.json', meshTo('blue'), { drain: '10s' })
    let stopped = false
    const loading = load(sc.outbound, {
      concurrency: 10,
      total: 1_000,
      stop: () => stopped,
      make: () => ({ host: 'reviews' }),
    })
    expect(await holdsWithin(() => blue.inFlight() === 10, 10_000)).toBe(true)
    // As an orchestrator does: take the task out of service (no new requests), then SIGTERM.
    stopped = true
    sc.signal('SIGTERM')
    // Not ready from the moment the drain starts (the signal takes a moment to arrive); the drain
    // cannot end before the gate opens, so there is no race with the exit.
    let ready: number | undefined
    for (let i = 0; i < 500 && ready !== 503; i++) {
      ready = (await send(sc.admin, { path: '/ready' }).catch(() => undefined))?.status
      if (ready !== 503) await sleep(10)
    }
    expect(ready).toBe(503)
    expect(blue.inFlight()).toBe(10)
    gate.open()
    const result = await loading
    const exit = await sc.exited
    blue.set({ delayMs: 5 })

    // Every request in flight at the signal was answered, none failed, and the process exited 0.
    expect(result.errors).toEqual([])
    expect([...result.byStatus.keys()]).toEqual([200])
    expect(result.replies.length).toBe(10)
    expect(exit).toEqual({ code: 0, signal: null })
  })
})
