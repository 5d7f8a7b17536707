// The request path, shared by the Lambda middleware and the sidecar. A routed request passes through
// the layers below in this order (linkerd2-proxy's route stack), composed once per runtime:
//
//   observe → faults → identify → split (+ mirror) → rewrite → route timeout → retry → attempt (breaker) → invoker
//
// Policy is the frozen CompiledMesh; state (budgets, ejections, breakers, balancers) lives in the
// per-service and per-target objects below, and a request's own state in its `Call`.

import { DEFAULT_TIMEOUT_MS } from '../config/defaults.ts'
import { createSampler, type Sampler } from '../telemetry/sampler.ts'
import { newSpanId, newTraceId, parseTraceHeaders, writeTraceHeaders } from '../telemetry/trace-context.ts'
import { backoffDelay } from './backoff.ts'
import { discardBody } from './body.ts'
import { Cancellation } from './cancel.ts'
import { type CircuitBreaker, createCircuitBreaker } from './circuit-breaker.ts'
import type { CompiledMesh, CompiledRoute, CompiledService } from './compile.ts'
import { ErrorCodes, errorResponse, MeshError } from './errors.ts'
import { decideFault } from './fault.ts'
import {
  formatGrpcTimeout,
  grpcStatusValue,
  isGrpcRequest,
  knownGrpcStatus,
  parseGrpcTimeout,
} from './grpc.ts'
import { createLoadBalancer, type LoadBalancerState } from './load-balancer.ts'
import { shouldMirror } from './mirror.ts'
import { createOutlierDetector, type OutlierDetector } from './outlier-detection.ts'
import { createRetryBudget, type RetryBudget } from './retry-budget.ts'
import { type AttemptOutcome, isRecordedBody, isReplayableBody, mayRetryRequest } from './retry-policy.ts'
import {
  type AttemptRequest,
  type CallerIdentity,
  type CancelSignal,
  type Clock,
  type Endpoint,
  type EndpointHealthView,
  type FailureKind,
  FailureKinds,
  type HeaderMap,
  type Invoker,
  MeshEventKinds,
  type MeshRequest,
  type MeshResponse,
  type MeshRuntime,
  type MeshRuntimeOptions,
  type Random,
  type RequestContext,
  type RequestEvent,
  type StreamPick,
  systemClock,
  systemRandom,
  systemTimers,
  type TargetConfig,
  type TargetEndpointsView,
  type TelemetrySink,
  type Timers,
  type TraceContext,
  UpstreamFailure,
} from './types.ts'
import { createWeightedPicker } from './weighted.ts'

interface TargetState {
  readonly config: TargetConfig
  endpoints: Endpoint[]
  readonly invoker: Invoker
  readonly balancer: LoadBalancerState
  readonly outlier: OutlierDetector
  /** `outlier.isEjected`, bound once: the balancer calls it on every pick. */
  readonly isEjected: (id: string) => boolean
  readonly breaker: CircuitBreaker
  readonly health: EndpointHealthView | undefined
}

interface ServiceState {
  readonly compiled: CompiledService
  readonly targets: ReadonlyMap<string, TargetState>
  readonly budget: RetryBudget
}

/** One request's state, owned by the pipeline. */
interface Call {
  readonly svc: ServiceState
  readonly route: CompiledRoute
  /** Headers are a private copy: rewrites and trace headers mutate it, never the caller's map. */
  readonly req: MeshRequest
  readonly trace: TraceContext
  readonly signal: CancelSignal | undefined
  readonly start: number
  /** A gRPC call: mesh errors are trailers-only gRPC responses, `grpc-timeout` is its deadline. */
  readonly grpc: boolean
  /** Clock time after which no attempt may start or continue (route timeout); Infinity for none. */
  readonly deadline: number
  /**
   * The route timeout has fired. Kept apart from `now >= deadline`: a timer may fire a fraction of a
   * millisecond before the clock says so (node's timers count whole milliseconds), and a retry must
   * never start in that sliver.
   */
  expired: boolean
  target: TargetState | undefined
  retries: number
  fault: 'delay' | 'abort' | undefined
}

type Invoke = (call: Call) => Promise<MeshResponse>
type Layer = (next: Invoke) => Invoke

interface Env {
  readonly mesh: string
  readonly clock: Clock
  readonly random: Random
  readonly timers: Timers
  readonly sink: TelemetrySink
  /** Requests in the pipeline now (for drain); counted by `observe`. */
  readonly load: { inFlight: number }
}

