// The S3 source against s3rver (a real S3-compatible server, in this process) with the real
// @aws-sdk/client-s3, its endpoint from AWS_ENDPOINT_URL_S3: versions by ETag, 304 for unchanged, a
// refused version, an endpoint that goes away and comes back. Polls run on a manual clock.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import S3rver from 's3rver'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import {
  createLiveConfig,
  openConfigSource,
  SourceError,
  STALE_AFTER_MISSED_CHECKS,
} from '../../proxy-core/config-source/index.ts'
import { createManualClock, seededRandom } from '../helpers/manual-clock.ts'

let server: S3rver
let port: number
let dir: string
let s3: S3Client
const saved = { ...process.env }

async function startS3(p = 0): Promise<number> {
  server = new S3rver({ port: p, address: '127.0.0.1', directory: join(dir, 'store'), silent: true })
  return (await server.run()).port
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshgate-s3src-'))
  port = await startS3()
  process.env.AWS_ENDPOINT_URL_S3 = `http://127.0.0.1:${port}`
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER'
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER'
  process.env.AWS_REGION = 'us-east-1'
  s3 = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true })
  await s3.send(new CreateBucketCommand({ Bucket: 'mesh' }))
})
afterAll(async () => {
  await server.close()
  s3.destroy()
  process.env = saved
  rmSync(dir, { recursive: true, force: true })
})

const meshWith = (services: string[]) =>
  JSON.stringify({
    version: 1,
    mesh: 's3',
    services: Object.fromEntries(
      services.map((s) => [s, { targets: { v1: { http: `http://${s}.local` } } }]),
    ),
  })

async function put(key: string, body: string): Promise<string> {
  const r = await s3.send(new PutObjectCommand({ Bucket: 'mesh', Key: key, Body: body }))
  return r.ETag!
}

const services = async (text: string, name: string) =>
  Object.keys((await loadConfigText(text, name)).services)

describe('S3 source', () => {
  it('reads the object by ETag and takes 304 Not Modified as unchanged', async () => {
    const etag = await put('a/mesh.json', meshWith(['a']))
    const source = openConfigSource('s3://mesh/a/mesh.json')
    const first = await source.check()
    expect(first).toEqual({ text: meshWith(['a']), version: etag, name: 's3://mesh/a/mesh.json' })
    // If-None-Match with that ETag: S3 answers 304, which the SDK throws; the source says "unchanged".
    expect(await source.check()).toBeUndefined()
    const etag2 = await put('a/mesh.json', meshWith(['a', 'b']))
    expect(etag2).not.toBe(etag)
    expect((await source.check())?.version).toBe(etag2)
    expect(await source.check()).toBeUndefined()
    source.close()
  })

  it('fails fast at start when the object does not exist or the endpoint is down, naming the URL', async () => {
    const missing = await createLiveConfig({
      source: openConfigSource('s3://mesh/nope.json'),
      build: async (v) => v.text,
    }).catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(SourceError)
    expect((missing as Error).message).toMatch(
      /^s3:\/\/mesh\/nope\.json: cannot read the mesh config: .*NoSuchKey/,
    )

    const endpoint = process.env.AWS_ENDPOINT_URL_S3
    // A port nothing listens on: the one of a server just closed.
    const other = new S3rver({ port: 0, address: '127.0.0.1', directory: join(dir, 'other'), silent: true })
    const deadPort = (await other.run()).port
    await other.close()
    process.env.AWS_ENDPOINT_URL_S3 = `http://127.0.0.1:${deadPort}`
    try {
      const down = await createLiveConfig({
        source: openConfigSource('s3://mesh/a/mesh.json'),
        build: async (v) => v.text,
      }).catch((e: unknown) => e)
      expect(down).toBeInstanceOf(SourceError)
      expect((down as Error).message).toMatch(
        /^s3:\/\/mesh\/a\/mesh\.json: cannot read the mesh config: .*ECONNREFUSED/,
      )
    } finally {
      process.env.AWS_ENDPOINT_URL_S3 = endpoint
    }
  })

  it('refuses an invalid version, keeps the last good one, and takes the next good one', async () => {
    const clock = createManualClock()
    await put('r/mesh.json', meshWith(['a']))
    const lines: string[] = []
    const live = await createLiveConfig({
      source: openConfigSource('s3://mesh/r/mesh.json', { pollMs: 1000 }),
      build: (v) => services(v.text, v.name),
      log: (l) => lines.push(l),
      clock,
      timers: clock,
      random: seededRandom(1),
      pollMs: 1000,
    })
    const bad = await put(
      'r/mesh.json',
      JSON.stringify({ version: 1, mesh: 's3', services: { a: { targets: {}, routes: [{ to: 'x' }] } } }),
    )
    await clock.advance(1100)
    await live.idle()
    expect(live.current()).toEqual(['a'])
    const status = live.status()
    expect(status).toMatchObject({ rejected: 1, reloads: 0, rejectedVersion: bad, stale: false })
    expect(status.lastError).toMatch(/s3:\/\/mesh\/r\/mesh\.json:\d+:\d+: services\.a/)
    expect(lines.filter((l) => l.startsWith('config reload refused'))).toHaveLength(1)

    // Polls of the same refused version are 304s: no second refusal.
    await clock.advance(1100)
    await live.idle()
    expect(live.status().rejected).toBe(1)

    const good = await put('r/mesh.json', meshWith(['a', 'b']))
    await clock.advance(1100)
    await live.idle()
    expect(live.current()).toEqual(['a', 'b'])
    expect(live.status()).toMatchObject({
      version: good,
      reloads: 1,
      rejected: 1,
      lastError: null,
      rejectedVersion: null,
    })
    live.close()
  })

  it('keeps serving while S3 is unreachable, turns stale, and recovers by itself', async () => {
    const clock = createManualClock()
    const etag = await put('u/mesh.json', meshWith(['a']))
    const lines: string[] = []
    const live = await createLiveConfig({
      source: openConfigSource('s3://mesh/u/mesh.json', { pollMs: 1000 }),
      build: (v) => services(v.text, v.name),
      log: (l) => lines.push(l),
      clock,
      timers: clock,
      random: seededRandom(2),
      pollMs: 1000,
    })
    await server.close()
    for (let i = 1; i <= STALE_AFTER_MISSED_CHECKS; i++) {
      await clock.advance(1100)
      await live.idle()
      expect(live.status()).toMatchObject({
        missedChecks: i,
        stale: i >= STALE_AFTER_MISSED_CHECKS,
        version: etag,
      })
    }
    expect(live.current()).toEqual(['a'])
    expect(live.status().lastError).toMatch(/ECONNREFUSED/)
    expect(lines.some((l) => l.startsWith('config is stale'))).toBe(true)

    await startS3(port)
    const next = await put('u/mesh.json', meshWith(['a', 'c']))
    await clock.advance(1100)
    await live.idle()
    expect(live.status()).toMatchObject({ stale: false, missedChecks: 0, lastError: null, version: next })
    expect(live.current()).toEqual(['a', 'c'])
    expect(lines.some((l) => l.startsWith('config source reachable again'))).toBe(true)
    live.close()
  })
})
