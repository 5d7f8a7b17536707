// What mesh identity costs (issue 18), in one run on this machine:
//
// 1. verification per request with the issuer's key cached (µs): jose's jwtVerify through
//    verifyToken, for the two algorithms STS signs with (RS256, ES384), and the whole receiver
//    (authenticate → authorize → rate limit) around it;
// 2. the sidecar's inbound throughput with identity and a policy on against off, interleaved in the
//    same run (wrk, keep-alive, a loopback app), plus the inbound path of the tree before issue 18
//    (`base`, no layer list) when BASE_REF is given.
//
// The Lambda side (cold start and first call of the caller side, the receiver's first call) is in
// bench/cold-start.ts.
//
//   node bench/identity.ts [seconds per cell, default 5] [rounds, default 3]

import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { loadConfigText } from '../proxy-core/config/load.ts'
import { createMeshRuntime } from '../proxy-core/engine/runtime.ts'
import type { MeshConfig, MeshResponse } from '../proxy-core/engine/types.ts'
import {
  createReceiver,
  type GuardedCall,
  type GuardInvoke,
  verifyToken,
} from '../proxy-core/identity/index.ts'
import { importJwks } from '../proxy-core/identity/jwks.ts'
import { runWrk } from './sidecar/load.ts'

const ROOT = resolve(import.meta.dirname, '..')
const SECONDS = Number(process.argv[2] ?? 5)
const ROUNDS = Number(process.argv[3] ?? 3)
const BASE_REF = process.env.BASE_REF
void createMeshRuntime

// ---------------------------------------------------------------------------------------------
// 1. Verification per request.

const ISSUER = 'https://issuer.bench'
const AUD = 'https://bench.mesh/reviews'

async function verifyBench(alg: 'RS256' | 'ES384') {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg }
  const keys = await importJwks({ keys: [jwk] })
  const jwks = { key: async (_i: string, kid: string) => keys.get(kid), fetches: () => ({}) }
  const token = await new SignJWT({ sub: 'arn:aws:iam::123456789012:role/pp', aud: AUD, iss: ISSUER })
    .setProtectedHeader({ alg, kid: 'k' })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(privateKey)
  const opts = { issuers: [ISSUER], audience: AUD, epochNow: Date.now }
  const n = alg === 'RS256' ? 20_000 : 4_000
  for (let i = 0; i < n / 10; i++) await verifyToken(token, opts, jwks)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const v = await verifyToken(token, opts, jwks)
    if (!v.ok) throw new Error(v.problem)
  }
  return { alg, us: ((performance.now() - t0) * 1000) / n, token, jwk, privateKey }
}

async function receiverBench(jwk: object, token: string) {
  const config: MeshConfig = await loadConfigText(
    JSON.stringify({
      version: 1,
      mesh: 'bench',
      identity: { issuers: [ISSUER], audience: 'https://bench.mesh' },
      services: {
        productpage: {
          principals: ['arn:aws:iam::123456789012:role/pp'],
          targets: { v1: { http: 'http://127.0.0.1:9' } },
        },
        reviews: {
          targets: { v1: { http: 'http://127.0.0.1:9' } },
          authorization: {
            rules: [{ from: ['productpage'], match: { method: 'GET', path: { prefix: '/reviews' } } }],
          },
          rateLimit: { rps: 1e9, burst: 1e9 },
        },
      },
    }),
    'bench.json',
  )
  const receiver = createReceiver({
    config: () => config,
    clock: { now: () => performance.now() },
    fetchJwks: async () => ({ keys: [jwk] }),
    labels: { route: 'inbound' },
  })
  const ok: MeshResponse = { status: 200, headers: {}, body: null }
  const pipeline = receiver.layers<GuardedCall>().reduceRight<GuardInvoke<GuardedCall>>(
    (next, l) => l(next),
    () => Promise.resolve(ok),
  )
  const call = (): GuardedCall => ({
    service: 'reviews',
    method: 'GET',
    path: '/reviews/1',
    headers: { 'x-meshgate-identity': token },
  })
  for (let i = 0; i < 2000; i++) await pipeline(call())
  const n = 50_000
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const res = await pipeline(call())
    if (res !== ok) throw new Error(`refused: ${res.status}`)
  }
  return ((performance.now() - t0) * 1000) / n
}

const rs = await verifyBench('RS256')
const es = await verifyBench('ES384')
const whole = await receiverBench(rs.jwk, rs.token)
console.log(`node ${process.version}, ${process.platform}; jose's jwtVerify with the key cached`)
console.log(`verify RS256 (2048-bit)   ${rs.us.toFixed(1).padStart(7)} µs/request`)
console.log(`verify ES384 (P-384)      ${es.us.toFixed(1).padStart(7)} µs/request`)
console.log(
  `receiver, RS256 token     ${whole.toFixed(1).padStart(7)} µs/request (authenticate → authorize → rate limit)`,
)

// ---------------------------------------------------------------------------------------------
// 2. Sidecar throughput, identity + policy on against off, interleaved.

const work = mkdtempSync(join(ROOT, 'test-artifacts', 'identity-bench-'))
const app = createServer((_req, res) => res.end('ok'))
await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
const APP = `http://127.0.0.1:${(app.address() as AddressInfo).port}`

// The issuer the "on" sidecar fetches its JWKS from (HTTPS, self-signed): the test helper's.
const { startIdentityProvider } = await import('../test/helpers/sts-endpoint.ts')
const idp = await startIdentityProvider()
const token = await idp.sign(
  { sub: 'arn:aws:iam::123456789012:role/pp', aud: 'https://bench.mesh/reviews' },
  { expiresIn: 3600 },
)

