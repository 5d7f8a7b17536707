// Cold start of a Lambda handler: bare, wrapped with middy + mesh() (routing to HTTP targets only), and
// wrapped with middy + Powertools Tracer and Metrics. Each is bundled with esbuild the way
// serverless.yml bundles functions (ESM, minified, @aws-sdk/* external), then many fresh `node`
// processes import it, variants interleaved (A B C A B C ...) because this machine's speed drifts.
//
// init        = inside the child, performance.now() around `await import(bundle)` until the handler
//               export is there (parse + compile + module evaluation, what Lambda's Init phase pays)
// first call  = the first handler invocation, with no outbound call (mesh() loads and compiles its
//               config here, lazily)
// first fetch = the next invocation, the first to call another service: the bare handler and
//               Powertools with the global `fetch`, mesh() with `context.mesh.fetch` (routing, then
//               node:http from process.getBuiltinModule); all to one loopback upstream in this process
// warm fetch  = the invocation after that, for scale
//
// Two more variants price mesh identity (issue 18), with a local STS and HTTPS issuer in this process:
// `mesh+caller`, the same function in a mesh with `identity` (its first fetch also loads the caller
// side and the STS client and mints a token from the local STS), and `mesh+receiver`, a function whose
// service has an authorization policy and whose events carry a token (its first call also loads jose,
// fetches the JWKS over HTTPS and verifies).
//
//   node bench/cold-start.ts [runs per variant, default 60]
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import { build } from 'esbuild'
import { startIdentityProvider } from '../test/helpers/sts-endpoint.ts'

const ROOT = resolve(import.meta.dirname, '..')
const RUNS = Number(process.argv[2] ?? 60)
// Under the repository: the bundles keep @aws-sdk/* external (the Lambda runtime provides it), and
// the STS client is then found in node_modules.
mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true })
const work = mkdtempSync(join(ROOT, 'test-artifacts', 'meshgate-cold-'))

// The upstream every variant's outbound call reaches (loopback, answers at once).
const upstream = createServer((_req, res) => res.end('{"stars":5}'))
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
const UPSTREAM = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

// The same handler body in every variant; `event.call` makes the one outbound call.
const sources: Record<string, string> = {
  bare: `
export const handler = async (event) => {
  if (event.call) {
    const res = await fetch(process.env.BENCH_UPSTREAM + '/ratings/0')
    return { statusCode: res.status, body: await res.text() }
  }
  return { statusCode: 200, body: JSON.stringify({ ok: true, path: event.rawPath }) }
}
`,
  mesh: `
import middy from '@middy/core'
import { mesh } from ${JSON.stringify(join(ROOT, 'proxy-core/lambda/index.ts'))}
export const handler = middy(async (event, context) => {
  if (event.call) {
    const res = await context.mesh.fetch('http://ratings/ratings/0')
    return { statusCode: res.status, body: await res.text() }
  }
  return { statusCode: 200, body: JSON.stringify({ ok: true, path: event.rawPath }) }
}).use(mesh({ service: 'reviews' }))
`,
  powertools: `
import middy from '@middy/core'
import { Tracer } from '@aws-lambda-powertools/tracer'
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware'
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics'
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware'
const tracer = new Tracer({ serviceName: 'reviews' })
const metrics = new Metrics({ namespace: 'bench', serviceName: 'reviews' })
export const handler = middy(async (event) => {
  metrics.addMetric('calls', MetricUnit.Count, 1)
  if (event.call) {
    const res = await fetch(process.env.BENCH_UPSTREAM + '/ratings/0')
    return { statusCode: res.status, body: await res.text() }
  }
  return { statusCode: 200, body: JSON.stringify({ ok: true, path: event.rawPath }) }
}).use(captureLambdaHandler(tracer)).use(logMetrics(metrics))
`,
}
sources['mesh+caller'] = sources.mesh!
sources['mesh+receiver'] = sources.mesh!
const variants = Object.keys(sources)

// Only HTTP targets: the Lambda client is never loaded.
const meshConfig = {
  version: 1,
  mesh: 'bench',
  services: {
    ratings: { targets: { v1: { http: UPSTREAM } } },
    reviews: {
      targets: {
        v1: { http: 'http://127.0.0.1:9' },
        v2: { http: ['http://127.0.0.1:9', 'http://127.0.0.1:10'] },
      },
      routes: [
        { name: 'jason', match: { headers: { 'end-user': 'jason' } }, to: 'v2' },
        { name: 'default', match: { path: { prefix: '/' } }, to: { v1: 90, v2: 10 }, timeout: '3s' },
      ],
    },
  },
}
const configPath = join(work, 'mesh.json')
writeFileSync(configPath, JSON.stringify(meshConfig))

