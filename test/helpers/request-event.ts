// A RequestEvent as the pipeline reports it, with the fields a test cares about overridden.
import type { RequestEvent } from '../../proxy-core/engine/types.ts'

export function requestEvent(over: Partial<RequestEvent> = {}): RequestEvent {
  return {
    mesh: 'bookinfo',
    service: 'reviews',
    route: 'default',
    target: 'v1',
    method: 'GET',
    path: '/',
    status: 200,
    start: 0,
    end: 10,
    retries: 0,
    ...over,
  }
}
