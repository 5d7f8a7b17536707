// `meshgate dev` as a library: the whole mesh of one config on this machine. Starts, in order, a local
// AWS AppConfig holding the config (appconfig-local.ts), the Lambda Invoke API (functions in
// worker-thread sandboxes), the container instances each behind its own sidecar, the gateway, the
// dashboard and the traffic generator. The config takes the production path: every change (the
// dashboard, an edit of the mirrored file, the user's own file, or `meshgate shift` from outside) is a
// new AppConfig version published as `meshgate publish` does (`publish()` below), and every runtime
// reads it from AppConfig through the config source it runs in AWS: the functions through the Lambda
// extension API, the sidecars and the gateway through the agent API. No signals and no stdout here:
// command.ts does those.
import type { Socket as UdpSocket } from 'node:dgram'
import { createSocket } from 'node:dgram'
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { ConfigError, loadConfigFile, loadConfigText } from '../config/load.ts'
import { createLiveConfig, type LiveConfig, openConfigSource } from '../config-source/index.ts'
import { appConfigMeshSchema } from '../control/appconfig-schema.ts'
import { type AppConfigStore, createAppConfigStore } from '../control/appconfig-store.ts'
import { parseLiveConfigUrl } from '../control/config-url.ts'
import { type MeshDocument, renderDocument } from '../control/mesh-document.ts'
import type { MeshConfig, RouteMatchConfig, StringMatch } from '../engine/types.ts'
import { createHttpInvoker } from '../invokers/http-invoker.ts'
import { createLambdaInvoker } from '../invokers/lambda-invoker.ts'
import { createDevRollouts, type DevRolloutView } from '../rollout/index.ts'
import { type LocalAppConfig, startLocalAppConfig } from './appconfig-local.ts'
import { LAMBDA_FUNCTIONS } from './catalog.ts'
import type { ContainerInstance } from './containers.ts'
import { type PortReservation, reservePort, startInstance } from './containers.ts'
import type { DashboardServer } from './dashboard-server.ts'
import { startDashboardServer } from './dashboard-server.ts'
import type { DevPlan, RawDoc } from './derive.ts'
import {
  deriveDoc,
  EditError,
  insertRoute,
  parseRawDoc,
  planDev,
  removeRoute,
  setFault,
  setTarget,
  setWeights,
} from './derive.ts'
import type { DevGateway } from './gateway.ts'
import { startDevGateway } from './gateway.ts'
import type { LambdaEmulator } from './lambda-emulator.ts'
import { startLambdaEmulator } from './lambda-emulator.ts'
import type { DevTelemetry, EdgeStats, Trace } from './telemetry.ts'
import { createDevTelemetry } from './telemetry.ts'
import type { TrafficGenerator, TrafficStats } from './traffic.ts'
import { createTrafficGenerator } from './traffic.ts'

/** Several file events come per save; one reload per burst (ms). */
/** A fault switched on where the user's file had none: half the requests fail, plainly visible. */
export const DEFAULT_FAULT = { abort: { percent: 50, status: 503 } } as const
/** Sidecars drain at most this long on shutdown (ms): dev traffic is disposable. */
const DEV_DRAIN_MS = 1_000
/** Where the dev mesh's config lives: one profile on the local AppConfig. */
export const DEV_CONFIG_URL = 'appconfig://meshgate-dev/local/mesh'
/**
 * 1 s: how often the dev runtimes ask AppConfig for a new version (MESHGATE_CONFIG_POLL), so a change
 * shows within a second. AWS's floor is 15 s; the local AppConfig has none.
 */
export const DEV_POLL_MS = 1_000
/** The local AppConfig takes any signature; the SDK only needs something to sign with. */
const DEV_CREDENTIALS = { accessKeyId: 'meshgate-dev', secretAccessKey: 'meshgate-dev' }

export interface DevMeshOptions {
  /** The user's mesh file. */
  file: string
  /** The package root (the catalog's modules are relative to it). */
  root: string
  host: string
  port: number
  dashboardPort: number
  traffic: boolean
  trafficRate: number
  /** The environment Lambda sandboxes start from. */
  env: Record<string, string>
  /** Startup steps, as they happen. */
  progress(step: string): void
  /** Reloads, refusals and warnings while running. */
  notice(line: string): void
  /** What functions print that is not EMF. */
  functionOutput(fn: string, line: string): void
  /**
   * The local Invoke API is up: sidecars started from now on read MESHGATE_LAMBDA_ENDPOINT from the
   * process environment, as a sidecar in a task would (command.ts sets it).
   */
  lambdaEndpoint(url: string): void
}

