// The two load generators, each run as its own process pinned to the load core and bounded in time:
// wrk (closed loop, for throughput) and open-loop.ts (fixed rate, for latency).

import { join } from 'node:path'
import type { OpenLoopResult } from './open-loop.ts'
import { runBounded } from './proc.ts'

export interface WrkResult {
  requestsPerSecond: number
  requests: number
  seconds: number
  /** Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses. */
  errors: number
  /** wrk's own (closed-loop) latency percentiles, ms: for reference only. */
  latencyMs: { p50: number; p90: number; p99: number }
}

function toMs(value: string, unit: string): number {
  const v = Number(value)
  if (unit === 'us') return v / 1000
  if (unit === 's') return v * 1000
  if (unit === 'm') return v * 60_000
  return v
}

export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out)
  if (rps === null || total === null) throw new Error(`cannot read wrk's output:\n${out}`)
  let errors = 0
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  if (socket !== null) errors += socket.slice(1).reduce((n, x) => n + Number(x), 0)
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)
  if (non2xx !== null) errors += Number(non2xx[1])
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out)
    return m === null ? Number.NaN : toMs(m[1]!, m[2]!)
  }
  return {
    requestsPerSecond: Number(rps[1]),
    requests: Number(total[1]),
    seconds: toMs(total[2]!, total[3]!) / 1000,
    errors,
    latencyMs: { p50: pct('50'), p90: pct('90'), p99: pct('99') },
  }
}

/** `wrk -t1 -cN -dS`: one thread is enough on one core, and more threads than cores only contend. */
export async function runWrk(o: {
  cpu: number | null
  url: string
  connections: number
  seconds: number
  headers: Record<string, string>
}): Promise<WrkResult> {
  const args = ['-t1', `-c${o.connections}`, `-d${o.seconds}s`, '--timeout', '2s', '--latency']
  for (const [k, v] of Object.entries(o.headers)) args.push('-H', `${k}: ${v}`)
  args.push(o.url)
  const r = await runBounded('wrk', o.cpu, 'wrk', args, (o.seconds + 15) * 1000)
  if (r.code !== 0) throw new Error(`wrk exited with ${r.code}: ${r.stderr}${r.stdout}`)
  return parseWrk(r.stdout)
}

export async function runOpenLoop(o: {
  cpu: number | null
  url: string
  rate: number
  seconds: number
  warmupSeconds: number
  connections: number
  headers: Record<string, string>
}): Promise<OpenLoopResult> {
  const args = [
    join(import.meta.dirname, 'open-loop.ts'),
    '--url',
    o.url,
    '--rate',
    String(o.rate),
    '--seconds',
    String(o.seconds),
    '--warmup',
    String(o.warmupSeconds),
    '--connections',
    String(o.connections),
  ]
  for (const [k, v] of Object.entries(o.headers)) args.push('--header', `${k}: ${v}`)
  const limit = (o.seconds + o.warmupSeconds + 15) * 1000
  const r = await runBounded('open-loop', o.cpu, process.execPath, args, limit)
  if (r.code !== 0) throw new Error(`open-loop generator exited with ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as OpenLoopResult
}
