// publish / shift / status on an S3 object, against s3rver (a real S3-compatible server) in this
// process, with the CLI in a child process reaching it through AWS_ENDPOINT_URL_S3.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3'
import S3rver from 's3rver'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { awsEnv, meshgate } from './cli-process.ts'

// The part of a mesh document these tests read (a cast, not a check: the assertions are the check).
type Doc = { services: { reviews: { routes: [{ to: unknown }, { to: unknown }] } } }

const URL_ = 's3://mesh-config/bookinfo/mesh.json'
const MESH = `version: 1
mesh: bookinfo
services:
  reviews:
    targets:
      v1: { http: http://reviews-v1.bookinfo.local:9080 }
      v3: { http: http://reviews-v3.bookinfo.local:9080 }
    routes:
      - name: default
        to: { v1: 100, v3: 0 }
`
let server: S3rver
let port: number
let s3: S3Client
let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshgate-s3-'))
  server = new S3rver({ port: 0, address: '127.0.0.1', directory: join(dir, 'store'), silent: true })
  port = (await server.run()).port
  s3 = new S3Client({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  })
  await s3.send(new CreateBucketCommand({ Bucket: 'mesh-config' }))
})
afterAll(async () => {
  await server.close()
})

async function object() {
  const r = await s3.send(new GetObjectCommand({ Bucket: 'mesh-config', Key: 'bookinfo/mesh.json' }))
  return {
    etag: r.ETag,
    contentType: r.ContentType,
    doc: JSON.parse(await r.Body!.transformToString()) as Doc,
  }
}

describe('meshgate publish / shift / status on S3', () => {
  it('publishes the validated document as JSON and prints the ETag', async () => {
    const env = awsEnv({ s3: `http://127.0.0.1:${port}` })
    const file = join(dir, 'mesh.yaml')
    writeFileSync(file, MESH)
    const r = await meshgate(env, 'publish', file, '--to', URL_)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const o = await object()
    expect(r.stdout).toBe(`published ${file} to ${URL_}: ETag ${o.etag}\n`)
    expect(o.contentType).toBe('application/json')
    expect(o.doc.services.reviews.routes[0].to).toEqual({ v1: 100, v3: 0 })
    const status = await meshgate(env, 'status', '--config', URL_)
    expect(status.code).toBe(0)
    expect(status.stdout).toContain(`ETag           ${o.etag}`)
  })

  it('shift changes the weights in the object and prints before → after', async () => {
    const env = awsEnv({ s3: `http://127.0.0.1:${port}` })
    const before = await object()
    const r = await meshgate(env, 'shift', '--config', URL_, 'reviews', 'default', 'v1=97', 'v3=3')
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain('reviews/default: v1 100 → 97, v3 0 → 3')
    const after = await object()
    expect(after.doc.services.reviews.routes[0].to).toEqual({ v1: 97, v3: 3 })
    expect(after.etag).not.toBe(before.etag)
    expect(r.stdout).toContain(`published ETag ${after.etag} (was ETag ${before.etag})`)
  })

  it('refuses an invalid file and leaves the object as it was', async () => {
    const env = awsEnv({ s3: `http://127.0.0.1:${port}` })
    const before = await object()
    const file = join(dir, 'bad.yaml')
    writeFileSync(file, MESH.replace('v3: 0', 'v4: 0'))
    const r = await meshgate(env, 'publish', file, '--to', URL_)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/bad\.yaml:10:\d+: services\.reviews\.routes\[0\]\.to/)
    expect(await object()).toEqual(before)
  })

  it('reaches a hostname endpoint with AWS_S3_FORCE_PATH_STYLE=true (no virtual-host buckets)', async () => {
    const env = { ...awsEnv({ s3: `http://localhost:${port}` }), AWS_S3_FORCE_PATH_STYLE: 'true' }
    const r = await meshgate(env, 'status', '--config', URL_)
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain(`ETag           ${(await object()).etag}`)
    const without = await meshgate(awsEnv({ s3: `http://localhost:${port}` }), 'status', '--config', URL_)
    expect(without.code).toBe(1)
  })
})