function header(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

function cookie(headers: HeaderMap, name: string): string | undefined {
  const raw = header(headers, 'cookie')
  if (!raw) return undefined
  for (const part of raw.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/** Resolves after `ms`, or early (without error) when `signal` aborts; the caller checks the signal. */
function sleep(timers: Timers, ms: number, signal: CancelSignal | undefined): Promise<void> {
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve) => {
    const onAbort = () => {
      timers.clear(handle)
      resolve()
    }
    const handle = timers.set(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort)
  })
}

function failureOf(err: unknown): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err
  return new UpstreamFailure(FailureKinds.reset, err instanceof Error ? err.message : String(err), {
    cause: err,
  })
}

/** The mesh's own answer once an upstream failure is final. */
function failureToError(kind: FailureKind, deadlineHit: boolean): MeshError {
  if (deadlineHit || kind === FailureKinds.timeout)
    return new MeshError(ErrorCodes.timeout, 'upstream timed out')
  if (kind === FailureKinds.functionError)
    return new MeshError(ErrorCodes.functionError, 'the Lambda function failed')
  return new MeshError(ErrorCodes.upstreamUnavailable, `upstream ${kind}`)
}

function hasHeaderOps(ops: { set: Record<string, string>; add: Record<string, string>; remove: string[] }) {
  if (ops.remove.length > 0) return true
  for (const _ in ops.set) return true
  for (const _ in ops.add) return true
  return false
}

function applyHeaderOps(
  headers: HeaderMap,
  ops: { set: Record<string, string>; add: Record<string, string>; remove: string[] },
): void {
  for (const name of ops.remove) delete headers[name]
  for (const name in ops.set) headers[name] = ops.set[name]
  for (const name in ops.add) {
    const prev = headers[name]
    const value = ops.add[name]!
    headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value]
  }
}

/** `/api/reviews/1?x` with prefix `/api/reviews` → `/reviews/1?x`; keeps the query. */
export function rewritePath(
  path: string,
  matchedPrefix: string | undefined,
  rewrite: { prefix?: string; path?: string },
): string {
  const q = path.indexOf('?')
  const pathname = q < 0 ? path : path.slice(0, q)
  const query = q < 0 ? '' : path.slice(q)
  if (rewrite.path !== undefined) return rewrite.path + query
  if (rewrite.prefix !== undefined && matchedPrefix !== undefined) {
    const base =
      matchedPrefix.endsWith('/') && matchedPrefix.length > 1 ? matchedPrefix.slice(0, -1) : matchedPrefix
    let rest = pathname.slice(base === '/' ? 0 : base.length)
    let prefix = rewrite.prefix
    if (prefix.endsWith('/') && rest.startsWith('/')) rest = rest.slice(1)
    if (prefix === '/' && rest.startsWith('/')) prefix = ''
    return (prefix + rest || '/') + query
  }
  return path
}

function targetEndpoints(config: TargetConfig, urls?: readonly string[]): Endpoint[] {
  if (config.kind === 'lambda') {
    const id = config.qualifier ? `${config.functionName}:${config.qualifier}` : config.functionName
    return [Object.freeze({ id, target: config })]
  }
  return (urls ?? config.endpoints).map((id) => Object.freeze({ id, target: config }))
}

// ---------------------------------------------------------------------------------------------
// The layers.

/** Outermost: turns errors into responses and reports one RequestEvent per request. */
const observe =
  (env: Env): Layer =>
  (next) =>
  async (call) => {
    let res: MeshResponse
    let errorCode: string | undefined
    env.load.inFlight++
    try {
      res = await next(call)
      // A switched connection: the adapter that tunnels it needs to know what carried it.
      const up = res.upgrade
      if (up !== undefined) {
        up.route = call.route.name
        up.target = call.target?.config.name
        up.idleTimeout = call.route.idleTimeout
      }
    } catch (err) {
      const meshErr =
        err instanceof MeshError ? err : failureToError(failureOf(err).kind, pastDeadline(env, call))
      res = errorResponse(meshErr, call.grpc)
      errorCode = meshErr.code
    } finally {
      env.load.inFlight--
    }
    if (!call.grpc) env.sink.request?.(requestEvent(env, call, res.status, errorCode))
    else {
      // A gRPC call's status is in its trailers: reported when they come, with the call's whole time.
      const report = (grpcStatus: number | undefined) => {
        const ev = requestEvent(env, call, res.status, errorCode)
        ev.grpc = true
        if (grpcStatus !== undefined) ev.grpcStatus = grpcStatus
        env.sink.request?.(ev)
      }
      const known = knownGrpcStatus(res)
      const trailers = res.trailers
      if (known === undefined && trailers instanceof Promise)
        trailers.then(
          (t) => report(grpcStatusValue(t?.['grpc-status'])),
          () => report(undefined),
        )
      else report(known)
    }
    return res
  }

