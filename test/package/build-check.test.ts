// The build's guard (scripts/build-package.ts): a `.ts` module specifier left in dist/ fails the build,
// wherever tsc's rewriting does not reach; declarations get `.js` specifiers.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { missingLookups, rewriteDeclaration, tsSpecifiers } from '../../scripts/build-package.ts'

let root: string | undefined
afterEach(() => {
  if (root !== undefined) rmSync(root, { recursive: true, force: true })
})

function distWith(files: Record<string, string>): string {
  root = mkdtempSync(join(tmpdir(), 'meshgate-build-check-'))
  for (const [path, text] of Object.entries(files)) {
    const file = join(root, 'dist', 'proxy-core', path)
    mkdirSync(join(file, '..'), { recursive: true })
    writeFileSync(file, text)
  }
  return root
}

describe('tsSpecifiers', () => {
  it('finds each kind of .ts module specifier that Node could not load from dist/', () => {
    const dir = distWith({
      'cli/main.js': [
        "import { a } from './a.js'",
        "const m = await import('./late.ts')",
        'const w = new URL(`./worker.ts`, import.meta.url)',
        "export * from '../x.mts'",
        "import './side-effect.ts'",
        "// import('./only-a-comment.ts')",
        "const text = 'a string that mentions ./x.ts is not a specifier'",
      ].join('\n'),
      'cli/main.d.ts': "export type { A } from './a.ts';\n",
    })
    expect(tsSpecifiers(dir).sort()).toEqual(
      [
        'dist/proxy-core/cli/main.d.ts:1: ./a.ts',
        'dist/proxy-core/cli/main.js:2: ./late.ts',
        'dist/proxy-core/cli/main.js:3: ./worker.ts',
        'dist/proxy-core/cli/main.js:4: ../x.mts',
        'dist/proxy-core/cli/main.js:5: ./side-effect.ts',
      ].sort(),
    )
  })

  it('passes compiled output whose specifiers are all .js', () => {
    const dir = distWith({ 'a.js': "import { b } from './b.js'\nconst c = await import('./c.js')\n" })
    expect(tsSpecifiers(dir)).toEqual([])
  })
})

describe('missingLookups', () => {
  it('finds a file looked up beside the code that the build does not hold', () => {
    const dir = distWith({
      'dev/server.js': "const dir = new URL('./assets/', import.meta.url)\n",
      'dev/assets/index.html': '<!doctype html>',
      // From the sources, ../../ is the package root; from dist/proxy-core/cli/ it is dist/.
      'cli/publish.js': "const schema = new URL('../../mesh.schema.json', import.meta.url)\n",
    })
    expect(missingLookups(dir)).toEqual([
      'dist/proxy-core/cli/publish.js:1: ../../mesh.schema.json (dist/mesh.schema.json)',
    ])
  })
})

describe('rewriteDeclaration', () => {
  it('turns relative .ts specifiers into .js, and leaves packages and strings alone', () => {
    const text = [
      "import type { A } from './a.ts';",
      "export { B } from '../b/index.ts';",
      "export type C = typeof import('./c.mts');",
      "import type { D } from 'aws-lambda';",
      "declare const s: './not-a-specifier.ts';",
    ].join('\n')
    expect(rewriteDeclaration(text).split('\n')).toEqual([
      "import type { A } from './a.js';",
      "export { B } from '../b/index.js';",
      "export type C = typeof import('./c.mjs');",
      "import type { D } from 'aws-lambda';",
      "declare const s: './not-a-specifier.ts';",
    ])
  })
})
