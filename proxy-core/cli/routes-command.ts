// `meshgate routes [FILE] [--service S]`: the compiled route table, as a person reads it.
import { ConfigError, loadConfigFile } from '../config/load.ts'
import { parseCommandArgs, stringOpt } from './args.ts'
import { renderRoutes } from './routes.ts'
import { createStyle } from './style.ts'

export const usage = `usage: meshgate routes [FILE] [--service S]

Prints the route table of FILE (default mesh.yaml) in evaluation order: the gateway's routes, then
each service's (or only service S's), with matches, targets and weights, timeouts and retries.`

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, { service: { type: 'string' } }, { maxPositionals: 1 })
  const file = parsed.positionals[0] ?? 'mesh.yaml'
  const service = stringOpt(parsed, 'service')
  try {
    const config = await loadConfigFile(file)
    if (service && !(service in config.services)) {
      process.stderr.write(
        `${file}: no service "${service}" (the mesh has ${Object.keys(config.services).join(', ')})\n`,
      )
      return 1
    }
    process.stdout.write(`${renderRoutes(config, createStyle(process.stdout), service)}\n`)
    return 0
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    process.stderr.write(`${e.message}\n`)
    return 1
  }
}
