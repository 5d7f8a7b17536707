// The receiver inside a Lambda function reached over HTTP (API Gateway, ALB, or a mesh caller's
// Invoke with an HTTP API v2 event): the identity layers of proxy-core/identity/ judge the event
// before the handler runs, on the path in the mesh's normal form. A refusal becomes the function's
// response (the handler never runs); the token header is removed from the event either way.
// Loaded on the first invocation of a function whose service has a policy, never otherwise.

import { edgePath } from '../engine/path-normalize.ts'
import type { Clock, MeshConfig, MeshResponse, TelemetrySink } from '../engine/types.ts'
import {
  createJwksFetch,
  createReceiver,
  type GuardedCall,
  type GuardInvoke,
  IDENTITY_HEADER,
} from '../identity/index.ts'
import { detectEventKind, type LambdaHttpResult, normalizeEvent, toLambdaResult } from './events.ts'

export interface LambdaReceiver {
  /** The refusal to answer with, or undefined when the handler may run. */
  admit(event: unknown, config: MeshConfig): Promise<LambdaHttpResult | undefined>
}

const PASS: MeshResponse = Object.freeze({ status: 0, headers: {}, body: null })

/** The token header out of the event, under any spelling, so the handler never sees it. */
function stripToken(event: Record<string, unknown>): void {
  for (const key of ['headers', 'multiValueHeaders']) {
    const h = event[key]
    if (typeof h !== 'object' || h === null) continue
    for (const name of Object.keys(h)) {
      if (name.toLowerCase() === IDENTITY_HEADER) delete (h as Record<string, unknown>)[name]
    }
  }
}

export function createLambdaReceiver(opts: {
  service: string
  config(): MeshConfig
  clock: Clock
  telemetry: TelemetrySink
  caFile: string | undefined
  onError(message: string): void
}): LambdaReceiver {
  const receiver = createReceiver({
    config: opts.config,
    clock: opts.clock,
    fetchJwks: createJwksFetch(opts.caFile === undefined ? {} : { caFile: opts.caFile }),
    telemetry: opts.telemetry,
    labels: { route: 'inbound' },
    onError: opts.onError,
  })
  const pass: GuardInvoke<GuardedCall> = () => Promise.resolve(PASS)
  const pipeline = receiver
    .layers<GuardedCall>()
    .reduceRight<GuardInvoke<GuardedCall>>((next, l) => l(next), pass)

  return {
    async admit(event, config) {
      // A direct Invoke with a non-HTTP event has no headers to carry a token: the function's
      // resource policy (lambda:InvokeFunction) is what guards it.
      if (detectEventKind(event) === undefined) return undefined
      const { kind, multiValue, request } = normalizeEvent(event)
      stripToken(event as Record<string, unknown>)
      const start = opts.clock.now()
      const edge = edgePath(request.path, config.pathNormalization)
      const call: GuardedCall = {
        service: opts.service,
        method: request.method,
        path: edge.ok ? edge.path : request.path,
        headers: request.headers,
      }
      const res = edge.ok ? await pipeline(call) : edge.refusal
      if (!edge.ok) call.errorCode = edge.code
      // Refusals and audit records: an allowed invocation's outcome is the handler's own.
      if (res !== PASS || call.audited === true) {
        opts.telemetry.request?.({
          mesh: config.mesh,
          service: opts.service,
          route: 'inbound',
          method: request.method,
          path: call.path,
          status: res === PASS ? 200 : res.status,
          start,
          end: opts.clock.now(),
          retries: 0,
          ...(call.errorCode === undefined ? {} : { errorCode: call.errorCode }),
          ...(call.caller === undefined ? {} : { caller: call.caller }),
          ...(call.rule === undefined ? {} : { rule: call.rule }),
        })
      }
      return res === PASS ? undefined : toLambdaResult(res, { kind, multiValue })
    },
  }
}