function requestEvent(env: Env, call: Call, status: number, errorCode: string | undefined): RequestEvent {
  return {
    mesh: env.mesh,
    service: call.svc.compiled.name,
    route: call.route.name,
    target: call.target?.config.name,
    method: call.req.method,
    path: call.req.path,
    status,
    start: call.start,
    end: env.clock.now(),
    retries: call.retries,
    fault: call.fault,
    errorCode,
    trace: call.trace,
  }
}

/**
 * Fault injection (Istio): an optional delay, then an optional abort, before any upstream is touched.
 * A route without faults passes straight through (no async frame of its own on the request path).
 */
const faults =
  (env: Env): Layer =>
  (next) => {
    async function inject(call: Call, cfg: NonNullable<CompiledRoute['fault']>): Promise<MeshResponse> {
      const decision = decideFault(cfg, env.random)
      if (decision.delayMs > 0) {
        call.fault = 'delay'
        await sleep(env.timers, decision.delayMs, call.signal)
      }
      if (decision.abortStatus > 0) {
        call.fault = 'abort'
        throw new MeshError(ErrorCodes.faultAbort, 'fault injected', { status: decision.abortStatus })
      }
      return next(call)
    }
    return (call) => (call.route.fault ? inject(call, call.route.fault) : next(call))
  }

/** The header a caller's identity token travels in (DESIGN; proxy-core/identity/). */
const IDENTITY_HEADER = 'x-meshgate-identity'

/**
 * The caller's identity token for the destination service, in `x-meshgate-identity`; whatever the app
 * put there itself is dropped, so an app can neither forge nor replay one. A cached token is set
 * without an async frame; only the first call to a destination waits for the mint. Without identity
 * (no `identity` in the config, or no token source) the layer passes straight through.
 */
const identify =
  (identity: CallerIdentity | undefined, enabled: boolean): Layer =>
  (next) => {
    if (identity === undefined || !enabled) return next
    const attach = (call: Call, token: string | undefined) => {
      if (token === undefined) delete call.req.headers[IDENTITY_HEADER]
      else call.req.headers[IDENTITY_HEADER] = token
    }
    return (call) => {
      let token: ReturnType<CallerIdentity['tokenFor']>
      try {
        token = identity.tokenFor(call.svc.compiled.name)
      } catch {
        token = undefined
      }
      if (typeof token === 'string' || token === undefined) {
        attach(call, token)
        return next(call)
      }
      return token.then(
        (t) => {
          attach(call, t)
          return next(call)
        },
        () => {
          attach(call, undefined)
          return next(call)
        },
      )
    }
  }

/** Picks the target (sticky by header or cookie, else weighted) and fires the mirror copy. */
const split =
  (env: Env, invokeMirror: (call: Call, target: TargetState) => void): Layer =>
  (next) =>
  (call) => {
    const { route, svc, req } = call
    let name: string | undefined
    const sticky = route.stickiness
    if (sticky) {
      const key = sticky.header ? header(req.headers, sticky.header) : cookie(req.headers, sticky.cookie!)
      if (key) name = route.picker.pickSticky(key)
    }
    name ??= route.picker.pick(env.random)
    call.target = svc.targets.get(name)
    if (route.mirror && shouldMirror(route.mirror, env.random)) {
      const mirrorTarget = svc.targets.get(route.mirror.target)
      if (mirrorTarget) invokeMirror(call, mirrorTarget)
    }
    return next(call)
  }

/** Request header and path rewrites on the way out, response header operations on the way back. */
const rewrite: Layer = (next) => (call) => {
  const { route, req } = call
  applyHeaderOps(req.headers, route.headers.request)
  if (route.rewrite) {
    req.path = rewritePath(req.path, route.match.path?.prefix, route.rewrite)
    if (route.rewrite.host) req.headers.host = route.rewrite.host
  }
  const ops = route.headers.response
  if (!hasHeaderOps(ops)) return next(call)
  return next(call).then((res) => {
    applyHeaderOps(res.headers, ops)
    return res
  })
}

