// Issue 15's fleet: 20 sidecar processes (10 reading AppConfigData with the real SDK, 10 through the
// AppConfig agent API) and 10 Lambda containers (real middy handlers, one worker thread each, through
// the extension API), all on one local AppConfig, under a steady 200 requests/s across them.
//  1. `meshgate publish` a new version: every instance routes by it within one poll interval plus its
//     jitter (counted in each instance's own requests), with zero failed requests.
//  2. `meshgate shift` 100/0 → 97/3: the observed split follows (a binomial bound).
//  3. An invalid version (valid for AppConfig's JSON Schema, refused by meshgate's own checks),
//     published with the SDK as `aws appconfig` would (`meshgate publish` itself refuses it): every
//     instance refuses it, keeps routing, and says so on /config and in its log.
// The convergence times are printed (a report, not an assertion); the test's own duration too.

import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AppConfigStore } from '../../proxy-core/control/appconfig-store.ts'
import type { LocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import { profile, startAppConfig } from '../helpers/local-appconfig.ts'
import { type Outcome, type PacedTarget, pacedLoad, sidecarTarget } from '../helpers/paced-load.ts'
import { removeSidecarBundle, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { send } from '../sidecar/client.ts'

const URL_ = 'appconfig://fleet/prod/mesh'
const SIDECARS = 20
const LAMBDAS = 10
const RATE = 200
const POLL_MS = 1000
/** DESIGN's jitter: ±10% of the interval. */
const JITTER = 0.1

let local: LocalAppConfig
let store: AppConfigStore
let blue: Upstream
let green: Upstream
let dir: string
const sidecars: SidecarProcess[] = []
const workers: { worker: Worker; logs: string[] }[] = []
const started = performance.now()

function meshJson(to: Record<string, number>): string {
  return `${JSON.stringify(
    {
      version: 1,
      mesh: 'fleet',
      accessLog: false,
      services: {
        reviews: {
          targets: { blue: { http: blue.url }, green: { http: green.url } },
          routes: [{ name: 'default', to }],
        },
      },
    },
    null,
    2,
  )}\n`
}

function meshgate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/meshgate.js', ...args],
      { env: process.env, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    )
  })
}

function awsChildEnv(viaAgent: boolean): Record<string, string> {
  return {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_APPCONFIGDATA: local.url,
    MESHGATE_CONFIG_POLL: `${POLL_MS}ms`,
    MESHGATE_APPCONFIG_AGENT: viaAgent ? local.agentUrl : 'off',
  }
}

function lambdaTarget(index: number, w: Worker): PacedTarget {
  let next = 0
  const waiting = new Map<number, (r: { status: number; upstream?: string; weights?: unknown }) => void>()
  w.on('message', (m: { id?: number; status: number; upstream?: string; weights?: unknown }) => {
    if (m.id === undefined) return
    waiting.get(m.id)?.(m)
    waiting.delete(m.id)
  })
  return {
    id: `lambda-${index}`,
    call: () =>
      new Promise((resolve) => {
        const id = next++
        waiting.set(id, (r) => resolve({ status: r.status, upstream: r.upstream, weights: r.weights }))
        w.postMessage({ id })
      }),
  }
}

async function configOf(sc: SidecarProcess) {
  return JSON.parse((await send(sc.admin, { path: '/config' })).body)
}

