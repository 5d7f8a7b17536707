// TLS between two sidecars in network namespaces (issue 18): pod A (productpage) and pod B (reviews),
// each its own namespace with its app and a real sidecar process on the default ports, joined by a
// veth link on 10.80.0.0/24. Each sidecar has a cert-manager style Secret directory (tls.crt, tls.key,
// ca.crt) issued by the mesh CA; A calls `reviews` at https://10.80.0.12:15006. A third sidecar, the
// impostor, runs in B's namespace with a certificate from another CA, to be refused both ways.
// Needs root for `ip netns`; without it the test fails and says so.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LeafCert, makeCa, makeLeaf, makeTlsDir, type TestCa } from '../helpers/certs.ts'
import { meshDir } from '../helpers/sidecar-process.ts'
import type { Netns, NetnsProcess } from '../infra/netns.ts'
import { createNetns, httpGetInNetns, removeStaleNetns, runInNetns, vethLink } from '../infra/netns.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CLI = join(ROOT, 'bin', 'meshgate.js')
const POD_APP = join(ROOT, 'test', 'infra', 'pod-app.ts')
const PROBE = join(ROOT, 'test', 'infra', 'tls-probe.ts')
const APP = '127.0.0.1:8080'
const OUTBOUND = '127.0.0.1:15001'
const ADMIN = '127.0.0.1:15000'
const PREFIX = 'mg-mtls-'
const A_IP = '10.80.0.11'
const B_IP = '10.80.0.12'
const B_INBOUND = `${B_IP}:15006`
const IMPOSTOR_INBOUND = `${B_IP}:15016`
const IMPOSTOR_OUTBOUND = '127.0.0.1:15101'
const IMPOSTOR_ADMIN = '127.0.0.1:15100'

const files = meshDir()
const certRoot = mkdtempSync(join(tmpdir(), 'meshgate-mtls-'))
const namespaces: Netns[] = []
const procs: NetnsProcess[] = []
let a: Netns
let b: Netns
let sidecarA: NetnsProcess
let sidecarB: NetnsProcess
let meshCa: TestCa
let tlsA: ReturnType<typeof makeTlsDir>
let tlsB: ReturnType<typeof makeTlsDir>

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    MESHGATE_XRAY: 'off',
    MESHGATE_CLOUDWATCH: 'off',
    ...extra,
  }
}

interface AppAnswer {
  app: string
  url: string
  headers: Record<string, string>
  downstream?: { status: number; body: AppAnswer }
}

function get(ns: Netns, url: string, host: string) {
  return httpGetInNetns(ns.name, url, { host, env: env() })
}

async function probe(ns: Netns, args: string[]): Promise<Record<string, unknown>> {
  const r = await runInNetns(ns.name, [process.execPath, PROBE, ...args], env())
  const line = r.output.split('\n').find((l) => l.startsWith('{'))
  if (line === undefined) throw new Error(`tls-probe printed nothing:\n${r.output}`)
  return JSON.parse(line) as Record<string, unknown>
}

/** B's serial as a TLS client with A's certificate sees it on a new connection. */
async function servedSerial(): Promise<unknown> {
  const r = await probe(a, ['tls', B_INBOUND, tlsA.ca, tlsA.cert, tlsA.key])
  expect(r.status).toBe(200)
  return r.serial
}

interface SidecarStats {
  tls: {
    cert: { serial: string }
    handshakeFailures: Record<string, number | undefined>
  }
  upstreamPools: Record<string, unknown>
  series: { route: string; requests: number }[]
}

async function stats(ns: Netns, admin = ADMIN): Promise<SidecarStats> {
  const r = await get(ns, `http://${admin}/stats`, 'localhost')
  return JSON.parse(r.body!) as SidecarStats
}

/** Resolves once `re` has matched `n` lines of the process's output. */
async function waitForCount(p: NetnsProcess, re: RegExp, n: number): Promise<void> {
  const global = new RegExp(re.source, 'g')
  for (let i = 0; i < 200; i++) {
    if ((p.output().match(global)?.length ?? 0) >= n) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`fewer than ${n} lines matching ${re}:\n${p.output()}`)
}

