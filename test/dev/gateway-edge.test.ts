// Issue 16's five classes against the dev gateway (`meshgate dev`'s edge), over raw sockets, with
// recording upstreams that prove nothing smuggled arrives. The framing and path cases are the same
// tables the sidecar's listeners are tested on (test/http/edge-cases.ts). The gateway's listener runs
// on an injected clock, so the slow-body case moves time instead of waiting for it.

import { Agent } from 'node:http'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../proxy-core/config/load.ts'
import { type DevGateway, startDevGateway } from '../../proxy-core/dev/gateway.ts'
import { createDevTelemetry, type DevTelemetry } from '../../proxy-core/dev/telemetry.ts'
import type { MeshConfig } from '../../proxy-core/engine/types.ts'
import { createNodeHttpInvoker } from '../../proxy-core/invokers/http-node.ts'
import { createLambdaInvoker } from '../../proxy-core/invokers/lambda-invoker.ts'
import { holdsWithin } from '../helpers/attempt.ts'
import { createManualClock, type ManualClock } from '../helpers/manual-clock.ts'
import { pacedLoad } from '../helpers/paced-load.ts'
import {
  chunked,
  framingRefusalCounts,
  framingRows,
  PATH_BYPASSES,
  PATH_REFUSALS,
  SMUGGLED,
} from '../http/edge-cases.ts'
import {
  exchange,
  openClient,
  parseReply,
  type RawReply,
  type RawUpstream,
  startRawUpstream,
  statuses,
} from '../http/raw-peer.ts'
import { send } from '../sidecar/client.ts'

/** The upstreams by name; each answers `seen METHOD TARGET BODYLENGTH` with `x-upstream: NAME`. */
const ups: Record<'pub' | 'admin' | 'up' | 'blue' | 'green', RawUpstream> = {} as never
/** Requests held at an upstream until the test opens the gate (`/held` targets). */
let release: (() => void) | undefined
let held: Promise<void> = Promise.resolve()
let gateway: DevGateway
let telemetry: DevTelemetry
let clock: ManualClock

const allRequests = () => Object.values(ups).flatMap((u) => u.requests)

/** `root`: the service the catch-all route `/` sends to, or null for no catch-all. */
async function configWith(
  extra: Record<string, unknown> = {},
  root: string | null = 'up',
): Promise<MeshConfig> {
  return loadConfig(
    JSON.stringify({
      version: 1,
      mesh: 'dev',
      accessLog: false,
      ...extra,
      gateway: {
        routes: [
          { match: { path: { prefix: '/public' } }, service: 'pub' },
          { match: { path: { prefix: '/admin' } }, service: 'admin' },
          ...(root === null ? [] : [{ match: { path: { prefix: '/' } }, service: root }]),
        ],
      },
      services: Object.fromEntries(
        (['pub', 'admin', 'up', 'blue', 'green'] as const).map((name) => [
          name,
          {
            targets: { v1: { http: ups[name].url } },
            routes: [
              {
                name: 'default',
                to: 'v1',
                retries: { attempts: 0 },
                // Which config served a response, whatever the upstream.
                headers: { response: { set: { 'x-config': String(root) } } },
              },
            ],
          },
        ]),
      ),
    }),
  )
}

