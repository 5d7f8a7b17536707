// X-Ray from the sidecar process for outbound calls the app sent without a trace header: the sidecar
// starts the trace, propagates it, and writes the call's segment with its attempts embedded, one
// datagram per call. Read off a real UDP socket standing in for the daemon.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startXRayDaemon, type XRayDaemon, type XRayDocument } from '../fixtures/trace/xray-daemon.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { send } from './client.ts'

let daemon: XRayDaemon
let ok: Upstream
let down: Upstream
let sidecar: SidecarProcess
const files = meshDir()
const noBackoff = { base: '1ms', max: '1ms' }

beforeAll(async () => {
  daemon = await startXRayDaemon()
  ok = await startUpstream('ok')
  down = await startUpstream('down', { failRate: 1, failStatus: 503 })
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'traced',
    // Every call sampled: the test decides which requests it looks at.
    tracing: { sampling: { reservoirPerSecond: 0, rate: 100 } },
    accessLog: false,
    services: {
      catalog: { targets: { v1: { http: ok.url } }, routes: [{ name: 'default', to: 'v1' }] },
      flaky: {
        targets: { v1: { http: down.url } },
        routes: [{ name: 'default', to: 'v1', retries: { attempts: 10, on: ['503'], backoff: noBackoff } }],
        retryBudget: { percent: 100, minPerSecond: 1000 },
        outlierDetection: { consecutive5xx: 0 },
      },
    },
  })
  sidecar = await startSidecarProcess({
    configPath,
    service: 'storefront',
    env: { MESHGATE_XRAY: 'on', AWS_XRAY_DAEMON_ADDRESS: daemon.address },
  })
})

afterAll(async () => {
  await sidecar?.stop()
  await Promise.all([ok?.close(), down?.close(), daemon?.close()])
  files.remove()
})

/** Root and Parent of the x-amzn-trace-id the upstream received last. */
function lastTraceHeader(up: Upstream): { root: string; parent: string; sampled: string } {
  const value = String(up.requests().at(-1)?.headers['x-amzn-trace-id'])
  const parts = Object.fromEntries(value.split(';').map((p) => p.split('=') as [string, string]))
  return { root: parts.Root!, parent: parts.Parent!, sampled: parts.Sampled! }
}

/** Every document of `traceId`, once a later call's document shows the sidecar has sent them all. */
async function allOf(traceId: string): Promise<XRayDocument[]> {
  const reply = await send(sidecar.outbound, { host: 'catalog', path: '/barrier' })
  expect(reply.status).toBe(200)
  await daemon.waitFor(lastTraceHeader(ok).root, 1, 5000)
  return daemon.documents().filter((d) => d.trace_id === traceId)
}

describe('sidecar X-Ray for calls it starts the trace of', () => {
  it('sends one segment per call with the attempt embedded, the Parent the upstream saw', async () => {
    const reply = await send(sidecar.outbound, { host: 'catalog', path: '/items?page=2' })
    expect(reply.status).toBe(200)
    const seen = lastTraceHeader(ok)
    expect(seen.sampled).toBe('1')

    const docs = await allOf(seen.root)
    expect(daemon.malformed()).toEqual([])
    expect(docs).toHaveLength(1)
    const segment = docs[0]!
    expect(segment).toMatchObject({
      name: 'storefront',
      trace_id: seen.root,
      origin: 'AWS::ECS::Container',
      http: { request: { method: 'GET' }, response: { status: 200 } },
      annotations: { mesh: 'traced', service: 'catalog', route: 'default', target: 'v1' },
    })
    expect(segment.type).toBeUndefined()
    expect(segment.parent_id).toBeUndefined()

    const calls = segment.subsegments as XRayDocument[]
    expect(calls).toHaveLength(1)
    const call = calls[0]!
    // The upstream's Parent is this attempt: its own work hangs under it on the trace map.
    expect(call.id).toBe(seen.parent)
    expect(call).toMatchObject({
      namespace: 'remote',
      name: 'catalog',
      http: { request: { method: 'GET', url: 'http://catalog/items?page=2' }, response: { status: 200 } },
      annotations: { mesh: 'traced', service: 'catalog', route: 'default', target: 'v1', attempt: 1 },
      metadata: { meshgate: { endpoint: ok.url } },
    })
    // Embedded: the trace and the parent are the enclosing segment's.
    expect(call).not.toHaveProperty('type')
    expect(call).not.toHaveProperty('trace_id')
    expect(call).not.toHaveProperty('parent_id')
    expect(call.start_time).toBeGreaterThanOrEqual(segment.start_time)
    expect(call.end_time).toBeLessThanOrEqual(segment.end_time)
  })

  it('embeds every retry of the call, each a fault, in the one segment', async () => {
    const reply = await send(sidecar.outbound, { host: 'flaky', path: '/x' })
    expect(reply.status).toBe(503)
    const seen = lastTraceHeader(down)

    const docs = await allOf(seen.root)
    expect(docs).toHaveLength(1)
    const segment = docs[0]!
    expect(segment).toMatchObject({ fault: true, annotations: { retries: 10 } })
    const calls = segment.subsegments as XRayDocument[]
    expect(calls.map((c) => c.annotations?.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    for (const c of calls) {
      expect(c).toMatchObject({ fault: true, http: { response: { status: 503 } } })
      // One clock for the segment and its parts: no attempt outside the call.
      expect(c.start_time).toBeGreaterThanOrEqual(segment.start_time)
      expect(c.end_time).toBeLessThanOrEqual(segment.end_time)
    }
    expect(new Set(calls.map((c) => c.id)).size).toBe(11)
    expect(calls.at(-1)!.id).toBe(seen.parent)
  })

  it('sends the attempts of a call with long URLs on their own once the segment would grow too big', async () => {
    const path = `/${'a'.repeat(4000)}`
    const reply = await send(sidecar.outbound, { host: 'flaky', path })
    expect(reply.status).toBe(503)
    const seen = lastTraceHeader(down)

    const docs = await allOf(seen.root)
    expect(daemon.malformed()).toEqual([])
    const segment = docs.find((d) => d.type === undefined)!
    const embedded = segment.subsegments as XRayDocument[]
    const alone = docs.filter((d) => d.type === 'subsegment')
    expect(docs).toHaveLength(1 + alone.length)
    // 24 KiB of URLs embedded (six of about 4 KB), the other five sent as subsegments of the segment.
    expect(embedded).toHaveLength(6)
    expect(alone).toHaveLength(5)
    for (const d of alone) expect(d).toMatchObject({ namespace: 'remote', parent_id: segment.id })
    const attempts = [...embedded, ...alone]
      .map((d) => d.annotations?.attempt)
      .sort((a, b) => Number(a) - Number(b))
    expect(attempts).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
  })
})
