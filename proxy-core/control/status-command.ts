// `meshgate status --config URL [--json]`: which version is live, and how its deployment stands.
import { parseCommandArgs, stringOpt, UsageError } from '../cli/args.ts'
import { createAppConfigStore } from './appconfig-store.ts'
import { parseLiveConfigUrl } from './config-url.ts'
import { reportFailure } from './report.ts'
import { createS3Store } from './s3-store.ts'

export const usage = `usage: meshgate status --config URL [--json]

Shows the live config at URL: for appconfig://APP/ENV/PROFILE the deployed version (number and
label), its deployment (number, strategy, state, percent, when) and the newest hosted version; for
s3://BUCKET/KEY the object's ETag, size and last-modified time. --json prints the same as JSON.`

interface Status {
  source: string
  version?: string | number
  label?: string
  etag?: string
  deployment?: { number?: number; state?: string; percent?: number; startedAt?: string; completedAt?: string }
  latestHostedVersion?: number
  lastModified?: string
  bytes?: number
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(
    args,
    { config: { type: 'string' }, json: { type: 'boolean' } },
    { maxPositionals: 0 },
  )
  const config = stringOpt(parsed, 'config')
  if (config === undefined) throw new UsageError('--config URL is required')
  try {
    const url = parseLiveConfigUrl(config)
    const status: Status = { source: config }
    if (url.kind === 'appconfig') {
      const store = await createAppConfigStore(url)
      const live = await store.live()
      status.latestHostedVersion = await store.latestVersion()
      if (live) {
        const d = live.deployment
        status.version = live.version
        if (live.label) status.label = live.label
        status.deployment = {
          ...(d.DeploymentNumber !== undefined ? { number: d.DeploymentNumber } : {}),
          ...(d.State ? { state: d.State } : {}),
          ...(d.PercentageComplete !== undefined ? { percent: d.PercentageComplete } : {}),
          ...(d.StartedAt ? { startedAt: d.StartedAt.toISOString() } : {}),
          ...(d.CompletedAt ? { completedAt: d.CompletedAt.toISOString() } : {}),
        }
        const latest = (await store.deployments())[0]
        // The newest deployment may be a rolled-back one: say so beside the version that serves.
        if (latest && latest.DeploymentNumber !== d.DeploymentNumber)
          process.stderr.write(
            `note: deployment #${latest.DeploymentNumber} (version ${latest.ConfigurationVersion}) is ${latest.State}\n`,
          )
      }
    } else {
      const live = await (await createS3Store(url)).live()
      if (live) {
        status.etag = live.etag
        status.version = live.versionId ?? live.etag
        status.bytes = Buffer.byteLength(live.content)
        if (live.lastModified) status.lastModified = live.lastModified.toISOString()
      }
    }
    if (parsed.values.json === true) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`)
    else process.stdout.write(renderStatus(status))
    return status.version === undefined ? 1 : 0
  } catch (e) {
    return reportFailure('status', e)
  }
}

function renderStatus(s: Status): string {
  const lines = [s.source]
  if (s.version === undefined) lines.push('  nothing published yet')
  else if (s.etag !== undefined) {
    lines.push(`  ETag           ${s.etag}`)
    if (s.bytes !== undefined) lines.push(`  size           ${s.bytes} bytes`)
    if (s.lastModified) lines.push(`  last modified  ${s.lastModified}`)
  } else {
    lines.push(`  live version   ${s.version}${s.label ? ` (label ${s.label})` : ''}`)
    const d = s.deployment
    if (d)
      lines.push(
        `  deployment     #${d.number} ${d.state} ${d.percent ?? 0}%, started ${d.startedAt ?? '?'}${d.completedAt ? `, completed ${d.completedAt}` : ''}`,
      )
  }
  if (s.latestHostedVersion !== undefined) lines.push(`  newest hosted  ${s.latestHostedVersion || 'none'}`)
  return `${lines.join('\n')}\n`
}
