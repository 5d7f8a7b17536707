// The engine core (proxy-core/engine, proxy-core/config) imports no runtime package: not directly
// (biome.json's noRestrictedImports says so in the editor) and not through anything it imports, which
// a lint rule cannot see. This follows every relative import from the core, to the end, and checks
// every module specifier on the way: static, dynamic, and process.getBuiltinModule.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CORE = ['proxy-core/engine', 'proxy-core/config']

/** Runtime packages, and the rooms above the core that hold the adapters and invokers. */
const FORBIDDEN: readonly RegExp[] = [
  /^undici(\/|$)/,
  /^@middy\//,
  /^@aws-sdk\//,
  /^aws-xray-sdk-core(\/|$)/,
  /^(node:)?(http|https|http2|net|tls|dgram|dns|child_process|worker_threads)$/,
]
const FORBIDDEN_ROOMS = [
  'proxy-core/invokers/',
  'proxy-core/lambda/',
  'proxy-core/sidecar/',
  'proxy-core/dev/',
  'proxy-core/cli/',
]

const SPECIFIER =
  /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*|getBuiltinModule\s*\(\s*)['"]([^'"]+)['"]/g

/** Every module specifier in a file, comments stripped first (they may name anything). */
function specifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
  return [...code.matchAll(SPECIFIER)].map((m) => m[1]!)
}

/** The core's files and everything they reach through relative imports; file → its specifiers. */
function reachable(): Map<string, string[]> {
  const seen = new Map<string, string[]>()
  const queue = CORE.flatMap((dir) =>
    readdirSync(join(ROOT, dir))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(ROOT, dir, f)),
  )
  while (queue.length > 0) {
    const file = queue.pop()!
    if (seen.has(file)) continue
    const specs = specifiers(readFileSync(file, 'utf8'))
    seen.set(file, specs)
    for (const s of specs) if (s.startsWith('.')) queue.push(resolve(dirname(file), s))
  }
  return seen
}

describe('engine boundaries', () => {
  it('finds specifiers in every form, and not in comments', () => {
    const src = `import a from 'undici'
import type { B } from "node:http"
// import c from '@aws-sdk/client-s3'
/* import('@middy/core') */
const d = await import('./x.ts')
const e = process.getBuiltinModule('node:net')
export { f } from '../g.ts'
import './side-effect.ts'
const url = 'http://a//b'`
    expect(specifiers(src)).toEqual([
      'undici',
      'node:http',
      './x.ts',
      'node:net',
      '../g.ts',
      './side-effect.ts',
    ])
  })

  it('the core reaches no runtime package and no adapter room, however indirectly', () => {
    const files = reachable()
    expect(files.size).toBeGreaterThan(10)
    const offences: string[] = []
    for (const [file, specs] of files) {
      const rel = relative(ROOT, file)
      if (FORBIDDEN_ROOMS.some((room) => rel.startsWith(room)))
        offences.push(`${rel} is reached from the core`)
      for (const s of specs) if (FORBIDDEN.some((re) => re.test(s))) offences.push(`${rel} imports ${s}`)
    }
    expect(offences).toEqual([])
  })
})
