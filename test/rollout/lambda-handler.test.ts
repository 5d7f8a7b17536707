// functions/rollout's handler, one tick per invocation, on an injected clock: the real AppConfig and
// CloudWatch clients against the local endpoints. A rollout block published without a status starts
// on the first invocation; the next one, after the step's duration, reads the metrics and promotes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import {
  createLiveStore,
  createRolloutHandler,
  findRollouts,
  LiveConflictError,
} from '../../proxy-core/rollout/index.ts'
import { createCloudWatchPublisher } from '../../proxy-core/telemetry/cloudwatch.ts'
import { createMetricsRegistry } from '../../proxy-core/telemetry/metrics.ts'
import { type CloudWatchEndpoint, startCloudWatchEndpoint } from '../helpers/cloudwatch-endpoint.ts'
import { profile, startAppConfig } from '../helpers/local-appconfig.ts'

const CONFIG = 'appconfig://shop/lambda/mesh'
let appconfig: LocalAppConfig
let cw: CloudWatchEndpoint

beforeAll(async () => {
  appconfig = await startAppConfig(1)
  cw = await startCloudWatchEndpoint()
  process.env.AWS_ENDPOINT_URL_CLOUDWATCH = cw.url
  await profile(CONFIG)
})
afterAll(async () => {
  await cw?.close()
  await appconfig?.close()
})

describe('functions/rollout handler', () => {
  it('starts a published rollout block, then promotes on the metrics of the step', async () => {
    const store = createLiveStore(CONFIG)
    await store.publish(
      {
        version: 1,
        mesh: 'shop',
        services: {
          reviews: {
            targets: { v1: { lambda: 'reviews-v1' }, v2: { http: 'http://127.0.0.1:9' } },
            routes: [
              {
                name: 'default',
                to: 'v1',
                rollout: { stable: 'v1', canary: 'v2', steps: [5, 100], stepDuration: '1m' },
              },
            ],
          },
        },
      },
      'test: a rollout block',
    )
    let now = Date.UTC(2026, 11, 7, 12, 0, 0)
    const handler = createRolloutHandler({ config: CONFIG, metrics: 'cloudwatch', clock: { now: () => now } })
    const first = await handler()
    expect(first.rollouts).toEqual([
      expect.objectContaining({
        phase: 'progressing',
        step: 1,
        weight: 5,
        decision: 'start: v1 → v2, steps 5, 100%',
      }),
    ])
    // Nothing measured yet: the next tick waits.
    now += 60_000
    expect((await handler()).published).toBeUndefined()

    // What the callers' sidecars publish during the step.
    const registry = createMetricsRegistry()
    const publisher = createCloudWatchPublisher({
      registry,
      namespace: 'meshgate',
      endpoint: cw.url,
      now: () => now - 30_000,
      intervalMs: 3_600_000,
    })
    for (let i = 0; i < 120; i++)
      registry.get('shop', 'reviews', 'default', 'v2').recordRequest(200, 12, 0, false)
    for (let i = 0; i < 2000; i++)
      registry.get('shop', 'reviews', 'default', 'v1').recordRequest(200, 9, 0, false)
    await publisher.flush()
    await publisher.stop()

    const done = await handler()
    expect(done.published).toMatch(/^version \d+$/)
    expect(done.rollouts[0]).toMatchObject({ phase: 'promoted', weight: 100 })
    const live = await store.read()
    const ref = findRollouts(live.doc)[0]!
    expect(ref.rollout.status!.log!.map((e) => e.decision)).toEqual(['start', 'complete'])
    expect(ref.rollout.status!.log![1]!.canary).toEqual({
      requests: 120,
      errorRate: 0,
      p99Ms: expect.any(Number),
    })
  })

  it('never overwrites a version someone published after its read', async () => {
    const store = createLiveStore(CONFIG)
    const read = await store.read()
    await store.publish(read.doc, 'test: a person publishes meanwhile')
    await expect(store.publish(read.doc, 'test: the controller', read.version)).rejects.toThrow(
      LiveConflictError,
    )
  })
})
