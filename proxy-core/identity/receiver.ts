// The receiver: three layers that stand between a listener and the app, in this order:
//
//   authenticate (401) → authorize (403) → rate limit (429) → next
//
// They read a service's policy (policy.ts) from the config the request arrived on, keep the state
// that outlives a config swap (the issuers' keys, the token buckets), and refuse through the one
// error table. The token header is always removed before the app: an app never sees a token it
// could replay. Every decision is counted (MeshEventKinds) and named on the call for the access log.

import { ErrorCodes, errorResponse, MeshError } from '../engine/errors.ts'
import {
  type Clock,
  type HeaderMap,
  type MeshConfig,
  type MeshEventKind,
  MeshEventKinds,
  type MeshResponse,
  type RateLimitConfig,
  type TelemetrySink,
} from '../engine/types.ts'
import { audienceFor } from './audience.ts'
import { type Caller, callerLabel, callerOf, principalIndex } from './caller.ts'
import { createJwksCache, type FetchJwks, type JwksCache } from './jwks.ts'
import { decide, policyFor, type ServicePolicy } from './policy.ts'
import { createRateLimiter, type RateLimiter } from './rate-limit.ts'
import { LEEWAY_SECONDS, type TokenProblem, type VerifiedToken, verifyToken } from './verify.ts'

/** 10 000 verified tokens: a mesh's callers each hold one per destination; ~2 MB at most. */
const MAX_VERIFIED = 10_000

/** The header a caller's token travels in (DESIGN). */
export const IDENTITY_HEADER = 'x-meshgate-identity'

/** What the layers need of a request; each runtime's call object carries at least this. */
export interface GuardedCall {
  readonly service: string
  readonly method: string
  /** The normalized path (engine/path-normalize.ts), as it will be forwarded. */
  readonly path: string
  readonly headers: HeaderMap
  caller?: string
  rule?: string
  errorCode?: string
  /** Set when audit mode let through what enforce would have refused. */
  audited?: boolean
  /** A gRPC call: a refusal is a trailers-only gRPC response (engine/errors.ts). */
  readonly grpc?: boolean
}

export type GuardInvoke<C extends GuardedCall> = (call: C) => Promise<MeshResponse>
export type GuardLayer<C extends GuardedCall> = (next: GuardInvoke<C>) => GuardInvoke<C>

export interface ReceiverOptions {
  /** The config in force (a live swap changes it). */
  config(): MeshConfig
  clock: Clock
  /** Epoch ms (tokens carry epoch seconds). */
  epochNow?: () => number
  /** Fetches a JWKS document (identity/fetch.ts over HTTPS; tests may pass their own). */
  fetchJwks: FetchJwks
  telemetry?: TelemetrySink
  /** Route and target labels of this listener's metrics (`inbound`/`app` on the sidecar). */
  labels: { route: string; target?: string }
  /** JWKS fetch failures, one line each. */
  onError?(message: string): void
  jwksTtlMs?: number
  jwksCooldownMs?: number
}

export interface Receiver {
  /** The layers, outermost first: authenticate, authorize, rate limit. */
  layers<C extends GuardedCall>(): GuardLayer<C>[]
  /** JWKS fetches per issuer so far. */
  jwksFetches(): Record<string, number>
}

interface CallState {
  policy: ServicePolicy | undefined
  caller: Caller | undefined
}

function refusal(
  call: GuardedCall,
  code: 'unauthenticated' | 'forbidden' | 'rate_limited',
  details?: Record<string, string>,
) {
  const message =
    code === 'unauthenticated' ? 'no valid identity' : code === 'forbidden' ? 'not allowed' : 'rate limited'
  return errorResponse(new MeshError(code, message, details === undefined ? {} : { details }), call.grpc)
}

