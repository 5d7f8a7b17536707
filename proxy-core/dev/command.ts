// `meshgate dev [FILE] [--port 8080] [--dashboard 9901] [--no-traffic] [--traffic-rate 5]`: the only
// file of `meshgate dev` with process side effects (arguments, environment, stdout, signals). Everything
// it starts lives in this one process (Lambda sandboxes are worker threads), so Ctrl-C leaves nothing.
import { resolve } from 'node:path'
import { createStyle, table } from '../cli/style.ts'
import { ConfigError } from '../config/load.ts'
import type { DevMesh } from './dev-mesh.ts'
import { startDevMesh } from './dev-mesh.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
export const DEFAULT_FILE = 'infra/examples/bookinfo.yaml'
/** 8080 and 9901: the demo's gateway port, and Envoy's admin port for the dashboard. */
export const DEFAULT_PORT = 8080
export const DEFAULT_DASHBOARD = 9901
/** Requests per second from the traffic generator: enough to move the dashboard, little CPU. */
export const DEFAULT_TRAFFIC_RATE = 5
/** Every listener binds loopback only: a dev mesh is never reachable from the network. */
const HOST = '127.0.0.1'
/** If anything still holds the process after shutdown, exit anyway this long after it (ms). */
const EXIT_GRACE_MS = 2_000

export const DEV_USAGE = `usage: meshgate dev [FILE] [--port ${DEFAULT_PORT}] [--dashboard ${DEFAULT_DASHBOARD}] [--no-traffic] [--traffic-rate ${DEFAULT_TRAFFIC_RATE}]

Runs the mesh of FILE (default ${DEFAULT_FILE}) on this machine: the gateway on --port, its Lambda
functions behind a local Lambda Invoke API, its container services each behind a sidecar, a traffic
generator, and a live dashboard on --dashboard. Port 0 picks a free port. See docs/dev.md.`

export interface DevArgs {
  file: string
  port: number
  dashboard: number
  traffic: boolean
  trafficRate: number
}

class UsageError extends Error {}

function portOf(name: string, v: string): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || n > 65535) throw new UsageError(`--${name}: not a port: ${JSON.stringify(v)}`)
  return n
}

export function parseDevArgs(argv: readonly string[]): DevArgs | 'help' {
  const out: DevArgs = {
    file: DEFAULT_FILE,
    port: DEFAULT_PORT,
    dashboard: DEFAULT_DASHBOARD,
    traffic: true,
    trafficRate: DEFAULT_TRAFFIC_RATE,
  }
  let file: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') return 'help'
    if (arg === '--no-traffic') {
      out.traffic = false
      continue
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq)
      const value = eq < 0 ? argv[++i] : arg.slice(eq + 1)
      if (!['port', 'dashboard', 'traffic-rate'].includes(name))
        throw new UsageError(`unknown option --${name}`)
      if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`)
      if (name === 'port') out.port = portOf(name, value)
      else if (name === 'dashboard') out.dashboard = portOf(name, value)
      else {
        const rate = Number(value)
        if (!Number.isFinite(rate) || rate < 0) throw new UsageError(`--traffic-rate: not a rate: ${value}`)
        out.trafficRate = rate
      }
      continue
    }
    if (file !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`)
    file = arg
  }
  if (file !== undefined) out.file = file
  return out
}

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v
  return out
}

