// `mesh()`: the middy middleware that puts a Lambda function in the mesh.
//
//  before   per invocation: inbound trace context (`_X_AMZN_TRACE_ID`, else the event's headers) and
//           `context.mesh.fetch`, which routes `http://<service>/<path>` through the engine with the
//           same routes and policies as the sidecar. The first invocation loads and compiles the
//           config (once per container; nothing is read or built at import). Later invocations
//           start a check of the config source at most once per poll interval, in the background:
//           the invocation that starts it never waits for it, the next one routes by what it found.
//  after    flush this invocation's metrics: one stdout write of EMF.
//  onError  the same flush; the error goes on to the next onError middleware.
//
// middy 7 stops the whole chain when any middleware answers early (a `before` returning a value, or
// one setting `request.earlyResponse`): NO after hook runs, not even those of middlewares already
// passed. So `before` also watches `request.response` and flushes when middy assigns an early
// response. Anything still unflushed (an onError earlier in the chain that rethrew) is drained into the
// next invocation's line rather than lost: metrics are deltas of one registry per container.

import type { MiddlewareObj, Request as MiddyRequest } from '@middy/core'
import type { Context } from 'aws-lambda'
import { loadConfigText } from '../config/load.ts'
import {
  createLiveConfig,
  type LiveConfig,
  openConfigSource,
  parsePollInterval,
} from '../config-source/index.ts'
import { compileMesh } from '../engine/compile.ts'
import { edgePath } from '../engine/path-normalize.ts'
import { createMeshRuntime } from '../engine/runtime.ts'
import type {
  AttemptEvent,
  CallerIdentity,
  HeaderMap,
  Invoker,
  MeshConfig,
  MeshResponse,
  MeshRuntime,
  TelemetrySink,
  TraceContext,
} from '../engine/types.ts'
import { systemClock, systemRandom } from '../engine/types.ts'
import { createNodeHttpInvoker } from '../invokers/http-node.ts'
import { formatAccessLog } from '../telemetry/access-log.ts'
import { createConfigMetrics } from '../telemetry/config-metrics.ts'
import { formatEmf } from '../telemetry/emf.ts'
import { createMetricsRegistry, type MetricsRegistry } from '../telemetry/metrics.ts'
import { createSampler, type Sampler } from '../telemetry/sampler.ts'
import { newSpanId, newTraceId, parseTraceHeaders, parseXRayTraceId } from '../telemetry/trace-context.ts'
import { segmentForRequest, subsegmentForAttempt } from '../telemetry/xray.ts'
import { createXRayEmitter, type XRayEmitter } from '../telemetry/xray-emitter.ts'
import type { LambdaReceiver } from './receive.ts'

export interface MeshOptions {
  /** This function's mesh service, for metrics and traces. Default: `MESHGATE_SERVICE`, then the function name. */
  service?: string
  /**
   * The config source: a mesh file path (JSON in the bundle is cheapest), inline JSON,
   * `appconfig://APP/ENV/PROFILE` (the AppConfig Lambda extension, else AppConfigData) or
   * `s3://BUCKET/KEY`. Default: `MESHGATE_CONFIG`.
   */
  config?: string
  /** CloudWatch namespace of the EMF metrics. Default: `MESHGATE_METRICS_NAMESPACE`, then `meshgate`. */
  namespace?: string
  /**
   * The function's `aws-xray-sdk-core` module, when it already uses it: meshgate's subsegments then
   * nest under the SDK's current segment or subsegment at the time of each `context.mesh.fetch`.
   * Passed in rather than detected, so functions that do not use the SDK never load it (25–36 ms).
   */
  xray?: XRaySdk
}

/** The part of `aws-xray-sdk-core` meshgate uses. */
export interface XRaySdk {
  getSegment(): unknown
}

interface SdkSegment {
  id?: unknown
  trace_id?: unknown
  notTraced?: unknown
  segment?: { trace_id?: unknown; notTraced?: unknown }
}

/** The SDK's current (sub)segment as a parent, or undefined outside any segment. */
function sdkTrace(sdk: XRaySdk): TraceContext | undefined {
  let seg: SdkSegment | undefined
  try {
    seg = sdk.getSegment() as SdkSegment | undefined
  } catch {
    return undefined // the SDK's context-missing strategy may throw
  }
  const traceId = seg?.trace_id ?? seg?.segment?.trace_id
  if (typeof seg?.id !== 'string' || typeof traceId !== 'string') return undefined
  const notTraced = seg.notTraced ?? seg.segment?.notTraced
  return { traceId, parentId: seg.id, sampled: notTraced !== true }
}

