// The response for an error a listener detects before the pipeline runs (a bad request target, a body
// that broke off): through the error table, as every refusal is. The responses themselves are written
// by the HTTP edge's server (http/http1-server.ts).

import type { ErrorCode } from '../engine/errors.ts'
import { errorResponse, MeshError } from '../engine/errors.ts'
import type { MeshResponse } from '../engine/types.ts'

/** The response for an error the sidecar itself detects before the pipeline runs (431, 400, 404...). */
export function sidecarError(
  code: ErrorCode,
  message: string,
  details?: Record<string, string>,
  grpc = false,
): MeshResponse {
  return errorResponse(new MeshError(code, message, details === undefined ? undefined : { details }), grpc)
}
