// The cold start each Lambda config path adds: the first invocation of a fresh container (a fresh
// process) reading its mesh config from a bundled file, from the AppConfig extension API, or from
// AppConfigData with the SDK, against the local AppConfig. Prints the median of RUNS per path.
// Run: node bench/config-source-cold-start.ts   (sources under type stripping, not the bundle)

import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { appConfigMeshSchema } from '../proxy-core/control/appconfig-schema.ts'
import { createAppConfigStore } from '../proxy-core/control/appconfig-store.ts'
import { startLocalAppConfig } from '../proxy-core/dev/appconfig-local.ts'

const RUNS = 5
const URL_ = 'appconfig://bench/prod/mesh'
const MESH = JSON.stringify({
  version: 1,
  mesh: 'bench',
  services: { reviews: { targets: { v1: { http: 'http://127.0.0.1:9' } } } },
})

// The child: build the handler, then time the first invocation (the config load happens there).
const CHILD = `
import middy from '@middy/core'
import { mesh } from '${join(import.meta.dirname, '..', 'proxy-core', 'lambda', 'index.ts')}'
const h = middy(async () => ({ statusCode: 200 })).use(mesh({ service: 'bench', config: process.env.CFG }))
const t0 = performance.now()
await h({}, { getRemainingTimeInMillis: () => 3000 })
const first = performance.now() - t0
const t1 = performance.now()
await h({}, { getRemainingTimeInMillis: () => 3000 })
process.stderr.write(JSON.stringify({ first, second: performance.now() - t1 }) + '\\n')
`

const local = await startLocalAppConfig({ host: '127.0.0.1', defaultPollIntervalSeconds: 45 })
const dir = mkdtempSync(join(tmpdir(), 'meshgate-bench-'))
const cleanup: (() => void)[] = []
const aws = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ENDPOINT_URL_APPCONFIG: local.url,
  AWS_ENDPOINT_URL_APPCONFIGDATA: local.url,
}
Object.assign(process.env, aws)
try {
  const { parseLiveConfigUrl } = await import('../proxy-core/control/config-url.ts')
  const parsed = parseLiveConfigUrl(URL_)
  if (parsed.kind !== 'appconfig') throw new Error('unreachable')
  const store = await createAppConfigStore(parsed)
  await store.init(appConfigMeshSchema())
  await store.publish(MESH, {})
  const file = join(dir, 'mesh.json')
  writeFileSync(file, MESH)
  // Inside the project (git-ignored test-artifacts/), so the child resolves @middy/core.
  const artifacts = join(import.meta.dirname, '..', 'test-artifacts')
  mkdirSync(artifacts, { recursive: true })
  const script = join(artifacts, `config-source-child-${process.pid}.mjs`)
  writeFileSync(script, CHILD)
  cleanup.push(() => rmSync(script, { force: true }))

  const paths: [string, Record<string, string>][] = [
    ['file (bundled mesh.json)', { CFG: file }],
    ['AppConfig extension API', { CFG: URL_, MESHGATE_APPCONFIG_AGENT: local.agentUrl }],
    ['AppConfigData SDK', { CFG: URL_, MESHGATE_APPCONFIG_AGENT: 'off' }],
  ]
  const run = (env: Record<string, string>) =>
    new Promise<{ first: number; second: number }>((resolve, reject) =>
      execFile(
        process.execPath,
        [script],
        { env: { ...process.env, ...env }, cwd: join(import.meta.dirname, '..') },
        (err, _o, stderr) =>
          err ? reject(new Error(stderr)) : resolve(JSON.parse(stderr.trim().split('\n').at(-1)!)),
      ),
    )
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const results: Record<string, number[]> = Object.fromEntries(paths.map(([name]) => [name, []]))
  // Interleaved, so the machine's drift spreads over all paths.
  for (let r = 0; r < RUNS; r++) for (const [name, env] of paths) results[name]!.push((await run(env)).first)
  const base = median(results[paths[0]![0]]!)
  for (const [name] of paths) {
    const m = median(results[name]!)
    process.stdout.write(
      `${name.padEnd(26)} first invocation ${m.toFixed(1)} ms (median of ${RUNS}), +${(m - base).toFixed(1)} ms over the file\n`,
    )
  }
} finally {
  await local.close()
  for (const c of cleanup) c()
  rmSync(dir, { recursive: true, force: true })
}
