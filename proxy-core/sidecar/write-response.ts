// From the engine's MeshResponse back to the client: status and headers (hop-by-hop ones never pass),
// then the body, piped so a slow client applies backpressure to the upstream and a client that goes
// away tears the upstream stream down with it. `stream.pipeline` does the same but allocates an
// AbortController (and aborts it, building a DOMException) for every response: 7% of the sidecar's
// CPU under load, so the two listeners it needs are written out here.

import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { ErrorCode } from '../engine/errors.ts'
import { errorResponse, MeshError } from '../engine/errors.ts'
import type { MeshResponse } from '../engine/types.ts'
import { endWhole, readableOf } from '../http/body-stream.ts'
import { connectionTokens, dropHeader } from '../http/header-policy.ts'

export interface WriteOptions {
  /** Ask the client to close the connection after this response (set while draining). */
  close?: boolean
}

/** Writes `res`; resolves when the body is fully written, rejects if the stream broke on either side. */
export async function writeResponse(
  out: ServerResponse,
  res: MeshResponse,
  opts: WriteOptions = {},
): Promise<void> {
  const listed = connectionTokens(res.headers.connection)
  for (const name in res.headers) {
    const value = res.headers[name]
    if (value === undefined || dropHeader(name, listed)) continue
    out.setHeader(name, value)
  }
  if (opts.close) out.setHeader('connection', 'close')
  out.statusCode = res.status
  const body = res.body
  if (!endWhole(out, body)) await pipe(readableOf(body), out)
}

/** `src.pipe(out)`, settled when `out` has finished (or either side broke; then both are destroyed). */
function pipe(src: Readable, out: ServerResponse): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => {
      src.destroy()
      if (!out.destroyed) out.destroy(err)
      reject(err)
    }
    src.once('error', fail)
    out.once('close', () => {
      if (out.writableFinished) resolve()
      else fail(new Error('client closed the connection before the response was complete'))
    })
    src.pipe(out)
  })
}

/** The response for an error the sidecar itself detects before the pipeline runs (431, 400, 404...). */
export function sidecarError(
  code: ErrorCode,
  message: string,
  details?: Record<string, string>,
  grpc = false,
): MeshResponse {
  return errorResponse(new MeshError(code, message, details === undefined ? undefined : { details }), grpc)
}
