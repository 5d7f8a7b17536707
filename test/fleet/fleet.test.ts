// Issue 15's fleet (test/helpers/fleet.ts): 20 sidecar processes (10 reading AppConfigData with the
// real SDK, 10 through the AppConfig agent API) and 10 Lambda containers (real middy handlers, one
// worker thread each, through the extension API), all on one local AppConfig, under a steady 200
// requests/s across them.
//  1. `meshgate publish` a new version: every instance routes by it within one poll interval plus its
//     jitter (counted in each instance's own requests), with zero failed requests.
//  2. `meshgate shift` 100/0 → 97/3: the observed split follows (a binomial bound).
//  3. An invalid version (valid for AppConfig's JSON Schema, refused by meshgate's own checks),
//     published with the SDK as `aws appconfig` would (`meshgate publish` itself refuses it): every
//     instance refuses it, keeps routing, and says so on /config and in its log.
// The distribution of convergence times is bench/config-convergence.ts's job; this prints one line.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Fleet, POLL_JITTER, percentile, startFleet, switches } from '../helpers/fleet.ts'
import { type Outcome, pacedLoad } from '../helpers/paced-load.ts'

const URL_ = 'appconfig://fleet/prod/mesh'
const SIDECARS = 20
const LAMBDAS = 10
const RATE = 200
const POLL_MS = 1000

let fleet: Fleet
const started = performance.now()

async function until(what: () => boolean | Promise<boolean>, tries = 1500): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await what()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return false
}

beforeAll(async () => {
  fleet = await startFleet({ url: URL_, sidecars: SIDECARS, lambdas: LAMBDAS, pollMs: POLL_MS })
  process.stdout.write(
    `fleet: ${SIDECARS} sidecars and ${LAMBDAS} Lambda containers up after ${Math.round(performance.now() - started)} ms\n`,
  )
}, 240_000)

afterAll(async () => {
  await fleet?.close()
  process.stdout.write(`fleet: whole test ${Math.round(performance.now() - started)} ms\n`)
})

