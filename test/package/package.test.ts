// The package as a user gets it: `npm pack` (which builds dist/ at prepack), the tarball installed into a
// scratch project in the temp directory (outside the repository, so nothing resolves to the sources),
// and there: a middy handler with `meshgate/lambda` on plain Node 24, `npx meshgate validate`, and a
// strict `module: nodenext` TypeScript file using `mesh()` and `startSidecar` type-checked by tsc.
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '../..')
/** The project's Node 24 (node_modules/.bin/node): "plain Node 24", no loader, no flags. */
const NODE = process.execPath
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

interface PackResult {
  filename: string
  files: { path: string }[]
}

let work: string
let app: string
let packed: PackResult
/** The scratch project's environment: the project's Node first on PATH, as `npx` in the repo has it. */
let env: NodeJS.ProcessEnv

function installedVersion(name: string): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'))
  return pkg.version as string
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'meshgate-package-'))
  env = { ...process.env, PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}`, NO_COLOR: '1' }
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: ROOT,
    env,
    maxBuffer: 16 * 1024 * 1024,
  })
  packed = (JSON.parse(stdout) as PackResult[])[0]!

  app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }))
  // The versions the repository was tested with; --prefer-offline takes them from npm's cache.
  // @aws/durable-execution-sdk-js is @middy/core's peer: its own .d.ts import it (skipLibCheck is off).
  await run(
    'npm',
    [
      'install',
      join(work, packed.filename),
      `@middy/core@${installedVersion('@middy/core')}`,
      `@types/node@${installedVersion('@types/node')}`,
      '@aws/durable-execution-sdk-js@2',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--loglevel=error',
    ],
    { cwd: app, env },
  )
}, 180_000)

afterAll(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true })
})

describe('the packed tarball', () => {
  it('holds the compiled package and no tests, benchmarks, CI or scripts', () => {
    const paths = packed.files.map((f) => f.path)
    expect(paths).toContain('dist/proxy-core/lambda/index.js')
    expect(paths).toContain('dist/proxy-core/lambda/index.d.ts')
    expect(paths).toContain('bin/meshgate.js')
    expect(paths).toContain('mesh.schema.json')
    const unwanted = paths.filter(
      (p) =>
        /^(test|bench|\.ci|scripts|infra|functions|proxy-core|node_modules)\//.test(p) ||
        /\.test\.[cm]?[jt]s$/.test(p) ||
        (p.endsWith('.ts') && !p.endsWith('.d.ts')),
    )
    expect(unwanted).toEqual([])
  })
})

describe('installed from the tarball', () => {
  it('runs a middy handler with meshgate/lambda on plain Node 24, routing to a real upstream', async () => {
    // The script starts its own upstream on port 0 and writes the mesh config with that port, so the
    // call goes through the compiled engine, the lazily imported HTTP invoker and back.
    writeFileSync(
      join(app, 'handler.mjs'),
      `import { createServer } from 'node:http'
import { writeFileSync } from 'node:fs'
import middy from '@middy/core'
import { mesh } from 'meshgate/lambda'

const upstream = createServer((req, res) => res.end('cart saw ' + req.url))
await new Promise((r) => upstream.listen(0, '127.0.0.1', r))
const port = upstream.address().port
writeFileSync('mesh.json', JSON.stringify({
  version: 1, mesh: 'shop',
  services: { cart: { targets: { v1: { http: 'http://127.0.0.1:' + port } }, routes: [{ name: 'all', to: 'v1' }] } },
}))
const handler = middy(async (_event, context) => {
  const res = await context.mesh.fetch('http://cart/items/7')
  return { statusCode: res.status, body: await res.text() }
}).use(mesh({ service: 'checkout', config: 'mesh.json' }))
const result = await handler({}, { functionName: 'checkout', awsRequestId: 'r1', getRemainingTimeInMillis: () => 3000 })
upstream.close()
process.stdout.write('RESULT ' + JSON.stringify(result) + '\\n')
`,
    )
    const { stdout } = await run(NODE, ['handler.mjs'], { cwd: app, env })
    const line = stdout.split('\n').find((l) => l.startsWith('RESULT '))
    expect(JSON.parse(line!.slice('RESULT '.length))).toEqual({ statusCode: 200, body: 'cart saw /items/7' })
  })

  it('npx meshgate validate checks a file: exit 0 when valid, the problem at its line and column when not', async () => {
    writeFileSync(
      join(app, 'good.yaml'),
      'version: 1\nmesh: m\nservices:\n  a:\n    targets: { v1: { http: http://a:80 } }\n',
    )
    writeFileSync(
      join(app, 'bad.yaml'),
      'version: 1\nmesh: m\nservices:\n  a:\n    targets: { v1: { http: nope } }\n',
    )
    const good = await run('npx', ['meshgate', 'validate', 'good.yaml'], { cwd: app, env })
    expect(good.stdout).toContain('good.yaml: mesh m, 1 services')
    const bad = await run('npx', ['meshgate', 'validate', 'bad.yaml'], { cwd: app, env }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    )
    expect(bad?.code).toBe(1)
    expect(bad?.stderr).toContain('bad.yaml:5:28: services.a.targets.v1.http:')
    const version = await run('npx', ['meshgate', '--version'], { cwd: app, env })
    expect(version.stdout).toBe(
      `meshgate ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}\n`,
    )
  })

  it('type-checks a strict nodenext consumer of mesh() and startSidecar, and catches its misuse', async () => {
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2024',
          types: ['node'],
          noEmit: true,
          // Off: the package's own .d.ts files are checked too, not only trusted.
          skipLibCheck: false,
        },
        files: ['consumer.ts', 'misuse.ts'],
      }),
    )
    writeFileSync(
      join(app, 'consumer.ts'),
      `import middy from '@middy/core'
import type { Context } from 'aws-lambda'
import { loadConfig, type MeshConfig } from 'meshgate'
import { gatewayHandler, mesh } from 'meshgate/lambda'
import { type Sidecar, startSidecar } from 'meshgate/sidecar'

export const handler = middy(async (_event: unknown, context: Context) => {
  const res: Response = await context.mesh.fetch('http://reviews/reviews/0', { headers: { 'end-user': 'jason' } })
  return { statusCode: res.status, body: await res.text() }
}).use(mesh({ service: 'productpage' }))

export { gatewayHandler }

export async function sidecar(): Promise<MeshConfig> {
  const s: Sidecar = await startSidecar({ configPath: 'mesh.yaml', service: 'reviews', app: 'http://127.0.0.1:8080' })
  const inbound: string | null = s.addresses.inbound
  await s.close()
  return inbound === null ? loadConfig('mesh.yaml') : s.config()
}
`,
    )
    // The types are real, not \`any\`: a wrong option and a wrong argument are errors.
    writeFileSync(
      join(app, 'misuse.ts'),
      `import { mesh } from 'meshgate/lambda'
import { startSidecar } from 'meshgate/sidecar'

mesh({ service: 42 })
startSidecar({ service: 'reviews' })
`,
    )
    const result = await run(NODE, [TSC, '-p', '.'], { cwd: app, env }).then(
      () => ({ stdout: '' }),
      (e: { stdout: string }) => e,
    )
    const errors = result.stdout
      .split('\n')
      .filter((l) => /error TS\d+/.test(l))
      .map((l) => l.replace(/: error (TS\d+):.*/, ' $1'))
    expect(errors).toEqual(['misuse.ts(4,8) TS2322', 'misuse.ts(5,14) TS2345'])
  })
})
