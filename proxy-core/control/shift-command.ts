// `meshgate shift --config URL SERVICE ROUTE TARGET=WEIGHT...`: the live config, with only those
// weights changed, validated and published; prints the weights before → after.
import { parseCommandArgs, stringOpt, UsageError } from '../cli/args.ts'
import { createAppConfigStore } from './appconfig-store.ts'
import { parseLiveConfigUrl } from './config-url.ts'
import { readLive } from './live-config.ts'
import { checkDocument, renderDocument } from './mesh-document.ts'
import { reportFailure } from './report.ts'
import { createS3Store } from './s3-store.ts'
import { describeChanges, parseAssignments, shiftWeights } from './weights.ts'

export const usage = `usage: meshgate shift --config URL SERVICE ROUTE TARGET=WEIGHT... [--strategy NAME]

Reads the live config at URL (appconfig://APP/ENV/PROFILE: the newest deployed version; s3://BUCKET/KEY:
the object), sets the weights of ROUTE of SERVICE for the named targets only (the others keep theirs),
validates the result, publishes it as \`meshgate publish\` does and prints the weights before → after.
ROUTE is the route's name (an unnamed lone route is "default", else route-N).
Example: meshgate shift --config appconfig://bookinfo/prod/mesh reviews default v1=97 v3=3`

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, { config: { type: 'string' }, strategy: { type: 'string' } })
  const config = stringOpt(parsed, 'config')
  if (config === undefined) throw new UsageError('--config URL is required')
  const [service, route, ...pairs] = parsed.positionals
  if (service === undefined || route === undefined || pairs.length === 0)
    throw new UsageError('give SERVICE ROUTE TARGET=WEIGHT...')
  const strategy = stringOpt(parsed, 'strategy')
  try {
    const assignments = parseAssignments(pairs)
    const url = parseLiveConfigUrl(config)
    const live = await readLive(url)
    const { doc, changes } = shiftWeights(live.doc, service, route, assignments)
    await checkDocument(doc, `${config} (after shift)`)
    const content = renderDocument(doc)
    process.stdout.write(`${describeChanges(service, route, changes)}\n`)
    if (url.kind === 'appconfig') {
      const r = await (await createAppConfigStore(url)).publish(content, {
        ...(strategy ? { strategy } : {}),
        description: `meshgate shift ${service} ${route} ${pairs.join(' ')}`,
      })
      process.stdout.write(
        `published version ${r.version} (was ${live.version}), deployment #${r.deployment.DeploymentNumber} ${r.deployment.State}\n`,
      )
    } else {
      const r = await (await createS3Store(url)).put(content)
      process.stdout.write(`published ETag ${r.etag} (was ${live.version})\n`)
    }
    return 0
  } catch (e) {
    return reportFailure('shift', e)
  }
}
