// The inbound listener's request handler: traffic for this service, passed to the app with the same
// HTTP handling as outbound calls, one RequestEvent (metrics, access log) and one X-Ray segment per
// request. No routing policy applies here: the caller's sidecar already made those decisions.

import { ErrorCodes, errorResponse, MeshError } from '../engine/errors.ts'
import { finalGrpcStatus, isGrpcRequest } from '../engine/grpc.ts'
import {
  DEFAULT_PATH_NORMALIZATION,
  edgePath,
  type PathNormalizationConfig,
} from '../engine/path-normalize.ts'
import type {
  AttemptRequest,
  Clock,
  Endpoint,
  Invoker,
  MeshResponse,
  RequestEvent,
  TelemetrySink,
  UpstreamProtocol,
} from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import type { DownstreamRequest } from './http1-server.ts'
import { addForwardingHeaders, stripHopByHop } from './mesh-request.ts'
import type { SidecarTracing } from './tracing.ts'

/** The route and target names inbound requests carry in metrics and logs. */
export const INBOUND_ROUTE = 'inbound'
export const APP_TARGET = 'app'

export interface InboundDeps {
  /** The app's origin, e.g. `http://127.0.0.1:8080`. */
  app: string
  /** http1 (default), http2 or grpc; gRPC calls go over HTTP/2 in any case. */
  appProtocol?: UpstreamProtocol
  service: string
  mesh(): string
  /** The current config's path normalization; default DEFAULT_PATH_NORMALIZATION. */
  pathNormalization?(): PathNormalizationConfig
  invoker: Invoker
  clock: Clock
  telemetry: TelemetrySink
  tracing: SidecarTracing
  draining(): boolean
}

function failureResponse(err: unknown, grpc: boolean): { res: MeshResponse; code: string } {
  const timeout = err instanceof UpstreamFailure && err.kind === FailureKinds.timeout
  const meshErr = timeout
    ? new MeshError(ErrorCodes.timeout, 'app timed out')
    : new MeshError(ErrorCodes.upstreamUnavailable, `app unavailable: ${String(err)}`)
  return { res: errorResponse(meshErr, grpc), code: meshErr.code }
}

const ABSOLUTE_PATH = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*([^#]*)/

/**
 * `http://host/a?b` → `/a?b`, the path as sent: WHATWG's URL parser would resolve dot segments on its
 * own terms before the normalizer could judge the path. Anything unparsable → undefined.
 */
function originFormPath(url: string): string | undefined {
  const m = ABSOLUTE_PATH.exec(url)
  if (m === null) return undefined
  const path = m[1]!
  return path === '' ? '/' : path.startsWith('?') ? `/${path}` : path
}

export function createInboundHandler(deps: InboundDeps) {
  const appEndpoint = (protocol: UpstreamProtocol): Endpoint =>
    Object.freeze({
      id: new URL(deps.app).origin,
      target: Object.freeze({
        kind: 'http' as const,
        name: APP_TARGET,
        protocol,
        endpoints: [deps.app],
        dnsRefresh: 0,
        loadBalancer: 'round-robin' as const,
      }),
    })
  const endpoint = appEndpoint(deps.appProtocol ?? 'http1')
  const grpcEndpoint = appEndpoint('grpc')

  return async function handleInbound(req: DownstreamRequest): Promise<void> {
    const start = deps.clock.now()
    const method = req.method
    // Absolute form is allowed here too (a caller's HTTP proxy); only the path goes to the app, and
    // only in its normal form (the app's own router must not see what the mesh did not judge).
    const raw = req.url.startsWith('/') ? req.url : originFormPath(req.url)
    const edge = edgePath(raw ?? '', deps.pathNormalization?.() ?? DEFAULT_PATH_NORMALIZATION)
    const path = edge.ok ? edge.path : (raw ?? req.url)
    const headers = req.headers
    stripHopByHop(headers)
    addForwardingHeaders(headers, req.remoteAddress, { proto: 'http' })
    const trace = deps.tracing.inbound(headers)
    const grpc = isGrpcRequest(headers)
    let out: MeshResponse
    let errorCode: string | undefined
    if (!edge.ok) {
      out = grpc ? errorResponse(new MeshError(ErrorCodes.invalidPath, edge.code), true) : edge.refusal
      errorCode = edge.code
    } else {
      try {
        // Nothing here retries, so every body streams straight through.
        const attempt: AttemptRequest = {
          method,
          path,
          headers,
          body: req.body,
          service: deps.service,
          attempt: 1,
        }
        if (req.trailers !== undefined) attempt.trailers = req.trailers
        out = await deps.invoker.invoke(attempt, grpc ? grpcEndpoint : endpoint, req.signal)
      } catch (err) {
        ;({ res: out, code: errorCode } = failureResponse(err, grpc))
      }
    }
    await req.respond(out, deps.draining())
    const grpcStatus = grpc ? await finalGrpcStatus(out) : undefined

    const ev: RequestEvent = {
      mesh: deps.mesh(),
      service: deps.service,
      route: INBOUND_ROUTE,
      target: APP_TARGET,
      method,
      path,
      status: out.status,
      start,
      end: deps.clock.now(),
      retries: 0,
      ...(errorCode === undefined ? {} : { errorCode }),
      ...(grpc ? { grpc: true, ...(grpcStatus === undefined ? {} : { grpcStatus }) } : {}),
      trace: trace.trace,
    }
    deps.telemetry.request?.(ev)
    const ua = headers['user-agent']
    deps.tracing.finishInbound(ev, trace, {
      ...(req.remoteAddress === undefined ? {} : { clientIp: req.remoteAddress }),
      ...(typeof ua === 'string' ? { userAgent: ua } : {}),
    })
  }
}
