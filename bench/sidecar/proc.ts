// Processes for the sidecar benchmark: start them pinned to a core, read their CPU time and peak memory
// from /proc, and stop them by PID. Only processes this benchmark started are ever signalled.

import { type ChildProcess, execFileSync, type StdioOptions, spawn } from 'node:child_process'
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { createServer } from 'node:net'
import { setPriority } from 'node:os'

/** Clock ticks per second for /proc/PID/stat times; 100 on every Linux this runs on, asked anyway. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** User and system CPU of one process (all its threads), in seconds; zeros once it is gone. */
export function cpuTimes(pid: number): { user: number; sys: number } {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return { user: 0, sys: 0 }
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 (utime) and 15 (stime) of proc(5); the slice starts at field 3.
  return { user: Number(fields[11]) / CLK_TCK, sys: Number(fields[12]) / CLK_TCK }
}

/** utime + stime of one process (all its threads), in seconds; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid)
  return t.user + t.sys
}

export function totalCpuSeconds(pids: readonly number[]): number {
  let sum = 0
  for (const pid of pids) sum += cpuSeconds(pid)
  return sum
}

function statusField(pid: number, field: string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)
    return m === null ? 0 : Number(m[1]) * 1024
  } catch {
    return 0
  }
}

/** Peak resident set size since start or since the last `resetPeakRss`, in bytes (VmHWM). */
export function peakRss(pid: number): number {
  return statusField(pid, 'VmHWM')
}

/** Anonymous resident memory now (heap, stacks, buffers: RSS without the mapped binary and files), bytes. */
export function totalRssAnon(pids: readonly number[]): number {
  let sum = 0
  for (const pid of pids) sum += statusField(pid, 'RssAnon')
  return sum
}

export function totalPeakRss(pids: readonly number[]): number {
  let sum = 0
  for (const pid of pids) sum += peakRss(pid)
  return sum
}

/** Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0), so each cell has its own peak. */
export function resetPeakRss(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, '5')
    } catch {
      // Not permitted or gone: the peak then covers the process's whole life, which is still an upper bound.
    }
  }
}

/** The process and all its descendants (nginx's workers under its master). */
export function processTree(pid: number): number[] {
  const out = [pid]
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!
    let tasks: string[]
    try {
      tasks = readdirSync(`/proc/${p}/task`)
    } catch {
      continue
    }
    for (const tid of tasks) {
      try {
        const children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim()
        if (children !== '') for (const c of children.split(' ')) out.push(Number(c))
      } catch {
        // The thread ended meanwhile.
      }
    }
  }
  return out
}

export function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export function onlineCpus(): number[] {
  try {
    const text = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim()
    const cpus: number[] = []
    for (const part of text.split(',')) {
      const [a, b] = part.split('-').map(Number)
      for (let c = a!; c <= (b ?? a!); c++) cpus.push(c)
    }
    return cpus
  } catch {
    return [0]
  }
}

/**
 * Keeps every core out of its deep idle state while the benchmark runs, the way `cyclictest` and
 * tuned's latency-performance profile do: a PM QoS request of 0 µs on /dev/cpu_dma_latency, which
 * lasts while the file stays open. In a VM whose idle state is a halt (a VM exit) without polling,
 * every wake-up of an idle core waits on the hypervisor: measured here with HAProxy and nginx on one
 * core and wrk on the other, 3 200 requests/s without the hold and 24 000 with it. The hold applies to
 * every contender alike; idle polling is not charged to any process's CPU time. Only root may ask;
 * undefined when the request could not be made.
 */
export function holdShallowIdle(): { release(): void } | undefined {
  try {
    const fd = openSync('/dev/cpu_dma_latency', 'w')
    writeSync(fd, new Uint8Array(new Int32Array([0]).buffer))
    return { release: () => closeSync(fd) }
  } catch {
    return undefined
  }
}

/** Moves every thread of this process to `cpu`; the children it spawns without taskset inherit it. */
export function pinSelf(cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' })
}

export interface Started {
  readonly child: ChildProcess
  readonly pid: number
  readonly name: string
  /** The last lines the process wrote on its piped streams, for error messages. */
  tail(): string
  readonly exited: Promise<number | null>
}

const TAIL_BYTES = 4096

/**
 * Niceness of everything the benchmark starts. This machine may run other work at the same time (test
 * suites, dev servers); the scheduler moves it onto whichever core is idle, which is the server core
 * during the fixed-rate cells. A higher priority lets the measured processes preempt it on wake-up.
 * Only root may raise priority; others run at their normal niceness.
 */
export const NICENESS = -10
const canRaise = process.getuid?.() === 0

/** `[nice -n N] [taskset -c CPU] cmd args…`: both exec the next program, so the PID stays the command's. */
function pinnedArgv(cpu: number | null, cmd: string, args: readonly string[]): string[] {
  const nice = canRaise ? ['nice', '-n', String(NICENESS)] : []
  const pin = cpu === null ? [] : ['taskset', '-c', String(cpu)]
  return [...nice, ...pin, cmd, ...args]
}

/** Raises this process's own priority too (it reads the trace datagrams and starts every cell). */
export function raiseOwnPriority(): void {
  if (!canRaise) return
  try {
    setPriority(NICENESS)
  } catch {
    // Not allowed after all: run at normal priority.
  }
}

