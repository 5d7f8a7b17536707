// The `meshgate` command. Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage error.
import { packageVersion } from '../package-info.ts'
import { relaunchTuned } from '../sidecar/relaunch.ts'
import { UsageError } from './args.ts'

/**
 * Every command: its line in the overview, and its module, loaded only when it runs (so `validate`
 * never pays for the sidecar's or dev's imports). A module gives its own usage text and `run`.
 */
interface CommandModule {
  usage: string
  run(args: string[]): Promise<number>
}
interface CommandEntry {
  synopsis: string
  summary: string
  load(): Promise<CommandModule>
}

const COMMANDS: Record<string, CommandEntry> = {
  validate: {
    synopsis: 'validate [FILE]',
    summary: 'check a mesh config (default: mesh.yaml)',
    load: () => import('./validate.ts'),
  },
  routes: {
    synopsis: 'routes [FILE] [--service S]',
    summary: 'print the compiled route table',
    load: () => import('./routes-command.ts'),
  },
  sidecar: {
    synopsis: 'sidecar --config SRC --service S',
    summary: 'run the sidecar (see docs/sidecar.md)',
    load: async () => {
      // Before the sidecar's modules load: it may replace this process with a tuned one.
      relaunchTuned()
      const m = await import('../sidecar/command.ts')
      return { usage: m.SIDECAR_USAGE, run: m.runSidecarCommand }
    },
  },
  import: {
    synopsis: 'import appmesh|istio|gateway-api FILE... [--out F]',
    summary: 'translate an App Mesh, Istio or Gateway API config',
    load: async () => {
      const m = await import('../import/command.ts')
      return { usage: m.IMPORT_USAGE, run: m.runImportCommand }
    },
  },
  export: {
    synopsis: 'export gateway-api [FILE] [--out F]',
    summary: 'write a mesh config as Gateway API HTTPRoutes',
    load: async () => {
      const m = await import('../import/command.ts')
      return { usage: m.EXPORT_USAGE, run: m.runExportCommand }
    },
  },
  dev: {
    synopsis: 'dev [FILE] [--port 8080] [--dashboard 9901]',
    summary: 'run the whole mesh on this machine',
    load: async () => {
      const m = await import('../dev/command.ts')
      return { usage: m.DEV_USAGE, run: m.runDevCommand }
    },
  },
  publish: {
    synopsis: 'publish FILE --to URL',
    summary: 'validate and publish a mesh config to AppConfig or S3',
    load: async () => (await import('../control/index.ts')).publishCommand,
  },
  shift: {
    synopsis: 'shift --config URL SERVICE ROUTE T=W...',
    summary: "change a route's weights in the live config",
    load: async () => (await import('../control/index.ts')).shiftCommand,
  },
  status: {
    synopsis: 'status --config URL',
    summary: 'show the live config version and its deployment',
    load: async () => (await import('../control/index.ts')).statusCommand,
  },
  rollout: {
    synopsis: 'rollout start|status|pause|abort|run',
    summary: 'metric-gated canaries on the live config (docs/rollout.md)',
    load: async () => (await import('../rollout/index.ts')).rolloutCommand,
  },
  inject: {
    synopsis: 'inject FILE.yaml | --ecs TASKDEF.json',
    summary: 'print manifests or a task definition with the sidecar added',
    load: () => import('../inject/inject-command.ts'),
  },
  injector: {
    synopsis: 'injector --tls-dir DIR',
    summary: 'run the Kubernetes sidecar-injection webhook (docs/kubernetes.md)',
    load: () => import('../inject/injector-command.ts'),
  },
}

function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.synopsis.length)) + 2
  const lines = Object.values(COMMANDS).map((c) => `  ${c.synopsis.padEnd(width)} ${c.summary}`)
  return (
    `usage: meshgate <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n` +
    "`meshgate <command> --help` shows a command's options; `meshgate --version` the version.\n"
  )
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    process.stderr.write(usage())
    return 2
  }
  if (name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage())
    return 0
  }
  if (name === '-v' || name === '--version' || name === 'version') {
    process.stdout.write(`meshgate ${packageVersion()}\n`)
    return 0
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (entry === undefined) {
    process.stderr.write(`meshgate: unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  const command = await entry.load()
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage.trimEnd()}\n`)
    return 0
  }
  try {
    return await command.run(rest)
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`meshgate ${name}: ${e.message}\n\n${command.usage.trimEnd()}\n`)
      return 2
    }
    throw e
  }
}

// Long-running commands (sidecar, dev) keep the process alive themselves; the others exit here.
const code = await main(process.argv.slice(2))
if (code !== 0 || !['sidecar', 'dev'].includes(process.argv[2] ?? '')) process.exitCode = code