describe('a fleet on one AppConfig profile', () => {
  it('converges on a publish within a poll interval, follows a shift to 97/3, and refuses an invalid version', async () => {
    const { instances, sidecars } = fleet
    expect(sidecars).toHaveLength(SIDECARS)
    expect(instances.filter((i) => i.kind === 'lambda')).toHaveLength(LAMBDAS)
    // Bounded: at most 180 s of load at this rate (a busy machine stretches each step; the three
    // steps need well under that when it is quiet).
    const run = pacedLoad(instances, RATE, RATE * 180)
    const perInstanceRate = RATE / instances.length
    await new Promise((r) => setTimeout(r, 1500))

    // 1. Publish: everything to green.
    const published = await fleet.publish(fleet.meshJson({ blue: 0, green: 100 }))
    const green = (o: Outcome) => o.upstream === 'green'
    const converged = () =>
      switches(instances, run.outcomes, published.deployedAt, green).every((s) => s.ms !== undefined)
    expect(await until(converged)).toBe(true)
    await new Promise((r) => setTimeout(r, 1000))

    // 2. Shift 100/0 → 97/3.
    const shiftFrom = run.sent()
    const shift = await fleet.meshgate('shift', '--config', URL_, 'reviews', 'default', 'green=97', 'blue=3')
    expect(shift.code, shift.stderr).toBe(0)
    const live = (await fleet.store.live())!
    // The SDK path names a version by its label, the agent path by its number.
    const shiftedVersions = new Set([live.label, String(live.version)])
    const lambdaOnShift = (o: Outcome) => {
      const w = o.weights as Record<string, number> | undefined
      return w?.green === 97 && w?.blue === 3
    }
    const lambdaIds = instances.filter((i) => i.kind === 'lambda').map((i) => i.id)
    const lastOf = (id: string) =>
      run.outcomes
        .filter((o) => o.target === id)
        .sort((a, b) => a.i - b.i)
        .at(-1)
    const allShifted = async () => {
      for (const sc of sidecars) if (!shiftedVersions.has((await fleet.configOf(sc)).version)) return false
      return lambdaIds.every((id) => {
        const last = lastOf(id)
        return last !== undefined && lambdaOnShift(last)
      })
    }
    expect(await until(allShifted)).toBe(true)
    const sampleFrom = run.sent()
    const SAMPLE = 3000
    expect(await until(() => run.outcomes.filter((o) => o.i >= sampleFrom).length >= SAMPLE, 3000)).toBe(true)
    const sample = run.outcomes.filter((o) => o.i >= sampleFrom).slice(0, SAMPLE)
    const blueShare = sample.filter((o) => o.upstream === 'blue').length / sample.length

    // 3. An invalid version, published past meshgate's own check.
    const invalid = fleet.meshJson({ blue: 3, green: 97 }).replace('"green": 97', '"purple": 97')
    const bad = await fleet.store.publish(invalid, { description: 'invalid on purpose' })
    const sidecarsRefused = async () => {
      for (const sc of sidecars) if ((await fleet.configOf(sc)).rejected !== 1) return false
      return true
    }
    expect(await until(sidecarsRefused)).toBe(true)
    expect(
      await until(() =>
        lambdaIds.every((_, i) => fleet.lambdaLogs(i).some((l) => l.includes('config reload refused'))),
      ),
    ).toBe(true)
    await new Promise((r) => setTimeout(r, 1000))
    const outcomes = await run.stop()

    // Zero failed requests, over everything.
    expect(outcomes.filter((o) => o.status !== 200)).toEqual([])
    // Nothing was restarted: the same sidecar processes (and the same containers) served it all.
    expect(sidecars.filter((sc) => sc.child.exitCode !== null || sc.child.signalCode !== null)).toEqual([])

    // 1: each instance switched once, for good, within one interval plus jitter of its own requests
    // (each instance gets RATE / instances requests a second; +2 for the one in flight either side).
    const allowed = Math.ceil(perInstanceRate * (POLL_MS / 1000) * (1 + POLL_JITTER)) + 2
    const switched = switches(instances, outcomes, published.deployedAt, green, shiftFrom)
    for (const s of switched) {
      expect(s.ms, s.instance.id).toBeDefined()
      expect(s.lateOld, `${s.instance.id}: blue replies sent after the publish`).toBeLessThanOrEqual(allowed)
      // Once green, green for good (until the shift brings blue back at 3%).
      expect(s.relapsed, s.instance.id).toBe(0)
    }

    // 2: 3000 requests at p = 3%: 3 ± 1% is more than three standard deviations (0.31%) either side.
    expect(blueShare).toBeGreaterThan(0.02)
    expect(blueShare).toBeLessThan(0.04)

    // 3: refused everywhere, visible on /config; the serving version stays the shifted one.
    for (const sc of sidecars) {
      const shown = await fleet.configOf(sc)
      expect(shown.rejected).toBe(1)
      expect(shown.lastError).toMatch(/services\.reviews\.routes\[0\]\.to/)
      expect(shown.config.services.reviews!.routes[0]!.to).toEqual({ blue: 3, green: 97 })
      expect(sc.lines().some((l) => l.includes('config reload refused'))).toBe(true)
    }
    for (const id of lambdaIds) expect(lambdaOnShift(lastOf(id)!)).toBe(true)
    expect(bad.version).toBeGreaterThan(0)

    const times = switched.map((s) => s.ms!).sort((a, b) => a - b)
    process.stdout.write(
      `fleet convergence after publish (ms, ${times.length} instances, poll ${POLL_MS} ms ±${POLL_JITTER * 100}%): ` +
        `p50 ${Math.round(percentile(times, 50))} max ${Math.round(times.at(-1)!)}; ` +
        `${outcomes.length} requests, 0 failed; observed blue share after shift ${(blueShare * 100).toFixed(2)}%\n`,
    )
  }, 240_000)
})
