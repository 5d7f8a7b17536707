// `meshgate publish FILE --to URL [--strategy NAME] [--description TEXT]` and
// `meshgate publish --init appconfig://APP/ENV/PROFILE`.
import { parseCommandArgs, stringOpt, UsageError } from '../cli/args.ts'
import { appConfigMeshSchema } from './appconfig-schema.ts'
import { createAppConfigStore } from './appconfig-store.ts'
import { parseLiveConfigUrl } from './config-url.ts'
import { readMeshFile, renderDocument } from './mesh-document.ts'
import { reportFailure } from './report.ts'
import { createS3Store } from './s3-store.ts'

export const usage = `usage: meshgate publish FILE --to URL [--strategy NAME] [--description TEXT]
       meshgate publish --init appconfig://APPLICATION/ENVIRONMENT/PROFILE

Validates FILE (YAML or JSON) exactly as \`meshgate validate\` does, then publishes it as JSON:
  appconfig://APP/ENV/PROFILE  a new hosted configuration version, deployed to ENV with the
                               deployment strategy NAME (default AppConfig.AllAtOnce; any
                               predefined name, AllAtOnce for short, or a strategy ID)
  s3://BUCKET/KEY              the object, Content-Type application/json
An invalid FILE is refused with FILE:LINE:COL problems (exit 1) and nothing is published.

--init creates the AppConfig application, environment and configuration profile (reusing any that
exist), with mesh.schema.json attached as the profile's JSON Schema validator, so AppConfig itself
refuses an invalid config. Endpoints and credentials: the AWS SDK's (AWS_REGION,
AWS_ENDPOINT_URL_APPCONFIG, AWS_ENDPOINT_URL_S3, ...).`

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    {
      to: { type: 'string' },
      init: { type: 'string' },
      strategy: { type: 'string' },
      description: { type: 'string' },
    },
    { maxPositionals: 1 },
  )
  const init = stringOpt(parsed, 'init')
  const to = stringOpt(parsed, 'to')
  const file = parsed.positionals[0]
  if (init !== undefined) {
    if (file !== undefined || to !== undefined) throw new UsageError('--init takes only the URL')
    return runInit(init)
  }
  if (file === undefined) throw new UsageError('give the FILE to publish')
  if (to === undefined) throw new UsageError('--to URL is required')
  const strategy = stringOpt(parsed, 'strategy')
  const description = stringOpt(parsed, 'description')
  try {
    const url = parseLiveConfigUrl(to)
    if (url.kind === 's3' && strategy !== undefined)
      throw new UsageError('--strategy is for appconfig:// URLs')
    const content = renderDocument(await readMeshFile(file))
    if (url.kind === 'appconfig') {
      const store = await createAppConfigStore(url)
      const r = await store.publish(content, {
        ...(strategy ? { strategy } : {}),
        ...(description ? { description } : {}),
      })
      const d = r.deployment
      process.stdout.write(
        `published ${file} to ${to}: version ${r.version} (label ${r.label}), deployment #${d.DeploymentNumber} ` +
          `${d.DeploymentStrategyId} ${d.State} ${d.PercentageComplete ?? 0}%\n`,
      )
    } else {
      const store = await createS3Store(url)
      const r = await store.put(content)
      process.stdout.write(
        `published ${file} to ${to}: ETag ${r.etag}${r.versionId ? `, version ${r.versionId}` : ''}\n`,
      )
    }
    return 0
  } catch (e) {
    if (e instanceof UsageError) throw e
    return reportFailure('publish', e)
  }
}

async function runInit(target: string): Promise<number> {
  try {
    const url = parseLiveConfigUrl(target)
    if (url.kind !== 'appconfig')
      throw new UsageError('--init is for appconfig:// URLs (an S3 bucket needs no setup here)')
    const store = await createAppConfigStore(url)
    const r = await store.init(appConfigMeshSchema())
    for (const c of r.created) process.stdout.write(`created ${c}\n`)
    for (const c of r.reused) process.stdout.write(`exists  ${c}\n`)
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`)
    // Lambda's IAM policy names the profile by IDs: serverless.yml's meshConfig takes this form.
    process.stdout.write(`by ID (for serverless.yml --param="meshConfig=..." and IAM): ${r.idUrl}\n`)
    return 0
  } catch (e) {
    if (e instanceof UsageError) throw e
    return reportFailure('publish', e)
  }
}
