// The sidecar as a real child process: `node bin/meshgate.js sidecar …` (or the sidecar's own entry
// while the CLI is absent), every listener on loopback port 0, the bound addresses read from the
// `listening` line on stdout. Ended by its PID only.

import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CLI = join(ROOT, 'bin', 'meshgate.js')
const DIRECT = join(ROOT, 'proxy-core', 'sidecar', 'main.ts')

export interface SidecarProcessOptions {
  configPath: string
  service: string
  app?: string
  drain?: string
  /** Extra environment (merged over a clean copy of the test's). */
  env?: Record<string, string>
  /** Milliseconds to wait for the listening line. Default 15 s. */
  startTimeoutMs?: number
  /**
   * `cli` (default): `node bin/meshgate.js sidecar`, the TypeScript sources under type stripping.
   * `bundle`: the sidecar as one esbuild bundle, the way the container image runs it (type stripping
   * alone adds ~30 MB of RSS that the image never carries).
   */
  entry?: 'cli' | 'bundle'
}

export interface SidecarProcess {
  readonly pid: number
  readonly child: ChildProcess
  /** `http://127.0.0.1:PORT` of each listener. */
  readonly outbound: string
  readonly inbound: string | null
  readonly admin: string
  readonly outboundPort: number
  /** stdout lines that are not access-log lines, and stderr lines, as they came (bounded). */
  lines(): string[]
  stderr(): string
  /** Access-log lines seen so far. */
  accessLogCount(): number
  /** The last access-log lines (bounded), parsed. */
  accessLogs(): Record<string, unknown>[]
  /** Resolves with the first stdout/stderr line matching, or rejects after `timeoutMs`. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  signal(sig: NodeJS.Signals): void
  /** Peak resident set size in bytes (VmHWM from /proc/PID/status). */
  peakRss(): number
  /** SIGTERM, then SIGKILL if still alive after `graceMs`. */
  stop(graceMs?: number): Promise<void>
}

/** The environment of the child: no AWS settings of the machine, no telemetry going anywhere. */
function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('AWS_') || k.startsWith('MESHGATE_') || k === 'ECS_CONTAINER_METADATA_URI_V4') continue
    env[k] = v
  }
  env.MESHGATE_XRAY = 'off'
  env.MESHGATE_CLOUDWATCH = 'off'
  return { ...env, ...extra }
}

const MAX_LINES = 2000

let bundled: Promise<string> | undefined

/** Bundles proxy-core/sidecar/main.ts once per test process into test-artifacts/ (git-ignored). */
function sidecarBundle(): Promise<string> {
  bundled ??= (async () => {
    // The same build as the image's (scripts/build.ts), so tests measure the file that ships.
    const { buildSidecar } = await import('../../scripts/build.ts')
    const outfile = join(ROOT, 'test-artifacts', `sidecar-${process.pid}`, 'sidecar.mjs')
    await buildSidecar(outfile)
    return outfile
  })()
  return bundled
}

/** Deletes this test process's bundle, if one was built. */
export async function removeSidecarBundle(): Promise<void> {
  if (bundled === undefined) return
  const file = await bundled.catch(() => undefined)
  bundled = undefined
  if (file !== undefined) rmSync(dirname(file), { recursive: true, force: true })
}