export interface ServiceSummary {
  service: string
  target: string
  runtime: 'Lambda' | 'container'
  /** The function name, or the instance and where its sidecar listens. */
  where: string
}

export interface RouteState {
  index: number
  name: string
  match: string
  to: Record<string, number>
  /** Percent per target, as configured. */
  configured: Record<string, number>
  /** Requests per target over the split window. */
  observed: Record<string, number>
  observedTotal: number
  sticky: string | null
  fault: string | null
  /** The fault the toggle turns on: the user's own, else DEFAULT_FAULT. */
  faultPreset: string
  timeoutMs: number
}

/** What each runtime serves, by the version names its config source reports. */
export interface ConfigState {
  /** `appconfig://meshgate-dev/local/mesh`. */
  url: string
  /** The local AppConfig (AWS_ENDPOINT_URL_APPCONFIG / _APPCONFIGDATA for `meshgate shift`). */
  endpoint: string
  /** Its agent / Lambda extension API (MESHGATE_APPCONFIG_AGENT). */
  agent: string
  /** The newest version the gateway serves (AppConfig's version number). */
  version: string
  gateway: string
  /** Sidecar instance id → version. */
  sidecars: Record<string, string>
  /** Function name → the version it last reported loading (null: no reload reported yet). */
  functions: Record<string, string | null>
}

export interface DashboardState {
  mesh: string
  file: string
  derivedFile: string
  generation: number
  lastReload: { at: string; ok: boolean; why: string; error?: string; version?: string } | null
  config: ConfigState
  gateway: { url: string; routes: { name: string; match: string; service: string }[] }
  services: {
    name: string
    runtime: 'lambda' | 'container' | 'mixed'
    targets: {
      name: string
      runtime: 'lambda' | 'container'
      functionName?: string
      instances?: { id: string; inbound: string; app: string }[]
    }[]
    routes: RouteState[]
    disabledRoutes: { name: string; index: number }[]
  }[]
  edges: EdgeStats[]
  traces: Trace[]
  traffic: TrafficStats
  /** Each rollout of the mesh (docs/rollout.md): step, both targets' numbers, the decision log. */
  rollouts: DevRolloutView[]
  time: number
}

export type EditRequest =
  | { op: 'weights'; service: string; route: string; to: Record<string, number> }
  | { op: 'target'; service: string; route: string; target: string }
  | { op: 'fault'; service: string; route: string; enabled: boolean }
  | { op: 'route'; service: string; route: string; enabled: boolean }

export interface EditResult {
  ok: boolean
  error?: string
}

export type PublishResult =
  | { ok: true /** The AppConfig version number now live. */; version: number; changed: boolean }
  | { ok: false; error: string }

export interface DevMesh {
  readonly gatewayUrl: string
  readonly dashboardUrl: string
  readonly lambdaUrl: string
  /** The live config's URL (DEV_CONFIG_URL) and the local AppConfig that holds it. */
  readonly configUrl: string
  readonly appConfig: { readonly url: string; readonly agentUrl: string }
  /** A mirror of the live version, for reading and editing (a save publishes it). */
  readonly derivedFile: string
  readonly summary: ServiceSummary[]
  state(): DashboardState
  /** The live version's document (local URLs in it): edit a copy and `publish()` it. */
  document(): MeshDocument
  /**
   * The one way a new config reaches the dev mesh (the dashboard, file edits and rollouts use it):
   * `doc` is validated as `meshgate validate` would, published as JSON as a new hosted configuration
   * version on the local AppConfig and deployed (AllAtOnce), exactly as `meshgate publish` does. Every
   * runtime reads it from there; the gateway and the sidecars are asked to check at once (as SIGHUP
   * would), the functions pick it up within their poll interval (DEV_POLL_MS). An invalid document is
   * refused with its `SOURCE:LINE:COL` problems and nothing is published.
   */
  publish(doc: MeshDocument, opts?: { description?: string }): Promise<PublishResult>
  edit(req: EditRequest): Promise<EditResult>
  readonly traffic: TrafficGenerator
  close(): Promise<void>
}

