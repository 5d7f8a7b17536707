// serverless-offline for end-to-end tests: a throwaway service directory, free ports, started with
// setsid so the whole process group (the CLI and its esbuild children) can be ended by PID.
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { createServiceDir, ROOT, type ServiceDir } from '../lambda/service-dir.ts'

// A port found by listening on port 0 comes from the kernel's ephemeral range, the same range
// every outgoing connection of the parallel test workers draws its local port from: between
// releasing it here and serverless-offline binding it, a client socket can take it (EADDRINUSE,
// seen in CI). So ports for other processes come from just below that range, where neither
// listen(0) nor connect() ever lands, in a block of their own for each vitest worker.
const BELOW_EPHEMERAL = 8_192
const BLOCK = 256
let nextInBlock = 0

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0])
    if (Number.isInteger(low) && low > 10_000) return low
  } catch {}
  return 32_768
}

function canListen(port: number): Promise<boolean> {
  const s = createServer()
  return new Promise((resolve) => {
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })
}

export async function freePort(): Promise<number> {
  const worker = Number(process.env.VITEST_POOL_ID ?? 1)
  const base = ephemeralLow() - BELOW_EPHEMERAL + (worker % (BELOW_EPHEMERAL / BLOCK)) * BLOCK
  while (nextInBlock < BLOCK) {
    const port = base + nextInBlock++
    if (await canListen(port)) return port
  }
  throw new Error(`no free port left in ${base}..${base + BLOCK - 1}`)
}

export interface OfflineService {
  /** The service directory (write the mesh config the yml points at here before `start`). */
  readonly service: ServiceDir
  readonly httpPort: number
  readonly lambdaPort: number
  /** `http://127.0.0.1:<httpPort>`: the local API Gateway. */
  readonly api: string
  /** Start serverless-offline and wait until the API answers `readyPath`. */
  start(env: NodeJS.ProcessEnv, readyPath?: string): Promise<void>
  /** What the CLI printed so far (for failure messages). */
  output(): string
  /** End the process group and remove the directory. */
  stop(): Promise<void>
}

/** Reserves ports and a directory; the yml reads its ports from the env given to `start`. */
export async function prepareOffline(serverlessYml: string): Promise<OfflineService> {
  const service = createServiceDir(serverlessYml)
  const [httpPort, lambdaPort, wsPort, albPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ]
  const api = `http://127.0.0.1:${httpPort}`
  let child: ChildProcess | undefined
  let output = ''

  async function waitReady(url: string, deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      if (child?.exitCode !== null && child?.exitCode !== undefined) {
        throw new Error(`serverless offline exited (${child.exitCode}):\n${output}`)
      }
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
        await res.arrayBuffer()
        return
      } catch {
        await new Promise((r) => setTimeout(r, 250))
      }
    }
    throw new Error(`serverless offline did not become ready:\n${output}`)
  }

  return {
    service,
    httpPort,
    lambdaPort,
    api,
    async start(env, readyPath = '/not-routed') {
      child = spawn(
        'setsid',
        [
          join(ROOT, 'node_modules/.bin/serverless'),
          'offline',
          'start',
          '--websocketPort',
          String(wsPort),
          '--albPort',
          String(albPort),
        ],
        { cwd: service.dir, env: { ...env, SLS_TELEMETRY_DISABLED: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
      )
      child.stdout?.on('data', (c: Buffer) => {
        output += c.toString()
      })
      child.stderr?.on('data', (c: Buffer) => {
        output += c.toString()
      })
      await waitReady(`${api}${readyPath}`, Date.now() + 90_000)
    },
    output: () => output,
    async stop() {
      const pid = child?.pid
      if (pid !== undefined && child?.exitCode === null) {
        // setsid made the CLI the leader of its own group: end it with its esbuild children.
        try {
          process.kill(-pid, 'SIGTERM')
        } catch {}
        const exited = await Promise.race([
          new Promise<boolean>((resolve) => child!.once('exit', () => resolve(true))),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000)),
        ])
        if (!exited) {
          try {
            process.kill(-pid, 'SIGKILL')
          } catch {}
        }
      }
      service.remove()
    },
  }
}
