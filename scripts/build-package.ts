// `npm run build:package` (and `prepack`): the published package's JavaScript and declarations.
//
//   tsc -p tsconfig.build.json   proxy-core (and what it imports) → dist/proxy-core/**.js + .d.ts;
//                                `rewriteRelativeImportExtensions` turns every literal relative `.ts`
//                                import, static or `import('./x.ts')`, into `.js`
//   declarations                 tsc leaves `.ts` in the specifiers of .d.ts files; they are rewritten
//                                to `.js` here, so a consumer's TypeScript of any version resolves them
//   assets                       files read next to the code at run time (the dev dashboard) are copied
//   checks                       no `.ts` module specifier may survive in dist/ (an import() of a
//                                computed name, a `new URL('./x.ts', import.meta.url)`, a string a
//                                later COMMANDS entry adds that tsc did not rewrite), and every
//                                `new URL('<relative>', import.meta.url)` must find its file in the
//                                build. The build fails on either.
//
// Why tsc and not esbuild: tsc alone writes the declarations, and compiling file by file keeps every
// `import.meta.url` lookup (package.json, the dashboard's files) at the same place relative to the code.
// The repository itself never runs dist/: its tests, scripts and bin/meshgate.js run the sources.

import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '..')
/** The directories of dist/ that tsc writes (dist/ also holds esbuild bundles and serverless output). */
const OUT_DIRS = ['dist/proxy-core', 'dist/functions']
/** Run-time files beside the code, source directory → the same path under dist/. */
const ASSETS = ['proxy-core/dev/dashboard']

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
}

/**
 * A relative module specifier ending in .ts/.mts/.cts, in the places a module path can be: after
 * `from`, in `import(...)`/`require(...)`, a bare `import '...'`, or `new URL('...', import.meta.url)`.
 */
const TS_SPECIFIER =
  /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bimport\s+|\bnew\s+URL\s*\(\s*)(['"`])(\.{1,2}\/[^'"`]*\.[mc]?ts)\1/g

/** Each surviving `.ts` specifier in the JavaScript and declarations under dist/, as `file:line: spec`. */
export function tsSpecifiers(root = ROOT): string[] {
  const found: string[] = []
  for (const dir of OUT_DIRS) {
    for (const file of filesUnder(join(root, dir))) {
      if (!/\.(js|d\.ts)$/.test(file)) continue
      const lines = readFileSync(file, 'utf8').split('\n')
      lines.forEach((line, i) => {
        if (line.trimStart().startsWith('//') || line.trimStart().startsWith('*')) return
        for (const m of line.matchAll(TS_SPECIFIER)) found.push(`${relative(root, file)}:${i + 1}: ${m[2]}`)
      })
    }
  }
  return found
}

/** `new URL('<relative>', import.meta.url)`: a file the code reads or runs from beside itself. */
const FILE_LOOKUP = /\bnew\s+URL\s*\(\s*(['"`])(\.{1,2}\/[^'"`$]*)\1\s*,\s*import\.meta\.url\s*\)/g

/**
 * Each file lookup in dist/'s JavaScript whose target is missing from the build, as `file:line: path`.
 * dist/ mirrors the repository one level down (dist/proxy-core/...), so `new URL('../../x', ...)`
 * finds dist/x, not the package root's x: such a file must be copied (ASSETS) or found another way
 * (the package's own name: `import.meta.resolve('meshgate/package.json')`).
 */
export function missingLookups(root = ROOT): string[] {
  const found: string[] = []
  for (const dir of OUT_DIRS) {
    for (const file of filesUnder(join(root, dir))) {
      if (!file.endsWith('.js')) continue
      const lines = readFileSync(file, 'utf8').split('\n')
      lines.forEach((line, i) => {
        if (line.trimStart().startsWith('//')) return
        for (const m of line.matchAll(FILE_LOOKUP)) {
          const target = resolve(dirname(file), m[2]!)
          if (!existsSync(target))
            found.push(`${relative(root, file)}:${i + 1}: ${m[2]} (${relative(root, target)})`)
        }
      })
    }
  }
  return found
}

/** `./x.ts` → `./x.js` in a declaration file's specifiers (only in module-path positions). */
export function rewriteDeclaration(text: string): string {
  return text.replace(
    /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]*)\.([mc]?)ts\2/g,
    (_all, lead: string, q: string, path: string, kind: string) => `${lead}${q}${path}.${kind}js${q}`,
  )
}

export function buildPackage(root = ROOT): void {
  for (const dir of OUT_DIRS) rmSync(join(root, dir), { recursive: true, force: true })
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' })
  for (const dir of OUT_DIRS) {
    for (const file of filesUnder(join(root, dir))) {
      if (!file.endsWith('.d.ts')) continue
      const text = readFileSync(file, 'utf8')
      const next = rewriteDeclaration(text)
      if (next !== text) writeFileSync(file, next)
    }
  }
  for (const asset of ASSETS) cpSync(join(root, asset), join(root, 'dist', asset), { recursive: true })
  const left = tsSpecifiers(root)
  if (left.length > 0)
    throw new Error(
      `a .ts module specifier survived the build (Node cannot load it from dist/):\n${left.join('\n')}`,
    )
  const missing = missingLookups(root)
  if (missing.length > 0)
    throw new Error(`code in dist/ looks up a file that is not in the build:\n${missing.join('\n')}`)
}

if (import.meta.main) {
  try {
    buildPackage()
    // stderr: `npm pack --json` runs this at prepack, and its stdout must stay the JSON.
    process.stderr.write(`build:package: ${OUT_DIRS.join(', ')}\n`)
  } catch (err) {
    process.stderr.write(`build:package: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
