// gRPC as the engine sees it (the protocol spec "gRPC over HTTP2"): which requests are gRPC calls,
// their deadline (`grpc-timeout`), and their status (`grpc-status`, in the headers of a trailers-only
// response or in the trailers). No runtime package here: both runtimes and the edge use it.

import type { HeaderMap, MeshResponse } from './types.ts'

/** The status codes of the gRPC spec (statuscodes.md), by their canonical names. */
export const GrpcStatus = {
  ok: 0,
  cancelled: 1,
  unknown: 2,
  invalidArgument: 3,
  deadlineExceeded: 4,
  notFound: 5,
  alreadyExists: 6,
  permissionDenied: 7,
  resourceExhausted: 8,
  failedPrecondition: 9,
  aborted: 10,
  outOfRange: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  dataLoss: 15,
  unauthenticated: 16,
} as const
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus]

/** Upper-case names by code, for metrics labels and logs (`UNAVAILABLE`), as grpc libraries print them. */
export const GRPC_STATUS_NAMES: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
]

/**
 * The gRPC statuses `retries.on` accepts, by the names App Mesh's `grpcRetryEvents` and Envoy's
 * `retry_on` use.
 */
export const GRPC_RETRY_CONDITIONS: Readonly<Record<string, GrpcStatusCode>> = Object.freeze({
  cancelled: GrpcStatus.cancelled,
  'deadline-exceeded': GrpcStatus.deadlineExceeded,
  internal: GrpcStatus.internal,
  'resource-exhausted': GrpcStatus.resourceExhausted,
  unavailable: GrpcStatus.unavailable,
})

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/**
 * A gRPC call: `content-type: application/grpc`, alone or with a suffix (`+proto`, `;charset=`).
 * gRPC-Web (`application/grpc-web`) is another protocol and does not count.
 */
export function isGrpcRequest(headers: HeaderMap): boolean {
  const ct = first(headers['content-type'])
  if (ct === undefined || ct.length < 16) return false
  if (ct.slice(0, 16).toLowerCase() !== 'application/grpc') return false
  if (ct.length === 16) return true
  const next = ct.charCodeAt(16)
  return next === 43 /* + */ || next === 59 /* ; */
}

const TIMEOUT_UNITS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000001,
}

/** `grpc-timeout` (1 to 8 digits and a unit: `100m`, `5S`) in ms; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  const v = first(value)
  if (v === undefined) return undefined
  const m = /^(\d{1,8})([HMSmun])$/.exec(v)
  if (m === null) return undefined
  return Number(m[1]) * TIMEOUT_UNITS[m[2]!]!
}

/** ms → `grpc-timeout`, rounded up, in the smallest unit whose value fits eight digits. */
export function formatGrpcTimeout(ms: number): string {
  const clamped = Math.max(0, ms)
  const micros = Math.ceil(clamped * 1000)
  if (micros < 100_000_000) return `${micros}u`
  const millis = Math.ceil(clamped)
  if (millis < 100_000_000) return `${millis}m`
  const secs = Math.ceil(clamped / 1000)
  if (secs < 100_000_000) return `${secs}S`
  return `${Math.min(99_999_999, Math.ceil(clamped / 3_600_000))}H`
}

/** A `grpc-status` value as a number 0–16 (other numbers pass too); undefined when absent or not one. */
export function grpcStatusValue(value: string | string[] | undefined): number | undefined {
  const v = first(value)
  if (v === undefined || !/^\d{1,3}$/.test(v)) return undefined
  return Number(v)
}

/**
 * The status of a gRPC response as far as it is known now: from the headers (trailers-only) or from
 * trailers that are already in hand. Undefined while the trailers are still to come.
 */
export function knownGrpcStatus(res: MeshResponse): number | undefined {
  const inHeaders = grpcStatusValue(res.headers['grpc-status'])
  if (inHeaders !== undefined) return inHeaders
  const t = res.trailers
  if (t === undefined || t instanceof Promise) return undefined
  return grpcStatusValue(t['grpc-status'])
}

/**
 * The status once the response is complete (trailers awaited). A response without one, or whose
 * stream broke off, has none: gRPC clients see that as INTERNAL or UNKNOWN.
 */
export async function finalGrpcStatus(res: MeshResponse): Promise<number | undefined> {
  const known = knownGrpcStatus(res)
  if (known !== undefined) return known
  const t = res.trailers
  if (!(t instanceof Promise)) return undefined
  const trailers = await t.catch(() => undefined)
  return trailers === undefined ? undefined : grpcStatusValue(trailers['grpc-status'])
}

/**
 * The gRPC status for an HTTP status that came without one (the spec's http-grpc-status-mapping.md):
 * 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429, 502, 503, 504
 * UNAVAILABLE, anything else UNKNOWN.
 */
export function grpcStatusForHttp(status: number): GrpcStatusCode {
  switch (status) {
    case 400:
      return GrpcStatus.internal
    case 401:
      return GrpcStatus.unauthenticated
    case 403:
      return GrpcStatus.permissionDenied
    case 404:
      return GrpcStatus.unimplemented
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.unavailable
    default:
      return GrpcStatus.unknown
  }
}

const utf8 = new TextEncoder()

/**
 * `grpc-message` is percent-encoded (the spec: bytes outside 0x20–0x7E, and `%`, as %XX of UTF-8).
 */
export function encodeGrpcMessage(text: string): string {
  let out = ''
  for (const byte of utf8.encode(text)) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}
