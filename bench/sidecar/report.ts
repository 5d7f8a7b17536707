// From raw cells to the one table: medians over rounds, ratios to HAProxy taken within each round (so
// the machine's drift between rounds cancels), and the latency meshgate adds over going direct.

import type { ContenderName } from './contenders.ts'
import type { WrkResult } from './load.ts'
import type { OpenLoopResult } from './open-loop.ts'

export const CELLS = ['c16', 'c64', 'rate'] as const
export type CellKind = (typeof CELLS)[number]

export interface Cell {
  round: number
  contender: ContenderName
  kind: CellKind
  /** ISO time the cell started. */
  at: string
  /** CPU seconds (user + system) of the contender's processes during the cell. */
  cpuSeconds: number
  /** The same for the upstream nginx (for `direct` it is the contender itself). */
  upstreamCpuSeconds: number
  /** Responses the load generator received during the cell (warm-up included for the rate cell). */
  responses: number
  /** Peak RSS of the contender's processes during the cell, bytes (VmHWM, reset before the cell). */
  peakRssBytes: number
  /**
   * The highest anonymous RSS sampled every 100 ms during the cell, bytes. VmHWM also counts the pages
   * of the executable and of mapped files (for node, its 100+ MB binary: tens of MB resident); this is
   * the part that the process's own heap and buffers make.
   */
  peakRssAnonBytes: number
  /** X-Ray documents that reached the bench's UDP port during the cell. */
  xrayDocuments: number
  wallSeconds: number
  /**
   * CPU seconds that processes other than this benchmark's used anywhere on the machine during the
   * cell. Other work disturbs the numbers (the scheduler puts it on the idle server core); this says
   * by how much.
   */
  otherCpuSeconds: number
  /** The biggest of those processes, for the JSON. */
  otherProcesses: { pid: number; name: string; seconds: number }[]
  /** Hypervisor steal on all cores during the cell, seconds. */
  stealSeconds: number
  wrk?: WrkResult
  openLoop?: OpenLoopResult
}

/** One contender in one round. */
export interface RoundValues {
  rps16: number
  rps64: number
  p50: number
  p90: number
  p99: number
  cpuPer1k: number
  cpuPer1kAt16: number
  upstreamCpuPer1k: number
  rssAtRateMb: number
  rssAnonAtRateMb: number
  rssPeakMb: number
  errors: number
}

export interface SummaryRow {
  contender: ContenderName
  rounds: number
  rps16: number
  rps64: number
  /** Latency at the fixed rate, ms from the due time. */
  p50: number
  p90: number
  p99: number
  /** Over direct, ms: median over rounds of (contender − direct) in the same round. */
  addedP50: number | null
  addedP99: number | null
  cpuPer1k: number
  cpuPer1kAt16: number
  upstreamCpuPer1k: number
  rssAtRateMb: number
  rssAnonAtRateMb: number
  rssPeakMb: number
  errors: number
  /** Medians over rounds of the ratio to HAProxy in the same round; null without HAProxy. */
  vsHaproxy: { rps16: number | null; rps64: number | null; cpuPer1k: number | null; addedP99: number | null }
}

export interface Target {
  what: string
  limit: string
  value: string
  /** null: this run cannot tell (the reference it is measured against came out meaningless). */
  met: boolean | null
}

export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const MB = 1024 * 1024

export function roundValues(
  cells: readonly Cell[],
  contender: ContenderName,
  round: number,
): RoundValues | null {
  const find = (kind: CellKind) =>
    cells.find((c) => c.contender === contender && c.round === round && c.kind === kind)
  const c16 = find('c16')
  const c64 = find('c64')
  const rate = find('rate')
  if (c16?.wrk === undefined || c64?.wrk === undefined || rate?.openLoop === undefined) return null
  const ol = rate.openLoop
  const per1k = (cpu: number, n: number) => (n > 0 ? cpu / (n / 1000) : Number.NaN)
  return {
    rps16: c16.wrk.requestsPerSecond,
    rps64: c64.wrk.requestsPerSecond,
    p50: ol.latencyUs.p50 / 1000,
    p90: ol.latencyUs.p90 / 1000,
    p99: ol.latencyUs.p99 / 1000,
    cpuPer1k: per1k(rate.cpuSeconds, rate.responses),
    cpuPer1kAt16: per1k(c16.cpuSeconds, c16.responses),
    upstreamCpuPer1k: per1k(rate.upstreamCpuSeconds, rate.responses),
    rssAtRateMb: rate.peakRssBytes / MB,
    rssAnonAtRateMb: rate.peakRssAnonBytes / MB,
    rssPeakMb: Math.max(c16.peakRssBytes, c64.peakRssBytes, rate.peakRssBytes) / MB,
    errors: c16.wrk.errors + c64.wrk.errors + ol.errors + ol.non2xx + ol.timeouts,
  }
}

