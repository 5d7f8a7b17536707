// `meshgate rollout` as a person runs it (a child process against the local AppConfig): start
// --detach, status, pause, start again to resume, abort; and the errors: usage (exit 2), a route with
// no rollout, settings the schema refuses (exit 1, nothing published).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import { createLiveStore, findRollouts } from '../../proxy-core/rollout/index.ts'
import { awsEnv, meshgate } from '../control/cli-process.ts'
import { profile, startAppConfig } from '../helpers/local-appconfig.ts'

const CONFIG = 'appconfig://shop/cli/mesh'
let appconfig: LocalAppConfig
let env: NodeJS.ProcessEnv

beforeAll(async () => {
  appconfig = await startAppConfig(1)
  env = awsEnv({ appconfig: appconfig.url })
  await profile(CONFIG)
  await createLiveStore(CONFIG).publish(
    {
      version: 1,
      mesh: 'shop',
      services: {
        reviews: {
          targets: { v1: { lambda: 'reviews-v1' }, v2: { http: 'http://127.0.0.1:9' } },
          routes: [{ name: 'default', to: 'v1' }],
        },
      },
    },
    'test: base',
  )
})
afterAll(() => appconfig?.close())

const rollout = (...args: string[]) => meshgate(env, 'rollout', ...args)
async function status() {
  const live = await createLiveStore(CONFIG).read()
  return findRollouts(live.doc)[0]?.rollout.status
}

describe('meshgate rollout (CLI)', () => {
  it('start --detach, status, pause, resume, abort: each a published version', async () => {
    const start = await rollout(
      'start',
      '--config',
      CONFIG,
      'reviews',
      'default',
      '--canary',
      'v2',
      '--steps',
      '5,50',
      '--detach',
    )
    expect(start.stderr).toBe('')
    expect(start.stdout).toMatch(
      /^reviews\/default: start at 5%: v1 → v2, steps 5, 50%\s\(published version \d+\)\n$/,
    )
    expect(start.code).toBe(0)

    const shown = await rollout('status', '--config', CONFIG)
    expect(shown.stdout).toContain(
      'reviews/default: v1 → v2: progressing, step 1 of 2 (steps 5, 50%), canary at 5%',
    )

    expect((await rollout('pause', '--config', CONFIG, 'reviews', 'default')).code).toBe(0)
    expect((await status())?.phase).toBe('paused')

    const resumed = await rollout(
      'start',
      '--config',
      CONFIG,
      'reviews',
      'default',
      '--canary',
      'v2',
      '--detach',
    )
    expect(resumed.stdout).toContain('resume at 5%')
    expect((await status())?.phase).toBe('progressing')

    expect((await rollout('abort', '--config', CONFIG, 'reviews', 'default')).code).toBe(0)
    const s = await status()
    expect(s?.phase).toBe('aborted')
    expect(s?.log?.map((e) => e.decision)).toEqual(['start', 'pause', 'resume', 'abort'])
  }, 60_000)

  it('says what is wrong, and publishes nothing', async () => {
    const before = await createLiveStore(CONFIG).read()
    const usage = await rollout('start', '--config', CONFIG)
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('give SERVICE ROUTE')
    const badSteps = await rollout(
      'start',
      '--config',
      CONFIG,
      'reviews',
      'default',
      '--canary',
      'v2',
      '--steps',
      '50,10',
      '--detach',
    )
    expect(badSteps.code).toBe(1)
    expect(badSteps.stderr).toContain('steps must rise')
    const badTarget = await rollout(
      'start',
      '--config',
      CONFIG,
      'reviews',
      'default',
      '--canary',
      'v9',
      '--detach',
    )
    expect(badTarget.code).toBe(1)
    expect(badTarget.stderr).toContain('unknown target "v9"')
    const noRoute = await rollout('abort', '--config', CONFIG, 'reviews', 'nope')
    expect(noRoute).toMatchObject({ code: 1 })
    expect(noRoute.stderr).toContain('reviews/nope has no rollout')
    expect((await createLiveStore(CONFIG).read()).version).toBe(before.version)
  }, 60_000)
})
