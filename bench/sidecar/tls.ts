// What TLS between sidecars costs: wrk → sidecar A (outbound) → sidecar B (inbound) → nginx, once in
// cleartext and once with mutual TLS between A and B (the certificates from a CA made for the run),
// interleaved in the same run (plain, tls, plain, tls …) so the machine's drift hits both alike.
// Everything on loopback; the four sidecars and nginx pinned to one core, wrk to the other.
//
//   node bench/sidecar/tls.ts [--rounds 3] [--seconds 5] [--connections 16]
//
// Prints one line per cell: requests per second, wrk's p50/p90 (closed loop: for comparison only)
// and the CPU both sidecars spent per request, then the medians and the TLS/plain ratios.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { makeCa, makeTlsDir } from '../../test/helpers/certs.ts'
import { get, startUpstream } from './contenders.ts'
import { runWrk, type WrkResult } from './load.ts'
import { cpuTimes, freePorts, onlineCpus, pinSelf, type Started, spawnPinned, stopProcess } from './proc.ts'
import { median } from './report.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CLI = join(ROOT, 'bin', 'meshgate.js')
const SERVICE = 'echo'
const WARMUP_S = 2

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
  },
})
const rounds = Math.min(10, Number(values.rounds))
const seconds = Math.min(30, Number(values.seconds))
const connections = Number(values.connections)
const [serverCpu, loadCpu] = onlineCpus()
pinSelf(loadCpu ?? 0)

const dir = mkdtempSync(join(tmpdir(), 'meshgate-bench-tls-'))
const started: Started[] = []

function sidecarEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('AWS_') || k.startsWith('MESHGATE_') || k === 'NODE_OPTIONS') continue
    env[k] = v
  }
  return { ...env, MESHGATE_XRAY: 'off', MESHGATE_CLOUDWATCH: 'off' }
}