/** `context.mesh`: the mesh client of this invocation. */
export interface MeshContext {
  /** A `fetch` for mesh URLs, `http://<service>/<path>` (or `http://<service>.mesh/...`). */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>
  /** The service this function is (from the options). */
  readonly service: string
  /** The inbound trace context of this invocation, if any. */
  readonly trace: TraceContext | undefined
  /** The container's mesh runtime (what `fetch` and the gateway route through). */
  readonly runtime: MeshRuntime
}

declare module 'aws-lambda' {
  interface Context {
    /** Set by the `mesh()` middleware. */
    mesh: MeshContext
  }
}

// ---------------------------------------------------------------------------------------------
// The container: config, runtime and telemetry, built once on the first invocation.

/** One config version, compiled: what an invocation routes by from start to end. */
interface Generation {
  runtime: MeshRuntime
  /** Local sampling for invocations that arrive without a trace decision (X-Ray's default rule). */
  sampler: Sampler
}

interface Container {
  live: LiveConfig<Generation>
  /** The receiver of each service this container's functions are, made on first need (receive.ts). */
  receiver(service: string): Promise<LambdaReceiver>
  registry: MetricsRegistry
  coldStart: boolean
  /** Epoch ms minus clock ms, for X-Ray times. */
  epochOffsetMs: number
  xray(): XRayEmitter
  /** Access-log lines of the invocation in progress, written with its metrics in one stdout write. */
  accessLog: string[]
  /** The live config's counters since the previous EMF line (telemetry/config-metrics.ts). */
  configMetrics(writing: boolean): Record<string, number> | undefined
}

const containers = new Map<string, Promise<Container>>()

function epochOffset(): number {
  return Date.now() - systemClock.now()
}

/**
 * The Lambda invoker (and the API Gateway event code it carries) is imported on the first call to a
 * Lambda target: a bundle built with code splitting keeps it in a chunk that a function calling only
 * HTTP targets never loads. The AWS SDK client inside it loads lazily in any case.
 */
function lazyLambdaInvoker(): Invoker {
  let loading: Promise<Invoker> | undefined
  return {
    async invoke(req, endpoint, signal) {
      loading ??= import('../invokers/lambda-invoker.ts').then((m) => m.createLambdaInvoker())
      loading.catch(() => {
        loading = undefined
      })
      return (await loading).invoke(req, endpoint, signal)
    },
  }
}

/** A config notice (reload, refusal, staleness) as one JSON line, beside the access log and EMF. */
function configNotice(line: string): void {
  noticeLine('config', line)
}

