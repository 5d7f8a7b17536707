// The retry policy of a route, compiled once at config load. It answers the pure questions ("is this
// outcome retriable?", "may this method be retried?"); whether a retry actually happens also depends on
// the attempts left, the route timeout and the retry budget, which the pipeline asks separately.

import { GRPC_RETRY_CONDITIONS } from './grpc.ts'
import {
  type FailureKind,
  FailureKinds,
  type MeshBody,
  type RecordedBody,
  type RetryConfig,
} from './types.ts'

/**
 * What one attempt ended with: a response from upstream (any status, and a gRPC call's status when
 * it is known by then), or a failure with no response.
 */
export type AttemptOutcome = { status: number; grpcStatus?: number } | { failure: FailureKind }

/** The named conditions accepted in `retries.on`, besides explicit status codes such as '503'. */
export const RetryConditions = {
  /** Any 5xx, plus connect failures, resets, per-try timeouts and Lambda function errors (Envoy `5xx`). */
  fiveXx: '5xx',
  /** 502, 503, 504, plus the same failures as `5xx` (Envoy `gateway-error`). */
  gatewayError: 'gateway-error',
  /** The upstream did not respond at all: reset, disconnect, per-try timeout (Envoy `reset`). */
  reset: 'reset',
  /** The connection could not be made (Envoy `connect-failure`). */
  connectFailure: 'connect-failure',
  /** 409 Conflict only, as in Envoy. */
  retriable4xx: 'retriable-4xx',
  /** Lambda throttling (TooManyRequestsException) and HTTP 429. */
  throttled: 'throttled',
} as const
export type RetryCondition = (typeof RetryConditions)[keyof typeof RetryConditions]

const NAMED_CONDITIONS: ReadonlySet<string> = new Set(Object.values(RetryConditions))

/** True for the strings `retries.on` accepts, so the config loader can point at a bad entry. */
export function isRetryCondition(value: string): boolean {
  return NAMED_CONDITIONS.has(value) || value in GRPC_RETRY_CONDITIONS || /^[1-5]\d\d$/.test(value)
}

export interface RetryPolicy {
  /** Retries after the first try (Istio `attempts`): 2 means up to 3 tries. */
  readonly maxRetries: number
  /** Milliseconds each try may take; the route timeout still bounds all tries together. */
  readonly perTryTimeout: number
  /** Milliseconds, for `backoffDelay`. */
  readonly backoff: Readonly<{ base: number; max: number }>
  /** Case-insensitive: 'get' and 'GET' are the same method. */
  allowsMethod(method: string): boolean
  /** True when `outcome` matches one of the route's `on` conditions. */
  retriableOutcome(outcome: AttemptOutcome): boolean
  /** True when some condition is a gRPC status (`unavailable`...): the attempt must learn the status. */
  readonly onGrpcStatus: boolean
}

/**
 * Compile `cfg` into a frozen policy. Throws a TypeError on an unknown condition: the loader validates
 * first (see `isRetryCondition`), so reaching the throw means the loader and this file disagree.
 *
 * How failures map, and why:
 * - `connect-failure`, `reset`, `timeout` count as "5xx" and as "gateway errors", as in Envoy, where a
 *   local failure stands for the 503/504 the proxy would answer with.
 * - `timeout` (the per-try timeout fired) also matches `reset`: Envoy's `reset` covers "did not respond
 *   at all (disconnect/reset/read timeout)".
 * - `function-error` (the Lambda ran and threw) surfaces as 502, but is only retried under `5xx` or
 *   `gateway-error`, never under an explicit '502': that code is about responses an upstream sent, and
 *   re-running a function that threw is a choice the user should make with the broad conditions.
 * - `throttled` is retried only under `throttled` or an explicit '429': the default list follows
 *   Istio's and names neither, so the loader's defaults decide whether throttling retries by default.
 * - 4xx statuses are never implied by a broad condition; only `retriable-4xx` (409) or an explicit code.
 */