function sidecar(name: string, args: string[]): Started {
  // stdout (the access log) is dropped: reading it here would load the generator's core.
  const p = spawnPinned(name, serverCpu ?? null, process.execPath, [CLI, 'sidecar', ...args], {
    cwd: ROOT,
    env: sidecarEnv(),
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  started.push(p)
  return p
}

async function ready(admin: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const r = await get(`${admin}/ready`).catch(() => undefined)
    if (r?.status === 200) return
    await new Promise((res) => setTimeout(res, 100))
  }
  throw new Error(`${admin} never became ready`)
}

interface Pair {
  name: 'plain' | 'tls'
  url: string
  /** Sidecar A's admin: its upstream pools say how many connections to B the run opened. */
  admin: string
  pids: number[]
}

async function startPair(name: Pair['name'], upstream: number, ports: number[]): Promise<Pair> {
  const [outA, adminA, inB, adminB] = ports as [number, number, number, number]
  const tls = name === 'tls'
  const config = join(dir, `${name}.json`)
  writeFileSync(
    config,
    JSON.stringify({
      version: 1,
      mesh: 'bench',
      accessLog: false,
      services: {
        [SERVICE]: {
          targets: { v1: { http: `${tls ? 'https' : 'http'}://127.0.0.1:${inB}` } },
          routes: [{ name: 'default', to: 'v1', timeout: '3s' }],
        },
      },
    }),
  )
  const tlsArgs = (side: string) => (tls ? ['--tls-dir', join(dir, `${side}-tls`)] : [])
  const a = sidecar(`${name}-a`, [
    '--config',
    config,
    '--service',
    'caller',
    '--outbound',
    `127.0.0.1:${outA}`,
    '--admin',
    `127.0.0.1:${adminA}`,
    ...tlsArgs('a'),
  ])
  const b = sidecar(`${name}-b`, [
    '--config',
    config,
    '--service',
    SERVICE,
    '--app',
    `http://127.0.0.1:${upstream}`,
    '--inbound',
    `127.0.0.1:${inB}`,
    '--outbound',
    '127.0.0.1:0',
    '--admin',
    `127.0.0.1:${adminB}`,
    ...tlsArgs('b'),
  ])
  await Promise.all([ready(`http://127.0.0.1:${adminA}`), ready(`http://127.0.0.1:${adminB}`)])
  const url = `http://127.0.0.1:${outA}/`
  const check = await get(url, { host: SERVICE })
  if (check.status !== 200) throw new Error(`${name}: the path answers ${check.status}: ${check.body}`)
  return { name, url, admin: `http://127.0.0.1:${adminA}`, pids: [a.pid, b.pid] }
}

interface Cell {
  pair: Pair['name']
  round: number
  wrk: WrkResult
  cpuUsPerRequest: number
}

async function measure(pair: Pair, round: number, secs: number): Promise<Cell> {
  const before = pair.pids.map(cpuTimes)
  const wrk = await runWrk({
    cpu: loadCpu ?? null,
    url: pair.url,
    connections,
    seconds: secs,
    // 'Host' as wrk spells it: a lower-case one would be sent beside wrk's own (two Hosts: 400).
    headers: { Host: SERVICE },
  })
  const after = pair.pids.map(cpuTimes)
  const cpu = after.reduce((n, t, i) => n + t.user + t.sys - before[i]!.user - before[i]!.sys, 0)
  return { pair: pair.name, round, wrk, cpuUsPerRequest: (cpu * 1e6) / Math.max(1, wrk.requests) }
}

function show(c: Cell): string {
  const w = c.wrk
  return `round ${c.round} ${c.pair.padEnd(5)} ${Math.round(w.requestsPerSecond).toString().padStart(6)} req/s  p50 ${w.latencyMs.p50.toFixed(3)} ms  p90 ${w.latencyMs.p90.toFixed(3)} ms  sidecars' CPU ${c.cpuUsPerRequest.toFixed(1)} µs/req  errors ${w.errors}`
}

try {
  const ca = makeCa(dir, 'bench-mesh')
  makeTlsDir(join(dir, 'a-tls'), ca, 'caller', ['DNS:caller'])
  makeTlsDir(join(dir, 'b-tls'), ca, SERVICE, ['IP:127.0.0.1', `DNS:${SERVICE}`])
  const ports = await freePorts(10)
  const up = startUpstream(dir, serverCpu ?? null, [ports[0]!, ports[1]!])
  started.push(up.process)
  const pairs = [
    await startPair('plain', ports[0]!, ports.slice(2, 6)),
    await startPair('tls', ports[0]!, ports.slice(6, 10)),
  ]
  console.log(
    `TLS between sidecars against cleartext: wrk -c${connections}, ${seconds} s cells, ${rounds} rounds, sidecars and nginx on cpu ${serverCpu}, wrk on cpu ${loadCpu}`,
  )
  for (const p of pairs) await measure(p, 0, WARMUP_S)
  const cells: Cell[] = []
  for (let round = 1; round <= rounds; round++) {
    // Alternate which goes first, so neither always follows the other.
    const order = round % 2 === 1 ? pairs : [...pairs].reverse()
    for (const p of order) {
      const c = await measure(p, round, seconds)
      cells.push(c)
      console.log(show(c))
    }
  }
  const of = (name: Pair['name']) => cells.filter((c) => c.pair === name)
  const ratios = Array.from({ length: rounds }, (_, i) => {
    const plain = cells.find((c) => c.pair === 'plain' && c.round === i + 1)!
    const tls = cells.find((c) => c.pair === 'tls' && c.round === i + 1)!
    return tls.wrk.requestsPerSecond / plain.wrk.requestsPerSecond
  })
  console.log('\nmedians')
  for (const name of ['plain', 'tls'] as const) {
    const cs = of(name)
    console.log(
      `${name.padEnd(5)} ${Math.round(median(cs.map((c) => c.wrk.requestsPerSecond)))} req/s  p50 ${median(cs.map((c) => c.wrk.latencyMs.p50)).toFixed(3)} ms  sidecars' CPU ${median(cs.map((c) => c.cpuUsPerRequest)).toFixed(1)} µs/req`,
    )
  }
  console.log(`tls/plain throughput per round: ${ratios.map((r) => r.toFixed(2)).join(' ')}`)
  for (const p of pairs) {
    const stats = JSON.parse((await get(`${p.admin}/stats`)).body) as { upstreamPools: object }
    console.log(`${p.name} A → B pools at the end: ${JSON.stringify(stats.upstreamPools)}`)
  }
  const errors = cells.reduce((n, c) => n + c.wrk.errors, 0)
  if (errors > 0)
    console.log(`WARNING: ${errors} requests failed or were not 2xx: the numbers above are not clean`)
} finally {
  await Promise.all(started.map((p) => stopProcess(p, 5000)))
  rmSync(dir, { recursive: true, force: true })
}