beforeAll(async () => {
  for (const name of ['pub', 'admin', 'up', 'blue', 'green'] as const) {
    ups[name] = await startRawUpstream(async (req, socket) => {
      if (req.target.startsWith('/held')) await held
      const body = `seen ${req.method} ${req.target} ${req.body.length}`
      socket.write(
        `HTTP/1.1 200 OK\r\nx-upstream: ${name}\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        'latin1',
      )
    })
  }
  clock = createManualClock()
  telemetry = createDevTelemetry()
  gateway = await startDevGateway({
    host: '127.0.0.1',
    port: 0,
    config: await configWith(),
    invokers: { http: createNodeHttpInvoker(), lambda: createLambdaInvoker() },
    telemetry: telemetry.sinkFor('gateway'),
    clock,
  })
})

afterAll(async () => {
  release?.()
  await gateway?.close()
  await Promise.all(Object.values(ups).map((u) => u?.close()))
})

beforeEach(() => {
  for (const u of Object.values(ups)) u.requests.length = 0
})

/** One request written byte for byte on a fresh connection; the reply read until the server closes. */
async function raw(target: string): Promise<RawReply> {
  const wire = `GET ${target} HTTP/1.1\r\nHost: dev\r\nConnection: close\r\n\r\n`
  const { text, closed } = await exchange(gateway.url, Buffer.from(wire, 'latin1'))
  expect(closed).toBe(true)
  return parseReply(text)
}

describe('class 1: framing RFC 9112 refuses', () => {
  it.each(framingRows())('$name: $status, closed, nothing upstream', async ({ head, status, code }) => {
    const { text, closed } = await exchange(gateway.url, Buffer.from(head + SMUGGLED, 'latin1'))
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([status])
    expect(text).toContain(`x-meshgate-error: ${code}\r\n`)
    expect(text).toContain('connection: close\r\n')
    expect(allRequests()).toEqual([])
  })

  it('every refusal is counted, by code', () => {
    expect(gateway.refusals()).toEqual(framingRefusalCounts())
  })

  it('passes a well-formed chunked request with extensions and trailers on as exactly one request', async () => {
    const wire = chunked('5;name="v a\\"l";flag\r\nhello\r\n6 ; x = y\r\n world\r\n0\r\nx-sum: 1\r\n\r\n')
    const { text, closed } = await exchange(
      gateway.url,
      Buffer.from(`${wire}GET /next HTTP/1.1\r\nHost: up\r\nConnection: close\r\n\r\n`, 'latin1'),
    )
    expect(closed).toBe(true)
    expect(statuses(text)).toEqual([200, 200])
    expect(allRequests().map((r) => `${r.method} ${r.target} ${r.body.toString()}`)).toEqual([
      'POST / hello world',
      'GET /next ',
    ])
  })
})

describe('class 2: one normal path, routed and forwarded', () => {
  for (const [sent, normal] of PATH_BYPASSES) {
    it(`${sent} routes and forwards as ${normal}`, async () => {
      const r = await raw(sent)
      expect(r.status).toBe(200)
      expect(r.headers['x-upstream']).toBe('admin')
      expect(r.body).toBe(`seen GET ${normal} 0`)
      expect(ups.admin.requests.map((q) => q.target)).toEqual([normal])
      expect(ups.pub.requests).toEqual([])
    })
  }

  for (const [sent, reason] of PATH_REFUSALS) {
    it(`${sent} is refused with 400 invalid_path (${reason})`, async () => {
      const r = await raw(sent)
      expect(r.status).toBe(400)
      expect(r.headers['x-meshgate-error']).toBe('invalid_path')
      expect(JSON.parse(r.body)).toMatchObject({ error: 'invalid_path', reason })
      expect(allRequests()).toEqual([])
    })
  }

  it('escapedSlashes keep and decode do what they say, from the config the gateway has now', async () => {
    try {
      gateway.setConfig(
        await configWith({ pathNormalization: { escapedSlashes: 'keep', mergeSlashes: false } }),
      )
      const kept = await raw('/public/..%2fadmin//x')
      expect(kept.headers['x-upstream']).toBe('pub')
      expect(kept.body).toBe('seen GET /public/..%2Fadmin//x 0')

      gateway.setConfig(await configWith({ pathNormalization: { escapedSlashes: 'decode' } }))
      const decoded = await raw('/public/..%2Fadmin%2f%2Fx')
      expect(decoded.headers['x-upstream']).toBe('admin')
      expect(decoded.body).toBe('seen GET /admin/x 0')
    } finally {
      gateway.setConfig(await configWith())
    }
  })
})

describe('class 3: a stalled request body', () => {
  it('is answered 408 at the body idle timeout (30 s, swept each second), while other connections are served', async () => {
    const refusedBefore = gateway.refusals().request_timeout ?? 0
    const stalled = await Promise.all([0, 1, 2, 3, 4].map(() => openClient(gateway.url)))
    for (const [i, c] of stalled.entries()) {
      // Head and the first 1 000 of 65 536 bytes in one small write, so in one read: once the
      // gateway counts the request, it has every byte this client will ever send.
      const head = `POST /stalled-${i} HTTP/1.1\r\nHost: dev\r\nContent-Length: 65536\r\n\r\n`
      c.socket.write(head + 'x'.repeat(1_000))
    }
    try {
      expect(await holdsWithin(() => gateway.inFlight() === 5, 5_000)).toBe(true)
      // Just short of the timeout: still waiting, and normal requests are answered meanwhile.
      await clock.advance(29_000)
      for (let i = 0; i < 10; i++) {
        const r = await send(gateway.url, { path: `/normal-${i}`, host: 'dev' })
        expect(r.status).toBe(200)
        expect(r.body).toBe(`seen GET /normal-${i} 0`)
      }
      expect(stalled.every((c) => c.text() === '' && !c.closed())).toBe(true)

      await clock.advance(2_000)
      expect(await holdsWithin(() => stalled.every((c) => c.closed()), 5_000)).toBe(true)
      for (const c of stalled) {
        expect(statuses(c.text())).toEqual([408])
        expect(c.text()).toContain('x-meshgate-error: request_timeout\r\n')
      }
      expect(allRequests().filter((r) => r.target.startsWith('/stalled'))).toEqual([])
      expect(gateway.refusals().request_timeout).toBe(refusedBefore + 5)
    } finally {
      for (const c of stalled) c.socket.destroy()
    }
  })
})

/** The live heap, after a full collection (gc exposed at run time, as `--expose-gc` would). */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  return process.memoryUsage().heapUsed
}

describe('class 4: labels an outsider chooses', () => {
  /** `count` requests, pipelined 100 to a connection, 8 connections at once; every reply's status. */
  async function pipelined(count: number, make: (i: number) => string): Promise<number[]> {
    const out: number[] = []
    let next = 0
    const worker = async () => {
      while (next < count) {
        const from = next
        const n = Math.min(100, count - from)
        next += n
        const wire = Array.from({ length: n }, (_, k) => make(from + k)).join('')
        const { text } = await exchange(
          gateway.url,
          Buffer.from(wire, 'latin1'),
          20_000,
          (t) => statuses(t).length === n,
        )
        out.push(...statuses(text))
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
    return out
  }

  /** Unknown hosts, trace ids and unmatched paths from a scanner, and one in ten a real route. */
  const scan = (i: number): string =>
    i % 10 === 0
      ? `GET /public/item-${i} HTTP/1.1\r\nHost: dev\r\n\r\n`
      : `GET /nothing-${i} HTTP/1.1\r\nHost: scanner-${i}.example.com\r\nX-Amzn-Trace-Id: Root=1-5f000000-${i.toString(16).padStart(24, '0')}\r\n\r\n`

  const series = () => ({
    edges: telemetry
      .edges()
      .map((e) => `${e.from}→${e.to}`)
      .sort(),
    splits: Object.keys(telemetry.splits()).sort(),
  })

  it('10 000 distinct unknown hosts leave the dashboard series and the traces kept where they were', async () => {
    // No catch-all route: the scanner's paths match nothing (404 no_route), as on a real edge.
    gateway.setConfig(await configWith({}, null))
    const warm = await pipelined(500, scan)
    expect(warm.length).toBe(500)
    const before = series()
    const refusedBefore = gateway.refusals()
    const heapBefore = heapAfterGc()
    expect(before.edges).toContain('gateway→pub')

    const statusesSeen = await pipelined(10_000, (i) => scan(500 + i))
    expect(statusesSeen.length).toBe(10_000)
    expect(new Set(statusesSeen)).toEqual(new Set([200, 404]))
    expect(statusesSeen.filter((s) => s === 200).length).toBe(1_000)
    expect(series()).toEqual(before)
    // Recent traces are a ring (300), not one entry per trace id a client makes up.
    expect(telemetry.traces(100_000).length).toBeLessThanOrEqual(300)
    // Nothing in the scan was refused: distinct hosts are just requests.
    expect(gateway.refusals()).toEqual(refusedBefore)
    // The gateway and its dashboard keep nothing per host: the live heap stays where it was (the
    // sidecar's test bounds RSS the same way; 3 000 hosts once cost it 40 MB).
    for (const u of Object.values(ups)) u.requests.length = 0
    expect(heapAfterGc() - heapBefore).toBeLessThan(8 * 1024 * 1024)
    gateway.setConfig(await configWith())
  }, 60_000)
})

describe('class 5: a config swapped while traffic flows', () => {
  it('a request finishes on the config it started with', async () => {
    held = new Promise<void>((r) => {
      release = r
    })
    try {
      gateway.setConfig(await configWith({}, 'blue'))
      const inFlight = send(gateway.url, { path: '/held-1', host: 'dev' })
      expect(await holdsWithin(() => ups.blue.requests.length === 1, 5_000)).toBe(true)
      gateway.setConfig(await configWith({}, 'green'))
      release!()
      const r = await inFlight
      expect(r.status).toBe(200)
      expect(r.headers['x-config']).toBe('blue')
      const after = await send(gateway.url, { path: '/after', host: 'dev' })
      expect(after.headers['x-config']).toBe('green')
      expect(after.headers['x-upstream']).toBe('green')
    } finally {
      release?.()
      held = Promise.resolve()
    }
  })

  it('200 requests/s through 40 swaps: every request answered 200 by one config or the other', async () => {
    const [blue, green] = await Promise.all([configWith({}, 'blue'), configWith({}, 'green')])
    const agent = new Agent({ keepAlive: true, maxSockets: 16 })
    const load = pacedLoad(
      [
        {
          id: 'client',
          async call(i) {
            const r = await send(gateway.url, { path: `/swap-${i}`, host: 'dev', agent })
            const up = r.headers['x-upstream']
            return { status: r.status, upstream: typeof up === 'string' ? up : undefined }
          },
        },
      ],
      200,
      400,
    )
    try {
      // A swap after every ten requests sent: tied to the load's progress, not to a timer.
      for (let swap = 1; swap <= 40; swap++) {
        expect(await holdsWithin(() => load.sent() >= swap * 10, 10_000)).toBe(true)
        gateway.setConfig(swap % 2 === 0 ? blue : green)
      }
    } finally {
      await load.stop()
      agent.destroy()
    }
    expect(load.outcomes.length).toBe(400)
    expect(load.outcomes.filter((o) => o.status !== 200)).toEqual([])
    const by = new Set(load.outcomes.map((o) => o.upstream))
    expect(by).toEqual(new Set(['blue', 'green']))
  })
})