/** Retries with the route's policy, the service's budget and jittered backoff, within the deadline. */
const retry =
  (env: Env): Layer =>
  (next) =>
  async (call) => {
    const policy = call.route.retry
    const budget = call.svc.budget
    const body = call.req.body
    // A recorded stream (the HTTP/2 edge's) is replayable if it has ended within its bound by the time
    // a retry is wanted; that is asked then.
    const retriable = mayRetryRequest(policy, call.req.method, isReplayableBody(body) || isRecordedBody(body))
    budget.requestStarted()
    let holdingRetry = false
    try {
      for (let attempt = 1; ; attempt++) {
        let res: MeshResponse | undefined
        let failure: UpstreamFailure | undefined
        let outcome: AttemptOutcome
        try {
          res = await next(call)
          outcome = call.grpc
            ? { status: res.status, grpcStatus: knownGrpcStatus(res) }
            : { status: res.status }
        } catch (err) {
          if (err instanceof MeshError) throw err
          failure = failureOf(err)
          outcome = { failure: failure.kind }
        } finally {
          if (holdingRetry) {
            budget.retryFinished()
            holdingRetry = false
          }
        }
        const deadlineHit = pastDeadline(env, call)
        const again =
          retriable &&
          attempt <= policy.maxRetries &&
          !deadlineHit &&
          !call.signal?.aborted &&
          policy.retriableOutcome(outcome) &&
          replayable(call)
        if (again) {
          const delay = backoffDelay(attempt, policy.backoff.base, policy.backoff.max, env.random)
          if (env.clock.now() + delay < call.deadline) {
            if (budget.tryAcquireRetry()) {
              holdingRetry = true
              if (res) {
                discardBody(res.body)
                // A switched connection nobody will tunnel (a route retrying on 101): let it go.
                res.upgrade?.destroy()
              }
              await sleep(env.timers, delay, call.signal)
              call.retries++
              continue
            }
            env.sink.event?.(MeshEventKinds.retryBudgetExhausted, labels(env, call))
          }
        }
        if (res) return res
        throw failureToError(failure!.kind, deadlineHit)
      }
    } finally {
      budget.requestFinished()
    }
  }

/**
 * Whether the request body can go out again; a recorded stream becomes its recording here (a body
 * that is still arriving, or was larger than the bound, cannot).
 */
function replayable(call: Call): boolean {
  const body = call.req.body
  if (!isRecordedBody(body)) return true
  const whole = body.recorded()
  if (whole === undefined) return false
  call.req.body = whole
  return true
}

function pastDeadline(env: Env, call: Call): boolean {
  return call.expired || env.clock.now() >= call.deadline
}

function labels(env: Env, call: Call) {
  return {
    mesh: env.mesh,
    service: call.svc.compiled.name,
    route: call.route.name,
    target: call.target?.config.name,
  }
}

/**
 * The innermost step: one try against one endpoint, with the per-try timeout and trace headers, within
 * Envoy's circuit breaker (at most `maxRequests` tries in flight per target; the rest fail fast). The
 * breaker is taken here rather than in a layer of its own: one async frame less per request.
 */
