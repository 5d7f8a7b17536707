// `meshgate validate [FILE]`: exit 0 when the config is valid, else every problem as
// `FILE:LINE:COL: path: message` on stderr and exit 1.
import { ConfigError, loadConfigFile } from '../config/load.ts'
import { parseCommandArgs } from './args.ts'
import { createStyle } from './style.ts'

export const usage = `usage: meshgate validate [FILE]

Checks a mesh config (YAML or JSON; default mesh.yaml). Exit 0 when it is valid; else each problem as
FILE:LINE:COL: path.in.config: message on stderr, and exit 1. Usage errors exit 2.`

export async function run(args: string[]): Promise<number> {
  const { positionals } = parseCommandArgs(args, {}, { maxPositionals: 1 })
  const file = positionals[0] ?? 'mesh.yaml'
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
