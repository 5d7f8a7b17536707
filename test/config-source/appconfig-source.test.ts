// The AppConfig source against the local AppConfig: the AppConfigData path with the real
// @aws-sdk/client-appconfigdata (sessions, single-use tokens, empty body = unchanged, the poll
// interval the service asks for), the agent/extension path, the fallback from one to the other, and
// an endpoint that fails at start, later, and recovers. Polls run on a manual clock.

import { createServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import {
  createLiveConfig,
  openConfigSource,
  SourceError,
  STALE_AFTER_MISSED_CHECKS,
} from '../../proxy-core/config-source/index.ts'
import type { LocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import { profile, startAppConfig } from '../helpers/local-appconfig.ts'
import { createManualClock, seededRandom } from '../helpers/manual-clock.ts'

let local: LocalAppConfig
const saved = { ...process.env }

beforeAll(async () => {
  local = await startAppConfig(1)
})
afterAll(async () => {
  await local.close()
  process.env = saved
})

const meshWith = (services: string[]) =>
  JSON.stringify({
    version: 1,
    mesh: 'ac',
    services: Object.fromEntries(
      services.map((s) => [s, { targets: { v1: { http: `http://${s}.local` } } }]),
    ),
  })

const dataCalls = (op: string) =>
  local.requests.filter((r) => r.api === 'appconfigdata' && r.operation === op).length

describe('AppConfig source', () => {
  it('reads through AppConfigData: one session, then GetLatestConfiguration with each new token', async () => {
    const store = await profile('appconfig://sdk-app/prod/mesh')
    const v1 = await store.publish(meshWith(['a']), {})
    const source = openConfigSource('appconfig://sdk-app/prod/mesh', { appConfigVia: 'sdk' })
    const first = await source.check()
    expect(first?.text).toBe(meshWith(['a']))
    expect(first?.version).toBe(v1.label || String(v1.version))
    // The session asked for the 45 s default as its minimum, and the next poll waits what the service says.
    expect(source.minNextCheckMs?.()).toBe(45_000)
    // The same version again comes back as an empty body: unchanged.
    expect(await source.check()).toBeUndefined()
    const v2 = await store.publish(meshWith(['a', 'b']), {})
    const second = await source.check()
    expect(second?.text).toBe(meshWith(['a', 'b']))
    expect(second?.version).toBe(v2.label || String(v2.version))
    expect(dataCalls('StartConfigurationSession')).toBe(1)
    expect(dataCalls('GetLatestConfiguration')).toBe(3)
    source.close()
  })

  it('reads through the agent / extension API, versioned by Configuration-Version', async () => {
    const store = await profile('appconfig://agent-app/prod/mesh')
    const v1 = await store.publish(meshWith(['a']), {})
    const source = openConfigSource('appconfig://agent-app/prod/mesh', {
      env: { ...process.env, MESHGATE_APPCONFIG_AGENT: local.agentUrl },
    })
    const first = await source.check()
    expect(first).toEqual({
      text: meshWith(['a']),
      version: String(v1.version),
      name: 'appconfig://agent-app/prod/mesh',
    })
    expect(await source.check()).toBeUndefined()
    await store.publish(meshWith(['b']), {})
    expect((await source.check())?.text).toBe(meshWith(['b']))
    expect(local.requests.some((r) => r.api === 'agent')).toBe(true)
    source.close()
  })

  it('falls back to AppConfigData when nothing listens at the agent address', async () => {
    const store = await profile('appconfig://fallback-app/prod/mesh')
    await store.publish(meshWith(['a']), {})
    // A port that refuses connections: bound, then closed.
    const probe = createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const dead = (probe.address() as { port: number }).port
    await new Promise<void>((r) => probe.close(() => r()))
    const lines: string[] = []
    const before = dataCalls('StartConfigurationSession')
    const source = openConfigSource('appconfig://fallback-app/prod/mesh', {
      appConfigVia: 'auto',
      env: { ...process.env, MESHGATE_APPCONFIG_AGENT: `http://127.0.0.1:${dead}` },
      log: (l) => lines.push(l),
    })
    expect((await source.check())?.text).toBe(meshWith(['a']))
    expect(dataCalls('StartConfigurationSession')).toBe(before + 1)
    expect(lines).toEqual([
      `no AppConfig agent at http://127.0.0.1:${dead}: reading appconfig://fallback-app/prod/mesh through AppConfigData`,
    ])
    source.close()
  })

  it('fails fast at start on a profile that does not exist, naming the URL', async () => {
    const err = await createLiveConfig({
      source: openConfigSource('appconfig://nobody/prod/mesh', { appConfigVia: 'sdk' }),
      build: async (v) => v.text,
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SourceError)
    expect((err as Error).message).toMatch(
      /^appconfig:\/\/nobody\/prod\/mesh: cannot read the mesh config: StartConfigurationSession failed: ResourceNotFoundException/,
    )
  })

  it('keeps the last good config while AppConfig is down, turns stale, recovers, and refuses a bad version', async () => {
    const store = await profile('appconfig://down-app/prod/mesh')
    await store.publish(meshWith(['a']), {})
    const clock = createManualClock()
    const lines: string[] = []
    const live = await createLiveConfig({
      source: openConfigSource('appconfig://down-app/prod/mesh', { appConfigVia: 'sdk', pollMs: 1000 }),
      build: async (v) => Object.keys((await loadConfigText(v.text, v.name)).services),
      log: (l) => lines.push(l),
      clock,
      timers: clock,
      random: seededRandom(3),
      pollMs: 1000,
    })
    local.setUnavailable(true)
    for (let i = 1; i <= STALE_AFTER_MISSED_CHECKS; i++) {
      await clock.advance(1100)
      await live.idle()
    }
    expect(live.status()).toMatchObject({ stale: true, missedChecks: STALE_AFTER_MISSED_CHECKS })
    expect(live.current()).toEqual(['a'])
    local.setUnavailable(false)
    await store.publish(meshWith(['a', 'b']), {})
    await clock.advance(1100)
    await live.idle()
    expect(live.status()).toMatchObject({ stale: false, lastError: null, reloads: 1 })
    expect(live.current()).toEqual(['a', 'b'])

    // A version that passes AppConfig's JSON Schema validator but not meshgate's own cross-checks.
    const bad = JSON.stringify({
      version: 1,
      mesh: 'ac',
      services: { a: { targets: { v1: { http: 'http://a' } }, routes: [{ to: 'nope' }] } },
    })
    await store.publish(bad, {})
    await clock.advance(1100)
    await live.idle()
    expect(live.current()).toEqual(['a', 'b'])
    expect(live.status()).toMatchObject({ rejected: 1, reloads: 1 })
    expect(live.status().lastError).toMatch(
      /appconfig:\/\/down-app\/prod\/mesh:\d+:\d+: services\.a\.routes\[0\]\.to/,
    )
    expect(lines.some((l) => l.startsWith('config reload refused'))).toBe(true)
    live.close()
  })
})
