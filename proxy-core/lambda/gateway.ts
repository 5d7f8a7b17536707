// The edge function: API Gateway (HTTP API v2 or REST API v1) or ALB in front, the mesh's gateway
// routes behind. The same `mesh()` middleware gives it trace context and metrics; the handler only
// translates the event, asks the runtime, and translates the answer back.

import middy from '@middy/core'
import type { Context } from 'aws-lambda'
import { edgePath } from '../engine/path-normalize.ts'
import { type LambdaHttpResult, normalizeEvent, toLambdaResult } from './events.ts'
import { type MeshOptions, mesh } from './middleware.ts'

export type GatewayHandler = (event: unknown, context: Context) => Promise<LambdaHttpResult>

async function routeGatewayEvent(event: unknown, context: Context): Promise<LambdaHttpResult> {
  const { kind, multiValue, request } = normalizeEvent(event)
  const { runtime, trace } = context.mesh
  // API Gateway and ALB pass the path on as the client sent it (dot segments, escapes and all): the
  // mesh's one normal form is made here, before the gateway routes match it.
  const edge = edgePath(request.path, runtime.config.pathNormalization)
  if (!edge.ok) return toLambdaResult(edge.refusal, { kind, multiValue })
  request.path = edge.path
  const res = await runtime.handleGateway(request, trace ? { trace } : {})
  return toLambdaResult(res, { kind, multiValue })
}

/** A gateway handler with its own options (config, metrics namespace). */
export function createGatewayHandler(
  options: Omit<MeshOptions, 'service'> & { service?: string } = {},
): GatewayHandler {
  const handler = middy(routeGatewayEvent).use(mesh({ service: 'gateway', ...options }))
  return (event, context) => handler(event, context) as Promise<LambdaHttpResult>
}

let defaultHandler: GatewayHandler | undefined

/**
 * The ready edge handler (`export { gatewayHandler as handler }`), configured by MESHGATE_CONFIG. Built
 * on the first event, so importing `meshgate/lambda` never requires the variable.
 */
export function gatewayHandler(event: unknown, context: Context): Promise<LambdaHttpResult> {
  defaultHandler ??= createGatewayHandler()
  return defaultHandler(event, context)
}