function describeValue(m: StringMatch): string {
  if (m.exact !== undefined) return `=${m.exact}`
  if (m.prefix !== undefined) return `^=${m.prefix}`
  if (m.regex !== undefined) return `~${m.regex}`
  return m.present === false ? ' absent' : ' present'
}

export function describeMatch(m: RouteMatchConfig): string {
  const parts: string[] = []
  if (m.methods) parts.push(m.methods.join('|'))
  if (m.path?.exact) parts.push(`path ${m.path.exact}`)
  if (m.path?.prefix) parts.push(m.path.prefix === '/' ? 'path /*' : `path ${m.path.prefix}/*`)
  if (m.path?.regex) parts.push(`path ~${m.path.regex}`)
  for (const [k, v] of Object.entries(m.headers ?? {})) parts.push(`${k}${describeValue(v)}`)
  for (const [k, v] of Object.entries(m.query ?? {})) parts.push(`?${k}${describeValue(v)}`)
  return parts.length > 0 ? parts.join(' ') : '*'
}

function describeFault(f: { delay?: { percent: number; duration: number | string }; abort?: object }) {
  const parts: string[] = []
  if (f.delay) {
    const d = typeof f.delay.duration === 'number' ? `${f.delay.duration / 1000}s` : f.delay.duration
    parts.push(`delay ${d} @${f.delay.percent}%`)
  }
  const a = f.abort as { percent: number; status: number } | undefined
  if (a) parts.push(`abort ${a.status} @${a.percent}%`)
  return parts.join(', ')
}

function lineSplit(text: string): string {
  return text.split('\n').join('; ')
}