/**
 * Starts `cmd` pinned to `cpu` (taskset sets the affinity, then execs the command: the PID is the
 * command's own and every thread it creates stays on that core).
 */
export function spawnPinned(
  name: string,
  cpu: number | null,
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdio?: StdioOptions } = {},
): Started {
  const argv = pinnedArgv(cpu, cmd, args)
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
  })
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`)
  let tail = ''
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code))
    child.once('error', (err) => {
      keep(Buffer.from(String(err)))
      resolve(-1)
    })
  })
  return { child, pid: child.pid, name, tail: () => tail, exited }
}

function alive(p: Started): boolean {
  return p.child.exitCode === null && p.child.signalCode === null
}

/** SIGTERM by PID, then SIGKILL if it has not exited after `graceMs`. */
export async function stopProcess(p: Started, graceMs = 5000): Promise<void> {
  if (!alive(p)) return
  try {
    process.kill(p.pid, 'SIGTERM')
  } catch {
    return
  }
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), graceMs)
  })
  const result = await Promise.race([p.exited, timedOut])
  clearTimeout(timer)
  if (result === 'timeout' && alive(p)) {
    try {
      process.kill(p.pid, 'SIGKILL')
    } catch {
      // Gone meanwhile.
    }
    await p.exited
  }
}

/** Runs a process to completion, killing it by PID if it outlives `limitMs`; resolves with its stdout. */
export async function runBounded(
  name: string,
  cpu: number | null,
  cmd: string,
  args: readonly string[],
  limitMs: number,
  opts: { cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = pinnedArgv(cpu, cmd, args)
  const child = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString('utf8')
  })
  child.stderr.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-TAIL_BYTES)
  })
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null) {
      stderr += `\n${name}: killed after ${limitMs} ms`
      process.kill(child.pid, 'SIGKILL')
    }
  }, limitMs)
  const code = await new Promise<number | null>((resolve) => {
    child.once('close', (c) => resolve(c))
    child.once('error', (err) => {
      stderr += String(err)
      resolve(-1)
    })
  })
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** `n` numbers as a tuple when `n` is a literal, so `const [a, b] = await freePorts(2)` is typed. */
type Ports<N extends number, T extends number[] = []> = number extends N
  ? number[]
  : T['length'] extends N
    ? T
    : Ports<N, [...T, number]>

/** Free loopback TCP ports, found by binding port 0; they are released before the servers bind them. */
export async function freePorts<N extends number>(n: N): Promise<Ports<N>> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer()
          s.once('error', reject)
          s.listen(0, '127.0.0.1', () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => {
    const a = s.address()
    if (a === null || typeof a === 'string') throw new Error('no port')
    return a.port
  })
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  return ports as Ports<N>
}

/**
 * CPU seconds (utime + stime) of every process on the machine. The per-core lines of /proc/stat would
 * be the obvious source, but they are sampled at each timer tick and alias badly with processes that
 * wake on timers: they over- and under-count by whole seconds at 1 000 wake-ups/s. Per-process times
 * are scaled to the scheduler's exact runtime. Children's times (cutime) are left out: they land on
 * the parent all at once when it reaps them, minutes of a test worker's life in one cell. So a process
 * that starts and ends within one cell goes unseen; test runners and servers live longer than that.
 */
export function allProcessCpu(): Map<number, number> {
  const out = new Map<number, number>()
  for (const name of readdirSync('/proc')) {
    const pid = Number(name)
    if (!Number.isInteger(pid)) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // Fields 14 and 15 of proc(5): utime, stime.
      out.set(pid, (Number(f[11]) + Number(f[12])) / CLK_TCK)
    } catch {
      // Ended between the listing and the read.
    }
  }
  return out
}

/** CPU seconds that processes outside `ours` used between two snapshots (new processes in full). */
export function foreignCpu(
  before: ReadonlyMap<number, number>,
  after: ReadonlyMap<number, number>,
  ours: ReadonlySet<number>,
): { seconds: number; top: { pid: number; name: string; seconds: number }[] } {
  let seconds = 0
  const top: { pid: number; name: string; seconds: number }[] = []
  for (const [pid, t] of after) {
    if (ours.has(pid)) continue
    const d = t - (before.get(pid) ?? 0)
    if (d <= 0) continue
    seconds += d
    top.push({ pid, name: '', seconds: d })
  }
  top.sort((a, b) => b.seconds - a.seconds)
  const named = top.slice(0, 3)
  for (const t of named) {
    t.seconds = Math.round(t.seconds * 100) / 100
    try {
      // Kernel threads have no command line: their name in brackets, as ps shows them.
      const cmdline = readFileSync(`/proc/${t.pid}/cmdline`, 'utf8').split('\0').join(' ').trim()
      t.name =
        cmdline === '' ? `[${readFileSync(`/proc/${t.pid}/comm`, 'utf8').trim()}]` : cmdline.slice(0, 80)
    } catch {
      t.name = '?'
    }
  }
  return { seconds, top: named }
}

/** Hypervisor steal time over all cores, seconds (from /proc/stat's `cpu` line). */
export function stealSeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
  // cpu user nice system idle iowait irq softirq steal …
  return Number(line.trim().split(/\s+/)[8]) / CLK_TCK
}