async function until(what: () => boolean | Promise<boolean>, tries = 1500): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await what()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return false
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshgate-fleet-'))
  local = await startAppConfig(POLL_MS / 1000)
  blue = await startUpstream('blue')
  green = await startUpstream('green')
  expect((await meshgate('publish', '--init', URL_)).code).toBe(0)
  writeFileSync(join(dir, 'v1.json'), meshJson({ blue: 100, green: 0 }))
  const first = await meshgate('publish', join(dir, 'v1.json'), '--to', URL_)
  expect(first.code, first.stderr).toBe(0)
  store = await profile(URL_)

  // Five at a time: 20 cold starts at once would only queue on two cores.
  for (let i = 0; i < SIDECARS; i += 5) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(5, SIDECARS - i) }, (_, k) =>
        startSidecarProcess({
          configPath: URL_,
          service: 'productpage',
          entry: 'bundle',
          env: awsChildEnv((i + k) % 2 === 1),
          startTimeoutMs: 60_000,
        }),
      ),
    )
    sidecars.push(...batch)
  }
  for (let i = 0; i < LAMBDAS; i++) {
    const worker = new Worker(new URL('./lambda-container.ts', import.meta.url), {
      workerData: { config: URL_ },
      env: { ...process.env, ...awsChildEnv(true) },
      stdout: true,
    })
    const logs: string[] = []
    let rest = ''
    worker.stdout.on('data', (c: Buffer) => {
      rest += c.toString('utf8')
      const parts = rest.split('\n')
      rest = parts.pop()!
      for (const line of parts) if (line.includes('"type":"config"')) logs.push(line)
    })
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve())
      worker.once('error', reject)
    })
    workers.push({ worker, logs })
  }
  process.stdout.write(
    `fleet: ${SIDECARS} sidecars and ${LAMBDAS} Lambda containers up after ${Math.round(performance.now() - started)} ms\n`,
  )
}, 240_000)

afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.stop()))
  await Promise.all(workers.map((w) => w.worker.terminate()))
  await Promise.all([local?.close(), blue?.close(), green?.close()])
  await removeSidecarBundle()
  rmSync(dir, { recursive: true, force: true })
  process.stdout.write(`fleet: whole test ${Math.round(performance.now() - started)} ms\n`)
})