function attempt(env: Env): Invoke {
  return async (call) => {
    const target = call.target!
    // A function answers one event with one response: it can never take over a connection.
    if (call.req.upgrade !== undefined && target.config.kind === 'lambda')
      throw new MeshError(ErrorCodes.upgradeNotSupported, 'a Lambda target cannot take an upgrade', {
        details: { target: target.config.name },
      })
    const endpoint = target.balancer.pick(target.endpoints, target.isEjected, env.random)
    if (!endpoint)
      throw new UpstreamFailure(FailureKinds.connectFailure, `no endpoints for target ${target.config.name}`)
    // The HTTP/1.1 client hands over a switched connection in cleartext only (http/http1-client.ts):
    // refused as clearly as a Lambda target, instead of an upgrade silently dropped.
    if (call.req.upgrade !== undefined && endpoint.id.startsWith('https:'))
      throw new MeshError(ErrorCodes.upgradeNotSupported, 'an https target cannot take an upgrade yet', {
        details: { target: target.config.name },
      })
    const policy = call.route.retry
    const now = env.clock.now()
    const remaining = call.deadline - now
    if (remaining <= 0) {
      call.expired = true
      throw new UpstreamFailure(FailureKinds.timeout, 'route timeout reached before the try')
    }
    if (!target.breaker.tryStartRequest()) {
      env.sink.event?.(MeshEventKinds.circuitOpen, labels(env, call))
      throw new MeshError(ErrorCodes.circuitOpen, 'circuit breaker open')
    }
    // The try ends at its own timeout or at the route's, whichever comes first.
    const byRoute = !(policy.perTryTimeout > 0 && policy.perTryTimeout < remaining)
    const tryTimeout = byRoute ? remaining : policy.perTryTimeout
    const spanId = newSpanId(env.random)
    writeTraceHeaders(call.req.headers, call.trace, spanId)
    // The upstream learns how long it has: this try's time, never more than the caller gave.
    if (call.grpc && Number.isFinite(tryTimeout))
      call.req.headers['grpc-timeout'] = formatGrpcTimeout(tryTimeout)

    const controller = new Cancellation()
    const timer = Number.isFinite(tryTimeout)
      ? env.timers.set(() => {
          if (byRoute) call.expired = true
          controller.abort()
        }, tryTimeout)
      : undefined
    const onClientAbort = () => controller.abort()
    call.signal?.addEventListener('abort', onClientAbort)
    const req: AttemptRequest = {
      method: call.req.method,
      path: call.req.path,
      headers: call.req.headers,
      body: call.req.body,
      remoteAddress: call.req.remoteAddress,
      upgrade: call.req.upgrade,
      service: call.svc.compiled.name,
      attempt: call.retries + 1,
    }
    if (call.grpc && policy.onGrpcStatus && call.retries < policy.maxRetries) req.awaitGrpcStatus = true
    if (call.req.trailers !== undefined) req.trailers = call.req.trailers
    let outcome: AttemptOutcome = { failure: FailureKinds.reset }
    target.balancer.started(endpoint.id)
    try {
      // Invokers reject promptly when the signal aborts (the Invoker contract): no race is wrapped
      // around them here, which would cost a promise and two listeners per attempt.
      const res = await target.invoker.invoke(req, endpoint, controller)
      outcome = call.grpc ? { status: res.status, grpcStatus: knownGrpcStatus(res) } : { status: res.status }
      return res
    } catch (err) {
      outcome = { failure: failureOf(err).kind }
      throw err
    } finally {
      if (timer !== undefined) env.timers.clear(timer)
      call.signal?.removeEventListener('abort', onClientAbort)
      target.breaker.finishRequest()
      target.balancer.finished(endpoint.id)
      if (target.outlier.record(endpoint.id, outcome, target.endpoints.length)) {
        env.sink.event?.(MeshEventKinds.ejection, labels(env, call))
      }
      env.sink.attempt?.({
        mesh: env.mesh,
        service: call.svc.compiled.name,
        route: call.route.name,
        target: target.config.name,
        endpoint: endpoint.id,
        attempt: req.attempt,
        method: req.method,
        url: `http://${call.svc.compiled.name}${req.path}`,
        status: 'status' in outcome ? outcome.status : undefined,
        failure: 'failure' in outcome ? outcome.failure : undefined,
        start: now,
        end: env.clock.now(),
        spanId,
        trace: call.trace,
      })
    }
  }
}

/**
 * Istio-style mirroring: a copy of the request goes to the mirror target with `-shadow` appended to
 * the host; its answer is dropped and it never delays or fails the original. A streamed body cannot
 * be copied without holding it back, so streamed requests are not mirrored.
 */
function mirrorer(env: Env) {
  return (call: Call, target: TargetState): void => {
    // An upgrade would open a second connection that nobody reads.
    if (call.req.upgrade !== undefined || !isReplayableBody(call.req.body)) return
    const endpoint = target.balancer.pick(target.endpoints, target.isEjected, env.random)
    if (!endpoint) return
    const headers: HeaderMap = { ...call.req.headers }
    const host = header(headers, 'host') ?? call.svc.compiled.name
    headers.host = `${host}-shadow`
    const controller = new Cancellation()
    // `timeout: 0` means none for the original; a mirror nobody waits for still gets a bound.
    const timeout = call.route.timeout > 0 ? call.route.timeout : DEFAULT_TIMEOUT_MS
    const timer = env.timers.set(() => controller.abort(), timeout)
    env.sink.event?.(MeshEventKinds.mirror, {
      mesh: env.mesh,
      service: call.svc.compiled.name,
      route: call.route.name,
      target: target.config.name,
    })
    const req: AttemptRequest = { ...call.req, headers, service: call.svc.compiled.name, attempt: 1 }
    // Started after the original has been sent on its way: a microtask later, never in its path.
    queueMicrotask(() => {
      target.invoker.invoke(req, endpoint, controller).then(
        (res) => {
          env.timers.clear(timer)
          discardBody(res.body)
        },
        () => env.timers.clear(timer),
      )
    })
  }
}

