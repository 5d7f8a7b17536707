// The sidecar's memory settings, applied by the sidecar itself however it is started (the image, `npx
// meshgate sidecar`, `meshgate dev`). V8 sizes its heap and glibc its malloc arenas when the process
// starts, so they cannot be set from inside it: when they are missing, the sidecar replaces its own
// process with one that has them (execve: same PID, same stdio, no second process), once, before it
// binds anything. What they buy is measured in docs/sidecar.md ("Memory"). An operator's own value of
// either (in NODE_OPTIONS, on node's command line, in the environment) is left as it is.

/** Node flags the sidecar runs with, unless the same flag is already given. */
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2']
/** Environment the sidecar runs with, unless the variable is already set. */
export const SIDECAR_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' }
/** Set in the relaunched process, so that it never relaunches again whatever it finds. */
const RELAUNCHED = 'MESHGATE_RELAUNCHED'

export interface Relaunch {
  /** Arguments after node's path: the added flags, node's own flags, the script and its arguments. */
  args: string[]
  env: NodeJS.ProcessEnv
}

function flagGiven(flag: string, execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const name = flag.slice(0, flag.indexOf('='))
  // `--max-semi-space-size=4`, `--max-semi-space-size 4`, and V8's `--max_semi_space_size`.
  const alt = name.replaceAll('-', '_').replace(/^__/, '--')
  const given = (arg: string) =>
    arg === name || arg === alt || arg.startsWith(`${name}=`) || arg.startsWith(`${alt}=`)
  return execArgv.some(given) || (nodeOptions ?? '').split(/\s+/).some(given)
}

/**
 * What this process should be replaced with to run with the sidecar's settings; undefined when it
 * already has them (or its operator's own), when it was relaunched already, or when there is no script
 * to run again (`node -e`).
 */
export function relaunchFor(
  argv: readonly string[],
  execArgv: readonly string[],
  env: NodeJS.ProcessEnv,
): Relaunch | undefined {
  if (env[RELAUNCHED] !== undefined || argv[1] === undefined) return undefined
  const flags = SIDECAR_NODE_FLAGS.filter((f) => !flagGiven(f, execArgv, env.NODE_OPTIONS))
  const vars = Object.entries(SIDECAR_ENV).filter(([name]) => env[name] === undefined)
  if (flags.length === 0 && vars.length === 0) return undefined
  return {
    args: [...flags, ...execArgv, ...argv.slice(1)],
    env: { ...env, ...Object.fromEntries(vars), [RELAUNCHED]: '1' },
  }
}

/** Replaces this process with the tuned one when `relaunchFor` says so; otherwise returns. */
export function relaunchTuned(): void {
  const to = relaunchFor(process.argv, process.execArgv, process.env)
  // execve is Node ≥ 23.11 and POSIX only; without it the sidecar runs untuned rather than not at all.
  if (to === undefined || process.execve === undefined) return
  process.execve(process.execPath, [process.execPath, ...to.args], to.env)
}