export function createRetryPolicy(cfg: RetryConfig): RetryPolicy {
  const statuses = new Set<number>()
  const failures = new Set<FailureKind>()
  const grpcStatuses = new Set<number>()
  let any5xx = false

  for (const raw of cfg.on) {
    const condition = raw.trim().toLowerCase()
    const grpc = GRPC_RETRY_CONDITIONS[condition]
    if (grpc !== undefined && Object.hasOwn(GRPC_RETRY_CONDITIONS, condition)) {
      grpcStatuses.add(grpc)
      continue
    }
    switch (condition) {
      case RetryConditions.fiveXx:
        any5xx = true
        addAll(failures, UPSTREAM_SILENT, FailureKinds.functionError)
        break
      case RetryConditions.gatewayError:
        statuses.add(502).add(503).add(504)
        addAll(failures, UPSTREAM_SILENT, FailureKinds.functionError)
        break
      case RetryConditions.reset:
        failures.add(FailureKinds.reset).add(FailureKinds.timeout)
        break
      case RetryConditions.connectFailure:
        failures.add(FailureKinds.connectFailure)
        break
      case RetryConditions.retriable4xx:
        statuses.add(409)
        break
      case RetryConditions.throttled:
        failures.add(FailureKinds.throttled)
        statuses.add(429)
        break
      default:
        if (!/^[1-5]\d\d$/.test(condition)) {
          throw new TypeError(`unknown retry condition '${raw}'`)
        }
        statuses.add(Number(condition))
        if (condition === '429') failures.add(FailureKinds.throttled)
    }
  }

  const methods: ReadonlySet<string> = new Set(cfg.methods.map((m) => m.toUpperCase()))

  return Object.freeze({
    maxRetries: Math.max(0, Math.floor(cfg.attempts)),
    perTryTimeout: cfg.perTryTimeout,
    backoff: Object.freeze({ base: cfg.backoff.base, max: cfg.backoff.max }),
    allowsMethod(method: string) {
      return methods.has(method.toUpperCase())
    },
    retriableOutcome(outcome: AttemptOutcome) {
      if ('status' in outcome) {
        const { status, grpcStatus } = outcome
        if (grpcStatus !== undefined && grpcStatuses.has(grpcStatus)) return true
        return statuses.has(status) || (any5xx && status >= 500 && status <= 599)
      }
      return failures.has(outcome.failure)
    },
    onGrpcStatus: grpcStatuses.size > 0,
  })
}

/** Failures where the upstream gave no response; the proxy would have answered 503 or 504 for them. */
const UPSTREAM_SILENT: readonly FailureKind[] = [
  FailureKinds.connectFailure,
  FailureKinds.reset,
  FailureKinds.timeout,
]

function addAll(set: Set<FailureKind>, kinds: readonly FailureKind[], extra: FailureKind): void {
  for (const kind of kinds) set.add(kind)
  set.add(extra)
}

/**
 * Whether a request may be retried at all, before any attempt is made: the route allows retries, the
 * method is one of the retriable ones, and the body can be sent again. A streamed body is consumed by
 * the first try (Envoy likewise stops retrying once it has not buffered the body).
 */
export function mayRetryRequest(policy: RetryPolicy, method: string, bodyReplayable: boolean): boolean {
  return bodyReplayable && policy.maxRetries > 0 && policy.allowsMethod(method)
}

/** A body already in memory (or none) can be sent again; an async stream cannot. */
export function isReplayableBody(body: MeshBody): boolean {
  return body === null || typeof body === 'string' || body instanceof Uint8Array
}

/** A streamed body that records itself (RecordedBody): replayable once it has ended within its bound. */
export function isRecordedBody(body: MeshBody): body is RecordedBody {
  return (
    body !== null &&
    typeof body === 'object' &&
    !(body instanceof Uint8Array) &&
    typeof (body as Partial<RecordedBody>).recorded === 'function'
  )
}
