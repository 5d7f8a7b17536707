// A steady request rate over many targets: one request every 1/rate s, round robin over `targets`,
// each target with its own keep-alive agent, until `stop()` (bounded by `maxRequests`). Every outcome
// is recorded with the target it went to; a request that fails (socket error or a status other than
// the expected) is a failure. Pacing is open loop: a slow reply never delays the next send.

import { Agent } from 'node:http'
import { type Reply, type SendOptions, send } from '../sidecar/client.ts'

export interface PacedTarget {
  /** What the recorder files the outcome under (a sidecar's pid, a container's index). */
  id: string
  call(i: number): Promise<{ status: number; upstream: string | undefined; weights?: unknown }>
}

export interface Outcome {
  target: string
  i: number
  status: number
  upstream: string | undefined
  error?: string
  /** performance.now() when it was sent (for reports, never for assertions). */
  sentAt: number
  /** What the target says about the config it routed by, when it can tell (a Lambda container). */
  weights?: unknown
}

export interface PacedLoad {
  outcomes: Outcome[]
  /** Stop sending; resolves once every request sent has its outcome. */
  stop(): Promise<Outcome[]>
  sent(): number
}

export function pacedLoad(targets: PacedTarget[], rate: number, maxRequests: number): PacedLoad {
  const outcomes: Outcome[] = []
  const pending = new Set<Promise<void>>()
  let i = 0
  let stopped = false
  const t0 = performance.now()
  let timer: NodeJS.Timeout | undefined
  const tick = () => {
    if (stopped) return
    // Catch up to the schedule: as many sends as the elapsed time calls for.
    const due = Math.min(maxRequests, Math.floor(((performance.now() - t0) * rate) / 1000))
    while (i < due) {
      const n = i++
      const target = targets[n % targets.length]!
      const sentAt = performance.now()
      const p = target.call(n).then(
        (r) => {
          outcomes.push({
            target: target.id,
            i: n,
            status: r.status,
            upstream: r.upstream,
            sentAt,
            weights: r.weights,
          })
        },
        (err: unknown) => {
          outcomes.push({
            target: target.id,
            i: n,
            status: 0,
            upstream: undefined,
            error: String(err),
            sentAt,
          })
        },
      )
      pending.add(p)
      void p.finally(() => pending.delete(p))
    }
    if (i < maxRequests) timer = setTimeout(tick, 2)
  }
  tick()
  return {
    outcomes,
    sent: () => i,
    async stop() {
      stopped = true
      clearTimeout(timer)
      await Promise.all([...pending])
      return outcomes
    },
  }
}

/** A target that sends through a sidecar's outbound listener, with its own keep-alive agent. */
export function sidecarTarget(
  id: string,
  outbound: string,
  make: (i: number) => SendOptions,
): PacedTarget & { close(): void } {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  return {
    id,
    async call(i) {
      const r: Reply = await send(outbound, { ...make(i), agent })
      const up = r.headers['x-upstream']
      return { status: r.status, upstream: typeof up === 'string' ? up : undefined }
    },
    close: () => agent.destroy(),
  }
}
