// `meshgate dev` on the production config path: the real CLI as a child process, its config on the
// local AppConfig it prints. A dashboard slider change is a new AppConfig version (read back with the
// real @aws-sdk/client-appconfig and client-appconfigdata from the printed endpoint), the gateway, the
// sidecars and the Lambda functions load it from AppConfig, and the routing follows it.
import {
  AppConfigDataClient,
  GetLatestConfigurationCommand,
  StartConfigurationSessionCommand,
} from '@aws-sdk/client-appconfigdata'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAppConfigStore } from '../../proxy-core/control/appconfig-store.ts'
import { type DevProcess, eventually, startDev } from './dev-process.ts'

const URL_ = 'appconfig://meshgate-dev/local/mesh'
const local = { region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }

interface State {
  generation: number
  lastReload: { ok: boolean; version?: string; error?: string } | null
  config: {
    url: string
    version: string
    gateway: string
    sidecars: Record<string, string>
    functions: Record<string, string | null>
  }
  services: { name: string; routes: { name: string; to: Record<string, number> }[] }[]
}

let dev: DevProcess
let endpoint: string

async function state(): Promise<State> {
  return (await (await fetch(`${dev.dashboard}/api/state`)).json()) as State
}

async function edit(body: unknown): Promise<{ ok: boolean; error?: string }> {
  const res = await fetch(`${dev.dashboard}/api/edit`, { method: 'POST', body: JSON.stringify(body) })
  return (await res.json()) as { ok: boolean; error?: string }
}

/** Which reviews version served `n` calls through the gateway. */
async function reviewsServedBy(n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${dev.gateway}/api/reviews/0`)
    const body = (await res.json()) as { version?: string }
    expect(res.status).toBe(200)
    const v = body.version ?? 'none'
    seen[v] = (seen[v] ?? 0) + 1
  }
  return seen
}

beforeAll(async () => {
  dev = await startDev(['--port', '0', '--dashboard', '0', '--no-traffic'])
  endpoint = /appconfig {3}(http:\/\/127\.0\.0\.1:\d+)/.exec(dev.output())![1]!
}, 40_000)

afterAll(async () => {
  await dev?.stop()
})

describe('meshgate dev on the local AppConfig', () => {
  it('publishes a slider change as a new AppConfig version, and every runtime routes by it', async () => {
    const before = await state()
    expect(before.config).toMatchObject({ url: URL_, version: '1', gateway: '1' })
    expect(Object.values(before.config.sidecars)).toEqual(['1', '1', '1', '1'])
    expect(dev.output()).toContain(`config      ${URL_}`)
    // A warm container of bookinfo-details on version 1 (a first load reports no reload).
    expect((await fetch(`${dev.gateway}/api/details/0`)).status).toBe(200)

    // The slider, all the way to v3.
    expect(
      await edit({ op: 'weights', service: 'reviews', route: 'canary', to: { v1: 0, v3: 100 } }),
    ).toEqual({
      ok: true,
    })

    // AppConfig holds it: a second hosted version, deployed, read back with the control-plane client...
    const store = await createAppConfigStore(
      { kind: 'appconfig', application: 'meshgate-dev', environment: 'local', profile: 'mesh', url: URL_ },
      { ...local, endpoint },
    )
    const live = (await store.live())!
    expect(live).toMatchObject({ version: 2, label: 'v2' })
    expect(live.deployment).toMatchObject({ DeploymentNumber: 2, State: 'COMPLETE' })
    const published = JSON.parse(live.content)
    expect(published.services.reviews.routes[1]).toMatchObject({ name: 'canary', to: { v1: 0, v3: 100 } })
    // ...and with AppConfigData, as a sidecar in ECS reads it.
    const data = new AppConfigDataClient({ ...local, endpoint })
    try {
      const session = await data.send(
        new StartConfigurationSessionCommand({
          ApplicationIdentifier: 'meshgate-dev',
          EnvironmentIdentifier: 'local',
          ConfigurationProfileIdentifier: 'mesh',
        }),
      )
      const got = await data.send(
        new GetLatestConfigurationCommand({ ConfigurationToken: session.InitialConfigurationToken }),
      )
      expect(got.VersionLabel).toBe('v2')
      expect(JSON.parse(new TextDecoder().decode(got.Configuration))).toEqual(published)
    } finally {
      data.destroy()
    }

    // The gateway and the sidecars serve version 2, and the routing follows: every call to v3.
    const after = await state()
    expect(after.config).toMatchObject({ version: '2', gateway: '2' })
    expect(Object.values(after.config.sidecars)).toEqual(['2', '2', '2', '2'])
    expect(after.lastReload).toMatchObject({ ok: true, version: '2' })
    expect(after.services.find((s) => s.name === 'reviews')?.routes[1]?.to).toEqual({ v1: 0, v3: 100 })
    expect(await reviewsServedBy(20)).toEqual({ v3: 20 })

    // The functions are not redeployed: their containers find version 2 on their own next check.
    await eventually(
      async () => {
        await fetch(`${dev.gateway}/api/details/0`).then((r) => r.arrayBuffer())
        return (await state()).config.functions['bookinfo-details'] === '2' ? true : undefined
      },
      20_000,
      'bookinfo-details on version 2',
    )
    expect(dev.output()).toMatch(
      /λ bookinfo-details: config reloaded: version 2 from appconfig:\/\/meshgate-dev/,
    )

    // Back to 100/0 the same way: version 3, all to v1 (a Lambda function).
    expect(
      (await edit({ op: 'weights', service: 'reviews', route: 'canary', to: { v1: 100, v3: 0 } })).ok,
    ).toBe(true)
    expect((await store.live())!.version).toBe(3)
    expect(await reviewsServedBy(20)).toEqual({ v1: 20 })
  }, 60_000)

  it('refuses an edit that does not validate: no new version, the routing stays', async () => {
    const before = await state()
    const r = await edit({ op: 'target', service: 'reviews', route: 'jason', target: 'v9' })
    expect(r.ok).toBe(false)
    const after = await state()
    expect(after.config.version).toBe(before.config.version)
    expect(after.generation).toBe(before.generation)
  })
})