// ---------------------------------------------------------------------------------------------

/** The per-service state of each runtime, for the next one built from it (see `carryTarget`). */
const stateOf = new WeakMap<MeshRuntime, ReadonlyMap<string, ServiceState>>()

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/**
 * A target's state after a config swap. Where the policy that owns a piece of state is unchanged, the
 * new runtime shares the old one's object, so the two count together while requests that started on
 * the old config finish: the breaker's requests in flight, the balancer's per-endpoint load, the
 * outlier detector's ejections (minus endpoints that left). A changed policy starts its state afresh;
 * so does a target whose kind or backend changed, since what was learnt was about other endpoints.
 */
function carryTarget(
  t: TargetConfig,
  cfg: CompiledService['config'],
  prev: TargetState | undefined,
  prevCfg: CompiledService['config'] | undefined,
  fresh: () => Omit<TargetState, 'config' | 'isEjected'>,
): TargetState {
  const made = fresh()
  let endpoints = made.endpoints
  let { balancer, outlier, breaker } = made
  if (prev !== undefined && prevCfg !== undefined && prev.config.kind === t.kind) {
    const sameBackend =
      t.kind === 'http' && prev.config.kind === 'http'
        ? sameJson(t.endpoints, prev.config.endpoints) &&
          sameJson(t.dns, prev.config.dns) &&
          sameJson(t.cloudMap, prev.config.cloudMap)
        : sameJson(t, prev.config)
    if (sameBackend) {
      // Keep what discovery found for it (a dns:// target's resolved addresses).
      endpoints = prev.endpoints
      if (sameJson(cfg.outlierDetection, prevCfg.outlierDetection)) outlier = prev.outlier
      const lb = (c: TargetConfig) => (c.kind === 'http' ? c.loadBalancer : 'round-robin')
      if (lb(t) === lb(prev.config)) balancer = prev.balancer
    }
    if (sameJson(cfg.circuitBreaker, prevCfg.circuitBreaker)) breaker = prev.breaker
  }
  const health = made.health
  return {
    config: t,
    endpoints,
    invoker: made.invoker,
    balancer,
    outlier,
    // Out of the balancer when either passive (outlier) or active (health check) says so.
    isEjected:
      health === undefined
        ? (id) => outlier.isEjected(id)
        : (id) => outlier.isEjected(id) || !health.isHealthy(id),
    breaker,
    health,
  }
}

/**
 * Build the runtime of one compiled mesh. `previous`, the runtime this one replaces on a reload, lends
 * it the state of services and targets that still exist (carryTarget); the previous runtime keeps
 * serving the requests that started on it.
 */
