// One copy loop for a response body into a connection or a stream, with backpressure: the HTTP/1.1
// server's (framing on top) and the HTTP/2 server's. Every way out removes the same listeners. And
// the clients' wait on a full request stream (`drainOrClose`).

import type { EventEmitter } from 'node:events'
import type { Readable } from 'node:stream'

/** `end`: the source finished; `closed`: the destination closed first; an Error: either side broke. */
export type PumpOutcome = 'end' | 'closed' | Error

/**
 * Copies `src` through `write` (false: wait for the destination's 'drain'); a `write` that throws
 * ends the copy with that error. On anything but `end` the source is destroyed. Never rejects.
 */
export function pump(
  src: Readable,
  dst: EventEmitter,
  write: (piece: Buffer) => boolean,
): Promise<PumpOutcome> {
  return new Promise<PumpOutcome>((resolve) => {
    const finish = (outcome: PumpOutcome) => {
      src.off('data', onData)
      src.off('end', onEnd)
      src.off('error', onError)
      dst.off('close', onClose)
      dst.off('drain', onDrain)
      if (outcome !== 'end') src.destroy()
      resolve(outcome)
    }
    const onData = (piece: Buffer) => {
      let more: boolean
      try {
        more = write(piece)
      } catch (err) {
        finish(err as Error)
        return
      }
      if (!more) {
        src.pause()
        dst.once('drain', onDrain)
      }
    }
    const onDrain = () => src.resume()
    const onEnd = () => finish('end')
    const onError = (err: Error) => finish(err)
    const onClose = () => finish('closed')
    src.on('data', onData)
    src.once('end', onEnd)
    src.once('error', onError)
    dst.once('close', onClose)
  })
}

/** A writable that returned false: resolves on its 'drain', or on its 'close' (then stop writing). */
export function drainOrClose(w: EventEmitter): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      w.off('drain', done)
      w.off('close', done)
      resolve()
    }
    w.on('drain', done)
    w.on('close', done)
  })
}