function noticeLine(type: string, message: string): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), type, message })}\n`)
}

/**
 * The caller side of mesh identity, loaded on the first mesh call of a config that names `identity`
 * (the engine's identify layer asks only then): a function that never calls the mesh never loads the
 * STS client or makes an STS call.
 */
function lazyCallerIdentity(config: () => MeshConfig): CallerIdentity {
  let source: CallerIdentity | undefined
  let loading: Promise<CallerIdentity> | undefined
  return {
    tokenFor(service) {
      if (source !== undefined) return source.tokenFor(service)
      loading ??= import('../identity/index.ts').then((m) => {
        source = m.createCallerIdentity({
          config,
          clock: systemClock,
          onError: (message) => noticeLine('identity', message),
        })
        return source
      })
      loading.catch(() => {
        loading = undefined
      })
      return loading.then((s) => s.tokenFor(service))
    },
  }
}

/** Whether `service` has a receiver policy under `config` (identity/policy.ts decides the rest). */
function hasReceiverPolicy(config: MeshConfig, service: string): boolean {
  const svc = config.services[service]
  return (
    svc !== undefined &&
    (svc.authorization !== undefined || svc.rateLimit !== undefined || config.authorization !== undefined)
  )
}

/** What mesh() read from the environment for its config source, once, when the handler was built. */
interface SourceSettings {
  pollMs: number
  /** MESHGATE_IDENTITY_CA: a PEM bundle trusted beside the system's roots for issuers' JWKS. */
  identityCa: string | undefined
  /** MESHGATE_APPCONFIG_AGENT: the extension's address, or `off`. */
  agent: string | undefined
}

function createContainer(configSource: string, settings: SourceSettings): Promise<Container> {
  const { pollMs } = settings
  let pending = containers.get(configSource)
  if (pending !== undefined) return pending
  pending = (async () => {
    const registry = createMetricsRegistry()
    const metrics = registry.sink()
    let xray: XRayEmitter | undefined
    const emitter = () => {
      xray ??= createXRayEmitter()
      return xray
    }
    const offset = epochOffset()
    const accessLog: string[] = []
    let live: LiveConfig<Generation> | undefined
    const telemetry: TelemetrySink = {
      request(ev) {
        metrics.request?.(ev)
        if (live?.current().runtime.config.accessLog) accessLog.push(formatAccessLog(ev, ev.end + offset))
      },
      event: (kind, labels) => metrics.event?.(kind, labels),
      attempt(ev: AttemptEvent) {
        // Lambda traces only what the function's own segment samples; its facade segment is the parent.
        if (ev.trace.sampled !== true || ev.trace.parentId === undefined) return
        emitter().send(
          subsegmentForAttempt(ev, {
            epochOffsetMs: offset,
            parentId: ev.trace.parentId,
            traceId: ev.trace.traceId,
          }),
        )
      },
    }
    const invokers = { http: createNodeHttpInvoker(), lambda: lazyLambdaInvoker() }
    const currentConfig = () => live!.current().runtime.config
    const identity = lazyCallerIdentity(currentConfig)
    const receivers = new Map<string, Promise<LambdaReceiver>>()
    const receiver = (service: string): Promise<LambdaReceiver> => {
      let r = receivers.get(service)
      if (r === undefined) {
        r = import('./receive.ts').then((m) =>
          m.createLambdaReceiver({
            service,
            config: currentConfig,
            clock: systemClock,
            telemetry,
            caFile: settings.identityCa,
            onError: (message) => noticeLine('identity', message),
          }),
        )
        r.catch(() => receivers.delete(service))
        receivers.set(service, r)
      }
      return r
    }
    live = await createLiveConfig<Generation>({
      source: openConfigSource(configSource, {
        pollMs,
        log: configNotice,
        env: { ...process.env, MESHGATE_APPCONFIG_AGENT: settings.agent },
      }),
      async build(version, previous) {
        const config = await loadConfigText(version.text, version.name)
        return {
          runtime: createMeshRuntime(
            compileMesh(config),
            { invokers, telemetry, identity },
            previous?.runtime,
          ),
          sampler: createSampler(config.tracing.sampling, systemClock, systemRandom),
        }
      },
      // No timer: a frozen container cannot poll, and a timer firing on thaw would run inside an
      // invocation. Each invocation calls checkIfDue() instead.
      schedule: 'on-demand',
      pollMs,
      log: configNotice,
    })
    return {
      live,
      receiver,
      registry,
      coldStart: true,
      epochOffsetMs: offset,
      xray: emitter,
      accessLog,
      configMetrics: createConfigMetrics(() => live!.status()),
    }
  })()
  // A config that failed to load is tried again on the next invocation, not cached as broken.
  pending.catch(() => containers.delete(configSource))
  containers.set(configSource, pending)
  return pending
}

// ---------------------------------------------------------------------------------------------
// context.mesh.fetch

function serviceOf(url: URL): string {
  if (url.protocol !== 'http:') {
    throw new TypeError(`meshgate: mesh URLs are http://<service>/<path>, got ${url.protocol}`)
  }
  const host = url.hostname.toLowerCase()
  return host.endsWith('.mesh') ? host.slice(0, -'.mesh'.length) : host
}

// Statuses whose responses can have no body (the Fetch standard's null body statuses).
const nullBodyStatus = new Set([101, 103, 204, 205, 304])

/** The engine's response as a standard `Response`. */
export function toFetchResponse(res: MeshResponse): Response {
  const headers = new Headers()
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) {
      try {
        headers.append(name, v)
      } catch {
        // A header value fetch refuses (e.g. a stray control character): drop that header only.
      }
    }
  }
  // fetch's Response cannot carry 1xx; they never reach here as final responses anyway.
  const status = res.status >= 200 && res.status <= 599 ? res.status : 502
  let body: BodyInit | null = null
  if (!nullBodyStatus.has(status) && res.body !== null) {
    const b = res.body
    // Node's Response takes async iterables as bodies too.
    body = b as BodyInit
  }
  return new Response(body, { status, headers })
}