export function createMeshRuntime(
  mesh: CompiledMesh,
  options: MeshRuntimeOptions,
  previous?: MeshRuntime,
): MeshRuntime {
  const clock = options.clock ?? systemClock
  const random = options.random ?? systemRandom
  const timers = options.timers ?? systemTimers
  const epochNow = options.epochNow ?? Date.now
  const env: Env = {
    mesh: mesh.config.mesh,
    clock,
    random,
    timers,
    sink: options.telemetry ?? {},
    load: { inFlight: 0 },
  }
  const sampler: Sampler = createSampler(mesh.config.tracing.sampling, clock, random)
  const before = previous === undefined ? undefined : stateOf.get(previous)

  const services = new Map<string, ServiceState>()
  for (const compiled of mesh.services.values()) {
    const cfg = compiled.config
    const old = before?.get(compiled.name)
    const targets = new Map<string, TargetState>()
    for (const t of Object.values(cfg.targets)) {
      targets.set(
        t.name,
        carryTarget(t, cfg, old?.targets.get(t.name), old?.compiled.config, () => ({
          endpoints: targetEndpoints(t),
          invoker: t.kind === 'lambda' ? options.invokers.lambda : options.invokers.http,
          balancer: createLoadBalancer(t.kind === 'http' ? t.loadBalancer : 'round-robin'),
          outlier: createOutlierDetector(cfg.outlierDetection, clock),
          breaker: createCircuitBreaker(cfg.circuitBreaker),
          health: t.kind === 'http' ? options.health?.(cfg.name, t.name) : undefined,
        })),
      )
    }
    const budget =
      old !== undefined && sameJson(old.compiled.config.retryBudget, cfg.retryBudget)
        ? old.budget
        : createRetryBudget(cfg.retryBudget, clock)
    services.set(compiled.name, { compiled, targets, budget })
  }

  // The route stack, outermost first. Composed once; each request only allocates its Call.
  const layers: Layer[] = [
    observe(env), // error table + one RequestEvent per request
    faults(env), // injected delay / abort, before any upstream is touched
    identify(options.identity, mesh.config.identity !== undefined), // caller token for the destination
    split(env, mirrorer(env)), // weighted or sticky target choice; mirror copy
    rewrite, // header operations and path/host rewrite
    retry(env), // attempts, budget, backoff, all within the route timeout
  ]
  const pipeline = layers.reduceRight<Invoke>((next, layer) => layer(next), attempt(env))

  function traceFor(req: MeshRequest, ctx: RequestContext | undefined): TraceContext {
    const trace = ctx?.trace ?? parseTraceHeaders(req.headers) ?? { traceId: newTraceId(epochNow(), random) }
    return trace.sampled === undefined ? { ...trace, sampled: sampler.sample() } : trace
  }

  /** A mesh error before routing (unknown service, no route): still one RequestEvent. */
  function reject(
    service: string,
    req: MeshRequest,
    err: MeshError,
    start: number,
    trace?: TraceContext,
  ): MeshResponse {
    const grpc = isGrpcRequest(req.headers)
    const res = errorResponse(err, grpc)
    env.sink.request?.({
      mesh: env.mesh,
      service,
      method: req.method,
      path: req.path,
      status: res.status,
      start,
      end: clock.now(),
      retries: 0,
      errorCode: err.code,
      ...(grpc ? { grpc: true, grpcStatus: Number(res.headers['grpc-status']) } : {}),
      trace,
    })
    return res
  }

  // Not an async function: the pipeline's own promise is the request's, with no frame around it.
  function handle(service: string, req: MeshRequest, ctx?: RequestContext): Promise<MeshResponse> {
    try {
      return route(service, req, ctx)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  function route(service: string, req: MeshRequest, ctx: RequestContext | undefined): Promise<MeshResponse> {
    const start = clock.now()
    const svc = services.get(service)
    if (!svc) {
      const err = new MeshError(ErrorCodes.unknownService, 'unknown service', { details: { service } })
      return Promise.resolve(reject(service, req, err, start, ctx?.trace))
    }
    // A tcp service takes connections on its own port (pickStream), never HTTP requests: in every
    // runtime (the sidecar, context.mesh.fetch, the gateway) an HTTP call to it has no route.
    const route = svc.compiled.config.listener
      ? undefined
      : svc.compiled.routes.match(req.method, req.path, req.headers)
    if (!route)
      return Promise.resolve(
        reject(
          service,
          req,
          svc.compiled.config.listener
            ? new MeshError(ErrorCodes.noRoute, 'a tcp service', { details: { reason: 'tcp_service' } })
            : new MeshError(ErrorCodes.noRoute, 'no route'),
          start,
          ctx?.trace,
        ),
      )
    const grpc = isGrpcRequest(req.headers)
    let deadline = route.timeout > 0 ? start + route.timeout : Number.POSITIVE_INFINITY
    if (grpc) {
      // The caller's deadline, bounded by the route's (Envoy's max_grpc_timeout).
      const callerMs = parseGrpcTimeout(req.headers['grpc-timeout'])
      if (callerMs !== undefined) deadline = Math.min(deadline, start + callerMs)
    }
    const call: Call = {
      svc,
      route,
      // The one copy of the headers: everything downstream mutates this map, never the caller's
      // (unless the caller handed it over).
      req: {
        method: req.method,
        path: req.path,
        headers: ctx?.ownsHeaders === true ? req.headers : { ...req.headers },
        body: req.body,
        remoteAddress: req.remoteAddress,
        upgrade: req.upgrade,
      },
      trace: traceFor(req, ctx),
      signal: ctx?.signal,
      start,
      grpc,
      deadline,
      expired: false,
      target: undefined,
      retries: 0,
      fault: undefined,
    }
    if (req.trailers !== undefined) call.req.trailers = req.trailers
    return pipeline(call)
  }

  async function handleGateway(req: MeshRequest, ctx?: RequestContext): Promise<MeshResponse> {
    const route = mesh.gateway.match(req.method, req.path, req.headers)
    if (!route)
      return reject('gateway', req, new MeshError(ErrorCodes.noRoute, 'no route'), clock.now(), ctx?.trace)
    const path = route.rewrite ? rewritePath(req.path, route.match.path?.prefix, route.rewrite) : req.path
    const headers = route.rewrite?.host ? { ...req.headers, host: route.rewrite.host } : req.headers
    return handle(route.service, { ...req, path, headers }, ctx)
  }

  /**
   * A TCP service's connection: the target by the route's weights, the endpoint by the target's
   * balancer (ejected ones skipped), never one in `exclude` (connects that failed already). A target
   * with no endpoint left is dropped from the draw, so a retry moves to another target by weight.
   * Undefined when nothing is left to try, or when the target's `maxConnections` are open.
   */
  function pickStream(service: string, exclude: ReadonlySet<string>): StreamPick | undefined {
    const svc = services.get(service)
    const route = svc?.compiled.routes.routes[0]
    if (svc === undefined || route === undefined) return undefined
    const usable = (t: TargetState | undefined): readonly Endpoint[] =>
      t === undefined ? [] : exclude.size === 0 ? t.endpoints : t.endpoints.filter((e) => !exclude.has(e.id))
    let name = route.picker.pick(random)
    let target = svc.targets.get(name)
    let pool = usable(target)
    if (pool.length === 0) {
      // Rare (a retry after every endpoint of the drawn target failed): redraw among the others.
      const rest: Record<string, number> = {}
      for (const [t, w] of Object.entries(route.to))
        if (w > 0 && usable(svc.targets.get(t)).length > 0) rest[t] = w
      if (Object.keys(rest).length === 0) return undefined
      name = createWeightedPicker(rest).pick(random)
      target = svc.targets.get(name)
      pool = usable(target)
    }
    const state = target!
    const endpoint = state.balancer.pick(pool, state.isEjected, random)
    if (endpoint === undefined) return undefined
    const labelsOf = { mesh: env.mesh, service, route: route.name, target: name }
    // Envoy's max_connections: a target's open connections are bounded (circuitBreaker.maxConnections).
    if (!state.breaker.tryOpenConnection()) {
      env.sink.event?.(MeshEventKinds.circuitOpen, labelsOf)
      return undefined
    }
    state.balancer.started(endpoint.id)
    let open = true
    return {
      route: route.name,
      target: name,
      endpoint: endpoint.id,
      idleTimeout: route.idleTimeout,
      connected(ok: boolean) {
        const outcome = ok ? { status: 200 } : { failure: FailureKinds.connectFailure }
        if (state.outlier.record(endpoint.id, outcome, state.endpoints.length))
          env.sink.event?.(MeshEventKinds.ejection, labelsOf)
        if (!ok) this.closed()
      },
      closed() {
        if (!open) return
        open = false
        state.balancer.finished(endpoint.id)
        state.breaker.closeConnection()
      },
    }
  }

  function setEndpoints(service: string, target: string, urls: string[]): void {
    const state = services.get(service)?.targets.get(target)
    if (state?.config.kind !== 'http') return
    const next = new Set(urls)
    for (const e of state.endpoints) if (!next.has(e.id)) state.outlier.forget(e.id)
    state.endpoints = targetEndpoints(state.config, urls)
    state.health?.setEndpoints?.(urls)
  }

  function endpoints(): TargetEndpointsView[] {
    const out: TargetEndpointsView[] = []
    for (const [service, svc] of services) {
      for (const [target, state] of svc.targets) {
        if (state.config.kind !== 'http') continue
        out.push({
          service,
          target,
          endpoints: state.endpoints.map((e) => ({
            id: e.id,
            ejected: state.outlier.isEjected(e.id),
            healthy: state.health?.isHealthy(e.id) ?? true,
          })),
        })
      }
    }
    return out
  }

  const runtime: MeshRuntime = {
    config: mesh.config,
    handle,
    handleGateway,
    pickStream,
    setEndpoints,
    endpoints,
    inFlight: () => env.load.inFlight,
  }
  stateOf.set(runtime, services)
  return runtime
}
