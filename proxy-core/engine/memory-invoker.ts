// An invoker that answers in memory, for tests of the pipeline and for embedding the engine without
// a network (both runtimes plug in real invokers instead).
import { toAbortSignal } from './cancel.ts'
import {
  type AttemptRequest,
  type Endpoint,
  FailureKinds,
  type Invoker,
  type MeshResponse,
  UpstreamFailure,
} from './types.ts'

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
    invoke(req, endpoint, cancel) {
      const signal = toAbortSignal(cancel)
      calls.push({ endpoint: endpoint.id, req: { ...req, headers: { ...req.headers } } })
      // Honour the Invoker contract for handlers that never answer: reject when the signal aborts.
      return new Promise<MeshResponse>((resolve, reject) => {
        const onAbort = () => reject(new UpstreamFailure(FailureKinds.timeout, 'aborted'))
        if (signal.aborted) return onAbort()
        signal.addEventListener('abort', onAbort, { once: true })
        Promise.resolve()
          .then(() => handler(req, endpoint, signal))
          .then(resolve, reject)
          .finally(() => signal.removeEventListener('abort', onAbort))
      })
    },
  }
}