const hashOf = (leaf: LeafCert) => leaf.fingerprint.replaceAll(':', '').toLowerCase()

function startSidecar(ns: Netns, args: string[], extra: Record<string, string> = {}): NetnsProcess {
  const p = ns.node([CLI, 'sidecar', ...args], env(extra))
  procs.push(p)
  return p
}

beforeAll(async () => {
  removeStaleNetns(PREFIX)
  meshCa = makeCa(certRoot, 'mesh')
  const otherCa = makeCa(certRoot, 'other')
  tlsA = makeTlsDir(join(certRoot, 'a'), meshCa, 'productpage', ['DNS:productpage', `IP:${A_IP}`])
  tlsB = makeTlsDir(join(certRoot, 'b'), meshCa, 'reviews', ['DNS:reviews', `IP:${B_IP}`])
  // Same names, same address, another CA: only the issuer tells it apart. It trusts the mesh CA
  // besides its own, so that B's refusal of its certificate is B's doing, not its own of B's.
  const tlsImpostor = makeTlsDir(join(certRoot, 'impostor'), otherCa, 'reviews', [
    'DNS:reviews',
    `IP:${B_IP}`,
  ])
  writeFileSync(tlsImpostor.ca, readFileSync(otherCa.cert, 'latin1') + readFileSync(meshCa.cert, 'latin1'))

  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'mtls',
    services: {
      reviews: {
        targets: { v1: { http: `https://${B_INBOUND}` } },
        // No retries: each refused handshake is one attempt, and the counts below stay exact.
        routes: [{ name: 'default', to: 'v1', timeout: '10s', retries: { attempts: 0 } }],
      },
      impostor: {
        targets: { v1: { http: `https://${IMPOSTOR_INBOUND}` } },
        routes: [{ name: 'default', to: 'v1', timeout: '10s', retries: { attempts: 0 } }],
      },
    },
  })

  a = createNetns('a', PREFIX)
  namespaces.push(a)
  b = createNetns('b', PREFIX)
  namespaces.push(b)
  vethLink(a, 'eth0', `${A_IP}/24`, b, 'eth0', `${B_IP}/24`)

  const appA = a.node([POD_APP, 'productpage', APP, 'reviews', OUTBOUND], env())
  const appB = b.node([POD_APP, 'reviews', APP], env())
  procs.push(appA, appB)
  await Promise.all([appA.waitForLine(/"event":"listening"/), appB.waitForLine(/"event":"listening"/)])

  const common = ['--config', configPath, '--app', `http://${APP}`]
  sidecarA = startSidecar(a, [...common, '--service', 'productpage', '--tls-dir', tlsA.dir])
  // A short handshake timeout, so the silent-client case below ends quickly.
  sidecarB = startSidecar(b, [...common, '--service', 'reviews', '--tls-dir', tlsB.dir], {
    MESHGATE_TLS_HANDSHAKE_TIMEOUT: '1s',
  })
  const impostor = startSidecar(b, [
    ...common,
    '--service',
    'impostor',
    '--tls-dir',
    tlsImpostor.dir,
    '--inbound',
    '0.0.0.0:15016',
    '--outbound',
    IMPOSTOR_OUTBOUND,
    '--admin',
    IMPOSTOR_ADMIN,
  ])
  await Promise.all(
    [sidecarA, sidecarB, impostor].map((p) =>
      p.waitForLine(/"event":"listening".*"tls":\{"mutual":true,"mode":"strict"\}/, 20_000),
    ),
  )
}, 60_000)

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop(3000)))
  for (const ns of namespaces) ns.remove()
  files.remove()
  rmSync(certRoot, { recursive: true, force: true })
})

