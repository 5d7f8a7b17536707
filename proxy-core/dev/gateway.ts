// The edge of the dev mesh: what functions/gateway does behind API Gateway, as a local HTTP server.
// Requests are routed by the config's gateway routes (runtime.handleGateway) with the sidecar's HTTP
// invoker and the Lambda invoker (the real client-lambda, pointed at the local Invoke API). A new config
// swaps the runtime; a request finishes on the runtime it started with.
//
// It listens on the one HTTP edge (http/http1-server.ts), as the sidecar's listeners do, so it gets the
// same strict RFC 9112 framing (400 and a closed connection for what it cannot read unambiguously), the
// same limits and head/body timeouts (408), and its refusals come from the error table.

import { compileMesh } from '../engine/compile.ts'
import { ErrorCodes } from '../engine/errors.ts'
import { edgePath } from '../engine/path-normalize.ts'
import { createMeshRuntime } from '../engine/runtime.ts'
import type { Clock, Invokers, MeshConfig, MeshRuntime, TelemetrySink, Timers } from '../engine/types.ts'
import { type DownstreamRequest, type Listener, listenHttp1 } from '../http/http1-server.ts'
import type { EdgeTimeouts } from '../http/limits.ts'
import { originFormPath } from '../sidecar/mesh-host.ts'
import {
  addForwardingHeaders,
  downstreamBody,
  incompleteBody,
  stripHopByHop,
} from '../sidecar/mesh-request.ts'
import { sidecarError } from '../sidecar/write-response.ts'

export interface DevGatewayOptions {
  host: string
  port: number
  config: MeshConfig
  invokers: Invokers
  telemetry: TelemetrySink
  /** The listener's head and body timeouts; each one not given is the edge's default (http/limits.ts). */
  timeouts?: Partial<EdgeTimeouts>
  /** The time those timeouts are measured on: injected in tests. */
  clock?: Clock & Timers
}

export interface DevGateway {
  readonly url: string
  /** Route with this config from the next request on. */
  setConfig(config: MeshConfig): void
  /** Requests received (their heads read) and not yet answered in full. */
  inFlight(): number
  /** Requests the edge refused itself (framing, timeouts), by error code. */
  refusals(): Readonly<Record<string, number>>
  close(): Promise<void>
}

/** One request from the edge into the gateway routes of `runtime`. */
async function serveGateway(req: DownstreamRequest, runtime: MeshRuntime): Promise<void> {
  const headers = req.headers
  stripHopByHop(headers)
  // Absolute form is read for its path only: the gateway routes by path, never by the authority.
  const target = originFormPath(req.url)
  if (target === undefined)
    return req.respond(sidecarError(ErrorCodes.badRequest, 'unsupported request target'), true)
  // The same normal form as the sidecar's listeners and the Lambda gateway route on.
  const edge = edgePath(target, runtime.config.pathNormalization)
  if (!edge.ok) return req.respond(edge.refusal, false)
  addForwardingHeaders(headers, req.remoteAddress, { proto: 'http' })
  const read = downstreamBody(req)
  const body = read instanceof Promise ? await read : read
  if (body === undefined) return req.respond(incompleteBody(), true)
  const meshReq = { method: req.method, path: edge.path, headers, body, remoteAddress: req.remoteAddress }
  const out = await runtime.handleGateway(meshReq, { signal: req.signal, ownsHeaders: true })
  return req.respond(out, false)
}

export async function startDevGateway(opts: DevGatewayOptions): Promise<DevGateway> {
  const build = (config: MeshConfig): MeshRuntime =>
    createMeshRuntime(compileMesh(config), { invokers: opts.invokers, telemetry: opts.telemetry })
  let runtime = build(opts.config)

  const listener: Listener = await listenHttp1(
    { host: opts.host, port: opts.port },
    // The runtime current when the request arrives serves it to the end.
    (req) => serveGateway(req, runtime),
    undefined,
    {
      ...(opts.timeouts === undefined ? {} : { timeouts: opts.timeouts }),
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    },
  )

  return {
    url: `http://${listener.address}`,
    setConfig(config) {
      runtime = build(config)
    },
    inFlight: () => listener.inFlight(),
    refusals: () => listener.refusals(),
    close: () => listener.close(),
  }
}
