// The problems a config text loads with, one string each ([] when it loads): the config tests' one
// way to read a ConfigError. `format` picks how much of each problem a test compares.
import { ConfigError, type ConfigProblem, loadConfigText } from '../../proxy-core/config/load.ts'

/** `LINE:COL path: message`. */
export const withPosition = (p: ConfigProblem) => `${p.line}:${p.column} ${p.path}: ${p.message}`
/** `path: message`. */
export const pathAndMessage = (p: ConfigProblem) => `${p.path}: ${p.message}`

export async function configProblems(
  text: string,
  source: string,
  format: (p: ConfigProblem) => string,
): Promise<string[]> {
  try {
    await loadConfigText(text, source)
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map(format)
    throw e
  }
  return []
}
