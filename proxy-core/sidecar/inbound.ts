// The inbound listener's request handler: traffic for this service, passed to the app with the same
// HTTP handling as outbound calls, one RequestEvent (metrics, access log) and one X-Ray segment per
// request. No routing policy applies here: the caller's sidecar already made those decisions.

import { DEFAULT_UPGRADE_IDLE_TIMEOUT_MS } from '../config/defaults.ts'
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
  MeshConfig,
  MeshResponse,
  RequestEvent,
  TelemetrySink,
  UpstreamProtocol,
} from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import { CLIENT_CERT_HEADER, clientCertValue } from '../http/tls-listener.ts'
import { answerUpgrade, type Tunnels } from '../tunnel/index.ts'
import type { DownstreamRequest } from './http1-server.ts'
import { originFormPath } from './mesh-host.ts'
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
  /** Where upgraded connections go after the app's 101; without it upgrades are ordinary requests. */
  tunnels?: Tunnels
  /** The idle timeout of an upgraded connection to the app, ms (see `inboundIdleTimeout`). */
  idleTimeout?(): number
}

/**
 * The inbound side's idle timeout for upgraded connections: the longest `idleTimeout` of the
 * service's routes, so the inbound sidecar never cuts a tunnel before the caller's route would.
 */
export function inboundIdleTimeout(config: MeshConfig, service: string): number {
  const routes = config.services[service]?.routes ?? []
  let longest = 0
  for (const r of routes) longest = Math.max(longest, r.idleTimeout)
  return longest > 0 ? longest : DEFAULT_UPGRADE_IDLE_TIMEOUT_MS
}

function failureResponse(err: unknown, grpc: boolean): { res: MeshResponse; code: string } {
  const timeout = err instanceof UpstreamFailure && err.kind === FailureKinds.timeout
  const meshErr = timeout
    ? new MeshError(ErrorCodes.timeout, 'app timed out')
    : new MeshError(ErrorCodes.upstreamUnavailable, `app unavailable: ${String(err)}`)
  return { res: errorResponse(meshErr, grpc), code: meshErr.code }
}

/** The header value per certificate object, which a connection keeps for its life. */
const clientCerts = new WeakMap<object, string>()

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
    const raw = originFormPath(req.url)
    const edge = edgePath(raw ?? '', deps.pathNormalization?.() ?? DEFAULT_PATH_NORMALIZATION)
    const path = edge.ok ? edge.path : (raw ?? req.url)
    const headers = req.headers
    stripHopByHop(headers)
    addForwardingHeaders(headers, req.remoteAddress, { proto: 'http' })
    // Only this sidecar vouches for a client certificate: whatever a caller wrote there is dropped.
    delete headers[CLIENT_CERT_HEADER]
    if (req.secure) {
      const cert = req.peerCertificate()
      if (cert !== null) {
        let value = clientCerts.get(cert)
        if (value === undefined) {
          value = clientCertValue(cert)
          clientCerts.set(cert, value)
        }
        headers[CLIENT_CERT_HEADER] = value
      }
    }
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
        const upgrade = deps.tunnels === undefined ? undefined : req.upgrade
        const attempt: AttemptRequest = {
          method,
          path,
          headers,
          body: req.body,
          service: deps.service,
          attempt: 1,
          ...(upgrade === undefined ? {} : { upgrade }),
        }
        if (req.trailers !== undefined) attempt.trailers = req.trailers
        out = await deps.invoker.invoke(attempt, grpc ? grpcEndpoint : endpoint, req.signal)
      } catch (err) {
        ;({ res: out, code: errorCode } = failureResponse(err, grpc))
      }
    }
    if (deps.tunnels !== undefined && req.upgrade !== undefined)
      await answerUpgrade(
        req,
        out,
        deps.draining(),
        deps.tunnels,
        {
          mesh: deps.mesh(),
          service: deps.service,
          route: INBOUND_ROUTE,
          target: APP_TARGET,
          trace: trace.trace,
          listener: 'inbound',
        },
        deps.idleTimeout?.() ?? DEFAULT_UPGRADE_IDLE_TIMEOUT_MS,
      )
    else await req.respond(out, deps.draining())
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
