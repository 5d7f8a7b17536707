// `meshgate dev` as a real child process in its own process group, the bound URLs read from its
// `meshgate dev ready:` line. Signals go to its PID only; `survivors()` lists what is left of its group.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..', '..')

export interface DevProcess {
  readonly pid: number
  readonly gateway: string
  readonly dashboard: string
  output(): string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  signal(sig: NodeJS.Signals): void
  /** PIDs still in the child's process group (the child itself included while it runs). */
  survivors(): number[]
  /** SIGTERM, then SIGKILL after `graceMs`, for test cleanup. */
  stop(graceMs?: number): Promise<void>
}

export async function startDev(args: string[], startTimeoutMs = 30_000): Promise<DevProcess> {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('AWS_') || k.startsWith('MESHGATE_')) continue
    env[k] = v
  }
  env.NO_COLOR = '1'
  const child: ChildProcess = spawn(process.execPath, ['bin/meshgate.js', 'dev', ...args], {
    cwd: ROOT,
    env,
    detached: true, // its own process group: the survivors scan looks at that group only
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const pid = child.pid
  if (pid === undefined) throw new Error('meshgate dev did not start')
  let text = ''
  child.stdout!.on('data', (c: Buffer) => {
    text += c.toString('utf8')
  })
  child.stderr!.on('data', (c: Buffer) => {
    text += c.toString('utf8')
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    child.once('exit', (code, signal) => done({ code, signal }))
  })
  let alive = true
  void exited.then(() => {
    alive = false
  })

  const ready = await new Promise<RegExpExecArray>((ok, fail) => {
    const started = Date.now()
    const poll = setInterval(() => {
      const m = /meshgate dev ready: gateway=(\S+) dashboard=(\S+)/.exec(text)
      if (m) {
        clearInterval(poll)
        ok(m)
      } else if (!alive || Date.now() - started > startTimeoutMs) {
        clearInterval(poll)
        if (alive) process.kill(pid, 'SIGKILL')
        fail(new Error(`meshgate dev did not get ready:\n${text}`))
      }
    }, 50)
  })

  const survivors = (): number[] => {
    try {
      const out = execFileSync('ps', ['-o', 'pid=', '-g', String(pid)], { encoding: 'utf8' })
      return out
        .split('\n')
        .map((l) => Number(l.trim()))
        .filter((n) => n > 0)
    } catch {
      return [] // ps exits 1 when nothing matches
    }
  }

  return {
    pid,
    gateway: ready[1]!,
    dashboard: ready[2]!,
    output: () => text,
    exited,
    signal(sig) {
      if (alive) process.kill(pid, sig)
    },
    survivors,
    async stop(graceMs = 5_000) {
      if (!alive) return
      process.kill(pid, 'SIGTERM')
      const timer = setTimeout(() => {
        if (alive) process.kill(pid, 'SIGKILL')
      }, graceMs)
      await exited
      clearTimeout(timer)
    },
  }
}

/** Polls `fn` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}
