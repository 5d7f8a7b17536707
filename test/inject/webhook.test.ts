// `meshgate injector` as a real HTTPS server on loopback: AdmissionReviews built from real manifests
// (the repo's productpage and two written the way teams write them), each patched pod checked against
// Kubernetes' schemas, the patch applied twice, opt-outs, hostile requests, and a certificate rotated
// under a running server.

import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { connect } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Injector } from '../../proxy-core/inject/index.ts'
import { defaultSettings, startInjector } from '../../proxy-core/inject/index.ts'
import { buildInjector } from '../../scripts/build.ts'
import { makeCert } from '../helpers/certs.ts'
import { applyPatch } from './apply-patch.ts'
import { validatePod } from './k8s-schema.ts'
import type { WorkloadPod } from './workloads.ts'
import { admissionReview, httpsCall, readDocs, reviewResponse, workloadPods } from './workloads.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const IMAGE = 'registry.example.com/meshgate-sidecar:0.1.0'
type Json = Record<string, unknown>

const pods: WorkloadPod[] = [
  join(ROOT, 'infra', 'k8s', 'src', 'productpage.yaml'),
  join(import.meta.dirname, 'fixtures', 'orders.yaml'),
  join(import.meta.dirname, 'fixtures', 'batch.yaml'),
].flatMap((f) => workloadPods(readDocs(readFileSync(f, 'utf8'))))
const podOf = (workload: string) => structuredClone(pods.find((p) => p.workload === workload)!.pod)

let dir: string
let tls: { cert: string; key: string }
let injector: Injector
let ca: Buffer
const events: Json[] = []
let wake: (() => void) | undefined

/** The index of the first `event` logged at or after `from`, waiting for it if need be. */
async function eventAfter(event: string, from: number): Promise<number> {
  for (;;) {
    const i = events.findIndex((e, j) => j >= from && e.event === event)
    if (i >= 0) return i
    await new Promise<void>((r) => (wake = r))
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshgate-injector-'))
  mkdirSync(join(dir, 'tls'))
  mkdirSync(join(dir, 'staging'))
  tls = { cert: join(dir, 'tls', 'tls.crt'), key: join(dir, 'tls', 'tls.key') }
  makeCert(join(dir, 'staging'), 'first', tls)
  ca = readFileSync(tls.cert)
  injector = await startInjector({
    host: '127.0.0.1',
    port: 0,
    certFile: tls.cert,
    keyFile: tls.key,
    settings: defaultSettings(IMAGE),
    log: (line) => {
      events.push(JSON.parse(line) as Json)
      wake?.()
    },
  })
})

afterAll(async () => {
  await injector?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function review(body: unknown) {
  const answer = await httpsCall(injector.port, ca, { body: JSON.stringify(body) })
  expect(answer.status).toBe(200)
  return reviewResponse(answer)
}

/** The pod after the webhook's answer to its review (unchanged when there is no patch). */
async function mutate(pod: Json) {
  const r = await review(admissionReview(pod))
  expect(r.allowed).toBe(true)
  return { response: r, pod: r.patch === undefined ? pod : (applyPatch(pod, r.patch) as Json) }
}

type Container = { name: string; env?: { name: string; value?: string }[]; [k: string]: unknown }
const spec = (pod: Json) =>
  pod.spec as { initContainers?: Container[]; containers: Container[]; [k: string]: unknown }
const sidecarOf = (pod: Json) => spec(pod).initContainers!.find((c) => c.name === 'meshgate')!
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]))

