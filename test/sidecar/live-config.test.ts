// A real sidecar process reading a file source while a steady 200 requests/s flow through it: atomic
// replaces and in-place writes in two pieces (the first piece valid YAML without the last service,
// issue 16 class 5) swap in without one failed request and without ever serving the partial file; a
// refused version shows on /config and /metrics; a removal of a service taking traffic is logged loudly.

import { writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pacedLoad, sidecarTarget } from '../helpers/paced-load.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { send } from './client.ts'

let blue: Upstream
let green: Upstream
let stars: Upstream
const files = meshDir()
const running: SidecarProcess[] = []
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** YAML with `ratings` as the last service, so a cut before it is still valid YAML. */
function meshYaml(reviewsTo: 'blue' | 'green', withRatings = true): string {
  const lines = [
    'version: 1',
    'mesh: live-file',
    'services:',
    '  reviews:',
    `    targets: { blue: { http: ${blue.url} }, green: { http: ${green.url} } }`,
    `    routes: [{ name: default, to: ${reviewsTo} }]`,
  ]
  if (withRatings) lines.push('  ratings:', `    targets: { v1: { http: ${stars.url} } }`)
  return `${lines.join('\n')}\n`
}

async function configOf(sc: SidecarProcess) {
  return JSON.parse((await send(sc.admin, { path: '/config' })).body)
}

async function until(what: () => Promise<boolean>, tries = 1000): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await what()) return true
    await sleep(20)
  }
  return false
}

beforeAll(async () => {
  blue = await startUpstream('blue')
  green = await startUpstream('green')
  stars = await startUpstream('stars')
})
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()))
  await Promise.all([blue?.close(), green?.close(), stars?.close()])
  files.remove()
})

describe('sidecar with a live file source', () => {
  it('swaps replaces and two-piece writes under 200 req/s with zero failed requests', async () => {
    const path = files.write('live.yaml', meshYaml('blue'))
    // A settle interval far above the gap between the two pieces (300 ms), so the outcome does not depend
    // on the machine's speed.
    const sc = await startSidecarProcess({
      configPath: path,
      service: 'app',
      env: { MESHGATE_CONFIG_SETTLE: '2s' },
    })
    running.push(sc)
    const target = sidecarTarget('sc', sc.outbound, (i) => ({ host: i % 2 === 0 ? 'reviews' : 'ratings' }))
    const loadRun = pacedLoad([target], 200, 8000)

    let reloadsExpected = 0
    for (let round = 0; round < 3; round++) {
      // An atomic replace (temp file + rename) to green, then an in-place write back to blue.
      files.write('live.yaml', meshYaml('green'))
      reloadsExpected++
      expect(await until(async () => (await configOf(sc)).reloads === reloadsExpected)).toBe(true)
      // An in-place write in two pieces: the first lacks `ratings`.
      const full = meshYaml('blue')
      const cut = full.indexOf('  ratings:')
      writeFileSync(path, full.slice(0, cut))
      await sleep(300)
      writeFileSync(path, full)
      reloadsExpected++
      expect(await until(async () => (await configOf(sc)).reloads === reloadsExpected)).toBe(true)
    }
    const outcomes = await loadRun.stop()
    target.close()
    const failed = outcomes.filter((o) => o.status !== 200)
    expect(failed).toEqual([])
    expect(outcomes.length).toBeGreaterThan(300)
    expect(outcomes.filter((o) => o.upstream === 'stars').length).toBeGreaterThan(100)
    const shown = await configOf(sc)
    // Every swap was to a complete file: exactly the writes above, no partial one in between.
    expect(shown).toMatchObject({ reloads: 6, rejected: 0, lastError: null })
    expect(sc.lines().some((l) => /removes service/.test(l))).toBe(false)
  })

  it('shows a refused version on /config and /metrics, keeps serving, and warns when a live service goes', async () => {
    const path = files.write('refuse.yaml', meshYaml('blue'))
    const sc = await startSidecarProcess({ configPath: path, service: 'app' })
    running.push(sc)
    const good = (await configOf(sc)).version
    files.write('refuse.yaml', meshYaml('blue').replace('to: blue', 'to: purple'))
    expect(await until(async () => (await configOf(sc)).rejected === 1)).toBe(true)
    const shown = await configOf(sc)
    expect(shown.version).toBe(good)
    expect(shown.lastError).toMatch(/refuse\.yaml:\d+:\d+: services\.reviews\.routes\[0\]\.to/)
    expect(shown.config.services.reviews.routes[0].to).toEqual({ blue: 100 })
    const metrics = (await send(sc.admin, { path: '/metrics' })).body
    expect(metrics).toMatch(/^meshgate_config_rejected_total\{source="[^"]*refuse\.yaml"\} 1$/m)
    expect(metrics).toMatch(/^meshgate_config_stale\{source="[^"]*refuse\.yaml"\} 0$/m)
    expect((await send(sc.outbound, { host: 'reviews' })).headers['x-upstream']).toBe('blue')
    await sc.waitForLine(/config reload refused .*purple/)

    // ratings takes traffic, then a new config drops it: said loudly.
    for (let i = 0; i < 5; i++) expect((await send(sc.outbound, { host: 'ratings' })).status).toBe(200)
    files.write('refuse.yaml', meshYaml('green', false))
    const warning = await sc.waitForLine(
      /WARNING: the new config removes service "ratings", which took 5 requests/,
    )
    expect(warning).toMatch(/404 unknown_service/)
    expect(await configOf(sc)).toMatchObject({ reloads: 1, rejected: 1, lastError: null })
  })
})
