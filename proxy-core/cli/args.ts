// Argument parsing for every `meshgate` command: `node:util` parseArgs, strict, with usage errors as
// one class so main.ts prints them the same way for each command (exit 2).
import { parseArgs as parseNodeArgs } from 'node:util'

export class UsageError extends Error {}

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | boolean[] | undefined>
  positionals: string[]
}

/** `--flag value`, `--flag=value`; unknown flags and missing values are usage errors. */
export function parseCommandArgs(
  args: readonly string[],
  options: OptionSpec,
  limits: { maxPositionals?: number } = {},
): ParsedArgs {
  let parsed: ParsedArgs
  try {
    parsed = parseNodeArgs({ args: [...args], options, strict: true, allowPositionals: true }) as ParsedArgs
  } catch (e) {
    // parseArgs words its errors for a developer ("Unknown option '--x'. To specify a positional…").
    const msg = (e as Error).message
    const unknown = /Unknown option '([^']+)'/.exec(msg)
    if (unknown) throw new UsageError(`unknown option ${unknown[1]}`)
    const missing = /Option '([^']+?)(?: <value>)?' argument missing/.exec(msg)
    if (missing) throw new UsageError(`${missing[1]!.replace(/^-\w, /, '')} needs a value`)
    throw new UsageError(msg.split('\n')[0]!)
  }
  const max = limits.maxPositionals ?? Number.POSITIVE_INFINITY
  if (parsed.positionals.length > max) throw new UsageError(`unexpected argument ${parsed.positionals[max]}`)
  return parsed
}

/** The value of a string option, or undefined. */
export function stringOpt(p: ParsedArgs, name: string): string | undefined {
  const v = p.values[name]
  return typeof v === 'string' ? v : undefined
}
