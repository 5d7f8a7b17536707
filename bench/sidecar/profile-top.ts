// Reads a V8 .cpuprofile (what `node --cpu-prof` writes) and lists where the time went: by area
// (meshgate, undici, node internals, GC, idle), the functions with the most self time, and meshgate's
// own functions by self and by total (inclusive) time.
//
//   node bench/sidecar/profile-top.ts bench/results/prof/CPU.….cpuprofile [--top 20]

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

export interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface FunctionTime {
  name: string
  where: string
  area: Area
  selfMs: number
  totalMs: number
}

export interface ProfileTop {
  totalMs: number
  /** Time not idle: what the process actually spent on the CPU. */
  busyMs: number
  areas: Record<Area, number>
  bySelf: FunctionTime[]
  meshgateBySelf: FunctionTime[]
  meshgateByTotal: FunctionTime[]
}

const AREAS = ['meshgate', 'undici', 'node', 'gc', 'program', 'idle', 'other'] as const
type Area = (typeof AREAS)[number]

const ROOT = resolve(import.meta.dirname, '..', '..')

function areaOf(f: CallFrame): Area {
  if (f.functionName === '(idle)') return 'idle'
  if (f.functionName === '(garbage collector)') return 'gc'
  if (f.functionName === '(program)' || f.functionName === '(root)') return 'program'
  if (f.url.includes('/node_modules/undici/')) return 'undici'
  if (f.url.startsWith('node:') || (f.url === '' && f.functionName !== '')) return 'node'
  if (f.url.includes('/proxy-core/') || f.url.includes('/bin/meshgate')) return 'meshgate'
  return 'other'
}

function where(f: CallFrame): string {
  if (f.url === '') return '(native)'
  const path = f.url.startsWith('file://') ? decodeURIComponent(f.url.slice(7)) : f.url
  // meshgate's own files from proxy-core/ on, wherever the tree lives (--meshgate runs an exported copy).
  const core = path.lastIndexOf('/proxy-core/')
  const short =
    core >= 0 ? path.slice(core + 1) : path.startsWith(`${ROOT}/`) ? path.slice(ROOT.length + 1) : path
  // lineNumber is 0-based in the profile.
  return `${short}:${f.lineNumber + 1}`
}

export function readProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
}

export function topSelf(p: CpuProfile, n = 20): ProfileTop {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of p.nodes) {
    byId.set(node.id, node)
    for (const c of node.children ?? []) parent.set(c, node.id)
  }
  const keyOf = (f: CallFrame) =>
    `${f.functionName}\u0000${f.url}\u0000${f.lineNumber}\u0000${f.columnNumber}`
  const fns = new Map<string, FunctionTime>()
  const fnFor = (f: CallFrame): FunctionTime => {
    const key = keyOf(f)
    let t = fns.get(key)
    if (t === undefined) {
      t = { name: f.functionName || '(anonymous)', where: where(f), area: areaOf(f), selfMs: 0, totalMs: 0 }
      fns.set(key, t)
    }
    return t
  }
  const areas = Object.fromEntries(AREAS.map((a) => [a, 0])) as Record<Area, number>
  // Sample i lasts until sample i + 1 (Chrome DevTools' convention); the last one gets no time.
  let totalMs = 0
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000
    if (dt <= 0) continue
    totalMs += dt
    const leaf = byId.get(p.samples[i]!)
    if (leaf === undefined) continue
    const self = fnFor(leaf.callFrame)
    self.selfMs += dt
    areas[self.area] += dt
    // Inclusive time: each function once per sample however often it recurses in the stack.
    const seen = new Set<FunctionTime>()
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const t = fnFor(byId.get(id)!.callFrame)
      if (!seen.has(t)) {
        seen.add(t)
        t.totalMs += dt
      }
    }
  }
  const all = [...fns.values()]
  const busy = (t: FunctionTime) => t.area !== 'idle'
  const mine = all.filter((t) => t.area === 'meshgate')
  return {
    totalMs,
    busyMs: totalMs - areas.idle,
    areas,
    bySelf: all
      .filter(busy)
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, n),
    meshgateBySelf: mine.sort((a, b) => b.selfMs - a.selfMs).slice(0, n),
    meshgateByTotal: mine
      .slice()
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, n),
  }
}

export function formatTop(t: ProfileTop): string {
  const pct = (ms: number) => `${((ms / t.busyMs) * 100).toFixed(1).padStart(5)}%`
  const rows = (list: FunctionTime[], pick: (f: FunctionTime) => number) =>
    list.map((f) => `  ${pct(pick(f))}  ${f.area.padEnd(8)}  ${f.name}  ${f.where}`)
  const areas = AREAS.filter((a) => a !== 'idle' && t.areas[a] > 0)
    .sort((a, b) => t.areas[b] - t.areas[a])
    .map((a) => `${a} ${pct(t.areas[a]).trim()}`)
    .join(', ')
  return [
    `Profile: ${(t.totalMs / 1000).toFixed(1)} s sampled, ${(t.busyMs / 1000).toFixed(1)} s busy (percentages are of busy time)`,
    `By area (self time): ${areas}`,
    '',
    'Top self time, all code:',
    ...rows(t.bySelf, (f) => f.selfMs),
    '',
    'meshgate functions by self time:',
    ...rows(t.meshgateBySelf, (f) => f.selfMs),
    '',
    'meshgate functions by total time (self + callees):',
    ...rows(t.meshgateByTotal, (f) => f.totalMs),
  ].join('\n')
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '20' } },
  })
  if (positionals.length !== 1) {
    process.stderr.write('usage: node bench/sidecar/profile-top.ts FILE.cpuprofile [--top N]\n')
    process.exit(2)
  }
  console.log(formatTop(topSelf(readProfile(positionals[0]!), Number(values.top))))
}
