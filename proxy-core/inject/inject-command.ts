// `meshgate inject FILE.yaml` and `meshgate inject --ecs TASKDEF.json`: the manifest or the task
// definition with the sidecar, on stdout; what was done to each workload on stderr. Nothing is printed
// on stdout when any workload refuses (exit 1), so a pipe into `kubectl apply` applies all or nothing.

import { readFileSync } from 'node:fs'
import { parseCommandArgs, UsageError } from '../cli/args.ts'
import { packageVersion } from '../package-info.ts'
import { injectTaskDefinition } from './ecs.ts'
import { formatJson } from './json-format.ts'
import { injectManifests } from './manifests.ts'
import { InjectError } from './settings.ts'
import { SETTINGS_OPTIONS, SETTINGS_USAGE, settingsFromArgs } from './settings-args.ts'

export const usage = `usage: meshgate inject FILE.yaml [settings]       Kubernetes manifests, every workload injected
       meshgate inject --ecs TASKDEF.json [settings]  an ECS task definition (awsvpc)
FILE - reads standard input. The result goes to standard output. The image defaults to
meshgate-sidecar:VERSION; name your registry's with --image.

${SETTINGS_USAGE}`

export async function run(args: string[]): Promise<number> {
  const p = parseCommandArgs(args, { ...SETTINGS_OPTIONS, ecs: { type: 'boolean' } }, { maxPositionals: 1 })
  const file = p.positionals[0]
  if (file === undefined) throw new UsageError('which file? (- for standard input)')
  const settings = settingsFromArgs(p, process.env, `meshgate-sidecar:${packageVersion()}`)
  let text: string
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8')
  } catch (e) {
    process.stderr.write(`meshgate inject: cannot read ${file}: ${(e as Error).message}\n`)
    return 1
  }
  try {
    if (p.values.ecs === true) {
      let td: unknown
      try {
        td = JSON.parse(text)
      } catch (e) {
        throw new InjectError(`not JSON: ${(e as Error).message}`)
      }
      const outcome = injectTaskDefinition(td, settings)
      process.stdout.write(formatJson(outcome.taskDefinition))
      const what =
        outcome.kind === 'injected'
          ? `injected (service ${outcome.service})`
          : `unchanged (${outcome.reason})`
      process.stderr.write(`meshgate inject: ${outcome.taskDefinition.family}: ${what}\n`)
      return 0
    }
    const result = injectManifests(text, settings)
    process.stdout.write(result.text)
    for (const line of result.report) process.stderr.write(`meshgate inject: ${line}\n`)
    return 0
  } catch (e) {
    if (!(e instanceof InjectError)) throw e
    process.stderr.write(`meshgate inject: ${file}: ${e.message}\n`)
    return 1
  }
}
