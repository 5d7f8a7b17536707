// The one error table (linkerd's ServerRescue): every response the mesh makes itself has a stable
// code, and this file alone maps codes to statuses and the `x-meshgate-error` header.
import { encodeGrpcMessage, GrpcStatus, grpcStatusForHttp } from './grpc.ts'
import type { MeshResponse } from './types.ts'

export const ErrorCodes = {
  timeout: 'timeout',
  upstreamUnavailable: 'upstream_unavailable',
  circuitOpen: 'circuit_open',
  faultAbort: 'fault_abort',
  noRoute: 'no_route',
  unknownService: 'unknown_service',
  /** A Lambda target ran and threw: API Gateway answers 502 for the same. */
  functionError: 'function_error',
  /**
   * An upgrade (WebSocket...) routed to a target that cannot switch protocols: a Lambda function
   * answers one event with one response (501, as for any feature the server does not implement).
   */
  upgradeNotSupported: 'upgrade_not_supported',
  // Refusals at the HTTP edge, one code per status (RFC 9110 §15.5, §15.6).
  badRequest: 'bad_request',
  /** A request path the mesh will not route (engine/path-normalize.ts): 400, with a `reason`. */
  invalidPath: 'invalid_path',
  methodNotAllowed: 'method_not_allowed',
  /** A head or body that stopped arriving (408). */
  requestTimeout: 'request_timeout',
  requestTooLarge: 'request_too_large',
  uriTooLong: 'uri_too_long',
  expectationFailed: 'expectation_failed',
  headersTooLarge: 'headers_too_large',
  /** A transfer coding the edge does not implement (501). */
  notImplemented: 'not_implemented',
  versionNotSupported: 'version_not_supported',
  // Receiver refusals (proxy-core/identity/): no valid token, a caller the policy does not allow, a
  // caller over its rate.
  unauthenticated: 'unauthenticated',
  forbidden: 'forbidden',
  rateLimited: 'rate_limited',
} as const
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

const STATUS: Readonly<Record<ErrorCode, number>> = {
  timeout: 504,
  upstream_unavailable: 503,
  circuit_open: 503,
  fault_abort: 503,
  no_route: 404,
  unknown_service: 404,
  function_error: 502,
  upgrade_not_supported: 501,
  bad_request: 400,
  invalid_path: 400,
  method_not_allowed: 405,
  request_timeout: 408,
  request_too_large: 413,
  uri_too_long: 414,
  expectation_failed: 417,
  headers_too_large: 431,
  not_implemented: 501,
  version_not_supported: 505,
  unauthenticated: 401,
  forbidden: 403,
  rate_limited: 429,
}

/**
 * The gRPC column of the table (DESIGN "Protocols"): the status a gRPC caller gets for each code, in
 * a trailers-only response. Keyed by code name, so codes other tables add (identity's
 * unauthenticated, forbidden, rate_limited) have theirs here already; a code not listed takes the
 * gRPC spec's mapping of its HTTP status (grpcStatusForHttp).
 */
const GRPC_STATUS: Readonly<Record<string, number>> = {
  timeout: GrpcStatus.deadlineExceeded,
  upstream_unavailable: GrpcStatus.unavailable,
  circuit_open: GrpcStatus.unavailable,
  no_route: GrpcStatus.unimplemented,
  unknown_service: GrpcStatus.unimplemented,
  unauthenticated: GrpcStatus.unauthenticated,
  forbidden: GrpcStatus.permissionDenied,
  rate_limited: GrpcStatus.resourceExhausted,
  function_error: GrpcStatus.internal,
  bad_request: GrpcStatus.internal,
  invalid_path: GrpcStatus.unimplemented,
  request_timeout: GrpcStatus.deadlineExceeded,
  request_too_large: GrpcStatus.resourceExhausted,
  headers_too_large: GrpcStatus.resourceExhausted,
}

export class MeshError extends Error {
  readonly code: ErrorCode
  readonly status: number
  /** Extra members of the JSON body, e.g. `{ service: 'foo' }`. */
  readonly details: Readonly<Record<string, string>> | undefined
  constructor(
    code: ErrorCode,
    message: string,
    options?: { status?: number; details?: Record<string, string> },
  ) {
    super(message)
    this.name = 'MeshError'
    this.code = code
    this.status = options?.status ?? STATUS[code]
    this.details = options?.details
  }
}

export function statusFor(code: ErrorCode): number {
  return STATUS[code]
}

/** The gRPC status a caller gets for `err` (fault aborts: their configured HTTP status, mapped). */
export function grpcStatusFor(err: MeshError): number {
  if (err.code === ErrorCodes.faultAbort) return grpcStatusForHttp(err.status)
  return GRPC_STATUS[err.code] ?? grpcStatusForHttp(err.status)
}

/**
 * The response for an error the mesh made: `{"error": code, ...details}` with `x-meshgate-error`; to a
 * gRPC call (`grpc` true), a trailers-only response: HTTP 200 with `grpc-status` and `grpc-message`
 * in its only header block, `x-meshgate-error` alongside.
 */
export function errorResponse(err: MeshError, grpc = false): MeshResponse {
  if (grpc) {
    const details = err.details === undefined ? '' : ` ${JSON.stringify(err.details)}`
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusFor(err)),
        'grpc-message': encodeGrpcMessage(`meshgate: ${err.code}: ${err.message}${details}`),
        'x-meshgate-error': err.code,
      },
      body: null,
    }
  }
  const body = JSON.stringify({ error: err.code, ...err.details })
  return {
    status: err.status,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'x-meshgate-error': err.code,
    },
    body,
  }
}