/** Per target: outcomes in send order. */
function byTarget(outcomes: Outcome[]): Map<string, Outcome[]> {
  const out = new Map<string, Outcome[]>()
  for (const o of outcomes) {
    const list = out.get(o.target) ?? []
    list.push(o)
    out.set(o.target, list)
  }
  for (const list of out.values()) list.sort((a, b) => a.i - b.i)
  return out
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

describe('a fleet on one AppConfig profile', () => {
  it('converges on a publish within a poll interval, follows a shift to 97/3, and refuses an invalid version', async () => {
    const targets: (PacedTarget & { close?: () => void })[] = [
      ...sidecars.map((sc) => sidecarTarget(`sidecar-${sc.pid}`, sc.outbound, () => ({ host: 'reviews' }))),
      ...workers.map((w, i) => lambdaTarget(i, w.worker)),
    ]
    // Bounded: at most 90 s of load at this rate.
    const run = pacedLoad(targets, RATE, RATE * 90)
    const perTargetRate = RATE / targets.length
    await new Promise((r) => setTimeout(r, 1500))

    // 1. Publish: everything to green.
    writeFileSync(join(dir, 'v2.json'), meshJson({ blue: 0, green: 100 }))
    const published = await meshgate('publish', join(dir, 'v2.json'), '--to', URL_)
    expect(published.code, published.stderr).toBe(0)
    const publishedAt = performance.now()
    const converged = () => {
      const groups = byTarget(run.outcomes)
      return targets.every((t) => groups.get(t.id)?.some((o) => o.upstream === 'green'))
    }
    expect(await until(converged)).toBe(true)
    await new Promise((r) => setTimeout(r, 1000))

    // 2. Shift 100/0 → 97/3.
    const shiftFrom = run.sent()
    const shift = await meshgate('shift', '--config', URL_, 'reviews', 'default', 'green=97', 'blue=3')
    expect(shift.code, shift.stderr).toBe(0)
    const live = (await store.live())!
    // The SDK path names a version by its label, the agent path by its number.
    const shiftedVersions = new Set([live.label, String(live.version)])
    const lambdaOnShift = (o: Outcome) => {
      const w = o.weights as Record<string, number> | undefined
      return w?.green === 97 && w?.blue === 3
    }
    const allShifted = async () => {
      for (const sc of sidecars) if (!shiftedVersions.has((await configOf(sc)).version)) return false
      const groups = byTarget(run.outcomes)
      return workers.every((_, i) => {
        const list = groups.get(`lambda-${i}`) ?? []
        return list.length > 0 && lambdaOnShift(list.at(-1)!)
      })
    }
    expect(await until(allShifted)).toBe(true)
    const sampleFrom = run.sent()
    const SAMPLE = 3000
    expect(await until(() => run.outcomes.filter((o) => o.i >= sampleFrom).length >= SAMPLE, 3000)).toBe(true)
    const sample = run.outcomes.filter((o) => o.i >= sampleFrom).slice(0, SAMPLE)
    const blueShare = sample.filter((o) => o.upstream === 'blue').length / sample.length

    // 3. An invalid version, published past meshgate's own check.
    const invalid = meshJson({ blue: 3, green: 97 }).replace('"green": 97', '"purple": 97')
    const bad = await store.publish(invalid, { description: 'invalid on purpose' })
    const sidecarsRefused = async () => {
      for (const sc of sidecars) if ((await configOf(sc)).rejected !== 1) return false
      return true
    }
    expect(await until(sidecarsRefused)).toBe(true)
    expect(
      await until(() => workers.every((w) => w.logs.some((l) => l.includes('config reload refused')))),
    ).toBe(true)
    await new Promise((r) => setTimeout(r, 1000))
    const outcomes = await run.stop()
    for (const t of targets) t.close?.()

    // Zero failed requests, over everything.
    expect(outcomes.filter((o) => o.status !== 200)).toEqual([])

    // 1: each instance switched once, for good, within one interval plus jitter of its own requests
    // (each instance gets RATE / instances requests a second; +2 for the one in flight either side).
    const allowed = Math.ceil(perTargetRate * (POLL_MS / 1000) * (1 + JITTER)) + 2
    const groups = byTarget(outcomes)
    const times: number[] = []
    for (const t of targets) {
      const list = groups.get(t.id)!
      const first = list.findIndex((o) => o.upstream === 'green')
      expect(first, t.id).toBeGreaterThan(0)
      const switchedAt = list[first]!.i
      const lateBlue = list.filter((o) => o.sentAt > publishedAt && o.i < switchedAt && o.upstream === 'blue')
      expect(lateBlue.length, `${t.id}: blue replies sent after the publish`).toBeLessThanOrEqual(allowed)
      // Once green, green for good (until the shift brings blue back at 3%).
      const relapsed = list.filter((o) => o.i > switchedAt && o.i < shiftFrom && o.upstream === 'blue')
      expect(relapsed, t.id).toEqual([])
      times.push(list[first]!.sentAt - publishedAt)
    }

    // 2: 3000 requests at p = 3%: 3 ± 1% is more than three standard deviations (0.31%) either side.
    expect(blueShare).toBeGreaterThan(0.02)
    expect(blueShare).toBeLessThan(0.04)

    // 3: refused everywhere, visible on /config; the serving version stays the shifted one.
    for (const sc of sidecars) {
      const shown = await configOf(sc)
      expect(shown.rejected).toBe(1)
      expect(shown.lastError).toMatch(/services\.reviews\.routes\[0\]\.to/)
      expect(shown.config.services.reviews.routes[0].to).toEqual({ blue: 3, green: 97 })
      expect(sc.lines().some((l) => l.includes('config reload refused'))).toBe(true)
    }
    const lastLambda = workers.map((_, i) => groups.get(`lambda-${i}`)!.at(-1)!)
    for (const o of lastLambda) expect(lambdaOnShift(o)).toBe(true)
    expect(bad.version).toBeGreaterThan(0)

    times.sort((a, b) => a - b)
    process.stdout.write(
      `fleet convergence after publish (ms, ${times.length} instances, poll ${POLL_MS} ms ±${JITTER * 100}%): ` +
        `min ${Math.round(times[0]!)} p50 ${Math.round(percentile(times, 50))} p90 ${Math.round(percentile(times, 90))} ` +
        `max ${Math.round(times.at(-1)!)}; ${outcomes.length} requests, 0 failed; observed blue share after shift ${(blueShare * 100).toFixed(2)}%\n`,
    )
  }, 240_000)
})
