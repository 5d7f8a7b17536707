// A real sidecar process on each remote config source (AppConfig through AppConfigData with the real
// SDK, AppConfig through the agent API, S3 on s3rver with the real SDK), each reached through a TCP
// gate this test can shut: shut at start, the sidecar fails fast (exit 1) naming the source; shut
// later, it keeps routing by the last good version, reports `stale` on /config and
// `meshgate_config_stale 1` on /metrics, and once the gate opens it recovers by itself and takes the
// version published meanwhile.

import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import S3rver from 's3rver'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AppConfigStore } from '../../proxy-core/control/appconfig-store.ts'
import type { LocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import { profile, startAppConfig } from '../helpers/local-appconfig.ts'
import { type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { send } from './client.ts'

/** A TCP pass-through to `target` that can be shut: then every connection, old or new, is cut. */
interface Gate {
  url: string
  shut(): void
  open(): void
  close(): Promise<void>
}
async function startGate(target: string): Promise<Gate> {
  const to = new URL(target)
  let shut = false
  const live = new Set<Socket>()
  const server: Server = createServer((inbound) => {
    if (shut) {
      inbound.destroy()
      return
    }
    const outbound = connect(Number(to.port), to.hostname)
    for (const s of [inbound, outbound]) {
      live.add(s)
      s.on('close', () => live.delete(s))
      s.on('error', () => {
        inbound.destroy()
        outbound.destroy()
      })
    }
    inbound.pipe(outbound).pipe(inbound)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}`,
    shut() {
      shut = true
      for (const s of live) s.destroy()
    },
    open() {
      shut = false
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of live) s.destroy()
        server.close(() => r())
      }),
  }
}

let local: LocalAppConfig
let s3server: S3rver
let s3: S3Client
let s3dir: string
let blue: Upstream
let green: Upstream
const running: SidecarProcess[] = []
const gates: Gate[] = []

const meshTo = (to: 'blue' | 'green') =>
  JSON.stringify({
    version: 1,
    mesh: 'outage',
    accessLog: false,
    services: {
      reviews: {
        targets: { blue: { http: blue.url }, green: { http: green.url } },
        routes: [{ name: 'default', to }],
      },
    },
  })

const AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_EC2_METADATA_DISABLED: 'true',
  MESHGATE_CONFIG_POLL: '200ms',
}

interface Source {
  name: string
  /** A fresh place in the source; `publish` puts a version there. */
  make(id: string): Promise<{ url: string; publish(text: string): Promise<void>; upstream: string }>
  /** The child's environment that reaches the source through `gate`. */
  env(gate: Gate): Record<string, string>
}

const sources: Source[] = [
  {
    name: 'AppConfig through AppConfigData (SDK)',
    async make(id) {
      const url = `appconfig://outage-sdk-${id}/prod/mesh`
      const store: AppConfigStore = await profile(url)
      return { url, upstream: local.url, publish: async (t) => void (await store.publish(t, {})) }
    },
    env: (gate) => ({
      ...AWS_ENV,
      AWS_ENDPOINT_URL_APPCONFIGDATA: gate.url,
      MESHGATE_APPCONFIG_AGENT: 'off',
    }),
  },
  {
    name: 'AppConfig through the agent API',
    async make(id) {
      const url = `appconfig://outage-agent-${id}/prod/mesh`
      const store: AppConfigStore = await profile(url)
      return { url, upstream: local.agentUrl, publish: async (t) => void (await store.publish(t, {})) }
    },
    env: (gate) => ({ ...AWS_ENV, MESHGATE_APPCONFIG_AGENT: gate.url }),
  },
  {
    name: 'S3',
    async make(id) {
      const key = `outage/${id}/mesh.json`
      const publish = async (text: string) => {
        await s3.send(
          new PutObjectCommand({ Bucket: 'mesh', Key: key, Body: text, ContentType: 'application/json' }),
        )
      }
      return { url: `s3://mesh/${key}`, upstream: s3url(), publish }
    },
    env: (gate) => ({ ...AWS_ENV, AWS_ENDPOINT_URL_S3: gate.url }),
  },
]

let s3port = 0
const s3url = () => `http://127.0.0.1:${s3port}`

async function configOf(sc: SidecarProcess) {
  return JSON.parse((await send(sc.admin, { path: '/config' })).body) as {
    stale: boolean
    version: string
    lastError: string | null
    missedChecks: number
    source: string
  }
}
async function metricsOf(sc: SidecarProcess): Promise<string> {
  return (await send(sc.admin, { path: '/metrics' })).body
}
async function routedTo(sc: SidecarProcess): Promise<string | undefined> {
  const r = await send(sc.outbound, { host: 'reviews' })
  expect(r.status).toBe(200)
  const up = r.headers['x-upstream']
  return typeof up === 'string' ? up : undefined
}
async function until(what: () => Promise<boolean>, tries = 1500): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await what()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return false
}

