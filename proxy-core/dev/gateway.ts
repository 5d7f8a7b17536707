// The edge of the dev mesh: what functions/gateway does behind API Gateway, as a local HTTP server.
// Requests are routed by the config's gateway routes (runtime.handleGateway) with the sidecar's HTTP
// invoker and the Lambda invoker (the real client-lambda, pointed at the local Invoke API). A new config
// swaps the runtime; a request finishes on the runtime it started with.
import type { Server } from 'node:http'
import { createServer } from 'node:http'
import { compileMesh } from '../engine/compile.ts'
import { edgePath } from '../engine/path-normalize.ts'
import { createMeshRuntime } from '../engine/runtime.ts'
import type { Invokers, MeshConfig, MeshRuntime, TelemetrySink } from '../engine/types.ts'
import { listen } from '../sidecar/listen-address.ts'
import { copyHeaders, toMeshRequest } from '../sidecar/mesh-request.ts'
import { sidecarError, writeResponse } from '../sidecar/write-response.ts'

export interface DevGatewayOptions {
  host: string
  port: number
  config: MeshConfig
  invokers: Invokers
  telemetry: TelemetrySink
}

export interface DevGateway {
  readonly url: string
  /** Route with this config from the next request on. */
  setConfig(config: MeshConfig): void
  close(): Promise<void>
}

export async function startDevGateway(opts: DevGatewayOptions): Promise<DevGateway> {
  const build = (config: MeshConfig): MeshRuntime =>
    createMeshRuntime(compileMesh(config), { invokers: opts.invokers, telemetry: opts.telemetry })
  let runtime = build(opts.config)

  const server: Server = createServer(async (req, res) => {
    const current = runtime
    const downstream = new AbortController()
    res.once('close', () => {
      if (!res.writableFinished) downstream.abort()
    })
    try {
      // The same normal form as the sidecar's listeners and the Lambda gateway route on.
      const edge = edgePath(req.url ?? '/', current.config.pathNormalization)
      if (!edge.ok) {
        await writeResponse(res, edge.refusal)
        return
      }
      const info = copyHeaders(req)
      const meshReq = await toMeshRequest(req, info, edge.path, { proto: 'http' })
      const out = await current.handleGateway(meshReq, { signal: downstream.signal })
      await writeResponse(res, out)
    } catch {
      if (!res.headersSent)
        await writeResponse(res, sidecarError('bad_request', 'request failed')).catch(() => {})
      else res.destroy()
    }
  })
  const port = await listen(server, opts.port, opts.host)

  return {
    url: `http://${opts.host}:${port}`,
    setConfig(config) {
      runtime = build(config)
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}
