// Issue 16, class 3, on the edge's HTTP/1.1 server with an injected clock: a request body that stops
// arriving, or crawls, is answered 408 and its connection closed after the configured time, while
// other connections are served meanwhile; time the server itself holds the body back (its reader is
// slow) never counts against the client. No test here waits on the wall clock: time moves only when
// a test advances it.

import { once } from 'node:events'
import type { Readable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { type DownstreamRequest, type Listener, listenHttp1 } from '../../proxy-core/http/http1-server.ts'
import { type EdgeTimeouts, edgeTimeoutsFromEnv } from '../../proxy-core/http/limits.ts'
import { holdsWithin } from '../helpers/attempt.ts'
import { createManualClock, type ManualClock } from '../helpers/manual-clock.ts'
import { openClient, type RawClient } from './raw-peer.ts'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

/** A raw connection to the listener, closed after the test. */
async function client(listener: Listener): Promise<RawClient> {
  const c = await openClient(listener.address)
  cleanups.push(() => c.socket.destroy())
  return c
}

/** Reads the body of every request, counting bytes; answers 200 with the count once it has ended. */
function counting(received: Map<string, number>, gate?: Promise<void>) {
  return async (req: DownstreamRequest): Promise<void> => {
    let n = 0
    if (req.body !== null && !Buffer.isBuffer(req.body)) {
      await gate
      try {
        for await (const c of req.body as Readable) {
          n += (c as Buffer).length
          received.set(req.url, n)
        }
      } catch {
        return // the server answers a body it gave up on
      }
    } else if (req.body !== null) n = req.body.length
    await req.respond({ status: 200, headers: {}, body: `got ${n}` }, false)
  }
}

async function serve(
  clock: ManualClock,
  timeouts: Partial<EdgeTimeouts>,
  handler: (req: DownstreamRequest) => Promise<void>,
): Promise<Listener> {
  const listener = await listenHttp1({ host: '127.0.0.1', port: 0 }, handler, undefined, { timeouts, clock })
  cleanups.push(() => listener.close())
  return listener
}

/** One keep-alive GET on a fresh connection; resolves with the response text. */
async function get(listener: Listener, path: string): Promise<string> {
  const c = await client(listener)
  c.socket.write(`GET ${path} HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n`)
  await once(c.socket, 'close')
  return c.text()
}

const HEAD = 'POST /stalled HTTP/1.1\r\nHost: svc\r\nContent-Length: 65536\r\n\r\n'

describe('a request body that stops arriving', () => {
  it('is answered 408 and closed after bodyIdleTimeout, while other connections are served meanwhile', async () => {
    const clock = createManualClock()
    const received = new Map<string, number>()
    const listener = await serve(clock, { bodyIdleTimeout: 30_000, bodyMinRate: 0 }, counting(received))
    const stalled = await Promise.all([1, 2, 3].map(() => client(listener)))
    for (const [i, c] of stalled.entries()) {
      c.socket.write(HEAD.replace('/stalled', `/stalled-${i}`) + 'x'.repeat(65_535))
    }
    expect(await holdsWithin(() => [0, 1, 2].every((i) => received.get(`/stalled-${i}`) === 65_535))).toBe(
      true,
    )

    // Just short of the timeout: still waiting, and other connections are answered.
    await clock.advance(29_000)
    for (let i = 0; i < 5; i++)
      expect(await get(listener, `/normal-${i}`)).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*got 0$/)
    expect(stalled.every((c) => c.text() === '' && !c.closed())).toBe(true)
    expect(listener.inFlight()).toBe(3)

    await clock.advance(2_000)
    expect(await holdsWithin(() => stalled.every((c) => c.closed()))).toBe(true)
    for (const c of stalled) {
      expect(c.text()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/)
      expect(c.text()).toContain('x-meshgate-error: request_timeout\r\n')
      expect(c.text()).toContain('connection: close\r\n')
    }
    expect(listener.inFlight()).toBe(0)
    expect(listener.refusals()).toEqual({ request_timeout: 3 })
  })

  it('is timed from its last byte: a body that keeps coming is never cut off', async () => {
    const clock = createManualClock()
    const received = new Map<string, number>()
    const listener = await serve(clock, { bodyIdleTimeout: 10_000, bodyMinRate: 0 }, counting(received))
    const c = await client(listener)
    c.socket.write('POST /steady HTTP/1.1\r\nHost: svc\r\nContent-Length: 50\r\n\r\n')
    for (let sent = 1; sent <= 50; sent++) {
      c.socket.write('y')
      expect(await holdsWithin(() => received.get('/steady') === sent)).toBe(true)
      // 50 × 9 s: far past the idle timeout in all, never idle that long at once.
      if (sent < 50) await clock.advance(9_000)
    }
    expect(await holdsWithin(() => c.text().includes('got 50'))).toBe(true)
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(listener.refusals()).toEqual({})
  })

  it('is answered 408 when it crawls below bodyMinRate, though it never goes idle', async () => {
    const clock = createManualClock()
    const received = new Map<string, number>()
    const listener = await serve(clock, { bodyIdleTimeout: 10_000, bodyMinRate: 500 }, counting(received))
    const c = await client(listener)
    c.socket.write('POST /slow HTTP/1.1\r\nHost: svc\r\nContent-Length: 100000\r\n\r\n')
    // 100 bytes every 2 s: 50 bytes/s, a tenth of the minimum.
    let sent = 0
    while (!c.closed() && sent < 2_000) {
      c.socket.write('z'.repeat(100))
      sent += 100
      expect(await holdsWithin(() => received.get('/slow') === sent || c.closed())).toBe(true)
      await clock.advance(2_000)
    }
    expect(await holdsWithin(() => c.closed())).toBe(true)
    expect(c.text()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/)
    // Not before the body had bodyIdleTimeout to arrive in, and soon after.
    expect(sent).toBeGreaterThanOrEqual(500)
    expect(sent).toBeLessThanOrEqual(700)
  })

  it('is not timed while the server holds it back because its reader is slow', async () => {
    const clock = createManualClock()
    const received = new Map<string, number>()
    let open!: () => void
    const gate = new Promise<void>((r) => {
      open = r
    })
    const listener = await serve(
      clock,
      { bodyIdleTimeout: 10_000, bodyMinRate: 500 },
      counting(received, gate),
    )
    const c = await client(listener)
    // More than the stream buffers: the server pauses the socket until the handler reads.
    const size = 4 * 1024 * 1024
    c.socket.write(`POST /held HTTP/1.1\r\nHost: svc\r\nContent-Length: ${size}\r\n\r\n`)
    c.socket.write(Buffer.alloc(size, 1))
    await clock.advance(60_000)
    expect(c.text()).toBe('')
    expect(c.closed()).toBe(false)
    open()
    expect(await holdsWithin(() => c.text().includes(`got ${size}`), 5000)).toBe(true)
    expect(listener.refusals()).toEqual({})
  })
})