export function summarize(
  cells: readonly Cell[],
  contenders: readonly ContenderName[],
  rounds: number,
): SummaryRow[] {
  const per = new Map<ContenderName, (RoundValues | null)[]>()
  for (const c of contenders)
    per.set(
      c,
      Array.from({ length: rounds }, (_, r) => roundValues(cells, c, r)),
    )
  const valuesOf = (c: ContenderName) => (per.get(c) ?? []).filter((v): v is RoundValues => v !== null)
  /** Median over rounds of f(contender's round, other's same round), skipping rounds either lacks. */
  const paired = (
    c: ContenderName,
    other: ContenderName,
    f: (a: RoundValues, b: RoundValues) => number,
  ): number | null => {
    if (!per.has(other)) return null
    const a = per.get(c)!
    const b = per.get(other)!
    const xs: number[] = []
    for (let r = 0; r < rounds; r++) if (a[r] && b[r]) xs.push(f(a[r]!, b[r]!))
    return xs.length === 0 ? null : median(xs)
  }
  const rows: SummaryRow[] = []
  for (const c of contenders) {
    const vs = valuesOf(c)
    if (vs.length === 0) continue
    const m = (f: (v: RoundValues) => number) => median(vs.map(f))
    rows.push({
      contender: c,
      rounds: vs.length,
      rps16: m((v) => v.rps16),
      rps64: m((v) => v.rps64),
      p50: m((v) => v.p50),
      p90: m((v) => v.p90),
      p99: m((v) => v.p99),
      addedP50: paired(c, 'direct', (a, b) => a.p50 - b.p50),
      addedP99: paired(c, 'direct', (a, b) => a.p99 - b.p99),
      cpuPer1k: m((v) => v.cpuPer1k),
      cpuPer1kAt16: m((v) => v.cpuPer1kAt16),
      upstreamCpuPer1k: m((v) => v.upstreamCpuPer1k),
      rssAtRateMb: m((v) => v.rssAtRateMb),
      rssAnonAtRateMb: m((v) => v.rssAnonAtRateMb),
      rssPeakMb: Math.max(...vs.map((v) => v.rssPeakMb)),
      errors: vs.reduce((n, v) => n + v.errors, 0),
      vsHaproxy: {
        rps16: paired(c, 'haproxy', (a, b) => a.rps16 / b.rps16),
        rps64: paired(c, 'haproxy', (a, b) => a.rps64 / b.rps64),
        cpuPer1k: paired(c, 'haproxy', (a, b) => a.cpuPer1k / b.cpuPer1k),
        addedP99: null,
      },
    })
  }
  // Added p99s are small differences of noisy numbers and can be near zero in a round: their ratio is
  // taken between the medians, not per round.
  const hap = rows.find((r) => r.contender === 'haproxy')
  for (const r of rows) {
    if (hap?.addedP99 != null && r.addedP99 !== null && r.contender !== 'direct' && hap.addedP99 > 0) {
      r.vsHaproxy.addedP99 = r.addedP99 / hap.addedP99
    }
  }
  return rows
}

/** Issue 6's "done when", checked against the meshgate row. */
export function checkTargets(rows: readonly SummaryRow[]): Target[] {
  const mg = rows.find((r) => r.contender === 'meshgate')
  const hap = rows.find((r) => r.contender === 'haproxy')
  if (mg === undefined) return []
  const out: Target[] = []
  if (mg.vsHaproxy.rps16 !== null) {
    out.push({
      what: 'throughput at 16 connections',
      limit: '≥ 0.50 × HAProxy',
      value: `${mg.vsHaproxy.rps16.toFixed(2)} ×`,
      met: mg.vsHaproxy.rps16 >= 0.5,
    })
  }
  if (mg.addedP50 !== null) {
    out.push({
      what: 'added p50 over direct at the fixed rate',
      limit: '≤ 0.150 ms',
      value: `${mg.addedP50.toFixed(3)} ms`,
      met: mg.addedP50 <= 0.15,
    })
  }
  if (mg.addedP99 !== null && hap?.addedP99 != null) {
    const what = 'added p99 over direct at the fixed rate'
    const value = `${mg.addedP99.toFixed(3)} ms`
    if (hap.addedP99 > 0) {
      const limit = 1.5 * hap.addedP99
      out.push({
        what,
        value,
        limit: `≤ 1.5 × HAProxy's (${limit.toFixed(3)} ms)`,
        met: mg.addedP99 <= limit,
      })
    } else {
      // HAProxy's p99 came out at or below direct's: the tail of this run is the machine's noise,
      // and 1.5 × a non-positive number is no limit to hold anything to.
      const limit = `≤ 1.5 × HAProxy's, which is ${hap.addedP99.toFixed(3)} ms here: its p99 was not above direct's`
      out.push({ what, value, limit, met: null })
    }
  }
  out.push({
    what: 'peak RSS at the fixed rate',
    limit: '≤ 60 MB',
    value: `${mg.rssAtRateMb.toFixed(1)} MB`,
    met: mg.rssAtRateMb <= 60,
  })
  out.push({
    what: 'CPU per 1 000 requests at the fixed rate',
    limit: '≤ 0.100 s',
    value: `${mg.cpuPer1k.toFixed(3)} s`,
    met: mg.cpuPer1k <= 0.1,
  })
  return out
}