function makeFetch(
  runtime: MeshRuntime,
  invocationTrace: TraceContext | undefined,
  sdk: XRaySdk | undefined,
): (input: string | URL | Request, init?: RequestInit) => Promise<Response> {
  return async function meshFetch(input, init) {
    const trace = (sdk && sdkTrace(sdk)) ?? invocationTrace
    const req = new Request(input, init)
    const url = new URL(req.url)
    const service = serviceOf(url)
    const headers: HeaderMap = {}
    req.headers.forEach((value, name) => {
      headers[name] = value
    })
    headers.host = url.host
    // fetch's URL parser already resolved dot segments, as an app's fetch through a sidecar would;
    // the rest of the normal form (escapes, slashes) is the sidecar's, so both runtimes agree.
    const edge = edgePath(url.pathname + url.search, runtime.config.pathNormalization)
    if (!edge.ok) return toFetchResponse(edge.refusal)
    const body = req.body === null ? null : new Uint8Array(await req.arrayBuffer())
    const res = await runtime.handle(
      service,
      { method: req.method, path: edge.path, headers, body },
      { ...(trace ? { trace } : {}), signal: req.signal },
    )
    return toFetchResponse(res)
  }
}

// ---------------------------------------------------------------------------------------------
// The middleware

/** What `mesh()` keeps in `request.internal` for one invocation. */
interface InvocationState {
  container: Container
  /** The config this invocation started on; it finishes on it whatever swaps in meanwhile. */
  generation: Generation
  flushed: boolean
  /**
   * Set when the invocation arrived with no trace context (outside Lambda, a direct Invoke): meshgate
   * started the trace, so it also sends the segment its calls name as Parent, or they would be orphans.
   */
  owned: { trace: Required<TraceContext>; start: number; method: string; path: string } | undefined
}
const STATE = 'meshgate'

/** The hooks take any event and result: `.use(mesh())` fits every handler. */
type AnyRequest = MiddyRequest<unknown, unknown, Error, Context>
export type MeshMiddleware = Required<
  Pick<MiddlewareObj<unknown, unknown, Error, Context>, 'before' | 'after' | 'onError'>
>

function internalOf(request: AnyRequest): Record<string, unknown> {
  return request.internal as Record<string, unknown>
}

const optionKeys = new Set(['service', 'config', 'namespace', 'xray'])

function validateOptions(options: unknown): MeshOptions {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError('meshgate: mesh(options) takes an object: { service?, config?, namespace?, xray? }')
  }
  for (const [key, value] of Object.entries(options)) {
    if (!optionKeys.has(key)) throw new TypeError(`meshgate: mesh() has no option "${key}"`)
    if (key === 'xray') {
      if (value !== undefined && typeof (value as XRaySdk | null)?.getSegment !== 'function') {
        throw new TypeError('meshgate: mesh() option "xray" takes the aws-xray-sdk-core module')
      }
      continue
    }
    if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) {
      throw new TypeError(`meshgate: mesh() option "${key}" must be a non-empty string`)
    }
  }
  return options as MeshOptions
}

function invocationTrace(event: unknown): TraceContext | undefined {
  // In Lambda the runtime sets this per invocation; its Parent is the function's own segment.
  const env = process.env._X_AMZN_TRACE_ID
  const fromEnv = env ? parseXRayTraceId(env) : undefined
  if (fromEnv !== undefined) return fromEnv
  const headers = (event as { headers?: unknown } | null)?.headers
  if (typeof headers !== 'object' || headers === null) return undefined
  const lower: HeaderMap = {}
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (typeof v === 'string') lower[k.toLowerCase()] = v
  }
  return parseTraceHeaders(lower)
}

