// The sidecar benchmark (issue 6): meshgate's sidecar against HAProxy and nginx, and against no proxy
// at all, on this machine, in one run.
//
//   npm run bench:sidecar [-- --quick] [-- --rounds 5] [-- --cpu-prof] [-- --write-md --heading TEXT]
//
// Servers (the upstream and the proxy being measured) run on one core, load generators on the other.
// Every contender runs for the whole benchmark; the cells are interleaved, a round being
//   for each cell (wrk at 16 connections, wrk at 64, open loop at the fixed rate): each contender,
// with the contender order rotated from round to round, so the machine's drift (2–3× over minutes on
// these VMs) falls on all of them alike. Ratios to HAProxy are taken within a round, then the median.
// A cell during which other processes on the machine took a noticeable share of a core is measured
// again (bounded). Everything the run starts is stopped by PID, also on Ctrl-C and on a hung cell.
// Installs nothing: without nginx, HAProxy or wrk it says how to get them and exits 2.

import { createSocket } from 'node:dgram'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  CONTENDERS,
  type ContenderName,
  get,
  imageSidecar,
  type MeshgateServer,
  meshgateRevision,
  revisionLine,
  SERVICE,
  type Server,
  startHaproxy,
  startMeshgate,
  startNginxProxy,
  startUpstream,
  waitReady,
} from './contenders.ts'
import { runOpenLoop, runWrk } from './load.ts'
import { describeMachine, machineLine } from './machine.ts'
import {
  allProcessCpu,
  foreignCpu,
  freePorts,
  hasCommand,
  holdShallowIdle,
  onlineCpus,
  pinSelf,
  raiseOwnPriority,
  resetPeakRss,
  stealSeconds,
  totalCpuSeconds,
  totalPeakRss,
  totalRssAnon,
} from './proc.ts'
import { formatTop, readProfile, topSelf } from './profile-top.ts'
import {
  CELLS,
  type Cell,
  type CellKind,
  checkTargets,
  disturbance,
  markdownTable,
  summarize,
  tableRows,
  targetLines,
  textTable,
} from './report.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const RESULTS = join(ROOT, 'bench', 'results')
const PROFILES = join(RESULTS, 'prof')
const BENCHMARKS_MD = join(ROOT, 'BENCHMARKS.md')

const USAGE = `usage: npm run bench:sidecar -- [options]
  --rounds N         interleaved rounds (default 3)
  --seconds S        length of each cell in seconds (default 10)
  --quick            3 s cells and 1 round: a smoke run, not numbers to quote
  --rate R           requests/s of the open-loop latency cell (default 1000)
  --contenders LIST  comma-separated subset of ${CONTENDERS.join(',')} (default all)
  --meshgate DIR     run the sidecar from another meshgate tree (e.g. an exported older commit
                     with node_modules linked in); default this checkout
  --baseline DIR     also run the sidecar built from DIR (e.g. a worktree of the commit before a
                     change, node_modules linked in) as the contender \`baseline\`, in the same
                     interleaved rounds: before and after in one run
  --node-flags=TEXT  extra node/V8 flags for the sidecar, space-separated (write it with '=':
                     --node-flags='--max-semi-space-size=2'), e.g. to try heap sizes
  --no-access-log    run the sidecar with accessLog: false (default: meshgate's default, on)
  --no-image         run \`node bin/meshgate.js sidecar\` (the TypeScript sources under type
                     stripping) instead of the sidecar as the image runs it, which is the default:
                     the bundle from scripts/build.ts with the Dockerfile's NODE_OPTIONS and
                     MALLOC_ARENA_MAX
  --cpu-prof         start the sidecar with --cpu-prof; the profile goes to bench/results/prof
  --write-md         write the table into BENCHMARKS.md, in a section named by --heading
  --heading TEXT     the BENCHMARKS.md section (default "Latest run"); an existing one is replaced`