describe('a head that stops arriving', () => {
  it('is answered 408 after headersTimeout, and an idle keep-alive connection is closed after keepAliveTimeout', async () => {
    const clock = createManualClock()
    const listener = await serve(
      clock,
      { headersTimeout: 5_000, keepAliveTimeout: 8_000 },
      counting(new Map()),
    )
    const partial = await client(listener)
    partial.socket.write('GET / HTTP/1.1\r\nHost: sv')
    const idle = await client(listener)
    await clock.advance(4_000)
    expect(partial.closed() || idle.closed()).toBe(false)
    await clock.advance(2_000)
    expect(await holdsWithin(() => partial.closed())).toBe(true)
    expect(partial.text()).toMatch(
      /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*x-meshgate-error: request_timeout\r\n/,
    )
    expect(idle.closed()).toBe(false)
    await clock.advance(3_000)
    expect(await holdsWithin(() => idle.closed())).toBe(true)
    expect(idle.text()).toBe('')
  })
})

describe('edgeTimeoutsFromEnv', () => {
  it('reads durations and a rate, and names the variable of a bad value', () => {
    expect(edgeTimeoutsFromEnv({})).toEqual({})
    expect(
      edgeTimeoutsFromEnv({
        MESHGATE_BODY_IDLE_TIMEOUT: '300ms',
        MESHGATE_HEADERS_TIMEOUT: '1m',
        MESHGATE_BODY_MIN_RATE: '0',
      }),
    ).toEqual({ bodyIdleTimeout: 300, headersTimeout: 60_000, bodyMinRate: 0 })
    expect(() => edgeTimeoutsFromEnv({ MESHGATE_BODY_IDLE_TIMEOUT: '30' })).toThrow(
      /MESHGATE_BODY_IDLE_TIMEOUT/,
    )
    expect(() => edgeTimeoutsFromEnv({ MESHGATE_BODY_MIN_RATE: '1.5' })).toThrow(/MESHGATE_BODY_MIN_RATE/)
  })
})