export function mesh(options?: MeshOptions): MeshMiddleware {
  const opts = validateOptions(options)
  // Read the environment once, when the handler is built.
  const configSource = opts.config ?? process.env.MESHGATE_CONFIG
  if (configSource === undefined || configSource.trim() === '') {
    throw new TypeError('meshgate: no mesh config: pass mesh({ config }) or set MESHGATE_CONFIG')
  }
  const service =
    opts.service ?? process.env.MESHGATE_SERVICE ?? process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'lambda'
  const namespace = opts.namespace ?? process.env.MESHGATE_METRICS_NAMESPACE ?? 'meshgate'
  const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME ?? service
  const sourceSettings: SourceSettings = {
    pollMs: parsePollInterval(process.env.MESHGATE_CONFIG_POLL),
    agent: process.env.MESHGATE_APPCONFIG_AGENT,
    identityCa: process.env.MESHGATE_IDENTITY_CA,
  }

  /** The invocation's own segment, for a trace meshgate started (see InvocationState.owned). */
  function sendOwnedSegment(
    container: Container,
    generation: Generation,
    owned: NonNullable<InvocationState['owned']>,
    response: unknown,
  ): void {
    const status = (response as { statusCode?: unknown } | null | undefined)?.statusCode
    container.xray().send(
      segmentForRequest(
        {
          mesh: generation.runtime.config.mesh,
          service,
          method: owned.method,
          path: owned.path,
          status: typeof status === 'number' ? status : response instanceof Error ? 500 : 200,
          start: owned.start,
          end: systemClock.now(),
          retries: 0,
        },
        {
          epochOffsetMs: container.epochOffsetMs,
          id: owned.trace.parentId,
          traceId: owned.trace.traceId,
          origin: 'AWS::Lambda::Function',
          name: functionName,
        },
      ),
    )
  }

  function flush(state: InvocationState, response?: unknown): void {
    if (state.flushed) return
    state.flushed = true
    const { container, owned } = state
    if (owned?.trace.sampled) sendOwnedSegment(container, state.generation, owned, response)
    const snapshot = container.registry.drain()
    const emf = formatEmf(snapshot, {
      namespace,
      coldStart: container.coldStart,
      timestamp: Date.now(),
      coldStartDimensions: { FunctionName: functionName },
      // The live config's counters ride on this line; with nothing else to say, only when there is news.
      functionMetrics: container.configMetrics(snapshot.length > 0 || container.coldStart),
    })
    container.coldStart = false
    const lines = container.accessLog.splice(0)
    if (emf !== '') lines.push(emf)
    // One write per invocation, straight to stdout: console.log in Lambda prefixes each line with a
    // timestamp and request id, and EMF lines must be bare JSON.
    if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`)
  }

  /** Flush when middy assigns an early response: middy runs no after hooks in that case. */
  function watchEarlyResponse(request: AnyRequest, state: InvocationState): void {
    let response = request.response
    Object.defineProperty(request, 'response', {
      configurable: true,
      enumerable: true,
      get: () => response,
      set(value: unknown) {
        response = value
        if ('earlyResponse' in request) flush(state, value)
      },
    })
  }

  async function meshBefore(request: AnyRequest): Promise<unknown> {
    const container = await createContainer(configSource!, sourceSettings)
    // Take this invocation's config first, then maybe start looking for the next one: the check runs
    // beside the handler and never delays it.
    const generation = container.live.current()
    container.live.checkIfDue()
    let trace = invocationTrace(request.event)
    let owned: InvocationState['owned']
    if (trace === undefined) {
      const started: Required<TraceContext> = {
        traceId: newTraceId(Date.now(), systemRandom),
        parentId: newSpanId(systemRandom),
        sampled: generation.sampler.sample(),
      }
      const http = (
        request.event as { requestContext?: { http?: { method?: string; path?: string } } } | null
      )?.requestContext?.http
      owned = {
        trace: started,
        start: systemClock.now(),
        method: http?.method ?? 'INVOKE',
        path: http?.path ?? '/',
      }
      trace = started
    }
    const state: InvocationState = { container, generation, flushed: false, owned }
    internalOf(request)[STATE] = state
    const fetch = makeFetch(generation.runtime, trace, opts.xray)
    const meshContext: MeshContext = { fetch, service, trace, runtime: generation.runtime }
    request.context.mesh = meshContext
    watchEarlyResponse(request, state)
    // The receiver's policy, before the handler sees anything: a refusal is the response (middy
    // then runs no handler and no after hook; watchEarlyResponse flushes).
    const config = generation.runtime.config
    if (hasReceiverPolicy(config, service)) {
      const refusal = await (await container.receiver(service)).admit(request.event, config)
      if (refusal !== undefined) return refusal
    }
    return undefined
  }

  function meshAfter(request: AnyRequest): void {
    const state = internalOf(request)[STATE] as InvocationState | undefined
    if (state) flush(state, request.response)
  }

  function meshOnError(request: AnyRequest): void {
    const state = internalOf(request)[STATE] as InvocationState | undefined
    if (state) flush(state, request.error)
  }

  return { before: meshBefore, after: meshAfter, onError: meshOnError }
}
