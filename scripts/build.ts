// `npm run build`: esbuild bundles into dist/.
//
//   dist/sidecar/meshgate-sidecar.mjs   the sidecar (proxy-core/sidecar/main.ts), the one file the
//                                       container image carries: every dependency inside, no node_modules
//   dist/sidecar/meshgate-injector.mjs  the Kubernetes injection webhook (proxy-core/inject/main.ts), in
//                                       the same image (infra/k8s/injector runs it)
//   dist/cli/meshgate.mjs               the CLI (proxy-core/cli/main.ts), only when it bundles cleanly
//
// A bundle is clean when nothing in it needs a file beside it at run time: no dynamic import() of a
// computed name (esbuild leaves those unresolved) and no `import.meta.url`/`dirname` file lookups. The
// sidecar must be clean (the build fails otherwise); the CLI is skipped with the reason.
//
// The options live in functions so the sidecar tests bundle exactly what the image runs.

import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import type { BuildOptions, Metafile } from 'esbuild'
import { build } from 'esbuild'

export const ROOT = resolve(import.meta.dirname, '..')
export const SIDECAR_ENTRY = join(ROOT, 'proxy-core', 'sidecar', 'main.ts')
export const CLI_ENTRY = join(ROOT, 'proxy-core', 'cli', 'main.ts')
export const INJECTOR_ENTRY = join(ROOT, 'proxy-core', 'inject', 'main.ts')
export const INJECTOR_BUNDLE = 'dist/sidecar/meshgate-injector.mjs'
/** Relative to the repository root; infra/docker/Dockerfile copies this file into the image. */
export const SIDECAR_BUNDLE = 'dist/sidecar/meshgate-sidecar.mjs'
export const CLI_BUNDLE = 'dist/cli/meshgate.mjs'

/**
 * undici (and parts of the AWS SDK) are CommonJS and call require() for node built-ins; esbuild's ESM
 * output has no `require`, so the bundle makes one. The name avoids clashing with bundled code.
 */
const REQUIRE_BANNER =
  "import { createRequire as __meshgateRequire } from 'node:module'; const require = __meshgateRequire(import.meta.url);"

/** The esbuild options of one bundle: node 24, ESM, minified, every dependency inside. */
export function bundleOptions(entry: string, outfile: string): BuildOptions {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    minify: true,
    // One file; the sidecar overrides this with chunks for what loads on first use.
    splitting: false,
    banner: { js: REQUIRE_BANNER },
    legalComments: 'none',
    metafile: true,
    // The metafile's input paths are relative to this: bundleProblems reads them from ROOT, whatever
    // directory the build was started from (the benchmark builds other trees from this one).
    absWorkingDir: ROOT,
    logLevel: 'warning',
  }
}

/**
 * The sidecar is split: the entry file holds the request path, and `chunks/` the parts loaded on
 * first use (the Lambda and CloudWatch clients of the AWS SDK). A sidecar that never calls a Lambda
 * target never parses them: 11 MB less resident memory at idle (78 → 67 MB, measured with
 * /proc/PID/status on the bundle). The image copies the whole directory.
 */
export function sidecarBuildOptions(outfile = join(ROOT, SIDECAR_BUNDLE)): BuildOptions {
  const { outfile: _single, ...options } = bundleOptions(SIDECAR_ENTRY, outfile)
  return {
    ...options,
    splitting: true,
    outdir: dirname(outfile),
    entryNames: basename(outfile, '.mjs'),
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
  }
}

/** Why a bundle built from these inputs would not run on its own (one line each), or none. */
export function bundleProblems(metafile: Metafile): string[] {
  const problems: string[] = []
  for (const input of Object.keys(metafile.inputs)) {
    if (input.includes('node_modules/') || !input.endsWith('.ts')) continue
    const text = readFileSync(join(ROOT, input), 'utf8')
    const lines = text.split('\n')
    lines.forEach((line, i) => {
      if (line.trimStart().startsWith('//')) return
      // `import(x)`: a computed name. `typeof import('m')` and `import('m')` are literals and fine.
      if (/(?<![\w.])import\(\s*[^'"`\s)]/.test(line))
        problems.push(`${input}:${i + 1}: import() of a computed name is not bundled`)
      if (/import\.meta\.(url|dirname|filename)\b/.test(line))
        problems.push(`${input}:${i + 1}: looks up a file next to the source at run time`)
    })
  }
  return problems
}

/** Builds the sidecar bundle; throws when it would not run on its own. */
export async function buildSidecar(outfile = join(ROOT, SIDECAR_BUNDLE)): Promise<Metafile> {
  // Chunk names carry hashes: clear the old ones so the directory holds exactly one build.
  rmSync(dirname(outfile), { recursive: true, force: true })
  const result = await build(sidecarBuildOptions(outfile))
  const problems = bundleProblems(result.metafile!)
  if (problems.length > 0)
    throw new Error(`the sidecar bundle is not self-contained:\n${problems.join('\n')}`)
  return result.metafile!
}

/** Builds the injector bundle beside the sidecar's (after it: buildSidecar clears the directory). */
export async function buildInjector(outfile = join(ROOT, INJECTOR_BUNDLE)): Promise<void> {
  const result = await build(bundleOptions(INJECTOR_ENTRY, outfile))
  const problems = bundleProblems(result.metafile!)
  if (problems.length > 0)
    throw new Error(`the injector bundle is not self-contained:\n${problems.join('\n')}`)
}

/** Builds the CLI bundle, or removes it and returns the problems when it is not clean. */
export async function buildCli(outfile = join(ROOT, CLI_BUNDLE)): Promise<string[]> {
  const result = await build(bundleOptions(CLI_ENTRY, outfile))
  const problems = bundleProblems(result.metafile!)
  if (problems.length > 0) {
    rmSync(outfile, { force: true })
    // The directory too, when nothing else is in it.
    if (readdirSync(dirname(outfile)).length === 0) rmSync(dirname(outfile), { recursive: true })
  }
  return problems
}

function size(file: string): string {
  const bytes = statSync(file).size
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(2)} MB` : `${(bytes / 1024).toFixed(1)} KB`
}

async function main(): Promise<number> {
  const rows: string[] = []
  const sidecar = join(ROOT, SIDECAR_BUNDLE)
  try {
    await buildSidecar(sidecar)
    await buildInjector()
  } catch (err) {
    process.stderr.write(`build: ${err instanceof Error ? err.message : String(err)}\n`)
    return 1
  }
  rows.push(`${SIDECAR_BUNDLE.padEnd(36)} ${size(sidecar).padStart(10)}`)
  rows.push(`${INJECTOR_BUNDLE.padEnd(36)} ${size(join(ROOT, INJECTOR_BUNDLE)).padStart(10)}`)

  const cli = join(ROOT, CLI_BUNDLE)
  const problems = await buildCli(cli)
  if (problems.length === 0) rows.push(`${CLI_BUNDLE.padEnd(36)} ${size(cli).padStart(10)}`)
  else {
    rows.push(`${CLI_BUNDLE.padEnd(36)} ${'skipped'.padStart(10)}  (run bin/meshgate.js from the sources)`)
    for (const p of problems) rows.push(`  ${p}`)
  }
  process.stdout.write(`${rows.join('\n')}\n`)
  return 0
}

if (import.meta.main) {
  process.exitCode = await main()
}
