// Build a runtime from YAML text in tests: the real loader, compiler and pipeline, with a manual
// clock, a seeded random and in-memory invokers.
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import { createMemoryInvoker, type MemoryHandler } from '../../proxy-core/engine/memory-invoker.ts'
import { createMeshRuntime } from '../../proxy-core/engine/runtime.ts'
import type { AttemptEvent, MeshEventKind, MeshRequest, RequestEvent } from '../../proxy-core/engine/types.ts'
import { createManualClock, seededRandom } from './manual-clock.ts'

export async function meshFromYaml(yaml: string, handler: MemoryHandler, seed = 42) {
  const config = await loadConfigText(yaml, 'test.yaml')
  const clock = createManualClock()
  const invoker = createMemoryInvoker(handler)
  const requests: RequestEvent[] = []
  const attempts: AttemptEvent[] = []
  const events: MeshEventKind[] = []
  const runtime = createMeshRuntime(compileMesh(config), {
    invokers: { http: invoker, lambda: invoker },
    clock,
    timers: clock,
    random: seededRandom(seed),
    telemetry: {
      request: (e) => requests.push(e),
      attempt: (e) => attempts.push(e),
      event: (k) => events.push(k),
    },
  })
  return { runtime, clock, invoker, requests, attempts, events, config }
}

export function get(path: string, headers: Record<string, string> = {}): MeshRequest {
  return { method: 'GET', path, headers: { ...headers }, body: null }
}

export function ok(body = 'ok', status = 200) {
  return { status, headers: { 'content-type': 'text/plain' }, body }
}
