// Cancellation on the request path without EventTarget. Every request and every attempt needs a way
// to be stopped (the client went away, the per-try timeout fired), and node's AbortController costs
// an EventTarget, a listener object per subscription and a linked list walk per removal: about a
// tenth of the sidecar's JavaScript time per request, for a signal that almost never fires. A
// Cancellation is the same contract (`aborted`, `addEventListener('abort')`, `removeEventListener`)
// with a field or two. Libraries that need a real AbortSignal (undici, the AWS SDK, node:http) get one
// from `toAbortSignal`, on their own paths only.

import type { CancelSignal } from './types.ts'

type Listener = () => void

export class Cancellation implements CancelSignal {
  aborted = false
  // One listener is the common case (the invoker, or the attempt forwarding a client abort); more go
  // to `rest`.
  private first: Listener | undefined
  private rest: Listener[] | undefined

  addEventListener(_type: 'abort', listener: Listener): void {
    if (this.aborted) return
    if (this.first === undefined) this.first = listener
    else if (this.rest === undefined) this.rest = [listener]
    else this.rest.push(listener)
  }

  removeEventListener(_type: 'abort', listener: Listener): void {
    if (this.first === listener) this.first = undefined
    else if (this.rest !== undefined) {
      const i = this.rest.indexOf(listener)
      if (i >= 0) this.rest.splice(i, 1)
    }
  }

  /** Marks it aborted and calls each listener once. Later calls do nothing. */
  abort(): void {
    if (this.aborted) return
    this.aborted = true
    const first = this.first
    const rest = this.rest
    this.first = undefined
    this.rest = undefined
    first?.()
    if (rest !== undefined) for (const l of rest) l()
  }
}

/** A standard AbortSignal that follows `signal` (itself, when it is one). */
export function toAbortSignal(signal: CancelSignal): AbortSignal {
  if (signal instanceof AbortSignal) return signal
  const controller = new AbortController()
  if (signal.aborted) controller.abort()
  else signal.addEventListener('abort', () => controller.abort())
  return controller.signal
}