export async function startDevMesh(opts: DevMeshOptions): Promise<DevMesh> {
  const cleanups: (() => Promise<void> | void)[] = []
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {})
    cleanups.length = 0
  }
  try {
    return await start(opts, cleanups, cleanup)
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** One version as the dev mesh serves it: the validated config and the document it came from. */
interface Served {
  config: MeshConfig
  doc: RawDoc
  text: string
  version: string
}

async function start(
  opts: DevMeshOptions,
  cleanups: (() => Promise<void> | void)[],
  cleanup: () => Promise<void>,
): Promise<DevMesh> {
  const { host } = opts
  opts.progress(`loading ${opts.file}`)
  const userConfig = await loadConfigFile(opts.file)
  let userDoc = parseRawDoc(await readFile(opts.file, 'utf8'))
  const plan: DevPlan = planDev(userConfig)

  const dir = await mkdtemp(join(tmpdir(), 'meshgate-dev-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const derivedFile = join(dir, 'mesh.json')

  // Inbound ports first: the derived config names them before any sidecar runs.
  const inboundPorts = new Map<string, PortReservation>()
  cleanups.push(async () => {
    await Promise.all([...inboundPorts.values()].map((r) => r.release()))
  })
  for (const i of plan.instances) inboundPorts.set(i.id, await reservePort(host))
  const urlOf = (id: string) => `http://${host}:${inboundPorts.get(id)!.port}`

  // ------------------------------------------------------------------------------------------
  // The control plane: a local AppConfig with the profile `meshgate publish --init` makes (the mesh
  // schema as its validator), and the derived config published to it as the first version.

  opts.progress('starting a local AppConfig and publishing the config to it')
  const appConfig: LocalAppConfig = await startLocalAppConfig({
    host,
    defaultPollIntervalSeconds: DEV_POLL_MS / 1000,
  })
  cleanups.push(() => appConfig.close())
  const configUrl = parseLiveConfigUrl(DEV_CONFIG_URL)
  if (configUrl.kind !== 'appconfig') throw new Error(`${DEV_CONFIG_URL} is not an AppConfig URL`)
  const store: AppConfigStore = await createAppConfigStore(configUrl, {
    endpoint: appConfig.url,
    region: opts.env.AWS_REGION ?? 'us-east-1',
    credentials: DEV_CREDENTIALS,
  })
  await store.init(appConfigMeshSchema())

  let generation = 0
  let lastReload: DashboardState['lastReload'] = null
  /** Publishes one at a time: AppConfig refuses a version made on top of a stale latest one. */
  let chain: Promise<unknown> = Promise.resolve()
  let gatewayLive: LiveConfig<Served> | undefined
  const instances: ContainerInstance[] = []

  async function publishNow(doc: MeshDocument, description: string): Promise<PublishResult> {
    const text = renderDocument(doc)
    const live = gatewayLive?.current()
    if (live !== undefined && text === live.text) {
      return { ok: true, version: Number(live.version), changed: false }
    }
    try {
      // What `meshgate publish` checks before it creates anything.
      await loadConfigText(text, DEV_CONFIG_URL)
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err)
      lastReload = { at: new Date().toISOString(), ok: false, why: description, error }
      opts.notice(`config refused (${description}), still running the previous one:\n${error}`)
      return { ok: false, error }
    }
    let version: number
    try {
      version = (await store.publish(text, { description: description.slice(0, 1024) })).version
    } catch (err) {
      const error = `publishing to ${DEV_CONFIG_URL} failed: ${err instanceof Error ? err.message : String(err)}`
      lastReload = { at: new Date().toISOString(), ok: false, why: description, error }
      opts.notice(error)
      return { ok: false, error }
    }
    lastReload = { at: new Date().toISOString(), ok: true, why: description, version: String(version) }
    // The gateway and the sidecars ask AppConfig now, as SIGHUP makes a sidecar do; the functions
    // find it on their next check (at most DEV_POLL_MS after their last one).
    const refused: string[] = []
    await Promise.all([
      gatewayLive?.checkNow(),
      ...instances.map((i) =>
        i.sidecar.reload().catch((err: unknown) => {
          refused.push(`${i.plan.id}: ${lineSplit(String(err))}`)
        }),
      ),
    ])
    if (gatewayLive === undefined)
      opts.notice(`published version ${version} (${description}) to ${DEV_CONFIG_URL}`)
    else if (refused.length > 0) opts.notice(`sidecars refused version ${version}: ${refused.join(' | ')}`)
    else
      opts.notice(
        `published version ${version} (${description}): gateway and ${instances.length} sidecars on it, ` +
          'functions within a second',
      )
    return { ok: true, version, changed: true }
  }

  function publish(doc: MeshDocument, publishOpts: { description?: string } = {}): Promise<PublishResult> {
    const run = () => publishNow(doc, publishOpts.description ?? 'meshgate dev')
    const next = chain.then(run, run)
    chain = next.catch(() => {})
    return next
  }

  const first = await publish(deriveDoc(userDoc, plan, urlOf), { description: `${basename(opts.file)}` })
  if (!first.ok) throw new Error(first.error)

  /** The agent / Lambda extension address and the SDK's endpoint: what a runtime in AWS would have. */
  const sourceEnv: Record<string, string> = {
    ...opts.env,
    AWS_REGION: opts.env.AWS_REGION ?? 'us-east-1',
    AWS_ENDPOINT_URL_APPCONFIGDATA: appConfig.url,
    MESHGATE_APPCONFIG_AGENT: appConfig.agentUrl,
    MESHGATE_CONFIG_POLL: `${DEV_POLL_MS}ms`,
  }
  const openSource = () =>
    openConfigSource(DEV_CONFIG_URL, { env: sourceEnv, pollMs: DEV_POLL_MS, appConfigVia: 'agent' })

  const telemetry: DevTelemetry = createDevTelemetry()

  // The X-Ray daemon address of the Lambda sandboxes: their subsegments join the traces.
  const xray: UdpSocket = createSocket('udp4')
  xray.on('message', (msg) => {
    const text = msg.toString('utf8')
    const nl = text.indexOf('\n')
    try {
      telemetry.xray(JSON.parse(text.slice(nl + 1)))
    } catch {
      // not a daemon document
    }
  })
  await new Promise<void>((resolve) => xray.bind(0, host, () => resolve()))
  cleanups.push(() => new Promise<void>((resolve) => xray.close(() => resolve())))
  const xrayAddress = `${host}:${xray.address().port}`

  const serviceOfFunction = new Map(plan.lambdas.map((l) => [l.functionName, l.service]))
  const missing = plan.lambdas.filter((l) => !(l.functionName in LAMBDA_FUNCTIONS))
  for (const l of missing) {
    opts.notice(
      `no handler for Lambda function ${l.functionName} (${l.service}/${l.target}) in proxy-core/dev/catalog.ts: ` +
        'its invocations get ResourceNotFoundException',
    )
  }

  /** The version each function last said it loaded (its `config reloaded` notices). */
  const functionVersions = new Map<string, string | null>(plan.lambdas.map((l) => [l.functionName, null]))
  /** A function's config notice (a JSON line of type `config`): its version, shown on one line. */
  function configNoticeOf(fn: string, line: string): boolean {
    if (!line.startsWith('{') || !line.includes('"type":"config"')) return false
    let message: unknown
    try {
      message = (JSON.parse(line) as { message?: unknown }).message
    } catch {
      return false
    }
    if (typeof message !== 'string') return false
    const loaded = /^config reloaded: version (\S+)/.exec(message)
    if (loaded) functionVersions.set(fn, loaded[1]!)
    opts.notice(`λ ${fn}: ${message}`)
    return true
  }

  opts.progress(`starting the Lambda Invoke API (${plan.lambdas.length} functions)`)
  let emulatorUrl = ''
  const emulator: LambdaEmulator = await startLambdaEmulator({
    root: opts.root,
    functions: LAMBDA_FUNCTIONS,
    // What `serverless deploy --param="meshConfig=appconfig://…"` gives a function: the URL, and the
    // AppConfig Lambda extension on its address (here the local AppConfig's agent API).
    env: (fn) => ({
      ...opts.env,
      MESHGATE_CONFIG: DEV_CONFIG_URL,
      MESHGATE_CONFIG_POLL: sourceEnv.MESHGATE_CONFIG_POLL!,
      MESHGATE_APPCONFIG_AGENT: appConfig.agentUrl,
      AWS_ENDPOINT_URL_APPCONFIGDATA: appConfig.url,
      MESHGATE_LAMBDA_ENDPOINT: emulatorUrl,
      MESHGATE_SERVICE: serviceOfFunction.get(fn) ?? fn,
      AWS_LAMBDA_FUNCTION_NAME: fn,
      AWS_REGION: sourceEnv.AWS_REGION!,
      AWS_XRAY_DAEMON_ADDRESS: xrayAddress,
    }),
    onOutput: (fn, line) => {
      if (telemetry.emf(serviceOfFunction.get(fn) ?? fn, line)) return
      if (!configNoticeOf(fn, line)) opts.functionOutput(fn, line)
    },
    onInvoke: (rec) => telemetry.invocation(serviceOfFunction.get(rec.functionName) ?? rec.functionName, rec),
  })
  emulatorUrl = emulator.url
  cleanups.push(() => emulator.close())
  opts.lambdaEndpoint(emulator.url)

  opts.progress(`starting ${plan.instances.length} container instances, each with its sidecar`)
  cleanups.push(async () => {
    await Promise.all(instances.map((i) => i.close()))
  })
  await Promise.all(
    plan.instances.map(async (p) => {
      const inst = await startInstance({
        plan: p,
        host,
        inbound: inboundPorts.get(p.id)!,
        configPath: DEV_CONFIG_URL,
        configSource: openSource(),
        configPollMs: DEV_POLL_MS,
        drainMs: DEV_DRAIN_MS,
        log: (line) => {
          if (telemetry.sidecarLog(p.service, line)) return
          // publish() announces each version once for all of them; refusals and the rest are shown.
          if (line.includes('"type":"config"') && line.includes('"message":"config reloaded: ')) return
          opts.notice(`sidecar ${p.id}: ${line}`)
        },
      })
      instances.push(inst)
    }),
  )
  instances.sort((a, b) => plan.instances.indexOf(a.plan) - plan.instances.indexOf(b.plan))

  // ------------------------------------------------------------------------------------------
  // The gateway reads the live config as the sidecars do; what it serves is what the dashboard shows
  // and what edits start from, whoever published it (the dashboard, a file, `meshgate shift`).

  opts.progress('starting the gateway')
  const http = createHttpInvoker()
  cleanups.push(() => http.close())
  let gateway: DevGateway | undefined
  const originalFaults = new Map<string, object>()
  for (const svc of Object.values(userConfig.services)) {
    for (const r of svc.routes) if (r.fault) originalFaults.set(`${svc.name}/${r.name}`, r.fault)
  }
  let disabled = new Map<string, { name: string; index: number; route: Record<string, unknown> }[]>()

  async function writeDerived(text: string): Promise<void> {
    const tmp = `${derivedFile}.${process.pid}.tmp`
    await writeFile(tmp, text)
    await rename(tmp, derivedFile)
  }

  gatewayLive = await createLiveConfig<Served>({
    source: openSource(),
    build: async (v) => ({
      config: await loadConfigText(v.text, v.name),
      doc: parseRawDoc(v.text),
      text: v.text,
      version: v.version,
    }),
    onSwap: (next) => {
      gateway?.setConfig(next.config)
      telemetry.configChanged()
      generation++
      void writeDerived(next.text).catch((err: unknown) =>
        opts.notice(`cannot write ${derivedFile}: ${String(err)}`),
      )
    },
    log: (line) => {
      // Reloads are announced by publish(); refusals and an unreachable source are worth a line.
      if (!line.startsWith('config reloaded')) opts.notice(`gateway: ${line}`)
    },
    pollMs: DEV_POLL_MS,
  })
  cleanups.push(() => gatewayLive?.close())
  const current = (): Served => gatewayLive!.current()
  await writeDerived(current().text)
  // Rollouts: the controller on the live version and in-process metrics (one hook); each of its
  // decisions is published like any other edit.
  const rollouts = createDevRollouts({
    read: () => current().doc,
    publish: (doc, why) => publishEdit(doc, why),
    registries: () => instances.map((i) => i.sidecar.metrics),
    notice: opts.notice,
  })
  cleanups.push(() => rollouts.close())
  gateway = await startDevGateway({
    host,
    port: opts.port,
    config: current().config,
    invokers: { http, lambda: createLambdaInvoker({ endpoint: emulator.url }) },
    telemetry: rollouts.observe(telemetry.sinkFor('gateway')),
  })
  cleanups.push(() => gateway?.close())

  const traffic = createTrafficGenerator(gateway.url, opts.trafficRate)
  cleanups.push(() => traffic.close())

  // ------------------------------------------------------------------------------------------
  // Edits: the dashboard's controls, a save of the mirrored file, a change of the user's own file.
  // Each makes a document and publishes it.

  function routeIndex(service: string, route: string): number {
    const svc = current().config.services[service]
    if (!svc) throw new EditError(`no service "${service}"`)
    const i = svc.routes.findIndex((r) => r.name === route)
    if (i < 0) throw new EditError(`service "${service}" has no route "${route}"`)
    return i
  }

  async function publishEdit(doc: RawDoc, why: string): Promise<EditResult> {
    const r = await publish(doc, { description: why })
    return r.ok ? { ok: true } : { ok: false, error: r.error }
  }

  async function edit(req: EditRequest): Promise<EditResult> {
    try {
      const doc = current().doc
      const what = `dashboard: ${req.op} ${req.service}/${req.route}`
      if (req.op === 'weights') {
        const next = setWeights(doc, req.service, routeIndex(req.service, req.route), req.to)
        return await publishEdit(next, `${what} ${JSON.stringify(req.to)}`)
      }
      if (req.op === 'target') {
        const next = setTarget(doc, req.service, routeIndex(req.service, req.route), req.target)
        return await publishEdit(next, `${what} → ${req.target}`)
      }
      if (req.op === 'fault') {
        const preset = originalFaults.get(`${req.service}/${req.route}`)
        const raw = preset ? rawFault(preset) : structuredClone(DEFAULT_FAULT)
        const next = setFault(
          doc,
          req.service,
          routeIndex(req.service, req.route),
          req.enabled ? (raw as Record<string, unknown>) : null,
        )
        return await publishEdit(next, `${what} ${req.enabled ? 'on' : 'off'}`)
      }
      const list = disabled.get(req.service) ?? []
      if (req.enabled) {
        const found = list.find((d) => d.name === req.route)
        if (!found) throw new EditError(`route "${req.route}" of "${req.service}" is not switched off`)
        const result = await publishEdit(
          insertRoute(doc, req.service, found.index, found.route),
          `${what} on`,
        )
        if (result.ok) list.splice(list.indexOf(found), 1)
        return result
      }
      const index = routeIndex(req.service, req.route)
      const removed = removeRoute(doc, req.service, index)
      const result = await publishEdit(removed.doc, `${what} off`)
      if (result.ok) disabled.set(req.service, [...list, { name: req.route, index, route: removed.route }])
      return result
    } catch (err) {
      if (err instanceof EditError) return { ok: false, error: err.message }
      throw err
    }
  }

  // A save of the mirrored file: published as it is (a refused one stays in the file, to be fixed).
  async function onDerivedFileChange(text: string): Promise<void> {
    if (text === current().text) return
    let doc: RawDoc
    try {
      doc = parseRawDoc(text)
    } catch (err) {
      opts.notice(`${derivedFile} refused, still running the previous config: ${String(err)}`)
      return
    }
    await publish(doc, { description: `${basename(derivedFile)} saved` })
  }

  // The user's own file: re-derived and published (dashboard edits start over).
  async function onUserFileChange(text: string): Promise<void> {
    let config: MeshConfig
    try {
      config = await loadConfigText(text, opts.file)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      opts.notice(`${opts.file} refused, still running the previous config:\n${err.message}`)
      return
    }
    const next = planDev(config)
    const known = new Set(plan.instances.map((i) => `${i.service}/${i.target}/${i.endpoint}`))
    const added = next.instances.filter((i) => !known.has(`${i.service}/${i.target}/${i.endpoint}`))
    if (added.length > 0) {
      opts.notice(
        `new HTTP endpoints (${added.map((a) => a.endpoint).join(', ')}) have no local instance: ` +
          'restart meshgate dev to start them',
      )
    }
    userDoc = parseRawDoc(text)
    const byKey = new Map(plan.instances.map((i) => [`${i.service}/${i.target}/${i.endpoint}`, i.id]))
    const samePlan: DevPlan = {
      lambdas: next.lambdas,
      instances: next.instances
        .filter((i) => byKey.has(`${i.service}/${i.target}/${i.endpoint}`))
        .map((i) => ({ ...i, id: byKey.get(`${i.service}/${i.target}/${i.endpoint}`)! })),
    }
    disabled = new Map()
    await publish(deriveDoc(userDoc, samePlan, urlOf), { description: `${basename(opts.file)} changed` })
  }

  // Both files through the file source, which reads a file only whole: an atomic rename at once, an
  // in-place write once it has settled (issue 16 class 5: a first piece that is valid YAML without
  // the last service is never published). Its first check is the version already running.
  async function watchFile(
    file: string,
    onText: (text: string) => Promise<void>,
    what: string,
  ): Promise<void> {
    const source = openConfigSource(file, { log: opts.notice })
    cleanups.push(() => source.close())
    await source.check().catch(() => undefined)
    let chain: Promise<void> = Promise.resolve()
    const stop = source.watch?.(() => {
      chain = chain
        .then(async () => {
          const version = await source.check()
          if (version !== undefined) await onText(version.text)
        })
        .catch((err: unknown) => opts.notice(`${what} failed: ${String(err)}`))
    })
    if (stop) cleanups.push(stop)
  }
  await watchFile(derivedFile, onDerivedFileChange, 'publish')
  await watchFile(opts.file, onUserFileChange, 'reload')

  // ------------------------------------------------------------------------------------------
  // The dashboard.

  function configState(): ConfigState {
    return {
      url: DEV_CONFIG_URL,
      endpoint: appConfig.url,
      agent: appConfig.agentUrl,
      version: current().version,
      gateway: gatewayLive!.status().version,
      sidecars: Object.fromEntries(instances.map((i) => [i.plan.id, i.sidecar.configStatus().version])),
      functions: Object.fromEntries(functionVersions),
    }
  }

  function state(): DashboardState {
    const config = current().config
    const splits = telemetry.splits()
    return {
      mesh: config.mesh,
      file: opts.file,
      derivedFile,
      generation,
      lastReload,
      config: configState(),
      gateway: {
        url: gateway!.url,
        routes: config.gateway.routes.map((r) => ({
          name: r.name,
          match: describeMatch(r.match),
          service: r.service,
        })),
      },
      services: Object.values(config.services).map((svc) => {
        const targets = Object.values(svc.targets).map((t) =>
          t.kind === 'lambda'
            ? { name: t.name, runtime: 'lambda' as const, functionName: t.functionName }
            : {
                name: t.name,
                runtime: 'container' as const,
                instances: instances
                  .filter((i) => i.plan.service === svc.name && i.plan.target === t.name)
                  .map((i) => ({ id: i.plan.id, inbound: i.inboundUrl, app: i.appUrl })),
              },
        )
        const kinds = new Set(targets.map((t) => t.runtime))
        const routes = svc.routes.map((r, index): RouteState => {
          const total = Object.values(r.to).reduce((n, w) => n + w, 0)
          const configured: Record<string, number> = {}
          for (const [t, w] of Object.entries(r.to)) configured[t] = total > 0 ? (w / total) * 100 : 0
          const observed = splits[`${svc.name}/${r.name}`] ?? {}
          const preset = originalFaults.get(`${svc.name}/${r.name}`) ?? null
          return {
            index,
            name: r.name,
            match: describeMatch(r.match),
            to: { ...r.to },
            configured,
            observed,
            observedTotal: Object.values(observed).reduce((n, v) => n + v, 0),
            sticky: r.stickiness?.header ?? r.stickiness?.cookie ?? null,
            fault: r.fault ? describeFault(r.fault) : null,
            faultPreset: preset ? describeFault(preset) : describeFault(DEFAULT_FAULT),
            timeoutMs: r.timeout,
          }
        })
        return {
          name: svc.name,
          runtime: kinds.size > 1 ? 'mixed' : kinds.has('lambda') ? 'lambda' : 'container',
          targets,
          routes,
          disabledRoutes: (disabled.get(svc.name) ?? []).map((d) => ({ name: d.name, index: d.index })),
        }
      }),
      edges: telemetry.edges(),
      traces: telemetry.traces(8),
      traffic: traffic.stats(),
      rollouts: rollouts.views(),
      time: Date.now(),
    }
  }

  opts.progress('starting the dashboard')
  const dashboard: DashboardServer = await startDashboardServer({
    host,
    port: opts.dashboardPort,
    state,
    edit,
    traffic,
  })
  cleanups.push(() => dashboard.close())

  if (opts.traffic) traffic.start()

  const summary: ServiceSummary[] = []
  for (const svc of Object.values(userConfig.services)) {
    for (const t of Object.values(svc.targets)) {
      if (t.kind === 'lambda') {
        const known = t.functionName in LAMBDA_FUNCTIONS
        summary.push({
          service: svc.name,
          target: t.name,
          runtime: 'Lambda',
          where: `${t.functionName}${known ? '' : ' (no handler!)'}`,
        })
      } else {
        for (const i of instances.filter((x) => x.plan.service === svc.name && x.plan.target === t.name)) {
          summary.push({
            service: svc.name,
            target: t.name,
            runtime: 'container',
            where: `${i.plan.id}: sidecar ${i.inboundUrl.replace('http://', '')} → app ${i.appUrl.replace('http://', '')}`,
          })
        }
      }
    }
  }

  let closing: Promise<void> | undefined
  return {
    gatewayUrl: gateway.url,
    dashboardUrl: dashboard.url,
    lambdaUrl: emulator.url,
    configUrl: DEV_CONFIG_URL,
    appConfig: { url: appConfig.url, agentUrl: appConfig.agentUrl },
    derivedFile,
    summary,
    state,
    document: () => structuredClone(current().doc),
    publish,
    edit,
    traffic,
    close() {
      closing ??= cleanup()
      return closing
    },
  }
}

/** A normalized fault (durations in ms) back in the file's vocabulary. */
function rawFault(f: object): Record<string, unknown> {
  const fault = f as {
    delay?: { percent: number; duration: number }
    abort?: { percent: number; status: number }
  }
  const out: Record<string, unknown> = {}
  if (fault.delay) out.delay = { percent: fault.delay.percent, duration: `${fault.delay.duration}ms` }
  if (fault.abort) out.abort = { ...fault.abort }
  return out
}