const LABELS: Record<ContenderName, string> = {
  direct: 'direct (no proxy)',
  haproxy: 'HAProxy',
  nginx: 'nginx',
  meshgate: 'meshgate sidecar',
  baseline: 'meshgate, baseline tree',
}

const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—')
const fixed = (x: number | null, digits: number) =>
  x === null || !Number.isFinite(x) ? '—' : x.toFixed(digits)
const ratio = (x: number | null) => (x === null || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`)

export function tableRows(rows: readonly SummaryRow[], rate: number): { header: string[]; body: string[][] } {
  const header = [
    '',
    'req/s 16c',
    '× HAProxy',
    'req/s 64c',
    '× HAProxy',
    `p50 ms @${rate}/s`,
    'p90 ms',
    'p99 ms',
    '+p50 ms',
    '+p99 ms',
    '+p99 × HAProxy',
    `CPU s/1k req @${rate}/s`,
    '× HAProxy',
    'CPU s/1k @16c',
    `RSS MB @${rate}/s`,
    'of it anon MB',
    'peak RSS MB',
  ]
  const body = rows.map((r) => {
    const direct = r.contender === 'direct'
    return [
      LABELS[r.contender],
      int(r.rps16),
      ratio(r.vsHaproxy.rps16),
      int(r.rps64),
      ratio(r.vsHaproxy.rps64),
      fixed(r.p50, 3),
      fixed(r.p90, 3),
      fixed(r.p99, 3),
      direct ? '—' : fixed(r.addedP50, 3),
      direct ? '—' : fixed(r.addedP99, 3),
      ratio(r.vsHaproxy.addedP99),
      fixed(r.cpuPer1k, 3),
      ratio(r.vsHaproxy.cpuPer1k),
      fixed(r.cpuPer1kAt16, 3),
      fixed(r.rssAtRateMb, 1),
      fixed(r.rssAnonAtRateMb, 1),
      fixed(r.rssPeakMb, 1),
    ]
  })
  return { header, body }
}

/** The table for the terminal: right-aligned columns, first column left-aligned. */
export function textTable(header: readonly string[], body: readonly string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((r) => r[c]!.length)))
  const line = (cells: readonly string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}

export function markdownTable(header: readonly string[], body: readonly string[][]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`
  const align = header.map((_, c) => (c === 0 ? ':---' : '---:'))
  return [line(header), line(align), ...body.map(line)].join('\n')
}

/** How each verdict reads, on the terminal (padded to one width) and in BENCHMARKS.md. */
const VERDICTS = {
  text: { met: 'met    ', missed: 'NOT met', undecided: 'n/a    ' },
  markdown: { met: '- met', missed: '- **not met**', undecided: '- cannot be judged from this run' },
}

export function targetLines(targets: readonly Target[], style: keyof typeof VERDICTS = 'text'): string[] {
  const words = VERDICTS[style]
  const sep = style === 'text' ? '  ' : ': '
  return targets.map((t) => {
    const verdict = t.met === null ? words.undecided : t.met ? words.met : words.missed
    return `${verdict}${sep}${t.what}: ${t.value} (target ${t.limit})`
  })
}

/** The largest share of a core that other processes took in any cell, 0–1. */
export function disturbance(cells: readonly Cell[]): { worst: number; cell: Cell | undefined } {
  let worst = 0
  let cell: Cell | undefined
  for (const c of cells) {
    const share = c.wallSeconds > 0 ? c.otherCpuSeconds / c.wallSeconds : 0
    if (share > worst) {
      worst = share
      cell = c
    }
  }
  return { worst, cell }
}
