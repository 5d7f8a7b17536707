// The `meshgate` command. Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage error.
import { ConfigError, loadConfigFile } from '../config/load.ts'
import { relaunchTuned } from '../sidecar/relaunch.ts'
import { renderRoutes } from './routes.ts'
import { createStyle } from './style.ts'

const USAGE = `usage: meshgate <command> [options]

commands:
  validate [FILE]                      check a mesh config (default: mesh.yaml)
  routes [FILE] [--service S]          print the compiled route table
  sidecar --config FILE --service S    run the sidecar (see docs/sidecar.md)
  dev [FILE] [--port 8080] [--dashboard 9901]
                                       run the whole mesh on this machine
`

class UsageError extends Error {}

// Loaded only for their commands, so `validate` never pays for the sidecar's or dev's imports.
const SIDECAR = '../sidecar/command.ts'
const DEV = '../dev/command.ts'

/** Splits `[FILE] [--flag value]...` with the flags this command accepts. */
function parseArgs(
  args: string[],
  flags: readonly string[],
): { file: string | undefined; opts: Record<string, string> } {
  const opts: Record<string, string> = {}
  let file: string | undefined
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a.startsWith('--')) {
      const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined]
      if (!flags.includes(name)) throw new UsageError(`unknown option --${name}`)
      const value = inline ?? args[++i]
      if (value === undefined) throw new UsageError(`--${name} needs a value`)
      opts[name] = value
    } else if (file === undefined) {
      file = a
    } else {
      throw new UsageError(`unexpected argument ${a}`)
    }
  }
  return { file, opts }
}

async function validate(args: string[]): Promise<number> {
  const { file = 'mesh.yaml' } = parseArgs(args, [])
  const out = createStyle(process.stdout)
  const err = createStyle(process.stderr)
  try {
    const config = await loadConfigFile(file)
    const services = Object.keys(config.services).length
    const routes = Object.values(config.services).reduce((n, s) => n + s.routes.length, 0)
    process.stdout.write(
      `${out.green('✓')} ${file}: mesh ${config.mesh}, ${services} services, ${routes} routes\n`,
    )
    return 0
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    for (const p of e.problems) {
      process.stderr.write(
        `${err.bold(`${p.file}:${p.line}:${p.column}`)}: ${err.yellow(p.path)}: ${err.red(p.message)}\n`,
      )
    }
    process.stderr.write(`${e.problems.length} problem${e.problems.length === 1 ? '' : 's'} in ${file}\n`)
    return 1
  }
}

async function routes(args: string[]): Promise<number> {
  const { file = 'mesh.yaml', opts } = parseArgs(args, ['service'])
  try {
    const config = await loadConfigFile(file)
    if (opts.service && !(opts.service in config.services)) {
      process.stderr.write(
        `${file}: no service "${opts.service}" (the mesh has ${Object.keys(config.services).join(', ')})\n`,
      )
      return 1
    }
    process.stdout.write(`${renderRoutes(config, createStyle(process.stdout), opts.service)}\n`)
    return 0
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    process.stderr.write(`${e.message}\n`)
    return 1
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'validate':
        return await validate(rest)
      case 'routes':
        return await routes(rest)
      case 'sidecar': {
        // Before the sidecar's modules load: it may replace this process with a tuned one.
        relaunchTuned()
        const { runSidecarCommand } = (await import(SIDECAR)) as {
          runSidecarCommand(a: string[]): Promise<number>
        }
        return await runSidecarCommand(rest)
      }
      case 'dev': {
        const { runDevCommand } = (await import(DEV)) as { runDevCommand(a: string[]): Promise<number> }
        return await runDevCommand(rest)
      }
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE)
        return 0
      default:
        process.stderr.write(command ? `meshgate: unknown command "${command}"\n\n${USAGE}` : USAGE)
        return 2
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`meshgate ${command}: ${e.message}\n\n${USAGE}`)
      return 2
    }
    throw e
  }
}

// Long-running commands (sidecar, dev) keep the process alive themselves; the others exit here.
const code = await main(process.argv.slice(2))
if (code !== 0 || !['sidecar', 'dev'].includes(process.argv[2] ?? '')) process.exitCode = code