export function createReceiver(opts: ReceiverOptions): Receiver {
  const epochNow = opts.epochNow ?? Date.now
  const jwks: JwksCache = createJwksCache({
    fetch: opts.fetchJwks,
    now: () => opts.clock.now(),
    ...(opts.jwksTtlMs === undefined ? {} : { ttlMs: opts.jwksTtlMs }),
    ...(opts.jwksCooldownMs === undefined ? {} : { cooldownMs: opts.jwksCooldownMs }),
    onError: (issuer, err) => opts.onError?.(`JWKS fetch from ${issuer} failed: ${String(err)}`),
  })
  // Per service, with the config that made it: a swap that keeps a service's rateLimit keeps its buckets.
  const limiters = new Map<string, { config: string; limiter: RateLimiter }>()
  // Tokens already verified, by their exact text: a caller reuses one token for most of its life
  // (identity/token-source.ts), so the signature is checked once per token, not once per request. A
  // hit still checks `exp` (with the leeway) and must be for the same audience and issuers.
  const verified = new Map<
    string,
    {
      token: VerifiedToken
      audience: string
      issuers: readonly string[]
      caller: Caller
      index: ReadonlyMap<string, string>
    }
  >()
  const audienceOf = (service: string) => audienceFor(opts.config().identity?.audience ?? '', service)
  // Per-request state, keyed by the call object: the layers share it without widening GuardedCall.
  const states = new WeakMap<GuardedCall, CallState>()

  function count(kind: MeshEventKind, service: string): void {
    opts.telemetry?.event?.(kind, {
      mesh: opts.config().mesh,
      service,
      route: opts.labels.route,
      ...(opts.labels.target === undefined ? {} : { target: opts.labels.target }),
    })
  }

  const byConfig = new WeakMap<RateLimitConfig, RateLimiter>()
  function limiterFor(service: string, config: RateLimitConfig): RateLimiter {
    const known = byConfig.get(config)
    if (known !== undefined) return known
    // A config swap that leaves this service's rate limit as it was keeps its buckets.
    const key = JSON.stringify(config)
    const held = limiters.get(service)
    const limiter = held?.config === key ? held.limiter : createRateLimiter(config, opts.clock)
    limiters.set(service, { config: key, limiter })
    byConfig.set(config, limiter)
    return limiter
  }

  type Who = { caller: Caller } | { problem: TokenProblem } | undefined

  /** The cached answer for a token seen before, or undefined when it must be verified. */
  function fromCache(config: MeshConfig, audience: string, header: string): Who | null {
    const hit = verified.get(header)
    if (hit === undefined || hit.audience !== audience || hit.issuers !== config.identity!.issuers)
      return null
    if (hit.token.expires + LEEWAY_SECONDS <= epochNow() / 1000) {
      verified.delete(header)
      return { problem: 'expired' }
    }
    const index = principalIndex(config)
    if (hit.index !== index) {
      hit.caller = callerOf(hit.token, index)
      hit.index = index
    }
    return { caller: hit.caller }
  }

  async function verify(config: MeshConfig, audience: string, header: string): Promise<Who> {
    const issuers = config.identity!.issuers
    const v = await verifyToken(header, { issuers, audience, epochNow }, jwks)
    if (!v.ok) return { problem: v.problem }
    if (verified.size >= MAX_VERIFIED) {
      // Full: forget the older half (Map keeps insertion order).
      let n = MAX_VERIFIED / 2
      for (const k of verified.keys()) {
        if (n-- <= 0) break
        verified.delete(k)
      }
    }
    const index = principalIndex(config)
    const caller = callerOf(v.token, index)
    verified.set(header, { token: v.token, audience, issuers, caller, index })
    return { caller }
  }

  const authenticate =
    <C extends GuardedCall>(): GuardLayer<C> =>
    (next) => {
      function decided(call: C, state: CallState, policy: ServicePolicy, who: Who): Promise<MeshResponse> {
        if (who !== undefined && 'caller' in who) {
          state.caller = who.caller
          call.caller = callerLabel(who.caller)
          return next(call)
        }
        return unauthenticated(call, policy, who)
      }
      function unauthenticated(
        call: C,
        policy: ServicePolicy,
        who: { problem: TokenProblem } | undefined,
      ): Promise<MeshResponse> {
        const problem: TokenProblem = who === undefined ? 'missing' : who.problem
        // No token at all is fine where only a rate limit applies (one anonymous bucket); a bad one never is.
        if (who === undefined && policy.authorization === undefined) return next(call)
        call.caller = 'anonymous'
        if (policy.authorization?.mode === 'audit') {
          call.rule = `unauthenticated:${problem}`
          call.audited = true
          count(MeshEventKinds.authzAudit, call.service)
          return next(call)
        }
        call.rule = 'unauthenticated'
        call.errorCode = ErrorCodes.unauthenticated
        count(MeshEventKinds.unauthenticated, call.service)
        return Promise.resolve(refusal(call, ErrorCodes.unauthenticated, { reason: problem }))
      }
      return (call) => {
        const config = opts.config()
        const policy = policyFor(config, call.service, audienceOf)
        const header = call.headers[IDENTITY_HEADER]
        if (header !== undefined) delete call.headers[IDENTITY_HEADER]
        if (policy === undefined) return next(call)
        const state: CallState = { policy, caller: undefined }
        states.set(call, state)
        // A mesh without identity checks no token (a rate limit alone keys every caller as anonymous).
        if (header === undefined || config.identity === undefined || policy.audience === undefined)
          return decided(call, state, policy, undefined)
        // Sent twice: which one would the app have been judged by? Neither.
        if (Array.isArray(header)) return decided(call, state, policy, { problem: 'malformed' })
        // A token seen before answers without a signature check or an async step.
        const cached = fromCache(config, policy.audience, header)
        if (cached !== null) return decided(call, state, policy, cached)
        return verify(config, policy.audience, header).then((who) => decided(call, state, policy, who))
      }
    }

  const authorize =
    <C extends GuardedCall>(): GuardLayer<C> =>
    (next) =>
    (call) => {
      const state = states.get(call)
      const authz = state?.policy?.authorization
      if (authz === undefined) return next(call)
      // An unauthenticated request only gets here in audit mode, already counted as such.
      if (state!.caller === undefined) return next(call)
      const d = decide(authz, state!.caller, call.method, call.path, call.headers)
      call.rule = d.rule
      if (d.allowed) {
        count(MeshEventKinds.authzAllow, call.service)
        return next(call)
      }
      if (authz.mode === 'audit') {
        call.audited = true
        count(MeshEventKinds.authzAudit, call.service)
        return next(call)
      }
      call.errorCode = ErrorCodes.forbidden
      count(MeshEventKinds.authzDeny, call.service)
      return Promise.resolve(refusal(call, ErrorCodes.forbidden))
    }

  const rateLimit =
    <C extends GuardedCall>(): GuardLayer<C> =>
    (next) =>
    (call) => {
      const state = states.get(call)
      const rl = state?.policy?.rateLimit
      if (rl === undefined) return next(call)
      const caller = state!.caller
      const key = callerLabel(caller)
      let override: string | undefined
      if (caller !== undefined) {
        for (const n of [caller.service, ...caller.names]) {
          if (n !== undefined && n in rl.perCaller) {
            override = n
            break
          }
        }
      }
      const wait = limiterFor(call.service, rl).take(override ?? key, override)
      if (wait === 0) return next(call)
      call.errorCode = ErrorCodes.rateLimited
      count(MeshEventKinds.rateLimited, call.service)
      const res = refusal(call, ErrorCodes.rateLimited)
      res.headers['retry-after'] = String(Math.max(1, Math.ceil(wait / 1000)))
      return Promise.resolve(res)
    }

  return {
    layers: <C extends GuardedCall>() => [authenticate<C>(), authorize<C>(), rateLimit<C>()],
    jwksFetches: () => jwks.fetches(),
  }
}