describe('meshgate injector, over HTTPS', () => {
  it('answers /healthz', async () => {
    const a = await httpsCall(injector.port, ca, { method: 'GET', path: '/healthz' })
    expect(a.status).toBe(200)
    expect(a.body.trim()).toBe('ok')
  })

  it('patches every pod of the manifests into one Kubernetes accepts, and the patch twice changes nothing', async () => {
    expect(pods.map((p) => p.workload)).toEqual([
      'Deployment/productpage',
      'Deployment/orders',
      'StatefulSet/ledger',
      'CronJob/nightly-report',
      'DaemonSet/node-exporter',
      'Pod/debug-shell',
    ])
    for (const { workload, pod } of pods) {
      const { response, pod: patched } = await mutate(pod)
      expect(response.uid).toMatch(/^705ab4f5-/)
      if (workload === 'DaemonSet/node-exporter') {
        expect(response.patch, workload).toBeUndefined()
        continue
      }
      expect(response.patchType, workload).toBe('JSONPatch')
      expect(() => validatePod(patched), workload).not.toThrow()
      expect(applyPatch(patched, response.patch!), workload).toEqual(patched)
      // The patched pod, reviewed again (a reinvocation, or a pod re-created from it), stays as it is.
      const again = await mutate(patched)
      expect(again.response.patch, workload).toBeUndefined()
      expect(sidecarOf(patched).restartPolicy).toBe('Always')
      // Only added or replaced: nothing of the pod is taken away.
      expect(response.patch!.every((op) => op.op === 'add' || op.op === 'replace')).toBe(true)
    }
  })

  it('puts the sidecar before init containers that call the mesh, and gives them the proxy', async () => {
    const original = podOf('Deployment/orders')
    const { pod } = await mutate(original)
    const inits = spec(pod).initContainers!
    expect(inits.map((c) => c.name)).toEqual(['meshgate', 'wait-for-db', 'migrate'])
    expect(envOf(inits[2]!).HTTP_PROXY).toBe('http://127.0.0.1:15001')
    expect(envOf(inits[2]!).DATABASE_URL).toBeUndefined()
    expect(inits[2]!.env![0]).toEqual((spec(original).initContainers![1]!.env as unknown[])[0])
    const [app, shipper] = spec(pod).containers
    // The app's probes are left exactly as written: straight to its port (docs/kubernetes.md).
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe'])
      expect(app![probe]).toEqual(spec(original).containers[0]![probe])
    expect(envOf(app!)).toMatchObject({ LOG_LEVEL: 'info', HTTP_PROXY: 'http://127.0.0.1:15001' })
    // A container with a proxy of its own keeps it.
    expect(shipper).toEqual(spec(original).containers[1])
    const env = envOf(sidecarOf(pod))
    expect(env).toMatchObject({
      MESHGATE_SERVICE: 'orders',
      MESHGATE_APP: 'http://127.0.0.1:8080',
      MESHGATE_DRAIN: '45s',
    })
    // 45 s of drain (the annotation) and 15 s for the app: more than the 40 the team had.
    expect(spec(pod).terminationGracePeriodSeconds).toBe(60)
    expect((sidecarOf(pod).resources as Json).limits).toEqual({ memory: '384Mi' })
  })

  it('honours init-first, a config source, moved ports and resources from annotations', async () => {
    const { pod } = await mutate(podOf('StatefulSet/ledger'))
    const inits = spec(pod).initContainers!
    expect(inits.map((c) => c.name)).toEqual(['secrets-agent', 'meshgate', 'seed'])
    // The other native sidecar is left alone; the regular init container after meshgate gets the proxy.
    expect(inits[0]!.env).toBeUndefined()
    expect(envOf(inits[2]!).HTTP_PROXY).toBe('http://127.0.0.1:15001')
    const sidecar = sidecarOf(pod)
    expect(envOf(sidecar)).toMatchObject({
      MESHGATE_SERVICE: 'ledger',
      MESHGATE_CONFIG: 'appconfig://bookinfo/prod/mesh',
      MESHGATE_ADMIN: '0.0.0.0:15100',
      MESHGATE_APP: 'http://127.0.0.1:9090',
    })
    // A live-config source needs no ConfigMap volume.
    expect(spec(pod).volumes).toBeUndefined()
    expect(sidecar.volumeMounts).toBeUndefined()
    expect(sidecar.ports).toContainEqual({ name: 'mesh-admin', containerPort: 15100, protocol: 'TCP' })
    expect((sidecar.resources as Json).requests).toEqual({ cpu: '200m', memory: '128Mi' })
    expect(spec(pod).terminationGracePeriodSeconds).toBe(35)
  })

  it('names the service after the owner when there is no label, and after the annotation first', async () => {
    const job = await mutate(podOf('CronJob/nightly-report'))
    expect(envOf(sidecarOf(job.pod)).MESHGATE_SERVICE).toBe('nightly-report')
    const debug = await mutate(podOf('Pod/debug-shell'))
    const env = envOf(sidecarOf(debug.pod))
    expect(env.MESHGATE_SERVICE).toBe('ledger-debug')
    // No app port: an outbound-only sidecar, and meshgate.io/http-proxy "false" leaves the shell alone.
    expect(env.MESHGATE_APP).toBeUndefined()
    expect(env.MESHGATE_INBOUND).toBeUndefined()
    expect(spec(debug.pod).containers[0]!.env).toBeUndefined()
  })

  it('leaves a pod that opts out untouched, by annotation or by label', async () => {
    for (const where of ['annotations', 'labels'] as const) {
      const pod = podOf('Deployment/orders')
      const meta = pod.metadata as Json
      meta[where] = { ...(meta[where] as Json), 'meshgate.io/inject': 'false' }
      const r = await review(admissionReview(pod))
      expect(r).toEqual({ uid: expect.any(String), allowed: true })
    }
  })

  it('allows a pod it cannot inject, with a warning that says why', async () => {
    const cases: [string, (pod: Json) => void, RegExp][] = [
      [
        "a port of the app is the sidecar's",
        (p) => {
          ;(spec(p).containers[0]!.ports as Json[]).push({ containerPort: 15001 })
        },
        /port 15001 .*orders/,
      ],
      [
        'hostNetwork',
        (p) => {
          spec(p).hostNetwork = true
        },
        /hostNetwork/,
      ],
      [
        'a bad annotation',
        (p) => {
          ;(p.metadata as Json).annotations = { 'meshgate.io/drain': 'soon' }
        },
        /meshgate\.io\/drain/,
      ],
      [
        'containers not a list',
        (p) => {
          spec(p).containers = 'app' as never
        },
        /no containers/,
      ],
      [
        'a volume of the same name',
        (p) => {
          spec(p).volumes = [{ name: 'mesh-config', emptyDir: {} }]
        },
        /mesh-config/,
      ],
    ]
    for (const [what, spoil, reason] of cases) {
      const pod = podOf('Deployment/orders')
      spoil(pod)
      const r = await review(admissionReview(pod))
      expect(r.allowed, what).toBe(true)
      expect(r.patch, what).toBeUndefined()
      expect(r.warnings?.[0], what).toMatch(reason)
      expect(r.warnings![0]!.length).toBeLessThanOrEqual(256)
    }
  })

  it('takes __proto__ in a pod for a plain key, not for an opt-out', async () => {
    const pod = podOf('Deployment/orders')
    const text = JSON.stringify(admissionReview(pod)).replace(
      '"annotations":{',
      '"annotations":{"__proto__":{"meshgate.io/inject":"false"},',
    )
    const a = await httpsCall(injector.port, ca, { body: text })
    expect(reviewResponse(a).patchType).toBe('JSONPatch')
    expect(({} as Json)['meshgate.io/inject']).toBeUndefined()
  })

  it('answers reviews that are not pod creations with allowed and no patch', async () => {
    const pod = podOf('Deployment/orders')
    const deployment = admissionReview(pod, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } })
    const update = admissionReview(pod, { operation: 'UPDATE' })
    const exec = admissionReview(pod, { subResource: 'exec' })
    for (const body of [deployment, update, exec])
      expect(await review(body)).toEqual({ uid: expect.any(String), allowed: true })
    const missing = await review(admissionReview(undefined))
    expect(missing.allowed).toBe(true)
    expect(missing.warnings?.[0]).toMatch(/no pod/)
  })

  it('refuses what is not an AdmissionReview with a clear 4xx, and keeps serving', async () => {
    const bad: [string | Buffer, number, RegExp][] = [
      ['{"apiVersion":', 400, /not JSON/],
      ['[]', 400, /AdmissionReview/],
      ['null', 400, /AdmissionReview/],
      [
        JSON.stringify({
          apiVersion: 'admission.k8s.io/v1beta1',
          kind: 'AdmissionReview',
          request: { uid: 'x' },
        }),
        400,
        /v1 AdmissionReview/,
      ],
      [
        JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} }),
        400,
        /uid/,
      ],
      [Buffer.from([0xff, 0xfe, 0x00, 0x7b]), 400, /not JSON/],
    ]
    for (const [body, status, error] of bad) {
      const a = await httpsCall(injector.port, ca, { body })
      expect(a.status).toBe(status)
      expect((JSON.parse(a.body) as Json).error).toMatch(error)
    }
    const type = await httpsCall(injector.port, ca, { body: '{}', headers: { 'content-type': 'text/plain' } })
    expect(type.status).toBe(415)
    expect((await httpsCall(injector.port, ca, { method: 'GET' })).status).toBe(405)
    expect((await httpsCall(injector.port, ca, { method: 'GET', path: '/admin' })).status).toBe(404)
    expect((await httpsCall(injector.port, ca, { method: 'GET', path: '/healthz' })).status).toBe(200)
  })

  it('cuts a body over 4 MiB with 413, declared or streamed', async () => {
    const huge = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20)
    const declared = await httpsCall(injector.port, ca, { body: huge })
    expect(declared.status).toBe(413)
    // Chunked, no length up front: counted as it comes.
    const streamed = await httpsCall(injector.port, ca, {
      body: huge,
      headers: { 'transfer-encoding': 'chunked' },
    })
    expect(streamed.status).toBe(413)
    expect((await httpsCall(injector.port, ca, { method: 'GET', path: '/healthz' })).status).toBe(200)
  })

  it('answers bytes that are not HTTP with 400 and stays up', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: injector.port, servername: 'localhost', ca }, () => {
        socket.write('\x00\x01GARBAGE / HTTP/9\r\n\r\n')
      })
      let text = ''
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
      socket.on('end', () => resolve(text))
      socket.on('error', reject)
    })
    expect(reply).toMatch(/^HTTP\/1\.1 400/)
    expect((await httpsCall(injector.port, ca, { method: 'GET', path: '/healthz' })).status).toBe(200)
  })

  it('serves a rotated certificate to new connections without a restart, and refuses a broken one', async () => {
    const before = await httpsCall(injector.port, ca, { method: 'GET', path: '/healthz' })
    const next = makeCert(join(dir, 'staging'), 'second')
    expect(next.fingerprint).not.toBe(before.fingerprint)
    // Trust both across the renewal, as a cluster's caBundle does.
    const both = Buffer.concat([ca, readFileSync(next.cert)])
    let seen = events.length
    // Key first, then the certificate: in between the pair does not match, and must not be served.
    renameSync(next.key, tls.key)
    renameSync(next.cert, tls.cert)
    let served = before.fingerprint
    while (served !== next.fingerprint) {
      seen = (await eventAfter('tls_reloaded', seen)) + 1
      served = (await httpsCall(injector.port, both, { method: 'GET', path: '/healthz' })).fingerprint
    }
    // A half-written certificate is refused; the server keeps the one it has.
    const mark = events.length
    writeFileSync(tls.cert, '-----BEGIN CERTIFICATE-----\nMIIB\n')
    const refused = events[await eventAfter('tls_reload_refused', mark)]!
    expect(refused.error).toBeTruthy()
    const after = await httpsCall(injector.port, both, { method: 'GET', path: '/healthz' })
    expect(after.fingerprint).toBe(next.fingerprint)
  })
})

