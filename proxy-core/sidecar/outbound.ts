// The outbound listener's request handler: the app's calls into the mesh. Resolves the service from
// Host or the absolute-form URL, refuses anything outside the mesh, and hands the request to the
// runtime that is current when it arrives (a reload never moves a request to another config).

import type { IncomingMessage, ServerResponse } from 'node:http'
import { ErrorCodes } from '../engine/errors.ts'
import type { HeaderMap, MeshResponse, MeshRuntime, RequestContext, TraceContext } from '../engine/types.ts'
import { MAX_HEADER_COUNT } from './limits.ts'
import { resolveOutbound } from './mesh-host.ts'
import { copyHeaders, toMeshRequest } from './mesh-request.ts'
import { sidecarError, writeResponse } from './write-response.ts'

export interface OutboundDeps {
  /** The runtime to use for a request arriving now. */
  runtime(): MeshRuntime
  draining(): boolean
  /** The trace context for a call (the app's headers are passed); undefined lets the runtime decide. */
  trace?(headers: HeaderMap): TraceContext | undefined
}

/** Answers, ignoring a client that went away meanwhile (its socket error is not ours to report). */
async function send(res: ServerResponse, out: MeshResponse, close: boolean): Promise<void> {
  try {
    await writeResponse(res, out, { close })
  } catch {
    if (!res.destroyed) res.destroy()
  }
}

export function createOutboundHandler(deps: OutboundDeps) {
  return async function handleOutbound(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const runtime = deps.runtime()
    const close = deps.draining()
    if (req.rawHeaders.length > MAX_HEADER_COUNT * 2) {
      const msg = `more than ${MAX_HEADER_COUNT} header lines`
      return send(res, sidecarError(ErrorCodes.headersTooLarge, msg), true)
    }
    const info = copyHeaders(req)
    const services = runtime.config.services
    const target = resolveOutbound(req.url ?? '/', info.host, (name) => Object.hasOwn(services, name))
    if (target.kind === 'bad') return send(res, sidecarError(ErrorCodes.badRequest, target.reason), close)
    if (target.kind === 'unknown') {
      // The runtime answers 404 unknown_service itself, and counts it; the body is never read.
      const path = req.url?.startsWith('/') ? req.url : '/'
      const out = await runtime.handle(target.service, {
        method: req.method ?? 'GET',
        path,
        headers: info.headers,
        body: null,
      })
      return send(res, out, close)
    }

    // The client going away cancels the upstream work (the pipeline passes the signal to every attempt).
    const downstream = new AbortController()
    res.once('close', () => {
      if (!res.writableFinished) downstream.abort()
    })
    let meshReq: Awaited<ReturnType<typeof toMeshRequest>>
    try {
      meshReq = await toMeshRequest(req, info, target.path, {
        proto: 'http',
        ...(req.url?.startsWith('/') ? {} : { authority: target.authority }),
      })
    } catch {
      // The body broke off before its declared end: the client is gone or broken.
      return send(res, sidecarError(ErrorCodes.badRequest, 'request body incomplete'), true)
    }
    const ctx: RequestContext = { signal: downstream.signal, ownsHeaders: true }
    const trace = deps.trace?.(meshReq.headers)
    if (trace !== undefined) ctx.trace = trace
    const out = await runtime.handle(target.service, meshReq, ctx)
    await send(res, out, close || deps.draining())
  }
}