export async function runDevCommand(argv: string[]): Promise<number> {
  const style = createStyle(process.stdout)
  const err = createStyle(process.stderr)
  const out = (line = '') => process.stdout.write(`${line}\n`)
  let args: DevArgs | 'help'
  try {
    args = parseDevArgs(argv)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    process.stderr.write(`meshgate dev: ${e.message}\n\n${DEV_USAGE}\n`)
    return 2
  }
  if (args === 'help') {
    out(DEV_USAGE)
    return 0
  }
  const file = resolve(args.file)
  const time = () => style.dim(new Date().toTimeString().slice(0, 8))
  const started = performance.now()
  out(`${style.bold('meshgate dev')} ${style.dim(args.file)}`)

  let mesh: DevMesh
  try {
    mesh = await startDevMesh({
      file,
      root: ROOT,
      host: HOST,
      port: args.port,
      dashboardPort: args.dashboard,
      traffic: args.traffic,
      trafficRate: args.trafficRate,
      env: stringEnv(process.env),
      progress: (step) => out(`  ${style.dim('…')} ${step}`),
      notice: (line) => out(`${time()} ${line}`),
      functionOutput: (fn, line) => out(`${time()} ${style.dim(`λ ${fn} │`)} ${line}`),
      lambdaEndpoint: (url) => {
        process.env.MESHGATE_LAMBDA_ENDPOINT = url
      },
    })
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const p of e.problems) {
        process.stderr.write(
          `${err.bold(`${p.file}:${p.line}:${p.column}`)}: ${err.yellow(p.path)}: ${err.red(p.message)}\n`,
        )
      }
      return 1
    }
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') {
      process.stderr.write(
        `meshgate dev: ${(e as Error).message}: another process has that port; pick others with ` +
          '--port and --dashboard (0 picks a free one)\n',
      )
      return 1
    }
    process.stderr.write(`meshgate dev: cannot start: ${e instanceof Error ? e.message : String(e)}\n`)
    return 1
  }

  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  out(`${style.green('✓')} the ${mesh.state().mesh} mesh is up (${seconds}s)`)
  out()
  out(
    `  gateway     ${style.bold(mesh.gatewayUrl)}   ${style.dim(`try: curl ${mesh.gatewayUrl}/productpage`)}`,
  )
  out(`  dashboard   ${style.bold(mesh.dashboardUrl)}`)
  out(`  lambda API  ${mesh.lambdaUrl}   ${style.dim('(MESHGATE_LAMBDA_ENDPOINT of every invoker)')}`)
  out()
  const rows = mesh.summary.map((s) => [
    s.service,
    s.target,
    s.runtime === 'Lambda' ? style.yellow('λ Lambda') : style.green('▣ container'),
    s.where,
  ])
  out(
    table(rows, style, ['SERVICE', 'TARGET', 'RUNTIME', 'WHERE'])
      .split('\n')
      .map((l) => `  ${l}`)
      .join('\n'),
  )
  out()
  out(
    args.traffic
      ? `  traffic     ${args.trafficRate} req/s to the gateway ${style.dim('(--no-traffic turns it off)')}`
      : `  traffic     off ${style.dim('(the dashboard can start it)')}`,
  )
  out(
    `  config      ${style.bold(mesh.configUrl)} ${style.dim(`(${args.file} with local URLs, on a local AppConfig; the file is watched)`)}`,
  )
  out(`              ${mesh.derivedFile} ${style.dim('(the live version; saving it publishes a new one)')}`)
  out(
    `  appconfig   ${mesh.appConfig.url} ${style.dim(`(agent and Lambda extension API ${mesh.appConfig.agentUrl})`)}`,
  )
  out(
    `              ${style.dim(`try: AWS_ENDPOINT_URL_APPCONFIG=${mesh.appConfig.url} npx meshgate shift --config ${mesh.configUrl} SERVICE ROUTE T=W…`)}`,
  )
  out(`  ${style.dim('Ctrl-C stops everything.')}`)
  // One line for scripts and tests to find the bound addresses in.
  out(`meshgate dev ready: gateway=${mesh.gatewayUrl} dashboard=${mesh.dashboardUrl}`)

  return new Promise<number>((done) => {
    let stopping = false
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        if (signal === 'SIGINT') process.exit(130)
        return
      }
      stopping = true
      out()
      out(`${time()} ${signal}: stopping the gateway, sidecars, apps, functions and dashboard…`)
      void mesh.close().then(
        () => {
          process.off('SIGINT', onSignal)
          process.off('SIGTERM', onSignal)
          out(`${time()} ${style.green('✓')} stopped`)
          setTimeout(() => process.exit(0), EXIT_GRACE_MS).unref()
          done(0)
        },
        (e: unknown) => {
          process.stderr.write(`meshgate dev: shutdown failed: ${String(e)}\n`)
          process.exit(1)
        },
      )
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
