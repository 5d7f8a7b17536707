// How the control commands say what went wrong: config problems as FILE:LINE:COL (the loader's
// format), AWS refusals with the service's own error name, and AppConfig's validator details.

import { createStyle } from '../cli/style.ts'
import { ConfigError } from '../config/load.ts'
import { LiveConfigError } from './appconfig-store.ts'
import { ConfigUrlError } from './config-url.ts'
import { ShiftError } from './weights.ts'

interface AwsError extends Error {
  $metadata?: { httpStatusCode?: number }
  Details?: { InvalidConfiguration?: { Location?: string; Reason?: string }[] }
}

/** Prints the failure and returns the exit code (1), or rethrows what is not ours to explain. */
export function reportFailure(command: string, e: unknown): number {
  const err = createStyle(process.stderr)
  if (e instanceof ConfigError) {
    for (const p of e.problems)
      process.stderr.write(
        `${err.bold(`${p.file}:${p.line}:${p.column}`)}: ${err.yellow(p.path)}: ${err.red(p.message)}\n`,
      )
    process.stderr.write(
      `meshgate ${command}: ${e.problems.length} problem${e.problems.length === 1 ? '' : 's'}; nothing published\n`,
    )
    return 1
  }
  if (e instanceof ConfigUrlError || e instanceof LiveConfigError || e instanceof ShiftError) {
    process.stderr.write(`meshgate ${command}: ${e.message}\n`)
    return 1
  }
  const aws = e as AwsError
  if (aws instanceof Error && (aws.$metadata !== undefined || aws.name === 'CredentialsProviderError')) {
    const status = aws.$metadata?.httpStatusCode
    process.stderr.write(
      `meshgate ${command}: ${aws.name}${status ? ` (HTTP ${status})` : ''}: ${aws.message}\n`,
    )
    for (const d of aws.Details?.InvalidConfiguration ?? [])
      process.stderr.write(`  ${d.Location ?? '/'}: ${d.Reason ?? 'invalid'}\n`)
    return 1
  }
  if (aws instanceof Error && /Region is missing/i.test(aws.message)) {
    process.stderr.write(`meshgate ${command}: no AWS region: set AWS_REGION\n`)
    return 1
  }
  throw e
}
