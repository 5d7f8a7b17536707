// An invoker that answers in memory, for tests of the pipeline and for embedding the engine without
// a network (both runtimes plug in real invokers instead).
import type { AttemptRequest, Endpoint, Invoker, MeshResponse } from './types.ts'

export type MemoryHandler = (
  req: AttemptRequest,
  endpoint: Endpoint,
  signal: AbortSignal,
) => MeshResponse | Promise<MeshResponse>

export interface MemoryInvoker extends Invoker {
  /** Every attempt in order, as the handler saw it (headers copied at call time). */
  readonly calls: { endpoint: string; req: AttemptRequest }[]
}

export function createMemoryInvoker(handler: MemoryHandler): MemoryInvoker {
  const calls: { endpoint: string; req: AttemptRequest }[] = []
  return {
    calls,
    async invoke(req, endpoint, signal) {
      calls.push({ endpoint: endpoint.id, req: { ...req, headers: { ...req.headers } } })
      return handler(req, endpoint, signal)
    },
  }
}
