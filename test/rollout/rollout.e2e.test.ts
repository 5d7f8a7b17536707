// Issue 17's "done when", end to end on the local mesh: the live config in the local AppConfig (real
// @aws-sdk/client-appconfig and -appconfigdata), Lambda targets as real middy handlers in the dev
// mesh's Lambda sandboxes, container targets behind their own sidecars, a calling sidecar that
// publishes its metrics to the local CloudWatch endpoint every 200 ms, and the controller reading them
// back with the real client-cloudwatch GetMetricData:
//  A. a healthy container canary replacing a Lambda target, promoted step by step to 100%, by the CLI
//     (`meshgate rollout start`) in a child process that is killed mid-rollout and started again;
//  B. a Lambda canary failing 20% of its requests, rolled back at its first step, the failed check
//     and its numbers in the decision log;
//  C. a container canary adding 300 ms, rolled back on the p99 check;
// and through all of it, not one failed request on the stable target.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type RequestListener, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAppConfigStore } from '../../proxy-core/control/appconfig-store.ts'
import { parseLiveConfigUrl } from '../../proxy-core/control/config-url.ts'
import type { MeshDocument } from '../../proxy-core/control/mesh-document.ts'
import type { LocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import { type PortReservation, reservePort } from '../../proxy-core/dev/containers.ts'
import { type LambdaEmulator, startLambdaEmulator } from '../../proxy-core/dev/lambda-emulator.ts'
import {
  createCloudWatchReader,
  createLiveStore,
  createRolloutController,
  type DecisionEntry,
  findRollouts,
  type LiveStore,
  startRollout,
} from '../../proxy-core/rollout/index.ts'
import { type Sidecar, startSidecar } from '../../proxy-core/sidecar/index.ts'
import { listen } from '../../proxy-core/sidecar/listen-address.ts'
import { type CloudWatchEndpoint, startCloudWatchEndpoint } from '../helpers/cloudwatch-endpoint.ts'
import { profile, startAppConfig } from '../helpers/local-appconfig.ts'
import { type Outcome, type PacedLoad, pacedLoad, sidecarTarget } from '../helpers/paced-load.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CONFIG = 'appconfig://shop/e2e/mesh'
/** Requests per second through the calling sidecar: 10% of it reaches 20 canary requests in 2.5 s. */
const RATE = 80
const MIN_REQUESTS = 20
/** Every wait in this file is bounded by this (ms). */
const BOUND_MS = 25_000

let appconfig: LocalAppConfig
let cw: CloudWatchEndpoint
let emulator: LambdaEmulator
let store: LiveStore
let dir: string
let load: PacedLoad
let closeTarget: () => void
const servers: Server[] = []
/** The calling sidecar's access log: which target each request was routed to, and its status. */
interface AccessEntry {
  type: string
  service: string
  target?: string
  status: number
  errorCode?: string
}
const access: AccessEntry[] = []
const sidecars: Sidecar[] = []

function baseDoc(ports: { v2: number; v4: number }): MeshDocument {
  return {
    version: 1,
    mesh: 'shop',
    services: {
      reviews: {
        targets: {
          v1: { lambda: 'reviews-v1' },
          v2: { http: `http://127.0.0.1:${ports.v2}` },
          v3: { lambda: 'reviews-v3' },
          v4: { http: `http://127.0.0.1:${ports.v4}` },
        },
        routes: [{ name: 'default', to: 'v1', timeout: '5s', retries: { attempts: 0 } }],
      },
    },
  }
}
let base: MeshDocument

async function app(handler: RequestListener): Promise<string> {
  const server = createServer(handler)
  servers.push(server)
  return `http://127.0.0.1:${await listen(server, 0, '127.0.0.1')}`
}

const containerApp =
  (target: string, delayMs: number): RequestListener =>
  (req, res) => {
    req.resume()
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': target })
      res.end(`reviews from ${target}`)
    }, delayMs)
  }

