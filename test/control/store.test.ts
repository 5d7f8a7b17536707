// The control operations in process (what `meshgate dev` uses), against the local AppConfig through
// the real SDK: init, publish, read back, shift, and a publish refused while a gradual deployment runs.
import { afterEach, describe, expect, it } from 'vitest'
import {
  appConfigMeshSchema,
  createAppConfigStore,
  LiveConfigError,
  parseDocument,
  parseLiveConfigUrl,
  renderDocument,
  shiftWeights,
} from '../../proxy-core/control/index.ts'
import { type LocalAppConfig, startLocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'

const doc = {
  version: 1,
  mesh: 'm',
  services: {
    reviews: { targets: { v1: { http: 'http://a:1' }, v3: { http: 'http://b:1' } }, routes: [{ to: 'v1' }] },
  },
}
let local: LocalAppConfig | undefined
afterEach(async () => {
  await local?.close()
  local = undefined
})

async function store(clock?: { now(): number }) {
  local = await startLocalAppConfig(clock ? { clock } : {})
  const url = parseLiveConfigUrl('appconfig://app/env/mesh')
  if (url.kind !== 'appconfig') throw new Error('expected an appconfig URL')
  return createAppConfigStore(url, {
    endpoint: local.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    maxAttempts: 1,
  })
}

describe('control store (in process)', () => {
  it('publishes, reads back and shifts', async () => {
    const s = await store()
    const init = await s.init(appConfigMeshSchema())
    expect(init.created).toHaveLength(3)
    expect(await s.live()).toBeUndefined()
    const first = await s.publish(renderDocument(doc), {})
    expect([first.version, first.label, first.deployment.State]).toEqual([1, 'v1', 'COMPLETE'])
    const live = await s.live()
    const read = await parseDocument(live!.content, 'live')
    expect(read).toEqual(doc)
    const { doc: shifted, changes } = shiftWeights(read, 'reviews', 'default', [
      ['v1', 97],
      ['v3', 3],
    ])
    expect(changes.map((c) => c.after)).toEqual([97, 3])
    const second = await s.publish(renderDocument(shifted), { strategy: 'AllAtOnce' })
    expect(second.version).toBe(2)
    expect(JSON.parse((await s.live())!.content).services.reviews.routes[0].to).toEqual({ v1: 97, v3: 3 })
    expect(await s.latestVersion()).toBe(2)
  })

  it('reads the deployment in progress as live, and refuses a second publish while it rolls out', async () => {
    let t = Date.UTC(2026, 11, 4)
    const s = await store({ now: () => t })
    await s.init(appConfigMeshSchema())
    await s.publish(renderDocument(doc), {})
    t += 11 * 60_000 // past AllAtOnce's 10 min bake
    const shifted = shiftWeights(doc, 'reviews', 'default', [['v3', 5]]).doc
    const gradual = await s.publish(renderDocument(shifted), { strategy: 'Linear50PercentEvery30Seconds' })
    expect(gradual.deployment.State).toBe('DEPLOYING')
    expect((await s.live())!.version).toBe(2)
    const refused = await s.publish(renderDocument(doc), {}).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(LiveConfigError)
    expect((refused as Error).message).toMatch(
      /deployment #2 \(version 2\) is DEPLOYING at 50%: wait for it, or stop it/,
    )
    expect(await s.latestVersion()).toBe(2) // no version was created for it
    t += 2 * 60_000 + 1
    expect((await s.deployments())[0]!.State).toBe('COMPLETE')
  })
})
