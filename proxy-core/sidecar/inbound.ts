// The inbound listener's request handler: traffic for this service, passed to the app with the same
// HTTP handling as outbound calls, one RequestEvent (metrics, access log) and one X-Ray segment per
// request. No routing policy applies here (the caller's sidecar made those decisions); the receiver's
// policy does, as layers in one order, outermost first:
//
//   normalize path (400) → authenticate (401) → authorize (403) → rate limit (429) → app
//
// The identity layers come from proxy-core/identity/ and judge the path in the one normal form the
// app is then sent.

import { ErrorCodes, errorResponse, MeshError } from '../engine/errors.ts'
import {
  DEFAULT_PATH_NORMALIZATION,
  edgePath,
  type PathNormalizationConfig,
} from '../engine/path-normalize.ts'
import type {
  Clock,
  Endpoint,
  HeaderMap,
  Invoker,
  MeshResponse,
  RequestEvent,
  TelemetrySink,
} from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import type { GuardedCall, GuardLayer, Receiver } from '../identity/index.ts'
import type { DownstreamRequest } from './http1-server.ts'
import { addForwardingHeaders, stripHopByHop } from './mesh-request.ts'
import type { SidecarTracing } from './tracing.ts'

/** The route and target names inbound requests carry in metrics and logs. */
export const INBOUND_ROUTE = 'inbound'
export const APP_TARGET = 'app'

export interface InboundDeps {
  /** The app's origin, e.g. `http://127.0.0.1:8080`. */
  app: string
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
}

/** One inbound request's state, owned by the layers. */
interface InboundCall extends GuardedCall {
  readonly req: DownstreamRequest
  /** As sent; `path` becomes the normal form once the first layer has judged it. */
  readonly raw: string
  path: string
  readonly headers: HeaderMap
}

type InboundInvoke = (call: InboundCall) => Promise<MeshResponse>
type InboundLayer = GuardLayer<InboundCall>

function failureResponse(err: unknown): { res: MeshResponse; code: string } {
  const timeout = err instanceof UpstreamFailure && err.kind === FailureKinds.timeout
  const meshErr = timeout
    ? new MeshError(ErrorCodes.timeout, 'app timed out')
    : new MeshError(ErrorCodes.upstreamUnavailable, `app unavailable: ${String(err)}`)
  return { res: errorResponse(meshErr), code: meshErr.code }
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
  const endpoint: Endpoint = Object.freeze({
    id: new URL(deps.app).origin,
    target: Object.freeze({
      kind: 'http' as const,
      name: APP_TARGET,
      endpoints: [deps.app],
      dnsRefresh: 0,
      loadBalancer: 'round-robin' as const,
    }),
  })

  /** The one normal form of the path (engine/path-normalize.ts), or the 400 that refuses it. */
  const normalize: InboundLayer = (next) => (call) => {
    const edge = edgePath(call.raw, deps.pathNormalization?.() ?? DEFAULT_PATH_NORMALIZATION)
    if (!edge.ok) {
      call.errorCode = edge.code
      return Promise.resolve(edge.refusal)
    }
    call.path = edge.path
    return next(call)
  }

  /** The app: nothing here retries, so every body streams straight through. */
  const app: InboundInvoke = async (call) => {
    try {
      return await deps.invoker.invoke(
        {
          method: call.method,
          path: call.path,
          headers: call.headers,
          body: call.req.body,
          service: deps.service,
          attempt: 1,
        },
        endpoint,
        call.req.signal,
      )
    } catch (err) {
      const { res, code } = failureResponse(err)
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
    const raw = req.url.startsWith('/') ? req.url : (originFormPath(req.url) ?? '')
    const headers = req.headers
    stripHopByHop(headers)
    addForwardingHeaders(headers, req.remoteAddress, { proto: 'http' })
    const trace = deps.tracing.inbound(headers)
    const call: InboundCall = {
      req,
      raw,
      service: deps.service,
      method: req.method,
      path: raw === '' ? req.url : raw,
      headers,
    }
    const out = await pipeline(call)
    await req.respond(out, deps.draining())

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
