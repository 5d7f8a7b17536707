// A paused clock with timers (linkerd's test style): time moves only when a test advances it, and
// due timers fire in order, with pending promise callbacks run between them.
import type { Clock, Timers } from '../../proxy-core/engine/types.ts'

interface Timer {
  at: number
  seq: number
  fn: () => void
}

export interface ManualClock extends Clock, Timers {
  advance(ms: number): Promise<void>
  /** Run pending promise callbacks without moving time. */
  settle(): Promise<void>
  pending(): number
}

async function drainMicrotasks(): Promise<void> {
  // A few macrotask turns let chains of awaits (several hops deep) run to their next timer.
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r))
}

export function createManualClock(start = 1_000_000): ManualClock {
  let now = start
  let seq = 0
  const timers = new Set<Timer>()
  return {
    now: () => now,
    set(fn, ms) {
      const t = { at: now + Math.max(0, ms), seq: seq++, fn }
      timers.add(t)
      return t
    },
    clear(handle) {
      timers.delete(handle as Timer)
    },
    async advance(ms) {
      const end = now + ms
      await drainMicrotasks()
      for (;;) {
        let next: Timer | undefined
        for (const t of timers)
          if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t
        if (!next) break
        timers.delete(next)
        now = Math.max(now, next.at)
        next.fn()
        await drainMicrotasks()
      }
      now = end
      await drainMicrotasks()
    },
    settle: drainMicrotasks,
    pending: () => timers.size,
  }
}

/** mulberry32: a small seeded PRNG so random choices are repeatable. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