async function canarySidecar(appUrl: string, inbound: PortReservation): Promise<Sidecar> {
  const s = await startSidecar({
    configPath: CONFIG,
    configPollMs: 200,
    service: 'reviews',
    app: appUrl,
    outbound: '127.0.0.1:0',
    inbound: `127.0.0.1:${inbound.port}`,
    beforeInboundBind: () => inbound.release(),
    admin: '127.0.0.1:0',
    drainMs: 500,
    xrayDaemon: null,
  })
  sidecars.push(s)
  return s
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + BOUND_MS
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function latestVersion(): Promise<number> {
  const url = parseLiveConfigUrl(CONFIG)
  if (url.kind !== 'appconfig') throw new Error('appconfig only')
  return (await createAppConfigStore(url)).latestVersion()
}

async function rolloutOf() {
  const live = await store.read()
  const ref = findRollouts(live.doc).find((r) => r.service === 'reviews' && r.route === 'default')
  const route = (live.doc.services as { reviews: { routes: { to: unknown }[] } }).reviews.routes[0]!
  return { ref, to: route.to }
}

/** Publishes the base document again (a person resetting the route), then waits a poll for it to land. */
async function reset(): Promise<void> {
  await store.publish(base, 'e2e: reset reviews/default to v1')
  await new Promise((r) => setTimeout(r, 1_200))
}

/** The in-process controller, ticking every 200 ms until the rollout is no longer progressing. */
async function drive(): Promise<DecisionEntry[]> {
  const controller = createRolloutController({
    store,
    reader: createCloudWatchReader({ namespace: 'meshgate' }),
    clock: { now: () => Date.now() },
  })
  return until('the rollout to end', async () => {
    await controller.tick()
    const { ref } = await rolloutOf()
    if (ref?.rollout.status?.phase === 'progressing') {
      await new Promise((r) => setTimeout(r, 200))
      return undefined
    }
    return ref?.rollout.status?.log ?? []
  })
}

beforeAll(async () => {
  appconfig = await startAppConfig(1)
  cw = await startCloudWatchEndpoint()
  process.env.AWS_ENDPOINT_URL_CLOUDWATCH = cw.url
  await profile(CONFIG)
  store = createLiveStore(CONFIG)

  dir = await mkdtemp(join(tmpdir(), 'meshgate-rollout-e2e-'))
  const v2 = await reservePort('127.0.0.1')
  const v4 = await reservePort('127.0.0.1')
  base = baseDoc({ v2: v2.port, v4: v4.port })
  const file = join(dir, 'mesh.json')
  await writeFile(file, JSON.stringify(base))
  await store.publish(base, 'e2e: the base mesh')

  emulator = await startLambdaEmulator({
    root: ROOT,
    functions: {
      'reviews-v1': { module: 'test/rollout/fixtures/reviews-functions.ts', export: 'stable' },
      'reviews-v3': { module: 'test/rollout/fixtures/reviews-functions.ts', export: 'flaky' },
    },
    env: () => ({
      MESHGATE_CONFIG: file,
      MESHGATE_SERVICE: 'reviews',
      AWS_REGION: 'us-east-1',
      MESHGATE_XRAY: 'off',
    }),
    onOutput: () => {},
  })
  process.env.MESHGATE_LAMBDA_ENDPOINT = emulator.url

  await canarySidecar(await app(containerApp('v2', 0)), v2)
  await canarySidecar(await app(containerApp('v4', 300)), v4)
  const caller = await startSidecar({
    configPath: CONFIG,
    configPollMs: 200,
    service: 'frontend',
    outbound: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    drainMs: 500,
    xrayDaemon: null,
    cloudWatch: { namespace: 'meshgate', endpoint: cw.url, intervalMs: 200 },
    log: (line) => {
      const entry = JSON.parse(line) as AccessEntry
      if (entry.type === 'access' && entry.service === 'reviews') access.push(entry)
    },
  })
  sidecars.push(caller)
  const target = sidecarTarget('frontend', `http://${caller.addresses.outbound}`, () => ({
    host: 'reviews',
    path: '/reviews/1',
  }))
  closeTarget = target.close
  // Warm the stable function's sandbox before the load starts, as a deployed one would be.
  for (let i = 0; i < 3; i++) await target.call(i)
  access.length = 0
  load = pacedLoad([target], RATE, RATE * 120)
}, 30_000)

afterAll(async () => {
  await load?.stop()
  closeTarget?.()
  for (const s of sidecars.reverse()) await s.close().catch(() => {})
  for (const s of servers) {
    s.closeAllConnections()
    s.close()
  }
  await emulator?.close()
  await cw?.close()
  await appconfig?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

function cli(args: string[]): { child: ChildProcess; out: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [join(ROOT, 'bin/meshgate.js'), 'rollout', ...args], {
    cwd: ROOT,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString()
  })
  child.stderr!.on('data', (c: Buffer) => {
    out += c.toString()
  })
  const exit = new Promise<number | null>((r) => child.once('close', (code) => r(code)))
  return { child, out: () => out, exit }
}

describe('meshgate rollout on the local mesh', () => {
  const windows: Record<string, { from: number; to: number }> = {}

  it('A: a container canary replacing a Lambda target is promoted step by step; a killed controller continues', async () => {
    const from = performance.now()
    const before = await latestVersion()
    const args = [
      'start',
      '--config',
      CONFIG,
      'reviews',
      'default',
      '--canary',
      'v2',
      '--steps',
      '10,25,50,100',
      '--step-duration',
      '1500ms',
      '--min-requests',
      String(MIN_REQUESTS),
      // Healthy is not fast on a shared 2-core machine while a controller process starts: this
      // scenario is about promotion; C is the one about latency.
      '--max-p99',
      '2s',
      '--metrics',
      'cloudwatch',
      '--interval',
      '200ms',
    ]
    const first = cli(args)
    // Kill it once it has published its first promotion (step 2), mid-rollout.
    await until('the first promotion', async () => {
      const { ref } = await rolloutOf()
      return (ref?.rollout.status?.step ?? 0) >= 1 ? true : undefined
    })
    first.child.kill('SIGKILL')
    await first.exit
    const { ref: mid } = await rolloutOf()
    expect(mid?.rollout.status?.phase).toBe('progressing')

    const second = cli(args)
    const code = await second.exit
    expect(second.out()).toContain('a rollout is in progress; continuing it from the published state')
    expect(code, `first:\n${first.out()}\nsecond:\n${second.out()}`).toBe(0)
    const { ref, to } = await rolloutOf()
    expect(ref!.rollout.status!.phase).toBe('promoted')
    expect(to).toEqual({ v1: 0, v2: 100 })
    const log = ref!.rollout.status!.log!
    // One start (the second run did not start over), a promotion per step, the completion.
    expect(log.map((e) => [e.decision, e.weight])).toEqual([
      ['start', 10],
      ['promote', 25],
      ['promote', 50],
      ['complete', 100],
    ])
    for (const e of log.slice(1)) expect(e.canary!.requests).toBeGreaterThanOrEqual(MIN_REQUESTS)
    // Every decision is a published config version of its own.
    expect(await latestVersion()).toBe(before + log.length)
    windows.A = { from, to: performance.now() }
  }, 40_000)

  it('B: a Lambda canary failing 20% is rolled back at its first step, the check and its numbers logged', async () => {
    await reset()
    const from = performance.now()
    const start = startRollout(
      (await store.read()).doc,
      'reviews',
      'default',
      {
        canary: 'v3',
        settings: { steps: [10, 50, 100], stepDuration: '2s', analysis: { minRequests: MIN_REQUESTS } },
      },
      Date.now(),
    )!
    await store.publish(start.doc, `e2e: ${start.summary}`)
    const log = await drive()
    const { ref, to } = await rolloutOf()
    expect(ref!.rollout.status!.phase).toBe('rolled-back')
    expect(to).toEqual({ v1: 100, v3: 0 })
    expect(log.map((e) => e.decision)).toEqual(['start', 'rollback'])
    const back = log[1]!
    expect(back.step).toBe(0)
    expect(back.canary!.requests).toBeGreaterThanOrEqual(MIN_REQUESTS)
    expect(back.canary!.errorRate).toBeGreaterThan(1)
    expect(back.detail).toMatch(
      /^step 1 \(10%\) failed error-rate: canary [\d.]+% \(\d+\/\d+\) > max 1%; all traffic to v1$/,
    )
    // Let the rollback reach the caller before the next scenario counts anything.
    await new Promise((r) => setTimeout(r, 1_200))
    windows.B = { from, to: performance.now() }
  }, 40_000)

  it('C: a container canary adding 300 ms is rolled back on the p99 check', async () => {
    await reset()
    const from = performance.now()
    const start = startRollout(
      (await store.read()).doc,
      'reviews',
      'default',
      {
        canary: 'v4',
        settings: {
          steps: [10, 50, 100],
          stepDuration: '2s',
          analysis: { minRequests: MIN_REQUESTS, latencyP99: { maxAboveStable: '200ms' } },
        },
      },
      Date.now(),
    )!
    await store.publish(start.doc, `e2e: ${start.summary}`)
    const log = await drive()
    expect(log.map((e) => e.decision)).toEqual(['start', 'rollback'])
    const back = log[1]!
    expect(back.detail).toMatch(/failed latency-p99: canary p99 [\d.]+ms > stable [\d.]+ms \+ 200ms/)
    expect(back.canary!.p99Ms).toBeGreaterThan(300)
    expect(back.canary!.errorRate).toBe(0)
    windows.C = { from, to: performance.now() }
  }, 40_000)

  it('not one failed request on the stable target; the canary failures bounded by its share', async () => {
    const outcomes: Outcome[] = await load.stop()
    const failed = outcomes.filter((o) => o.status !== 200)
    // Only the flaky Lambda canary fails: by the mesh's own access log, nothing routed elsewhere did.
    const notCanary = access.filter((e) => e.status !== 200 && e.target !== 'v3')
    expect(notCanary, JSON.stringify(notCanary.slice(0, 3))).toEqual([])
    expect(access.filter((e) => e.target === 'v1').length).toBeGreaterThan(RATE * 5)
    expect(failed.length).toBe(access.filter((e) => e.status !== 200).length)
    const inB = outcomes.filter((o) => o.sentAt >= windows.B!.from && o.sentAt <= windows.B!.to)
    const v3 = outcomes.filter((o) => o.upstream === 'v3')
    const v3Failed = failed.filter((o) => o.upstream === 'v3')
    expect(v3.length).toBeGreaterThan(0)
    expect(v3Failed.length).toBeLessThanOrEqual(Math.ceil(v3.length / 5))
    // The canary's traffic: its 10% step share of scenario B, with room for a binomial spread.
    const share = 0.1 * inB.length
    expect(v3.length).toBeLessThanOrEqual(share + 4 * Math.sqrt(inB.length * 0.09) + 5)
    expect(outcomes.length).toBeGreaterThan(RATE * 5)
  })
})
