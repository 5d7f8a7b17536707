// Issue 16, class 3, through a real sidecar process on both listeners, with a tiny configured body
// idle timeout (MESHGATE_BODY_IDLE_TIMEOUT): connections that declare 65 536 bytes, send 65 535 and
// go silent are answered 408 and closed, counted in /stats, and nothing incomplete reaches the
// upstream; requests on other connections are served meanwhile. The timing itself (nothing before
// the timeout, traffic served while bodies stall) is tested on an injected clock in
// test/http/http1-server-timeouts.test.ts; here nothing asserts elapsed time.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { exchange, type RawUpstream, startRawUpstream, statuses } from '../http/raw-peer.ts'
import { send } from './client.ts'

let upstream: RawUpstream
let sidecar: SidecarProcess
const files = meshDir()

beforeAll(async () => {
  upstream = await startRawUpstream((req, socket) => {
    const body = `seen ${req.target}`
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  })
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'edge',
    services: { up: { targets: { v1: { http: upstream.url } }, routes: [{ name: 'default', to: 'v1' }] } },
  })
  sidecar = await startSidecarProcess({
    configPath,
    service: 'up',
    app: upstream.url,
    env: { MESHGATE_BODY_IDLE_TIMEOUT: '300ms' },
  })
})

afterAll(async () => {
  await sidecar?.stop()
  await upstream?.close()
  files.remove()
})

describe.each(['outbound', 'inbound'] as const)('a stalled request body on the %s listener', (listener) => {
  it('is answered 408 and closed, while other connections are served', async () => {
    const base = listener === 'outbound' ? sidecar.outbound : sidecar.inbound!
    const stalled = Array.from({ length: 5 }, (_, i) =>
      exchange(
        base,
        Buffer.from(
          `POST /stalled-${i} HTTP/1.1\r\nHost: up\r\nContent-Length: 65536\r\n\r\n${'x'.repeat(65_535)}`,
        ),
        20_000,
      ),
    )
    const normal = []
    for (let i = 0; i < 10; i++) normal.push(await send(base, { path: `/normal-${i}`, host: 'up' }))
    expect(normal.map((r) => r.status)).toEqual(Array(10).fill(200))
    for (const { text, closed } of await Promise.all(stalled)) {
      expect(closed).toBe(true)
      expect(statuses(text)).toEqual([408])
      expect(text).toContain('x-meshgate-error: request_timeout\r\n')
    }
    // The upstream saw the normal requests and no stalled one complete.
    expect(upstream.requests.filter((r) => r.target.startsWith('/stalled'))).toEqual([])
    expect(upstream.requests.filter((r) => r.target.startsWith('/normal')).length).toBeGreaterThanOrEqual(10)
    upstream.requests.length = 0
  })
})

describe('stalled bodies are counted', () => {
  it('in /stats as request_timeout, per listener', async () => {
    const stats = (await (await fetch(`${sidecar.admin}/stats`)).json()) as {
      refusals: Record<string, Record<string, number>>
    }
    expect(stats.refusals).toEqual({ outbound: { request_timeout: 5 }, inbound: { request_timeout: 5 } })
  })

  it('in /metrics as meshgate_edge_refusals_total, per listener and code', async () => {
    const text = await (await fetch(`${sidecar.admin}/metrics`)).text()
    expect(text).toContain('# TYPE meshgate_edge_refusals_total counter\n')
    expect(text).toContain('meshgate_edge_refusals_total{listener="outbound",code="request_timeout"} 5\n')
    expect(text).toContain('meshgate_edge_refusals_total{listener="inbound",code="request_timeout"} 5\n')
  })
})
