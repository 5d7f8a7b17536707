// Bodies the pipeline drops: a response that will be retried, or a mirror's answer. Drain or destroy
// them so the connection can be reused (undici) and nothing stays buffered.
import type { MeshBody } from './types.ts'

interface Dumpable {
  dump?: () => Promise<unknown>
  destroy?: (err?: Error) => void
}

export function discardBody(body: MeshBody): void {
  if (body === null || typeof body === 'string' || body instanceof Uint8Array) return
  const stream = body as MeshBody & Dumpable
  if (typeof stream.dump === 'function') {
    stream.dump().catch(() => {})
  } else if (typeof stream.destroy === 'function') {
    stream.destroy()
  } else {
    const it = body[Symbol.asyncIterator]()
    it.return?.().catch(() => {})
  }
}