describe('meshgate injector, the command', () => {
  // The CLI from the sources, and the bundle the image carries (infra/k8s/injector runs that one).
  it.each([
    ['meshgate injector', async () => [join(ROOT, 'bin', 'meshgate.js'), 'injector']],
    [
      'the image bundle',
      async () => {
        const outfile = join(dir, 'bundle', 'meshgate-injector.mjs')
        await buildInjector(outfile)
        return [outfile]
      },
    ],
  ] as const)('%s listens, answers /healthz, and exits 0 on SIGTERM', async (name, entry) => {
    const tlsDir = join(dir, `tls-${name.replace(/\W+/g, '-')}`)
    const staging = join(dir, `staging-${name.replace(/\W+/g, '-')}`)
    mkdirSync(tlsDir)
    mkdirSync(staging)
    makeCert(staging, 'cli', {
      cert: join(tlsDir, 'tls.crt'),
      key: join(tlsDir, 'tls.key'),
    })
    const child = spawn(
      join(ROOT, 'node_modules', '.bin', 'node'),
      [...(await entry()), '--tls-dir', tlsDir, '--listen', '127.0.0.1:0', '--image', IMAGE],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let buf = ''
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString()
          const m = /"event":"listening","port":(\d+)/.exec(buf)
          if (m) resolve(Number(m[1]))
        })
        child.on('exit', (code) => reject(new Error(`injector exited ${code}`)))
      })
      const a = await httpsCall(port, readFileSync(join(tlsDir, 'tls.crt')), {
        method: 'GET',
        path: '/healthz',
      })
      expect(a.status).toBe(200)
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })

  it('says what is missing', async () => {
    const child = spawn(
      join(ROOT, 'node_modules', '.bin', 'node'),
      [join(ROOT, 'bin', 'meshgate.js'), 'injector'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    )
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)))
    expect(code).toBe(2)
    expect(err).toMatch(/--tls-dir/)
  })
})