describe('TLS between two sidecars in network namespaces', () => {
  it("carries app → sidecar A → TLS → sidecar B → app, with A's verified certificate shown to B's app", async () => {
    const r = await get(a, `http://${APP}/reviews/0`, 'productpage')
    expect(r.status).toBe(200)
    const top = JSON.parse(r.body!) as AppAnswer
    const reviews = top.downstream!
    expect(reviews.status).toBe(200)
    expect(reviews.body.app).toBe('reviews')
    expect(reviews.body.url).toBe('/reviews/0')
    // B's sidecar saw A's client certificate, issued by the mesh CA (Envoy's x-forwarded-client-cert).
    const xfcc = reviews.body.headers['x-forwarded-client-cert']
    expect(xfcc).toContain(`Hash=${hashOf(tlsA.leaf)}`)
    expect(xfcc).toContain('DNS=productpage')
    const s = await stats(a)
    expect(Object.keys(s.upstreamPools).join()).toContain(`https://${B_INBOUND}`)
  })

  it('drops an x-forwarded-client-cert the caller wrote itself', async () => {
    const forged = await runInNetns(
      a.name,
      [
        process.execPath,
        '-e',
        `const t=require('node:tls'),f=require('node:fs');const s=t.connect({host:'${B_IP}',port:15006,ca:f.readFileSync('${tlsA.ca}'),cert:f.readFileSync('${tlsA.cert}'),key:f.readFileSync('${tlsA.key}')},()=>s.write('GET /x HTTP/1.1\\r\\nhost: reviews\\r\\nx-forwarded-client-cert: Hash=forged\\r\\nconnection: close\\r\\n\\r\\n'));let b='';s.on('data',c=>b+=c);s.on('end',()=>console.log(b.slice(b.indexOf('{'))))`,
      ],
      env(),
    )
    // The app's answer is chunked on the wire: its JSON lies between the first { and the last }.
    const out = forged.output
    const seen = JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1)) as AppAnswer
    expect(seen.headers['x-forwarded-client-cert']).toContain(`Hash=${hashOf(tlsA.leaf)}`)
    expect(seen.headers['x-forwarded-client-cert']).not.toContain('forged')
  })

  it('refuses a client whose certificate comes from another CA, and the app sees nothing', async () => {
    const before = await stats(b)
    const beforeBad = before.tls.handshakeFailures.bad_client_certificate ?? 0
    // The impostor's sidecar, in B's namespace, calls reviews (B's inbound) with its own certificate.
    const r = await get(b, `http://${IMPOSTOR_OUTBOUND}/x`, 'reviews')
    expect(r.status).toBe(503)
    expect(r.headers?.['x-meshgate-error']).toBe('upstream_unavailable')
    const after = await stats(b)
    expect(after.tls.handshakeFailures.bad_client_certificate).toBe(beforeBad + 1)
    // Nothing reached B's app through the inbound listener for this.
    const inbound = (s: SidecarStats) =>
      s.series.filter((x) => x.route === 'inbound').reduce((n, x) => n + x.requests, 0)
    expect(inbound(after)).toBe(inbound(before))
  })

  it('refuses a server whose certificate comes from another CA', async () => {
    const r = await get(a, `http://${OUTBOUND}/x`, 'impostor')
    expect(r.status).toBe(503)
    expect(r.headers?.['x-meshgate-error']).toBe('upstream_unavailable')
    // The control: the impostor does serve TLS, to a client that trusts its CA.
    const other = await probe(a, [
      'tls',
      IMPOSTOR_INBOUND,
      join(certRoot, 'impostor', 'ca.crt'),
      join(certRoot, 'impostor', 'tls.crt'),
      join(certRoot, 'impostor', 'tls.key'),
    ])
    expect(other.status).toBe(200)
  })

  it('refuses a client without a certificate', async () => {
    const r = await probe(a, ['tls', B_INBOUND, tlsA.ca])
    expect(r.status ?? null).toBeNull()
    expect((await stats(b)).tls.handshakeFailures.no_client_certificate).toBeGreaterThanOrEqual(1)
  })

  it('cuts off cleartext HTTP, garbage and a silent client, and keeps serving', async () => {
    const hex = (text: string) => Buffer.from(text, 'latin1').toString('hex')
    const plain = await probe(a, ['raw', B_INBOUND, hex('GET / HTTP/1.1\r\nhost: reviews\r\n\r\n')])
    expect(plain.closedBy).toBe('server')
    expect(plain.reply).not.toMatch(/^HTTP\/1\.1 200/)
    // A TLS record header, then bytes that are no handshake.
    const garbage = await probe(a, ['raw', B_INBOUND, hex('\x16\x03\x01\x00\x05hello garbage \x00\xff\xfe')])
    expect(garbage.closedBy).toBe('server')
    // Says nothing at all: the handshake timeout (1 s here) ends it, not the probe's own 10 s.
    const silent = await probe(a, ['silent', B_INBOUND])
    expect(silent.closedBy).toBe('server')
    const failures = (await stats(b)).tls.handshakeFailures
    expect(failures.timeout).toBeGreaterThanOrEqual(1)
    expect(failures.protocol).toBeGreaterThanOrEqual(2)
    const r = await get(a, `http://${APP}/after`, 'productpage')
    expect(r.status).toBe(200)
    expect(sidecarB.child.exitCode).toBeNull()
  })

  it("swaps B's rotated certificate in for new connections, without a restart", async () => {
    const old = await servedSerial()
    expect(old).toBe(tlsB.leaf.serial)
    const next = makeLeaf(certRoot, meshCa, 'reviews-next', ['DNS:reviews', `IP:${B_IP}`], tlsB)
    await waitForCount(sidecarB, /"type":"tls_reloaded"/, 1)
    expect(await servedSerial()).toBe(next.serial)
    expect(next.serial).not.toBe(old)
    tlsB.leaf = next
    const r = await get(a, `http://${APP}/rotated`, 'productpage')
    expect(r.status).toBe(200)
    expect((await stats(b)).tls.cert.serial).toBe(next.serial)
  })

  it("presents A's rotated client certificate on its next connections", async () => {
    const next = makeLeaf(certRoot, meshCa, 'productpage-next', ['DNS:productpage', `IP:${A_IP}`], tlsA)
    await waitForCount(sidecarA, /"type":"tls_reloaded"/, 1)
    const r = await get(a, `http://${APP}/rotated`, 'productpage')
    const seen = (JSON.parse(r.body!) as AppAnswer).downstream!.body
    expect(seen.headers['x-forwarded-client-cert']).toContain(`Hash=${hashOf(next)}`)
    tlsA.leaf = next
  })

  it('refuses a half-written certificate and a key that is not its own, and keeps serving the last good pair', async () => {
    const serving = tlsB.leaf.serial
    const full = readFileSync(tlsB.cert, 'latin1')
    // Written in place, cut off mid-certificate: what a watcher may see during a slow copy.
    writeFileSync(tlsB.cert, full.slice(0, Math.floor(full.length / 2)))
    await waitForCount(sidecarB, /"type":"tls_rejected"/, 1)
    expect(await servedSerial()).toBe(serving)
    writeFileSync(tlsB.cert, full)
    // A key from another certificate, renamed over tls.key.
    const stray = makeLeaf(certRoot, meshCa, 'stray', ['DNS:stray'])
    writeFileSync(tlsB.key, readFileSync(stray.key))
    await waitForCount(sidecarB, /"type":"tls_rejected"/, 2)
    expect(await servedSerial()).toBe(serving)
    const metrics = await get(b, `http://${ADMIN}/metrics`, 'localhost')
    expect(metrics.body).toMatch(/^meshgate_tls_rejected_total [2-9]/m)
    expect(metrics.body).toMatch(/^meshgate_tls_reloads_total 1$/m)
    // The good pair again: taken (the files now match the serving certificate: nothing to swap).
    const good = makeLeaf(certRoot, meshCa, 'reviews-good', ['DNS:reviews', `IP:${B_IP}`], tlsB)
    await waitForCount(sidecarB, /"type":"tls_reloaded"/, 2)
    expect(await servedSerial()).toBe(good.serial)
  })
})
