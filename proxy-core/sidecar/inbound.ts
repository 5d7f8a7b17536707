// The inbound listener's request handler: traffic for this service, passed to the app with the same
// HTTP handling as outbound calls, one RequestEvent (metrics, access log) and one X-Ray segment per
// request. No routing policy applies here: the caller's sidecar already made those decisions.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { ErrorCodes, errorResponse, MeshError } from '../engine/errors.ts'
import type { Clock, Endpoint, Invoker, MeshResponse, RequestEvent, TelemetrySink } from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import { MAX_HEADER_COUNT } from './limits.ts'
import { addForwardingHeaders, copyHeaders, peerAddress } from './mesh-request.ts'
import type { SidecarTracing } from './tracing.ts'
import { sidecarError, writeResponse } from './write-response.ts'

/** The route and target names inbound requests carry in metrics and logs. */
export const INBOUND_ROUTE = 'inbound'
export const APP_TARGET = 'app'

export interface InboundDeps {
  /** The app's origin, e.g. `http://127.0.0.1:8080`. */
  app: string
  service: string
  mesh(): string
  invoker: Invoker
  clock: Clock
  telemetry: TelemetrySink
  tracing: SidecarTracing
  draining(): boolean
}

function failureResponse(err: unknown): { res: MeshResponse; code: string } {
  const timeout = err instanceof UpstreamFailure && err.kind === FailureKinds.timeout
  const meshErr = timeout
    ? new MeshError(ErrorCodes.timeout, 'app timed out')
    : new MeshError(ErrorCodes.upstreamUnavailable, `app unavailable: ${String(err)}`)
  return { res: errorResponse(meshErr), code: meshErr.code }
}

/** `http://host/a?b` → `/a?b`; anything unparsable → `/`. */
function originFormPath(url: string): string {
  try {
    const u = new URL(url)
    return u.pathname + u.search
  } catch {
    return '/'
  }
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

  return async function handleInbound(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const start = deps.clock.now()
    const method = req.method ?? 'GET'
    const url = req.url ?? '/'
    // Absolute form is allowed here too (a caller's HTTP proxy); only the path goes to the app.
    const path = url.startsWith('/') ? url : originFormPath(url)
    let out: MeshResponse
    let errorCode: string | undefined
    let trace: ReturnType<SidecarTracing['inbound']> | undefined
    const info = copyHeaders(req)
    if (req.rawHeaders.length > MAX_HEADER_COUNT * 2) {
      out = sidecarError(ErrorCodes.headersTooLarge, `more than ${MAX_HEADER_COUNT} header lines`)
      errorCode = ErrorCodes.headersTooLarge
    } else {
      addForwardingHeaders(info.headers, peerAddress(req), { proto: 'http' })
      trace = deps.tracing.inbound(info.headers)
      const downstream = new AbortController()
      res.once('close', () => {
        if (!res.writableFinished) downstream.abort()
      })
      // Nothing here retries, so every body streams straight through.
      const body = info.chunked || info.contentLength > 0 ? req : null
      try {
        out = await deps.invoker.invoke(
          { method, path, headers: info.headers, body, service: deps.service, attempt: 1 },
          endpoint,
          downstream.signal,
        )
      } catch (err) {
        ;({ res: out, code: errorCode } = failureResponse(err))
      }
    }

    const report = (): void => {
      const ev: RequestEvent = {
        mesh: deps.mesh(),
        service: deps.service,
        route: INBOUND_ROUTE,
        target: APP_TARGET,
        method,
        path,
        status: res.headersSent ? res.statusCode : out.status,
        start,
        end: deps.clock.now(),
        retries: 0,
        ...(errorCode === undefined ? {} : { errorCode }),
        ...(trace === undefined ? {} : { trace: trace.trace }),
      }
      deps.telemetry.request?.(ev)
      if (trace !== undefined) {
        const ua = info.headers['user-agent']
        const clientIp = peerAddress(req)
        deps.tracing.finishInbound(ev, trace, {
          ...(clientIp === undefined ? {} : { clientIp }),
          ...(typeof ua === 'string' ? { userAgent: ua } : {}),
        })
      }
    }
    try {
      await writeResponse(res, out, { close: deps.draining() })
    } catch {
      if (!res.destroyed) res.destroy()
    }
    report()
  }
}
