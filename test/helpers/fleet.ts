// Issue 15's fleet, shared by its test (test/fleet/fleet.test.ts) and its benchmark
// (bench/config-convergence.ts): sidecar processes (half reading AppConfigData with the real SDK, half
// through the AppConfig agent API) and Lambda containers (real middy handlers, one worker thread each,
// through the extension API), all on one profile of the local AppConfig, routing `reviews` between two
// upstreams, `blue` and `green`. Publishing goes through the real CLI, `meshgate publish`.
//
// No test framework in here: the benchmark runs it under plain node. Problems throw.

import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { AppConfigStore } from '../../proxy-core/control/appconfig-store.ts'
import type { LocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import { send } from '../sidecar/client.ts'
import { profile, startAppConfig } from './local-appconfig.ts'
import { type Outcome, type PacedTarget, sidecarTarget } from './paced-load.ts'
import { removeSidecarBundle, type SidecarProcess, startSidecarProcess } from './sidecar-process.ts'
import { startUpstream, type Upstream } from './upstream.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
/** DESIGN's poll jitter: each wait is the interval ±10%. */
export const POLL_JITTER = 0.1
/** Sidecars start five at a time: twenty cold starts at once would only queue on two cores. */
const START_BATCH = 5

export interface FleetOptions {
  /** The profile's URL, e.g. `appconfig://fleet/prod/mesh`. */
  url: string
  sidecars: number
  lambdas: number
  /** MESHGATE_CONFIG_POLL of every instance, in ms. */
  pollMs: number
}

export type Weights = Record<string, number>

export interface FleetInstance extends PacedTarget {
  kind: 'sidecar' | 'lambda'
  /** How it reads AppConfig: AppConfigData through the SDK, or the agent / Lambda extension API. */
  via: 'sdk' | 'agent'
}

export interface Fleet {
  readonly local: LocalAppConfig
  /** The profile, through @aws-sdk/client-appconfig (for what the CLI refuses to publish). */
  readonly store: AppConfigStore
  readonly sidecars: SidecarProcess[]
  /** Every instance as a load target: the sidecars first, then the Lambda containers. */
  readonly instances: FleetInstance[]
  /** The `config` notice lines each Lambda container wrote, by index. */
  lambdaLogs(index: number): string[]
  /** The mesh document with `reviews/default` split by `to`. */
  meshJson(to: Weights | string): string
  /** Writes `text` to a temp file and runs `meshgate publish FILE --to URL` on it. */
  publish(text: string): Promise<Published>
  /** Runs the CLI (`node bin/meshgate.js ARGS`) with this process's environment. */
  meshgate(...args: string[]): Promise<CliResult>
  /** A sidecar's `/config` answer. */
  configOf(sc: SidecarProcess): Promise<SidecarConfig>
  close(): Promise<void>
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

export interface Published extends CliResult {
  /** performance.now() when the local AppConfig answered StartDeployment: the version is live from then. */
  deployedAt: number
}

export interface SidecarConfig {
  version: string
  rejected: number
  lastError: string | null
  stale: boolean
  config: { services: Record<string, { routes: { to: Record<string, number> }[] }> }
}

function awsChildEnv(local: LocalAppConfig, pollMs: number, viaAgent: boolean): Record<string, string> {
  return {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_APPCONFIGDATA: local.url,
    MESHGATE_CONFIG_POLL: `${pollMs}ms`,
    MESHGATE_APPCONFIG_AGENT: viaAgent ? local.agentUrl : 'off',
  }
}

function runCli(args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin', 'meshgate.js'), ...args],
      { env: process.env, cwd: ROOT, timeout: 60_000 },
      (err, stdout, stderr) =>
        done({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    )
  })
}

/** A Lambda container as a load target: one event at a time, answered with the upstream and weights. */
function lambdaInstance(index: number, w: Worker): FleetInstance {
  let next = 0
  type Answer = { id?: number; status: number; upstream?: string; weights?: unknown; error?: string }
  const waiting = new Map<number, (r: Answer) => void>()
  w.on('message', (m: Answer) => {
    if (m.id === undefined) return
    waiting.get(m.id)?.(m)
    waiting.delete(m.id)
  })
  return {
    id: `lambda-${index}`,
    kind: 'lambda',
    via: 'agent',
    call: () =>
      new Promise((resolve, reject) => {
        const id = next++
        waiting.set(id, (r) => {
          // The handler threw (the invocation failed): the outcome keeps its message.
          if (r.error !== undefined) reject(new Error(r.error))
          else resolve({ status: r.status, upstream: r.upstream, weights: r.weights })
        })
        w.postMessage({ id })
      }),
  }
}

/**
 * Starts the local AppConfig (setting this process's AWS variables to it), the two upstreams, runs
 * `meshgate publish --init URL` and publishes `reviews` 100% blue, then the sidecars and containers.
 */
export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-fleet-'))
  const local = await startAppConfig(opts.pollMs / 1000)
  const sidecars: SidecarProcess[] = []
  const workers: { worker: Worker; logs: string[] }[] = []
  const targets: (FleetInstance & { close?: () => void })[] = []
  let blue: Upstream | undefined
  let green: Upstream | undefined
  let files = 0

  const meshJson = (to: Weights | string) =>
    `${JSON.stringify(
      {
        version: 1,
        mesh: 'fleet',
        accessLog: false,
        services: {
          reviews: {
            targets: { blue: { http: blue!.url }, green: { http: green!.url } },
            routes: [{ name: 'default', to }],
          },
        },
      },
      null,
      2,
    )}\n`

  async function publish(text: string): Promise<Published> {
    const file = join(dir, `v${++files}.json`)
    writeFileSync(file, text)
    // The moment AppConfig makes the version live, from its own request log (checked every 1 ms).
    const from = local.requests.length
    let deployedAt: number | undefined
    const watch = setInterval(() => {
      if (deployedAt !== undefined) return
      const hit = local.requests
        .slice(from)
        .some((r) => r.operation === 'StartDeployment' && r.status >= 200 && r.status < 300)
      if (hit) deployedAt = performance.now()
    }, 1)
    try {
      const r = await runCli(['publish', file, '--to', opts.url])
      if (r.code !== 0) throw new Error(`meshgate publish failed (${r.code}): ${r.stderr}`)
      // The CLI has printed the deployment, so the answer is in the log: stamp it now at the latest.
      deployedAt ??= performance.now()
      return { ...r, deployedAt }
    } finally {
      clearInterval(watch)
    }
  }

  const close = async () => {
    for (const t of targets) t.close?.()
    await Promise.all(sidecars.map((s) => s.stop()))
    await Promise.all(workers.map((w) => w.worker.terminate()))
    await Promise.all([local.close(), blue?.close(), green?.close()])
    await removeSidecarBundle()
    rmSync(dir, { recursive: true, force: true })
  }

  try {
    blue = await startUpstream('blue')
    green = await startUpstream('green')
    const init = await runCli(['publish', '--init', opts.url])
    if (init.code !== 0) throw new Error(`meshgate publish --init failed: ${init.stderr}`)
    await publish(meshJson({ blue: 100, green: 0 }))
    const store = await profile(opts.url)

    for (let i = 0; i < opts.sidecars; i += START_BATCH) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(START_BATCH, opts.sidecars - i) }, (_, k) =>
          startSidecarProcess({
            configPath: opts.url,
            service: 'productpage',
            entry: 'bundle',
            env: awsChildEnv(local, opts.pollMs, (i + k) % 2 === 1),
            startTimeoutMs: 60_000,
          }),
        ),
      )
      sidecars.push(...batch)
    }
    sidecars.forEach((sc, i) => {
      targets.push({
        ...sidecarTarget(`sidecar-${sc.pid}`, sc.outbound, () => ({ host: 'reviews' })),
        kind: 'sidecar',
        via: i % 2 === 1 ? 'agent' : 'sdk',
      })
    })
    for (let i = 0; i < opts.lambdas; i++) {
      const worker = new Worker(new URL('./fleet-lambda.ts', import.meta.url), {
        workerData: { config: opts.url },
        env: { ...process.env, ...awsChildEnv(local, opts.pollMs, true) },
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
      workers.push({ worker, logs })
      await new Promise<void>((ready, fail) => {
        worker.once('message', () => ready())
        worker.once('error', fail)
      })
      targets.push(lambdaInstance(i, worker))
    }

    return {
      local,
      store,
      sidecars,
      instances: targets,
      lambdaLogs: (i) => workers[i]!.logs,
      meshJson,
      publish,
      meshgate: (...args) => runCli(args),
      configOf: async (sc) => JSON.parse((await send(sc.admin, { path: '/config' })).body) as SidecarConfig,
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** Per instance: its outcomes in send order. */
export function byInstance(outcomes: readonly Outcome[]): Map<string, Outcome[]> {
  const out = new Map<string, Outcome[]>()
  for (const o of outcomes) {
    const list = out.get(o.target) ?? []
    list.push(o)
    out.set(o.target, list)
  }
  for (const list of out.values()) list.sort((a, b) => a.i - b.i)
  return out
}

export interface Switch {
  instance: FleetInstance
  /** Send time of the instance's first reply by the new version, minus `since` (ms); undefined: never. */
  ms: number | undefined
  /** Replies by the old version sent after `since`, before that first new one. */
  lateOld: number
  /** Replies by the old version after the first new one (before `until`): a relapse. */
  relapsed: number
}

/**
 * When each instance started routing by a new version: its first reply for which `isNew` holds,
 * among requests sent after `since` (performance.now()) and before index `untilIndex`.
 */
export function switches(
  instances: readonly FleetInstance[],
  outcomes: readonly Outcome[],
  since: number,
  isNew: (o: Outcome) => boolean,
  untilIndex = Number.POSITIVE_INFINITY,
): Switch[] {
  const groups = byInstance(outcomes)
  return instances.map((instance) => {
    const list = (groups.get(instance.id) ?? []).filter((o) => o.sentAt >= since && o.i < untilIndex)
    const first = list.findIndex(isNew)
    if (first < 0) return { instance, ms: undefined, lateOld: list.length, relapsed: 0 }
    return {
      instance,
      ms: list[first]!.sentAt - since,
      lateOld: first,
      relapsed: list.slice(first + 1).filter((o) => !isNew(o)).length,
    }
  })
}

/** The p-th percentile (nearest rank) of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