/** Connections of the open-loop generator: enough that a slow response never stalls the schedule. */
const OPEN_LOOP_CONNECTIONS = 16
/** The open-loop cell's first second is sent at the rate too, but not measured (pools, JIT). */
const OPEN_LOOP_WARMUP_S = 1
/** A pause between cells, so one cell's closing connections are not the next one's load. */
const SETTLE_MS = 300
/** A cell where other processes took more than this share of a core is called out in the log. */
const NOISY = 0.05
/**
 * A cell where other processes took more than this share of a core is measured again, at
 * most REDO_PER_CELL times, and for no more than a quarter of the cells in all (so a machine that is
 * busy throughout still finishes in bounded time; the noise line then says so).
 */
const REDO_ABOVE = 0.1
const REDO_PER_CELL = 2
/** How often the anonymous RSS is sampled during a cell, ms. */
const RSS_SAMPLE_MS = 100
/**
 * Requests to every contender are the same: what an app sends its sidecar. `Host` is capitalised
 * because wrk adds a Host header of its own unless one is spelled exactly so.
 */
const HEADERS = { Host: SERVICE }

interface Options {
  rounds: number
  seconds: number
  warmupSeconds: number
  rate: number
  contenders: ContenderName[]
  accessLog: boolean
  meshgateRoot: string
  /** Another meshgate tree, run as the `baseline` contender. */
  baselineRoot: string | undefined
  /** Run the image's bundle with its ENV (the default) rather than bin/meshgate.js. */
  image: boolean
  nodeFlags: string[]
  cpuProf: boolean
  writeMd: boolean
  heading: string
  quick: boolean
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    allowNegative: true,
    options: {
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      rate: { type: 'string', default: '1000' },
      contenders: { type: 'string' },
      baseline: { type: 'string' },
      'access-log': { type: 'boolean', default: true },
      meshgate: { type: 'string', default: ROOT },
      'node-flags': { type: 'string', default: '' },
      image: { type: 'boolean', default: true },
      'cpu-prof': { type: 'boolean', default: false },
      'write-md': { type: 'boolean', default: false },
      heading: { type: 'string', default: 'Latest run' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return 'help'
  const positive = (name: string, text: string): number => {
    const n = Number(text)
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: want a positive number, got ${text}`)
    return n
  }
  const baselineRoot = values.baseline === undefined ? undefined : resolve(values.baseline)
  const contenders = (
    values.contenders ?? CONTENDERS.filter((c) => c !== 'baseline' || baselineRoot !== undefined).join(',')
  )
    .split(',')
    .map((s) => s.trim())
  for (const c of contenders) {
    if (!(CONTENDERS as readonly string[]).includes(c)) {
      throw new Error(`--contenders: unknown ${JSON.stringify(c)} (have ${CONTENDERS.join(', ')})`)
    }
  }
  const meshgateRoot = resolve(values.meshgate)
  if (!existsSync(join(meshgateRoot, 'bin', 'meshgate.js'))) {
    throw new Error(`--meshgate: no bin/meshgate.js under ${meshgateRoot}`)
  }
  for (const [flag, root] of [['baseline', baselineRoot]] as const) {
    if (root !== undefined && !existsSync(join(root, 'bin', 'meshgate.js'))) {
      throw new Error(`--${flag}: no bin/meshgate.js under ${root}`)
    }
  }
  if (contenders.includes('baseline') && baselineRoot === undefined) {
    throw new Error('--contenders: baseline needs --baseline DIR')
  }
  return {
    meshgateRoot,
    baselineRoot,
    image: values.image,
    nodeFlags: values['node-flags'].split(/\s+/).filter((f) => f !== ''),
    rounds: Math.round(positive('rounds', values.rounds ?? (values.quick ? '1' : '3'))),
    seconds: positive('seconds', values.seconds ?? (values.quick ? '3' : '10')),
    warmupSeconds: values.quick ? 1 : 3,
    rate: positive('rate', values.rate),
    // Keep the canonical order, whatever order they were given in.
    contenders: CONTENDERS.filter((c) => contenders.includes(c)),
    accessLog: values['access-log'],
    cpuProf: values['cpu-prof'],
    writeMd: values['write-md'],
    heading: values.heading,
    quick: values.quick,
  }
}

function missingTools(): string[] {
  return ['nginx', 'haproxy', 'wrk', 'taskset'].filter((t) => !hasCommand(t))
}

const log = (line: string) => process.stderr.write(`${line}\n`)

function commandLine(argv: readonly string[]): string {
  const quoted = argv.map((a) => (/^[\w./=:,-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`))
  return `npm run bench:sidecar${quoted.length === 0 ? '' : ` -- ${quoted.join(' ')}`}`
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length
  return [...xs.slice(k), ...xs.slice(0, k)]
}

function newestProfile(since: number): string | undefined {
  if (!existsSync(PROFILES)) return undefined
  return readdirSync(PROFILES)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(PROFILES, f))
    .filter((f) => statSync(f).mtimeMs >= since)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
}