beforeAll(async () => {
  local = await startAppConfig(1)
  s3dir = mkdtempSync(join(tmpdir(), 'meshgate-outage-'))
  s3server = new S3rver({ port: 0, address: '127.0.0.1', directory: s3dir, silent: true })
  s3port = (await s3server.run()).port
  s3 = new S3Client({
    endpoint: s3url(),
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  })
  await s3.send(new CreateBucketCommand({ Bucket: 'mesh' }))
  blue = await startUpstream('blue')
  green = await startUpstream('green')
})

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()))
  await Promise.all(gates.map((g) => g.close()))
  s3?.destroy()
  await Promise.all([local?.close(), s3server?.close(), blue?.close(), green?.close()])
  if (s3dir) rmSync(s3dir, { recursive: true, force: true })
})

describe.each(sources)('a sidecar on $name', (source) => {
  it('fails fast at start when the source is unreachable, naming it', async () => {
    const where = await source.make('start')
    await where.publish(meshTo('blue'))
    const gate = await startGate(where.upstream)
    gates.push(gate)
    gate.shut()
    const started = startSidecarProcess({
      configPath: where.url,
      service: 'productpage',
      env: source.env(gate),
      startTimeoutMs: 30_000,
    })
    await expect(started).rejects.toThrow(/sidecar exited \(1\) before listening/)
    const err = String(await started.catch((e: unknown) => e))
    expect(err).toContain(`${where.url}: cannot read the mesh config:`)
  }, 40_000)

  it('keeps the last good config while the source is unreachable, says so, and recovers by itself', async () => {
    const where = await source.make('later')
    await where.publish(meshTo('blue'))
    const gate = await startGate(where.upstream)
    gates.push(gate)
    const sc = await startSidecarProcess({
      configPath: where.url,
      service: 'productpage',
      env: source.env(gate),
      startTimeoutMs: 30_000,
    })
    running.push(sc)
    expect(await routedTo(sc)).toBe('blue')
    const first = await configOf(sc)
    expect(first).toMatchObject({ source: where.url, stale: false, lastError: null })
    expect(await metricsOf(sc)).toMatch(/^meshgate_config_stale\{[^}]*\} 0$/m)

    gate.shut()
    expect(await until(async () => (await configOf(sc)).stale)).toBe(true)
    const down = await configOf(sc)
    expect(down.version).toBe(first.version)
    expect(down.missedChecks).toBeGreaterThanOrEqual(3)
    expect(down.lastError).toContain(where.url)
    expect(await metricsOf(sc)).toMatch(/^meshgate_config_stale\{[^}]*\} 1$/m)
    // Still routing by the last good version.
    expect(await routedTo(sc)).toBe('blue')
    expect(sc.lines().some((l) => l.includes('config is stale'))).toBe(true)

    // A version published while the sidecar cannot see it, then the source comes back.
    await where.publish(meshTo('green'))
    gate.open()
    expect(await until(async () => !(await configOf(sc)).stale && (await routedTo(sc)) === 'green')).toBe(
      true,
    )
    const back = await configOf(sc)
    expect(back).toMatchObject({ stale: false, missedChecks: 0, lastError: null })
    expect(back.version).not.toBe(first.version)
    expect(await metricsOf(sc)).toMatch(/^meshgate_config_stale\{[^}]*\} 0$/m)
    expect(sc.lines().some((l) => l.includes('config source reachable again'))).toBe(true)
  }, 60_000)
})
