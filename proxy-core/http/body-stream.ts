// Bodies on their way out of the edge: a whole one (none, a string, bytes) is one `end` call; a
// streamed one is a Readable (undici's and our own bodies are; another invoker's async iterable is
// wrapped in one), so every writer pipes it with backpressure the same way.

import type { Readable } from 'node:stream'
import type { MeshBody } from '../engine/types.ts'

/**
 * Ends `out` with `body` if the body is whole, and says so; a streamed body (false) is the caller's
 * to pipe.
 */
export function endWhole(
  out: { end(chunk?: string | Uint8Array): unknown },
  body: MeshBody,
): body is null | string | Uint8Array {
  if (body === null) out.end()
  else if (typeof body === 'string' || body instanceof Uint8Array) out.end(body)
  else return false
  return true
}

/**
 * node:stream, fetched when first needed: the Lambda path imports this file (for `endWhole`) and
 * must not load a module at init that it may never use.
 */
let streams: typeof import('node:stream') | undefined

/** A streamed body as a Readable: itself when it is one. */
export function readableOf(body: AsyncIterable<Uint8Array>): Readable {
  if (typeof (body as Partial<Readable>).pipe === 'function') return body as Readable
  streams ??= process.getBuiltinModule('node:stream')
  return streams.Readable.from(body)
}