const idp = await startIdentityProvider()
idp.identities.set('AKIDBENCH', {
  role: 'arn:aws:iam::123456789012:role/bench',
  functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:bench',
})
const identity = { issuers: [idp.issuer], audience: 'https://bench.mesh' }
const callerConfig = join(work, 'mesh-caller.json')
writeFileSync(callerConfig, JSON.stringify({ ...meshConfig, identity }))
const receiverConfig = join(work, 'mesh-receiver.json')
writeFileSync(
  receiverConfig,
  JSON.stringify({
    ...meshConfig,
    identity,
    services: {
      ...meshConfig.services,
      productpage: { principals: ['bench-caller'], targets: { v1: { http: UPSTREAM } } },
      reviews: { ...meshConfig.services.reviews, authorization: { rules: [{ from: ['productpage'] }] } },
    },
  }),
)
// Valid for the whole run (an hour); the receiver's first call verifies it.
const benchToken = await idp.sign(
  {
    sub: 'arn:aws:iam::123456789012:role/shared',
    aud: 'https://bench.mesh/reviews',
    'https://sts.amazonaws.com/': {
      lambda_source_function_arn: 'arn:aws:lambda:us-east-1:123456789012:function:bench-caller',
    },
  },
  { expiresIn: 3600 },
)
const variantEnv: Record<string, Record<string, string>> = {
  'mesh+caller': {
    MESHGATE_CONFIG: callerConfig,
    AWS_ACCESS_KEY_ID: 'AKIDBENCH',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_ENDPOINT_URL_STS: idp.stsUrl,
  },
  'mesh+receiver': {
    MESHGATE_CONFIG: receiverConfig,
    MESHGATE_IDENTITY_CA: idp.caFile,
    BENCH_TOKEN: benchToken,
  },
}

// The child: time the import, the first invocation, the first and a warm outbound call.
const runner = join(work, 'runner.mjs')
writeFileSync(
  runner,
  `
const t0 = performance.now()
const mod = await import(process.argv[2])
if (typeof mod.handler !== 'function') throw new Error('no handler export')
const t1 = performance.now()
const event = { version: '2.0', rawPath: '/reviews/0', rawQueryString: '',
  headers: process.env.BENCH_TOKEN ? { 'x-meshgate-identity': process.env.BENCH_TOKEN } : {},
  requestContext: { http: { method: 'GET', path: '/reviews/0', sourceIp: '127.0.0.1' } } }
const context = { functionName: 'bench', awsRequestId: '1', getRemainingTimeInMillis: () => 30000 }
const write = process.stdout.write.bind(process.stdout)
process.stdout.write = () => true // EMF lines: not part of the report
// A fresh event per invocation, as Lambda delivers them (the receiver strips the token from it).
const ev = (extra) => ({ ...event, headers: { ...event.headers }, ...extra })
await mod.handler(ev({}), context)
const t2 = performance.now()
const first = await mod.handler(ev({ call: true }), context)
const t3 = performance.now()
const warm = await mod.handler(ev({ call: true }), context)
const t4 = performance.now()
if (first.statusCode !== 200 || warm.statusCode !== 200) throw new Error('call failed: ' + JSON.stringify(first))
write(JSON.stringify({ init: t1 - t0, firstCall: t2 - t1, firstFetch: t3 - t2, warmFetch: t4 - t3 }))
`,
)

// bytes: the entry file, what init parses; lazy: chunks loaded only on demand (mesh(): the Lambda
// invoker, on the first call to a Lambda target; never for this HTTP-only function).
const bundles: Record<string, { file: string; bytes: number; lazy: number }> = {}
for (const name of variants) {
  const entry = join(work, `${name}.ts`)
  writeFileSync(entry, sources[name]!)
  const outdir = join(work, name)
  const result = await build({
    entryPoints: [entry],
    outdir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    minify: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    external: ['@aws-sdk/*', 'yaml'],
    absWorkingDir: ROOT,
    nodePaths: [join(ROOT, 'node_modules')],
    logLevel: 'error',
    metafile: true,
    // Powertools and the X-Ray SDK are CommonJS inside; give that ESM bundle a require().
    ...(name === 'powertools'
      ? {
          banner: {
            js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);",
          },
        }
      : {}),
  })
  const file = join(outdir, `${name}.mjs`)
  let lazy = 0
  for (const [out, meta] of Object.entries(result.metafile.outputs)) {
    if (resolve(ROOT, out) !== file) lazy += meta.bytes
  }
  bundles[name] = { file, bytes: statSync(file).size, lazy }
}

const childEnv = {
  ...process.env,
  MESHGATE_CONFIG: configPath,
  BENCH_UPSTREAM: UPSTREAM,
  AWS_LAMBDA_FUNCTION_NAME: 'bench',
  AWS_REGION: 'us-east-1',
  POWERTOOLS_SERVICE_NAME: 'reviews',
  AWS_XRAY_CONTEXT_MISSING: 'IGNORE_ERROR',
  AWS_XRAY_LOG_LEVEL: 'silent',
}

type Sample = { init: number; firstCall: number; firstFetch: number; warmFetch: number }
type Measure = keyof Sample

function runOnce(file: string, variant: string): Promise<Sample> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [runner, file], {
      env: { ...childEnv, ...variantEnv[variant] },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString()
    })
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`child failed (${code}): ${err}`))
      else resolvePromise(JSON.parse(out.slice(out.lastIndexOf('{"init"'))))
    })
  })
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  const pos = (s.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo)
}

