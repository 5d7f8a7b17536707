// The one error table (linkerd's ServerRescue): every response the mesh makes itself has a stable
// code, and this file alone maps codes to statuses and the `x-meshgate-error` header.
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

/** The response for an error the mesh made: `{"error": code, ...details}` with `x-meshgate-error`. */
export function errorResponse(err: MeshError): MeshResponse {
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
