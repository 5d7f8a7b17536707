// Access-log lines, batched: one write per 64 KiB or per 100 ms instead of one write per request
// (Envoy flushes its access log on a 1 s interval). At thousands of requests a second the per-line
// write was the sidecar's largest single cost.

/** Flush when this many characters are waiting. */
const MAX_BUFFERED = 64 * 1024
/** ...or this long after the first waiting line, in ms: logs stay close to real time. */
const FLUSH_INTERVAL_MS = 100

export interface LineWriter {
  line(text: string): void
  /** Write what is waiting now (on shutdown, before exit). */
  flush(): void
}

export function createLineWriter(write: (chunk: string) => void): LineWriter {
  let pending = ''
  let timer: NodeJS.Timeout | undefined
  function flush(): void {
    if (timer !== undefined) {
      clearTimeout(timer)
      timer = undefined
    }
    if (pending === '') return
    const chunk = pending
    pending = ''
    write(chunk)
  }
  return {
    line(text) {
      pending += `${text}\n`
      if (pending.length >= MAX_BUFFERED) flush()
      else if (timer === undefined) {
        timer = setTimeout(flush, FLUSH_INTERVAL_MS)
        timer.unref()
      }
    },
    flush,
  }
}