const BEGIN = (heading: string) => `<!-- bench:sidecar begin: ${heading} -->`
const END = '<!-- bench:sidecar end -->'

/** Replaces the section with this heading in BENCHMARKS.md, or appends it. */
function writeMarkdown(heading: string, section: string): void {
  let text = existsSync(BENCHMARKS_MD) ? readFileSync(BENCHMARKS_MD, 'utf8') : '# Benchmarks\n'
  const block = `${BEGIN(heading)}\n${section.trimEnd()}\n${END}`
  const start = text.indexOf(BEGIN(heading))
  if (start >= 0) {
    const end = text.indexOf(END, start)
    text = text.slice(0, start) + block + text.slice(end < 0 ? text.length : end + END.length)
  } else {
    text = `${text.trimEnd()}\n\n${block}\n`
  }
  writeFileSync(BENCHMARKS_MD, text)
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2)
  let parsed: Options | 'help'
  try {
    parsed = parseOptions(argv)
  } catch (err) {
    log(`bench:sidecar: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`)
    return 2
  }
  if (parsed === 'help') {
    console.log(USAGE)
    return 0
  }
  const opts = parsed
  const missing = missingTools()
  if (missing.length > 0) {
    log(
      `bench:sidecar: missing ${missing.join(', ')}. The benchmark installs nothing itself; on Debian or Ubuntu:\n` +
        '  sudo apt-get update && sudo apt-get install -y nginx haproxy wrk util-linux\n' +
        '(nginx and HAProxy are only run from this benchmark, with generated configs and loopback ports;\n' +
        'their system services need not be enabled.)',
    )
    return 2
  }

  const cpus = onlineCpus()
  // Servers on the first core, load on the second; on one core nothing is pinned and the numbers mean less.
  const serverCpu = cpus.length >= 2 ? cpus[0]! : null
  const loadCpu = cpus.length >= 2 ? cpus[1]! : null
  if (loadCpu === null)
    log('bench:sidecar: only one CPU online: nothing is pinned, servers and load share it')
  else pinSelf(loadCpu)
  raiseOwnPriority()
  const idleHold = holdShallowIdle()
  if (idleHold === undefined)
    log(
      'bench:sidecar: cores not held out of deep idle (/dev/cpu_dma_latency needs root); in a VM the ' +
        "wake-ups of idle cores can dominate every contender's numbers (BENCHMARKS.md, Noise)",
    )

  // Other work on the machine skews everything measured here: say so before spending ten minutes.
  const quiet0 = allProcessCpu()
  await new Promise((r) => setTimeout(r, 1000))
  const busy = foreignCpu(quiet0, allProcessCpu(), new Set([process.pid]))
  if (busy.seconds > 0.1) {
    log(
      `bench:sidecar: other processes use ${Math.round(busy.seconds * 100)}% of a core before the start ` +
        `(${busy.top.map((t) => t.name || t.pid).join('; ')}): cells they disturb will be measured again`,
    )
  }

  const machine = describeMachine(idleHold !== undefined)
  const revision = meshgateRevision(opts.meshgateRoot)
  const startedAt = new Date()
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-bench-'))
  const servers: Server[] = []
  const udp = createSocket('udp4')
  let xrayDocuments = 0
  udp.on('message', () => {
    xrayDocuments++
  })
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()))
  const xrayPort = udp.address().port

  let cleaned: Promise<void> | undefined
  const cleanup = () => {
    cleaned ??= (async () => {
      for (const s of servers.slice().reverse()) await s.stop()
      udp.close()
      idleHold?.release()
      rmSync(dir, { recursive: true, force: true })
    })()
    return cleaned
  }
  const onSignal = (sig: NodeJS.Signals) => {
    log(`bench:sidecar: ${sig}: stopping the servers`)
    void cleanup().then(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  // Every cell is bounded on its own; this bounds the whole run should anything hang between cells.
  // A round: three cells per contender, the open loop's warm-up second, ~0.6 s of overhead per cell.
  const roundSeconds = (3 * opts.seconds + OPEN_LOOP_WARMUP_S + 3 * 0.6) * opts.contenders.length
  const expectedS = opts.rounds * roundSeconds + opts.contenders.length * (opts.warmupSeconds + 1) + 5
  // Redone cells (at most a quarter of them) come on top, in the worst case the longest kind.
  const redoS = Math.ceil((opts.rounds * CELLS.length * opts.contenders.length) / 4) * (opts.seconds + 2)
  const watchdog = setTimeout(
    () => {
      log(`bench:sidecar: still running after ${Math.round(expectedS * 2 + redoS + 60)} s: giving up`)
      void cleanup().then(() => process.exit(1))
    },
    (expectedS * 2 + redoS + 60) * 1000,
  )
  watchdog.unref()
  log(
    `bench:sidecar: ${opts.rounds} round(s) × ${opts.contenders.length} contenders × 3 cells of ${opts.seconds} s; ` +
      `about ${(expectedS / 60).toFixed(1)} min. Servers on CPU ${serverCpu ?? '-'}, load on CPU ${loadCpu ?? '-'}.`,
  )

  const cells: Cell[] = []
  /** Cells measured again because other work disturbed them; kept in the JSON. */
  const discarded: Cell[] = []
  let redone = 0
  const redoBudget = Math.ceil((opts.rounds * CELLS.length * opts.contenders.length) / 4)
  let meshgate: MeshgateServer | undefined
  let meshgateStats: unknown
  let profile: string | undefined
  try {
    const [upA, upB, haproxyPort, nginxPort, mgPort, mgAdmin, basePort, baseAdmin] = await freePorts(8)
    const upstream = startUpstream(dir, serverCpu, [upA, upB])
    servers.push(upstream)
    await waitReady(upstream)
    const byName = new Map<ContenderName, Server>()
    byName.set('direct', upstream)
    for (const name of opts.contenders) {
      let s: Server | undefined
      if (name === 'haproxy') s = startHaproxy(dir, serverCpu, haproxyPort, upA)
      else if (name === 'nginx') s = startNginxProxy(dir, serverCpu, nginxPort, upA)
      else if (name === 'meshgate') {
        if (opts.cpuProf) mkdirSync(PROFILES, { recursive: true })
        meshgate = startMeshgate({
          root: opts.meshgateRoot,
          nodeFlags: opts.nodeFlags,
          ...(opts.image ? { image: await imageSidecar(opts.meshgateRoot, dir) } : {}),
          dir,
          cpu: serverCpu,
          port: mgPort,
          adminPort: mgAdmin,
          upstreamPorts: [upA, upB],
          xrayPort,
          accessLog: opts.accessLog,
          ...(opts.cpuProf ? { cpuProfDir: PROFILES } : {}),
        })
        s = meshgate
      } else if (name === 'baseline') {
        const root = opts.baselineRoot!
        s = startMeshgate({
          name: 'baseline',
          root,
          nodeFlags: opts.nodeFlags,
          ...(opts.image ? { image: await imageSidecar(root, dir, 'baseline') } : {}),
          dir,
          cpu: serverCpu,
          port: basePort,
          adminPort: baseAdmin,
          upstreamPorts: [upA, upB],
          xrayPort,
          accessLog: opts.accessLog,
        })
      }
      if (s === undefined) continue
      servers.push(s)
      byName.set(name, s)
      await waitReady(s)
    }

    for (const name of opts.contenders) {
      const s = byName.get(name)!
      const w = await runWrk({
        cpu: loadCpu,
        url: s.url,
        connections: 16,
        seconds: opts.warmupSeconds,
        headers: HEADERS,
      })
      log(`warm-up ${name}: ${Math.round(w.requestsPerSecond)} req/s, ${w.errors} errors`)
      if (w.errors > 0 && w.errors >= w.requests * 0.01) throw new Error(`${name} fails requests in warm-up`)
    }

    const upstreamPids = () => upstream.pids()
    /** Runs the cell's load generator against `url`; fills in its result and the response count. */
    async function runLoad(cell: Cell, url: string): Promise<void> {
      if (cell.kind === 'rate') {
        cell.openLoop = await runOpenLoop({
          cpu: loadCpu,
          url,
          rate: opts.rate,
          seconds: opts.seconds,
          warmupSeconds: OPEN_LOOP_WARMUP_S,
          connections: OPEN_LOOP_CONNECTIONS,
          headers: HEADERS,
        })
        cell.responses = cell.openLoop.responses
      } else {
        cell.wrk = await runWrk({
          cpu: loadCpu,
          url,
          connections: cell.kind === 'c16' ? 16 : 64,
          seconds: opts.seconds,
          headers: HEADERS,
        })
        cell.responses = cell.wrk.requests
      }
    }

    async function measure(round: number, kind: CellKind, name: ContenderName): Promise<Cell> {
      const s = byName.get(name)!
      const pids = s.pids()
      const upPids = name === 'direct' ? [] : upstreamPids()
      resetPeakRss(pids)
      const steal0 = stealSeconds()
      const all0 = allProcessCpu()
      const cpu0 = totalCpuSeconds(pids)
      const up0 = totalCpuSeconds(upPids)
      const x0 = xrayDocuments
      const t0 = performance.now()
      const cell: Cell = {
        round,
        contender: name,
        kind,
        at: new Date().toISOString(),
        cpuSeconds: 0,
        upstreamCpuSeconds: 0,
        responses: 0,
        peakRssBytes: 0,
        peakRssAnonBytes: totalRssAnon(pids),
        xrayDocuments: 0,
        wallSeconds: 0,
        otherCpuSeconds: 0,
        otherProcesses: [],
        stealSeconds: 0,
      }
      // The kernel keeps no peak of the anonymous part alone: sample it (from the load core).
      const sampler = setInterval(() => {
        cell.peakRssAnonBytes = Math.max(cell.peakRssAnonBytes, totalRssAnon(pids))
      }, RSS_SAMPLE_MS)
      try {
        await runLoad(cell, s.url)
      } finally {
        clearInterval(sampler)
      }
      // Read before anything else runs: the peak and the CPU belong to this cell alone.
      cell.peakRssBytes = totalPeakRss(pids)
      cell.peakRssAnonBytes = Math.max(cell.peakRssAnonBytes, totalRssAnon(pids))
      cell.cpuSeconds = totalCpuSeconds(pids) - cpu0
      cell.upstreamCpuSeconds = name === 'direct' ? cell.cpuSeconds : totalCpuSeconds(upPids) - up0
      cell.xrayDocuments = xrayDocuments - x0
      cell.wallSeconds = (performance.now() - t0) / 1000
      cell.stealSeconds = stealSeconds() - steal0
      // This process and every server it started are ours; the cell's load generator has exited by now.
      const ours = new Set([process.pid, ...servers.flatMap((x) => x.pids())])
      const other = foreignCpu(all0, allProcessCpu(), ours)
      cell.otherCpuSeconds = other.seconds
      cell.otherProcesses = other.top
      return cell
    }

    for (let round = 0; round < opts.rounds; round++) {
      const order = rotate(opts.contenders, round)
      for (const kind of CELLS) {
        for (const name of order) {
          for (let attempt = 0; ; attempt++) {
            const cell = await measure(round, kind, name)
            const share = cell.wallSeconds > 0 ? cell.otherCpuSeconds / cell.wallSeconds : 0
            const perK = cell.responses > 0 ? (cell.cpuSeconds / cell.responses) * 1000 : Number.NaN
            const what =
              cell.wrk !== undefined
                ? `${Math.round(cell.wrk.requestsPerSecond).toLocaleString('en-US')} req/s` +
                  (cell.wrk.errors > 0 ? `, ${cell.wrk.errors} errors` : '')
                : `p50 ${(cell.openLoop!.latencyUs.p50 / 1000).toFixed(3)} ms, p99 ${(cell.openLoop!.latencyUs.p99 / 1000).toFixed(3)} ms` +
                  `, ${cell.openLoop!.ok}/${cell.openLoop!.scheduled} ok`
            const redo = share > REDO_ABOVE && attempt < REDO_PER_CELL && redone < redoBudget
            log(
              `round ${round + 1}/${opts.rounds} ${kind.padEnd(4)} ${name.padEnd(8)} ${what}; ` +
                `CPU ${perK.toFixed(3)} s/1k, RSS ${(cell.peakRssBytes / 2 ** 20).toFixed(1)} MB` +
                (share > NOISY ? `; other processes took ${Math.round(share * 100)}% of a core` : '') +
                (redo ? ': measuring again' : ''),
            )
            await new Promise((r) => setTimeout(r, SETTLE_MS))
            if (!redo) {
              cells.push(cell)
              break
            }
            discarded.push(cell)
            redone++
          }
        }
      }
    }

    if (meshgate !== undefined) {
      try {
        meshgateStats = JSON.parse((await get(`${meshgate.admin}/stats`)).body)
      } catch {
        meshgateStats = null
      }
    }
  } catch (err) {
    log(`bench:sidecar: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    for (const s of servers) if (s.process.tail() !== '') log(`--- ${s.name} output ---\n${s.process.tail()}`)
    await cleanup()
    return 1
  } finally {
    clearTimeout(watchdog)
  }
  const profileSince = startedAt.getTime()
  await cleanup()
  if (opts.cpuProf) profile = newestProfile(profileSince)

  const summary = summarize(cells, opts.contenders, opts.rounds)
  const targets = checkTargets(summary)
  const { header, body } = tableRows(summary, opts.rate)
  const finishedAt = new Date()
  const command = commandLine(argv)
  const stamp = startedAt
    .toISOString()
    .replaceAll(':', '-')
    .replace(/\.\d+Z$/, 'Z')
  mkdirSync(RESULTS, { recursive: true })
  const jsonPath = join(RESULTS, `sidecar-${stamp}.json`)
  const mgCells = cells.filter((c) => c.contender === 'meshgate')
  writeFileSync(
    jsonPath,
    `${JSON.stringify(
      {
        benchmark: 'sidecar',
        command,
        startedAt: startedAt.toISOString(),
        finishedAt: finishedAt.toISOString(),
        machine,
        revision,
        pinning: { serverCpu, loadCpu },
        options: {
          ...opts,
          openLoopConnections: OPEN_LOOP_CONNECTIONS,
          openLoopWarmupSeconds: OPEN_LOOP_WARMUP_S,
        },
        table: { header, body },
        summary,
        targets,
        meshgate: {
          stats: meshgateStats,
          xrayDocuments: mgCells.reduce((n, c) => n + c.xrayDocuments, 0),
          profile: profile === undefined ? null : relative(ROOT, profile),
        },
        cells,
        discarded,
      },
      null,
      2,
    )}\n`,
  )

  const minutes = ((finishedAt.getTime() - startedAt.getTime()) / 60_000).toFixed(1)
  console.log('')
  console.log(machineLine(machine))
  const measured =
    revisionLine(revision) +
    (opts.baselineRoot === undefined
      ? ''
      : `; baseline ${revisionLine(meshgateRevision(opts.baselineRoot))}`) +
    (opts.nodeFlags.length === 0 ? '' : `, sidecar started with \`node ${opts.nodeFlags.join(' ')}\``) +
    (opts.accessLog ? '' : ', access log off')
  console.log(measured)
  console.log(
    `${command}: medians of ${opts.rounds} interleaved round(s), ${opts.seconds} s cells, ` +
      `latency open-loop at ${opts.rate} req/s; ${minutes} min`,
  )
  console.log('')
  console.log(textTable(header, body))
  console.log('')
  if (targets.length > 0) {
    console.log('Issue 6 targets for the meshgate sidecar:')
    for (const l of targetLines(targets)) console.log(`  ${l}`)
    console.log('')
  }
  const noise = disturbance(cells)
  const noiseLine =
    (redone === 0
      ? ''
      : `${redone} cell(s) measured again because other processes took more than ` +
        `${REDO_ABOVE * 100}% of a core. `) +
    (noise.cell === undefined
      ? 'Other processes took no measurable CPU time during the cells.'
      : `Other processes took up to ${(noise.worst * 100).toFixed(1)}% of a core in a cell kept ` +
        `(round ${noise.cell.round + 1}, ${noise.cell.kind}, ${noise.cell.contender}).` +
        (noise.worst > REDO_ABOVE ? ' That disturbs the numbers: rerun on a quiet machine.' : ''))
  console.log(noiseLine)
  const xr = mgCells.reduce((n, c) => n + c.xrayDocuments, 0)
  if (mgCells.length > 0) console.log(`X-Ray documents from the sidecar: ${xr.toLocaleString('en-US')}`)
  console.log(`JSON: ${relative(ROOT, jsonPath)}`)
  if (opts.cpuProf) {
    if (profile === undefined) console.log('No CPU profile was written (did the sidecar exit cleanly?)')
    else {
      console.log(
        `CPU profile: ${relative(ROOT, profile)} (open in Chrome DevTools › Performance, or speedscope)`,
      )
      console.log('')
      console.log(formatTop(topSelf(readProfile(profile), 20)))
    }
  }

  if (opts.writeMd) {
    const errors = summary.reduce((n, r) => n + r.errors, 0)
    const section = [
      `## ${opts.heading}`,
      '',
      `Measured ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC with \`${command}\`: medians of ` +
        `${opts.rounds} interleaved round(s) of ${opts.seconds} s cells, ${minutes} min in all` +
        (opts.quick ? ' (a quick run: one round of short cells, not numbers to quote)' : '') +
        '.',
      '',
      `Machine: ${machineLine(machine)}. Servers pinned to CPU ${serverCpu ?? '-'}, load generators to CPU ${loadCpu ?? '-'}.`,
      '',
      `Measured: ${measured}.`,
      '',
      markdownTable(header, body),
      '',
      ...(targets.length > 0
        ? ['Issue 6 targets for the meshgate sidecar:', '', ...targetLines(targets, 'markdown'), '']
        : []),
      noiseLine,
      '',
      `Failed requests over all cells: ${errors}.` +
        (mgCells.length > 0
          ? ` X-Ray documents received from the sidecar: ${xr.toLocaleString('en-US')}.`
          : '') +
        ` Raw cells: \`bench/results/sidecar-${stamp}.json\` (not committed).`,
    ].join('\n')
    writeMarkdown(opts.heading, section)
    console.log(`BENCHMARKS.md: section "${opts.heading}" written`)
  }
  return 0
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`bench:sidecar: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    process.exit(1)
  },
)
