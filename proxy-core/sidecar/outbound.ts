// The outbound listener's request handler: the app's calls into the mesh. Resolves the service from
// Host or the absolute-form URL, refuses anything outside the mesh, and hands the request to the
// runtime that is current when it arrives (a reload never moves a request to another config).

import { DEFAULT_UPGRADE_IDLE_TIMEOUT_MS } from '../config/defaults.ts'
import { ErrorCodes } from '../engine/errors.ts'
import { isGrpcRequest } from '../engine/grpc.ts'
import { edgePath } from '../engine/path-normalize.ts'
import type { HeaderMap, MeshRequest, MeshRuntime, RequestContext, TraceContext } from '../engine/types.ts'
import { answerUpgrade, type Tunnels } from '../tunnel/index.ts'
import type { DownstreamRequest } from './http1-server.ts'
import { resolveOutbound } from './mesh-host.ts'
import { addForwardingHeaders, downstreamBody, incompleteBody, stripHopByHop } from './mesh-request.ts'
import { sidecarError } from './write-response.ts'

export interface OutboundDeps {
  /** The runtime to use for a request arriving now. */
  runtime(): MeshRuntime
  draining(): boolean
  /** The trace context for a call (the app's headers are passed); undefined lets the runtime decide. */
  trace?(headers: HeaderMap): TraceContext | undefined
  /** Where upgraded connections (WebSocket...) go after the upstream's 101. */
  tunnels?: Tunnels
}

export function createOutboundHandler(deps: OutboundDeps) {
  return async function handleOutbound(req: DownstreamRequest): Promise<void> {
    const runtime = deps.runtime()
    const close = deps.draining()
    const headers = req.headers
    const host = stripHopByHop(headers)
    const services = runtime.config.services
    const target = resolveOutbound(req.url, host, (name) => Object.hasOwn(services, name))
    // A gRPC caller gets the edge's refusals as gRPC statuses (trailers-only), as the pipeline's.
    const grpc = isGrpcRequest(headers)
    if (target.kind === 'bad')
      return req.respond(sidecarError(ErrorCodes.badRequest, target.reason, undefined, grpc), close)
    // Once, here: the path the router matches is the path the upstream gets.
    const edge = edgePath(target.path, runtime.config.pathNormalization)
    if (!edge.ok)
      return req.respond(
        grpc ? sidecarError(ErrorCodes.invalidPath, edge.code, undefined, true) : edge.refusal,
        close,
      )
    if (target.kind === 'unknown') {
      // The runtime answers 404 unknown_service itself, and counts it; the body is never read.
      const meshReq = { method: req.method, path: edge.path, headers, body: null }
      return req.respond(await runtime.handle(target.service, meshReq), close)
    }

    addForwardingHeaders(headers, req.remoteAddress, {
      proto: 'http',
      ...(req.url.startsWith('/') ? {} : { authority: target.authority }),
    })
    const read = downstreamBody(req)
    const body = read instanceof Promise ? await read : read
    if (body === undefined) return req.respond(incompleteBody(grpc), true)
    // The client going away cancels the upstream work (the pipeline passes the signal to every attempt).
    const ctx: RequestContext = { signal: req.signal, ownsHeaders: true }
    const trace = deps.trace?.(headers)
    if (trace !== undefined) ctx.trace = trace
    const meshReq: MeshRequest = {
      method: req.method,
      path: edge.path,
      headers,
      body,
      remoteAddress: req.remoteAddress,
    }
    if (req.trailers !== undefined) meshReq.trailers = req.trailers
    const upgrade = req.upgrade
    if (upgrade !== undefined && deps.tunnels !== undefined) {
      // Routed like any request (matches, weights, faults, retries of the handshake); the upstream's
      // 101 comes back with the switched connection.
      meshReq.upgrade = upgrade
      const out = await runtime.handle(target.service, meshReq, ctx)
      return answerUpgrade(
        req,
        out,
        close || deps.draining(),
        deps.tunnels,
        { mesh: runtime.config.mesh, service: target.service, trace: ctx.trace, listener: 'outbound' },
        DEFAULT_UPGRADE_IDLE_TIMEOUT_MS,
      )
    }
    const out = await runtime.handle(target.service, meshReq, ctx)
    return req.respond(out, close || deps.draining())
  }
}
