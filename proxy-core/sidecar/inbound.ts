// The inbound listener's request handler: traffic for this service, passed to the app with the same
// HTTP handling as outbound calls, one RequestEvent (metrics, access log) and one X-Ray segment per
// request. No routing policy applies here (the caller's sidecar made those decisions); the receiver's
// policy does, as layers in one order, outermost first:
//
//   normalize path (400) → authenticate (401) → authorize (403) → rate limit (429) → app
//
// The identity layers come from proxy-core/identity/ and judge the path in the one normal form the
// app is then sent. An upgrade (WebSocket) passes the same layers; the app's 101 becomes a tunnel.

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
  HeaderMap,
  Invoker,
  MeshConfig,
  MeshResponse,
  RequestEvent,
  TelemetrySink,
  UpstreamProtocol,
} from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import { CLIENT_CERT_HEADER, clientCertValue } from '../http/tls-listener.ts'
import type { GuardedCall, GuardLayer, Receiver } from '../identity/index.ts'
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
  /** The receiver's identity layers; none: every request that parses reaches the app. */
  receiver?: Receiver
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

/** One inbound request's state, owned by the layers. */
interface InboundCall extends GuardedCall {
  readonly req: DownstreamRequest
  /** As sent; `path` becomes the normal form once the first layer has judged it. */
  readonly raw: string
  path: string
  readonly headers: HeaderMap
  readonly grpc: boolean
}

type InboundInvoke = (call: InboundCall) => Promise<MeshResponse>
type InboundLayer = GuardLayer<InboundCall>

function failureResponse(err: unknown, grpc: boolean): { res: MeshResponse; code: string } {
  const timeout = err instanceof UpstreamFailure && err.kind === FailureKinds.timeout
  const meshErr = timeout
    ? new MeshError(ErrorCodes.timeout, 'app timed out')
    : new MeshError(ErrorCodes.upstreamUnavailable, `app unavailable: ${String(err)}`)
  return { res: errorResponse(meshErr, grpc), code: meshErr.code }
}

/** The header value per certificate object, which a connection keeps for its life. */
const clientCerts = new WeakMap<object, string>()

/** Only this sidecar vouches for a client certificate: whatever a caller wrote there is dropped. */
function setClientCert(req: DownstreamRequest, headers: HeaderMap): void {
  delete headers[CLIENT_CERT_HEADER]
  if (!req.secure) return
  const cert = req.peerCertificate()
  if (cert === null) return
  let value = clientCerts.get(cert)
  if (value === undefined) {
    value = clientCertValue(cert)
    clientCerts.set(cert, value)
  }
  headers[CLIENT_CERT_HEADER] = value
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

  /** The one normal form of the path (engine/path-normalize.ts), or the 400 that refuses it. */
  const normalize: InboundLayer = (next) => (call) => {
    const edge = edgePath(call.raw, deps.pathNormalization?.() ?? DEFAULT_PATH_NORMALIZATION)
    if (!edge.ok) {
      call.errorCode = edge.code
      return Promise.resolve(
        call.grpc ? errorResponse(new MeshError(ErrorCodes.invalidPath, edge.code), true) : edge.refusal,
      )
    }
    call.path = edge.path
    return next(call)
  }

  /** The app: nothing here retries, so every body streams straight through. */
  const app: InboundInvoke = async (call) => {
    const req = call.req
    const upgrade = deps.tunnels === undefined ? undefined : req.upgrade
    const attempt: AttemptRequest = {
      method: call.method,
      path: call.path,
      headers: call.headers,
      body: req.body,
      service: deps.service,
      attempt: 1,
      ...(upgrade === undefined ? {} : { upgrade }),
    }
    if (req.trailers !== undefined) attempt.trailers = req.trailers
    try {
      return await deps.invoker.invoke(attempt, call.grpc ? grpcEndpoint : endpoint, req.signal)
    } catch (err) {
      const { res, code } = failureResponse(err, call.grpc)
      call.errorCode = code
      return res
    }
  }

  const layers: InboundLayer[] = [
    normalize, // one normal path, judged and forwarded alike
    ...(deps.receiver?.layers<InboundCall>() ?? []), // authenticate → authorize → rate limit
  ]
  const pipeline = layers.reduceRight<InboundInvoke>((next, layer) => layer(next), app)

  return async function handleInbound(req: DownstreamRequest): Promise<void> {
    const start = deps.clock.now()
    // Absolute form is allowed here too (a caller's HTTP proxy); only the path goes to the app, and
    // only in its normal form (the app's own router must not see what the mesh did not judge).
    const raw = originFormPath(req.url) ?? ''
    const headers = req.headers
    stripHopByHop(headers)
    addForwardingHeaders(headers, req.remoteAddress, { proto: 'http' })
    setClientCert(req, headers)
    const trace = deps.tracing.inbound(headers)
    const grpc = isGrpcRequest(headers)
    const call: InboundCall = {
      req,
      raw,
      service: deps.service,
      method: req.method,
      path: raw === '' ? req.url : raw,
      headers,
      grpc,
    }
    const out = await pipeline(call)
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
      method: call.method,
      path: call.path,
      status: out.status,
      start,
      end: deps.clock.now(),
      retries: 0,
      ...(call.errorCode === undefined ? {} : { errorCode: call.errorCode }),
      ...(grpc ? { grpc: true, ...(grpcStatus === undefined ? {} : { grpcStatus }) } : {}),
      trace: trace.trace,
      ...(call.caller === undefined ? {} : { caller: call.caller }),
      ...(call.rule === undefined ? {} : { rule: call.rule }),
    }
    deps.telemetry.request?.(ev)
    const ua = headers['user-agent']
    deps.tracing.finishInbound(ev, trace, {
      ...(req.remoteAddress === undefined ? {} : { clientIp: req.remoteAddress }),
      ...(typeof ua === 'string' ? { userAgent: ua } : {}),
    })
  }
}
