// The controller as a scheduled Lambda function (functions/rollout, an EventBridge schedule): each
// invocation is one tick over every rollout of the mesh. It holds nothing between invocations; the
// published config is the state. Environment, read once at init: MESHGATE_CONFIG (the live config URL,
// appconfig:// or s3://) and MESHGATE_ROLLOUT_METRICS (default `cloudwatch`, namespace meshgate).
import { type Clock, createRolloutController, type TickResult } from './controller.ts'
import { createLiveStore } from './live-store.ts'
import { createMetricReader } from './metric-reader.ts'

export interface RolloutHandlerOptions {
  config?: string
  metrics?: string
  clock?: Clock
}

export interface RolloutTickSummary {
  version: string
  published?: string
  rollouts: {
    service: string
    route: string
    phase: string
    step: number
    weight: number
    decision?: string
  }[]
}

export function createRolloutHandler(opts: RolloutHandlerOptions = {}): () => Promise<RolloutTickSummary> {
  const config = opts.config ?? process.env.MESHGATE_CONFIG
  if (!config)
    throw new Error('functions/rollout: set MESHGATE_CONFIG to the live config (appconfig:// or s3://)')
  const metrics = opts.metrics ?? process.env.MESHGATE_ROLLOUT_METRICS ?? 'cloudwatch'
  const store = createLiveStore(config)
  const clock = opts.clock ?? { now: () => Date.now() }
  // The reader (and its SDK client) is made on the first invocation and kept for the warm ones.
  let controller: Promise<{ tick(): Promise<TickResult> }> | undefined
  return async function rolloutTick() {
    controller ??= createMetricReader(metrics).then((reader) =>
      createRolloutController({ store, reader, clock, log: (line) => console.log(line) }),
    )
    const t = await (await controller).tick()
    return {
      version: t.version,
      ...(t.published ? { published: t.published } : {}),
      rollouts: t.rollouts.map((r) => ({
        service: r.service,
        route: r.route,
        phase: r.phase,
        step: r.step,
        weight: r.weight,
        ...(r.decision ? { decision: `${r.decision.decision}: ${r.decision.detail}` } : {}),
      })),
    }
  }
}
