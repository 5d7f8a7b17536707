import { join } from 'node:path'
// Network namespaces for tests: each one a private network stack (its own loopback, its own ports),
// so a process can bind the sidecar's real default ports and "pods" can talk over veth links without
// touching the host's network. Names carry the test process's PID; namespaces left behind by a test
// process that no longer runs are removed before new ones are made. Needs root (CAP_SYS_ADMIN).

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'

const PREFIX = 'mgtest-'

/** Runs `ip …` and returns its stdout; throws with ip's own message. */
export function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`)
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Namespaces of earlier test processes that are gone (`<prefix><pid>-…` with a dead pid). */
export function removeStaleNetns(prefix = PREFIX): void {
  let list: string
  try {
    list = ip(['netns', 'list'])
  } catch {
    return
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const m = new RegExp(`^${prefix}(\\d+)-`).exec(name)
    if (m === null || alive(Number(m[1]))) continue
    try {
      ip(['netns', 'del', name])
    } catch {
      // Another test process removed it first.
    }
  }
}

export interface Netns {
  readonly name: string
  /** `ip -n NAME …`. */
  ip(args: string[]): string
  /** A process inside the namespace: `ip netns exec NAME node …` (ip execs, so the PID is node's). */
  node(args: string[], env: NodeJS.ProcessEnv): NetnsProcess
  remove(): void
}

/**
 * Creates `<prefix><pid>-<tag>` (`mgtest-` unless a branch's tests name their own) with its loopback
 * up; a clear error when namespaces are not allowed.
 */
export function createNetns(tag: string, prefix = PREFIX): Netns {
  const name = `${prefix}${process.pid}-${tag}`
  try {
    ip(['netns', 'add', name])
  } catch (err) {
    throw new Error(
      `cannot create network namespace ${name}: this test needs root (CAP_SYS_ADMIN) and iproute2 ` +
        `to run "pods" in their own namespaces (${(err as Error).message})`,
    )
  }
  ip(['-n', name, 'link', 'set', 'lo', 'up'])
  const procs: NetnsProcess[] = []
  return {
    name,
    ip: (args) => ip(['-n', name, ...args]),
    node(args, env) {
      const p = startNetnsProcess(name, [process.execPath, ...args], env)
      procs.push(p)
      return p
    },
    remove() {
      for (const p of procs) p.kill()
      try {
        ip(['netns', 'del', name])
      } catch {
        // Already gone.
      }
    },
  }
}

export interface NetnsProcess {
  readonly pid: number
  readonly child: ChildProcess
  /** stdout and stderr lines so far. */
  output(): string
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it ended. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGKILL now, if still running. */
  kill(): void
}

function startNetnsProcess(ns: string, command: string[], env: NodeJS.ProcessEnv): NetnsProcess {
  const child = spawn('ip', ['netns', 'exec', ns, ...command], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${command.join(' ')} in ${ns}`)
  const lines: string[] = []
  const waiters = new Set<{ re: RegExp; done: (l: string) => void }>()
  let rest = ''
  const onData = (chunk: Buffer) => {
    rest += chunk.toString('utf8')
    let nl = rest.indexOf('\n')
    while (nl >= 0) {
      const line = rest.slice(0, nl)
      rest = rest.slice(nl + 1)
      nl = rest.indexOf('\n')
      lines.push(line)
      if (lines.length > 2000) lines.shift()
      for (const w of [...waiters]) if (w.re.test(line)) w.done(line)
    }
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  )
  const running = () => child.exitCode === null && child.signalCode === null
  return {
    pid,
    child,
    exited,
    output: () => lines.join('\n'),
    waitForLine(re, timeoutMs = 15_000) {
      const found = lines.find((l) => re.test(l))
      if (found !== undefined) return Promise.resolve(found)
      return new Promise<string>((resolve, reject) => {
        const w = {
          re,
          done: (l: string) => {
            waiters.delete(w)
            clearTimeout(timer)
            resolve(l)
          },
        }
        const timer = setTimeout(() => {
          waiters.delete(w)
          reject(new Error(`no line matching ${re} within ${timeoutMs} ms in ${ns}:\n${lines.join('\n')}`))
        }, timeoutMs)
        waiters.add(w)
        void exited.then((e) => {
          if (!waiters.has(w)) return
          waiters.delete(w)
          clearTimeout(timer)
          reject(
            new Error(`exited (${e.code ?? e.signal}) before a line matching ${re}:\n${lines.join('\n')}`),
          )
        })
      })
    },
    async stop(graceMs = 10_000) {
      if (running()) process.kill(pid, 'SIGTERM')
      const timer = setTimeout(() => {
        if (running()) process.kill(pid, 'SIGKILL')
      }, graceMs)
      const result = await exited
      clearTimeout(timer)
      return result
    },
    kill() {
      if (running()) process.kill(pid, 'SIGKILL')
    },
  }
}

/** Runs a command in a namespace to its end: exit code and output. */
export function runInNetns(
  ns: string,
  command: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 15_000,
): Promise<{ code: number | null; output: string }> {
  const p = startNetnsProcess(ns, command, env)
  const timer = setTimeout(() => p.kill(), timeoutMs)
  return p.exited.then((e) => {
    clearTimeout(timer)
    return { code: e.code, output: p.output() }
  })
}

/** What test/infra/http-get.ts prints: one GET's answer, or the error that stopped it. */
export interface HttpGetResult {
  status?: number
  headers?: Record<string, string>
  body?: string
  error?: string
}

const HTTP_GET = join(import.meta.dirname, 'http-get.ts')

/** One GET from inside namespace `ns` (optionally with a Host header, or through an HTTP proxy). */
export async function httpGetInNetns(
  ns: string,
  url: string,
  opts: { host?: string; proxy?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<HttpGetResult> {
  const args = [HTTP_GET, url, opts.host ?? '', ...(opts.proxy === undefined ? [] : [opts.proxy])]
  const r = await runInNetns(ns, [process.execPath, ...args], opts.env ?? { PATH: process.env.PATH })
  const line = r.output.split('\n').find((l) => l.startsWith('{'))
  if (line === undefined) throw new Error(`http-get printed nothing:\n${r.output}`)
  return JSON.parse(line) as HttpGetResult
}

/** Links two namespaces with a veth pair, `ifA` in `a` and `ifB` in `b`, both up, with addresses. */
export function vethLink(
  a: Netns,
  ifA: string,
  addrA: string | undefined,
  b: Netns,
  ifB: string,
  addrB: string | undefined,
): void {
  // Made inside `a` with the peer created straight in `b`: no interface ever appears on the host.
  a.ip(['link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.name])
  if (addrA !== undefined) a.ip(['addr', 'add', addrA, 'dev', ifA])
  if (addrB !== undefined) b.ip(['addr', 'add', addrB, 'dev', ifB])
  a.ip(['link', 'set', ifA, 'up'])
  b.ip(['link', 'set', ifB, 'up'])
}
