// Issue 16, class 1, through a real sidecar process on both listeners: framing that RFC 9112 says to
// reject is answered with a refusal from the error table and a closed connection, and a recording
// upstream proves that nothing reached it: neither the request nor the one tucked inside it. The
// cases (test/http/edge-cases.ts) are shared with the dev gateway's tests.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { chunked, framingRefusalCounts, framingRows, post, SMUGGLED } from '../http/edge-cases.ts'
import { exchange, type RawUpstream, startRawUpstream, statuses } from '../http/raw-peer.ts'

let upstream: RawUpstream
let sidecar: SidecarProcess
const files = meshDir()

beforeAll(async () => {
  upstream = await startRawUpstream((req, socket) => {
    const body = `seen ${req.method} ${req.target} ${req.body.length}`
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  })
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'edge',
    services: {
      up: {
        targets: { v1: { http: upstream.url } },
        routes: [{ name: 'default', to: 'v1', retries: { attempts: 0 } }],
      },
    },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'up', app: upstream.url })
})

afterAll(async () => {
  await sidecar?.stop()
  await upstream?.close()
  files.remove()
})

beforeEach(() => {
  upstream.requests.length = 0
})

describe.each(['outbound', 'inbound'] as const)(
  'framing RFC 9112 refuses, on the %s listener',
  (listener) => {
    const base = () => (listener === 'outbound' ? sidecar.outbound : sidecar.inbound!)

    it.each(framingRows())('$name: $status, closed, nothing upstream', async ({ head, status, code }) => {
      const { text, closed } = await exchange(base(), Buffer.from(head + SMUGGLED, 'latin1'))
      expect(closed).toBe(true)
      // One response, the refusal, with its code from the error table; nothing after it.
      expect(statuses(text)).toEqual([status])
      expect(text).toContain(`x-meshgate-error: ${code}\r\n`)
      expect(text).toContain('connection: close\r\n')
      expect(upstream.requests).toEqual([])
    })

    it('passes a well-formed chunked request with extensions and trailers on as exactly one request', async () => {
      const wire = chunked('5;name="v a\\"l";flag\r\nhello\r\n6 ; x = y\r\n world\r\n0\r\nx-sum: 1\r\n\r\n')
      const { text, closed } = await exchange(
        base(),
        Buffer.from(`${wire}GET /next HTTP/1.1\r\nHost: up\r\nConnection: close\r\n\r\n`, 'latin1'),
      )
      expect(closed).toBe(true)
      expect(statuses(text)).toEqual([200, 200])
      expect(upstream.requests.map((r) => `${r.method} ${r.target} ${r.body.toString()}`)).toEqual([
        'POST / hello world',
        'GET /next ',
      ])
    })

    it('passes values with inner whitespace and non-ASCII letters, and leading zeros in a length', async () => {
      const wire = post(
        'X-A: a \t b\r\nX-B: voil\xc3\xa0\r\nContent-Length: 005\r\nConnection: close\r\n',
        'hello',
      )
      const { text } = await exchange(base(), Buffer.from(wire, 'latin1'))
      expect(statuses(text)).toEqual([200])
      expect(upstream.requests).toHaveLength(1)
      expect(upstream.requests[0]!.headers['x-a']).toBe('a \t b')
      expect(upstream.requests[0]!.headers['x-b']).toBe('voil\xc3\xa0')
      expect(upstream.requests[0]!.body.toString()).toBe('hello')
    })
  },
)

describe('refusals are counted', () => {
  it('in /stats, per listener and code', async () => {
    const stats = (await (await fetch(`${sidecar.admin}/stats`)).json()) as {
      refusals: Record<string, Record<string, number>>
    }
    const expected = framingRefusalCounts()
    expect(stats.refusals.outbound).toEqual(expected)
    expect(stats.refusals.inbound).toEqual(expected)
  })
})