// A bare `node` start, for scale.
const nodeStart: number[] = []
const samples: Record<string, Record<Measure, number[]>> = {}
for (const v of variants) samples[v] = { init: [], firstCall: [], firstFetch: [], warmFetch: [] }
// Warm the page cache once per variant, untimed.
for (const v of variants) await runOnce(bundles[v]!.file, v)
for (let round = 0; round < RUNS; round++) {
  // Rotate the order each round so no variant always runs right after another.
  for (let k = 0; k < variants.length; k++) {
    const v = variants[(round + k) % variants.length]!
    const r = await runOnce(bundles[v]!.file, v)
    for (const k of Object.keys(r) as Measure[]) samples[v]![k].push(r[k])
  }
  if (round % 10 === 0) {
    const t = process.hrtime.bigint()
    execFileSync(process.execPath, ['-e', '0'])
    nodeStart.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
}

const med = (v: string, k: Measure) => quantile(samples[v]![k], 0.5)
const kb = (b: number) => b / 1024
const fmt = (n: number, d = 1) => n.toFixed(d).padStart(8)

console.log(
  `cold start, ${RUNS} fresh processes per variant, interleaved; node ${process.version}, ${process.platform}`,
)
console.log(`(a bare \`node -e 0\` takes ~${quantile(nodeStart, 0.5).toFixed(0)} ms here, whole process)\n`)
console.log(
  'variant        bundle KB  init p50   p25..p75 ms      first call  first fetch  warm fetch  lazy chunks KB',
)
for (const v of variants) {
  const s = samples[v]!
  console.log(
    `${v.padEnd(13)}${fmt(kb(bundles[v]!.bytes))}${fmt(med(v, 'init'), 2)}   ${quantile(s.init, 0.25).toFixed(2)}..${quantile(s.init, 0.75).toFixed(2)}`.padEnd(
      58,
    ) +
      fmt(med(v, 'firstCall'), 2).padStart(12) +
      fmt(med(v, 'firstFetch'), 2).padStart(13) +
      fmt(med(v, 'warmFetch'), 2).padStart(12) +
      fmt(kb(bundles[v]!.lazy)).padStart(16),
  )
}
console.log('(medians, ms; first call: the first invocation, no outbound call; first fetch: the next one,')
console.log(" whose outbound call is the process's first; bare and Powertools use fetch, mesh() mesh.fetch)")

const meshInit = med('mesh', 'init') - med('bare', 'init')
const ptInit = med('powertools', 'init') - med('bare', 'init')
const meshKb = kb(bundles.mesh!.bytes - bundles.bare!.bytes)
const ptKb = kb(bundles.powertools!.bytes - bundles.bare!.bytes)
console.log('\nover bare            init ms   bundle KB')
console.log(`middy + mesh()     ${fmt(meshInit, 2)}  ${fmt(meshKb)}`)
console.log(`middy + Powertools ${fmt(ptInit, 2)}  ${fmt(ptKb)}`)
console.log(`mesh() / Powertools init added: ${(meshInit / ptInit).toFixed(2)}`)
// The first outbound call, over the bare handler's first fetch; config loading (first call) apart.
const meshFetch = med('mesh', 'firstFetch') - med('bare', 'firstFetch')
const ptFetch = med('powertools', 'firstFetch') - med('bare', 'firstFetch')
console.log(
  `\nfirst outbound call over bare fetch: mesh.fetch ${meshFetch.toFixed(2)} ms, Powertools ${ptFetch.toFixed(2)} ms`,
)
// Identity: what the caller side adds to the first outbound call, and the receiver to the first call.
const callerFetch = med('mesh+caller', 'firstFetch') - med('mesh', 'firstFetch')
const callerInit = med('mesh+caller', 'init') - med('mesh', 'init')
const receiverFirst = med('mesh+receiver', 'firstCall') - med('mesh', 'firstCall')
const receiverWarm = med('mesh+receiver', 'warmFetch') - med('mesh', 'warmFetch')
console.log('\nidentity over mesh()       ms')
console.log(`caller: init            ${fmt(callerInit, 2)}   (nothing identity-related loads at init)`)
console.log(
  `caller: first fetch     ${fmt(callerFetch, 2)}   (loads the caller side + STS client, mints from a loopback STS)`,
)
console.log(
  `receiver: first call    ${fmt(receiverFirst, 2)}   (loads jose, fetches the JWKS over loopback HTTPS, verifies)`,
)
console.log(`receiver: warm call     ${fmt(receiverWarm, 2)}   (verifies the cached-key token again)`)
const checks = [
  [`the first mesh.fetch costs <= 10 ms over the bare handler's first fetch`, meshFetch <= 10],
  [`mesh() adds <= 10 ms of init`, meshInit <= 10],
  [`mesh() adds <= 60 KB of bundle`, meshKb <= 60],
  [`mesh() adds < 1/3 of the init Powertools Tracer + Metrics add`, meshInit < ptInit / 3],
] as const
console.log('')
for (const [what, ok] of checks) console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}`)

upstream.close()
await idp.close()
rmSync(work, { recursive: true, force: true })