const base = { version: 1, mesh: 'bench', accessLog: false }
const services = (extra: object) => ({
  productpage: {
    principals: ['arn:aws:iam::123456789012:role/pp'],
    targets: { v1: { http: 'http://127.0.0.1:9' } },
  },
  reviews: { targets: { v1: { http: APP } }, ...extra },
})
writeFileSync(join(work, 'off.json'), JSON.stringify({ ...base, services: services({}) }))
// The tree before issue 18 knows no `principals`.
writeFileSync(
  join(work, 'base.json'),
  JSON.stringify({ ...base, services: { reviews: { targets: { v1: { http: APP } } } } }),
)
writeFileSync(
  join(work, 'on.json'),
  JSON.stringify({
    ...base,
    identity: { issuers: [idp.issuer], audience: 'https://bench.mesh' },
    services: services({
      authorization: {
        rules: [{ name: 'pp', from: ['productpage'], match: { method: 'GET', path: { prefix: '/' } } }],
      },
      rateLimit: { rps: 1e9, burst: 1e9 },
    }),
  }),
)

/** The tree at BASE_REF, with this checkout's node_modules, for the inbound path before issue 18. */
function baseTree(): string | undefined {
  if (BASE_REF === undefined) return undefined
  const dir = join(work, 'base')
  mkdirSync(dir)
  execFileSync('sh', ['-c', `git -C ${ROOT} archive ${BASE_REF} | tar -x -C ${dir}`])
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  return dir
}
const baseRoot = baseTree()

interface Contender {
  name: string
  port: number
  pid: number
  stop(): void
  /** Resolves when the process has exited. */
  exited: Promise<void>
}

async function startSidecar(
  name: string,
  root: string,
  config: string,
  env: Record<string, string>,
): Promise<Contender> {
  const child = spawn(
    process.execPath,
    [
      join(root, 'bin', 'meshgate.js'),
      'sidecar',
      '--config',
      config,
      '--service',
      'reviews',
      '--app',
      APP,
      '--outbound',
      '127.0.0.1:0',
      '--inbound',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
    ],
    {
      cwd: root,
      env: { PATH: process.env.PATH, MESHGATE_XRAY: 'off', MESHGATE_CLOUDWATCH: 'off', ...env },
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  )
  const port = await new Promise<number>((res, rej) => {
    let out = ''
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /"event":"listening".*?"inbound":"127\.0\.0\.1:(\d+)"/.exec(out)
      if (m) res(Number(m[1]))
    })
    child.once('exit', (code) => rej(new Error(`${name} exited ${code}: ${out}`)))
  })
  child.stdout!.resume()
  return {
    name,
    port,
    pid: child.pid!,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM')
    },
    exited: new Promise<void>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) r()
      else child.once('exit', () => r())
    }),
  }
}

const contenders: Contender[] = []
process.on('exit', () => {
  for (const c of contenders) c.stop()
})
contenders.push(await startSidecar('off', ROOT, join(work, 'off.json'), {}))
contenders.push(await startSidecar('on', ROOT, join(work, 'on.json'), { MESHGATE_IDENTITY_CA: idp.caFile }))
if (baseRoot !== undefined && existsSync(join(baseRoot, 'bin', 'meshgate.js')))
  contenders.push(await startSidecar('base', baseRoot, join(work, 'base.json'), {}))

const rps: Record<string, number[]> = {}
const p50: Record<string, number[]> = {}
for (const c of contenders) {
  rps[c.name] = []
  p50[c.name] = []
  // Warm up (and, for "on", fetch the JWKS) untimed.
  await runWrk({
    cpu: null,
    url: `http://127.0.0.1:${c.port}/reviews/1`,
    connections: 16,
    seconds: 1,
    headers: { 'x-meshgate-identity': token },
  })
}
for (let round = 0; round < ROUNDS; round++) {
  for (let k = 0; k < contenders.length; k++) {
    const c = contenders[(round + k) % contenders.length]!
    const r = await runWrk({
      cpu: null,
      url: `http://127.0.0.1:${c.port}/reviews/1`,
      connections: 16,
      seconds: SECONDS,
      headers: { 'x-meshgate-identity': token },
    })
    if (r.errors > 0) throw new Error(`${c.name}: ${r.errors} errors (non-2xx or socket)`)
    rps[c.name]!.push(r.requestsPerSecond)
    p50[c.name]!.push(r.latencyMs.p50)
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
console.log(
  `\nsidecar inbound, wrk 16 connections keep-alive, ${SECONDS} s cells, ${ROUNDS} rounds interleaved`,
)
console.log('contender   req/s (median)   per round                     wrk p50 ms')
for (const c of contenders) {
  console.log(
    `${c.name.padEnd(10)}${median(rps[c.name]!).toFixed(0).padStart(12)}     ${rps[c.name]!.map((x) =>
      x.toFixed(0),
    )
      .join(' / ')
      .padEnd(30)}${median(p50[c.name]!).toFixed(3).padStart(8)}`,
  )
}
const ratios = rps.on!.map((x, i) => x / rps.off![i]!)
console.log(`on / off per round: ${ratios.map((x) => x.toFixed(2)).join(' / ')}`)
if (rps.base !== undefined)
  console.log(`off / base per round: ${rps.off!.map((x, i) => (x / rps.base![i]!).toFixed(2)).join(' / ')}`)

// The sidecars drain (nothing is in flight) and exit; their pipes would otherwise keep this alive.
for (const c of contenders) c.stop()
await Promise.all(contenders.map((c) => c.exited))
app.close()
await idp.close()
await new Promise((r) => setTimeout(r, 500))
rmSync(work, { recursive: true, force: true })