export async function startSidecarProcess(opts: SidecarProcessOptions): Promise<SidecarProcess> {
  let entry: string[]
  if (opts.entry === 'bundle') entry = [await sidecarBundle()]
  else entry = existsSync(join(ROOT, 'proxy-core', 'cli', 'main.ts')) ? [CLI, 'sidecar'] : [DIRECT]
  const args = [
    ...entry,
    '--config',
    opts.configPath,
    '--service',
    opts.service,
    '--outbound',
    '127.0.0.1:0',
    '--inbound',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
  ]
  if (opts.app !== undefined) args.push('--app', opts.app)
  if (opts.drain !== undefined) args.push('--drain', opts.drain)
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: childEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const pid = child.pid
  if (pid === undefined) throw new Error('sidecar did not start')

  let lines: string[] = []
  let stderrText = ''
  let accessLogs = 0
  let accessLines: string[] = []
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = []
  const seen = (line: string) => {
    lines.push(line)
    if (lines.length > MAX_LINES) lines = lines.slice(-MAX_LINES)
    for (const w of [...waiters]) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  }
  const splitter = (onLine: (l: string) => void) => {
    let rest = ''
    return (chunk: Buffer) => {
      rest += chunk.toString('utf8')
      let nl = rest.indexOf('\n')
      while (nl >= 0) {
        onLine(rest.slice(0, nl))
        rest = rest.slice(nl + 1)
        nl = rest.indexOf('\n')
      }
    }
  }
  child.stdout!.on(
    'data',
    splitter((line) => {
      if (line.startsWith('{"time"') && line.includes('"type":"access"')) {
        accessLogs++
        accessLines.push(line)
        if (accessLines.length > MAX_LINES) accessLines = accessLines.slice(-MAX_LINES)
        return
      }
      seen(line)
    }),
  )
  child.stderr!.on(
    'data',
    splitter((line) => {
      stderrText += `${line}\n`
      if (stderrText.length > 100_000) stderrText = stderrText.slice(-100_000)
      seen(line)
    }),
  )
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  )

  const waitForLine = (re: RegExp, timeoutMs = 10_000): Promise<string> => {
    const found = lines.find((l) => re.test(l))
    if (found !== undefined) return Promise.resolve(found)
    return new Promise<string>((res, rej) => {
      const w = { re, resolve: res }
      waiters.push(w)
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1)
        rej(
          new Error(`no line matching ${re} within ${timeoutMs} ms; output:\n${lines.slice(-30).join('\n')}`),
        )
      }, timeoutMs)
      const resolveOnce = w.resolve
      w.resolve = (l) => {
        clearTimeout(timer)
        resolveOnce(l)
      }
    })
  }

  let listening: { outbound: string; inbound: string | null; admin: string }
  try {
    const line = await Promise.race([
      waitForLine(/"event":"listening"/, opts.startTimeoutMs ?? 15_000),
      exited.then((e) => {
        throw new Error(`sidecar exited (${e.code ?? e.signal}) before listening:\n${stderrText}`)
      }),
    ])
    listening = JSON.parse(line)
  } catch (err) {
    if (child.exitCode === null) process.kill(pid, 'SIGKILL')
    throw err
  }

  const url = (a: string) => `http://${a}`
  const alive = () => child.exitCode === null && child.signalCode === null
  return {
    pid,
    child,
    outbound: url(listening.outbound),
    inbound: listening.inbound === null ? null : url(listening.inbound),
    admin: url(listening.admin),
    outboundPort: Number(listening.outbound.slice(listening.outbound.lastIndexOf(':') + 1)),
    lines: () => [...lines],
    stderr: () => stderrText,
    accessLogCount: () => accessLogs,
    accessLogs: () => accessLines.map((l) => JSON.parse(l) as Record<string, unknown>),
    waitForLine,
    exited,
    signal(sig) {
      if (alive()) process.kill(pid, sig)
    },
    peakRss() {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8')
      const m = /VmHWM:\s+(\d+) kB/.exec(status)
      if (m === null) throw new Error('no VmHWM in /proc status')
      return Number(m[1]) * 1024
    },
    async stop(graceMs = 5000) {
      if (!alive()) return
      process.kill(pid, 'SIGTERM')
      const timer = setTimeout(() => {
        if (alive()) process.kill(pid, 'SIGKILL')
      }, graceMs)
      await exited
      clearTimeout(timer)
    },
  }
}

/** A temp directory holding mesh files; `remove()` deletes it. */
export function meshDir(): { dir: string; write(name: string, config: unknown): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-test-'))
  return {
    dir,
    /** Writes atomically (temp file + rename), as editors and ConfigMaps do. */
    write(name, config) {
      const path = join(dir, name)
      const tmp = join(dir, `.${name}.tmp`)
      writeFileSync(tmp, typeof config === 'string' ? config : JSON.stringify(config, null, 2))
      renameSync(tmp, path)
      return path
    },
    remove() {
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
