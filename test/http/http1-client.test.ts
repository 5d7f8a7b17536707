// meshgate's own HTTP/1.1 client (proxy-core/http/http1-client.ts) at the edges of RFC 9112, against real
// servers on loopback: hand-written `net` upstreams where the bytes on the wire must be exact, node:http
// where an ordinary server will do. Connection reuse is judged by the sockets the upstream accepted.

import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo, Server, Socket } from 'node:net'
import { createServer as createNetServer } from 'node:net'
import type { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import type { AttemptRequest, MeshBody } from '../../proxy-core/engine/types.ts'
import { UpstreamFailure } from '../../proxy-core/engine/types.ts'
import type { Http1Invoker, Http1Options } from '../../proxy-core/http/http1-client.ts'
import { createHttp1Invoker } from '../../proxy-core/http/http1-client.ts'
import { attempt, endpoint, holdsWithin } from '../helpers/attempt.ts'

/** A generous bound on every exchange: a client that hangs fails the test in 2 s, not in 30. */
const soon = () => AbortSignal.timeout(2000)

async function bytes(body: MeshBody): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0)
  if (typeof body === 'string') return Buffer.from(body)
  if (body instanceof Uint8Array) return Buffer.from(body)
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(Buffer.from(c))
  return Buffer.concat(chunks)
}
const text = async (body: MeshBody): Promise<string> => (await bytes(body)).toString('latin1')

/** The failure `p` rejects with; the test fails if it resolves or rejects with anything else. */
async function failureOf(p: Promise<unknown>): Promise<UpstreamFailure> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamFailure)
    return err as UpstreamFailure
  }
  throw new Error('expected the invocation to fail, it succeeded')
}

/** 'settled' if `p` settles within `ms`, else 'pending'. */
/** How long a test waits for something that should happen at once: a bound against a hang, not a measurement. */
const HANG_GUARD_MS = 10_000

async function within(p: Promise<unknown>, ms: number): Promise<'settled' | 'pending'> {
  const ac = new AbortController()
  try {
    return await Promise.race([
      p.then(() => 'settled' as const),
      sleep(ms, 'pending' as const, { signal: ac.signal }),
    ])
  } finally {
    ac.abort()
  }
}

// ---------------------------------------------------------------------------------------------
// Upstreams, and the cleanup of everything a test opened.

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

function invoker(opts?: Http1Options): Http1Invoker {
  const inv = createHttp1Invoker(opts)
  cleanups.push(() => inv.close())
  return inv
}

interface Upstream {
  origin: string
  /** Every socket the upstream accepted, in order: one per client connection. */
  sockets: Socket[]
  /** One per accepted socket, settled when it closes. */
  closes: Promise<void>[]
}

async function listen(server: Server): Promise<Upstream> {
  const up: Upstream = { origin: '', sockets: [], closes: [] }
  server.on('connection', (s: Socket) => {
    up.sockets.push(s)
    up.closes.push(new Promise((r) => s.once('close', () => r())))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  up.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  cleanups.push(async () => {
    for (const s of up.sockets) s.destroy()
    await new Promise<void>((r) => server.close(() => r()))
  })
  return up
}

function httpUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  return listen(createHttpServer(handler))
}

interface RawRequest {
  method: string
  path: string
  headers: Record<string, string>
  body: Buffer
  /** Which accepted connection, from 0. */
  conn: number
  /** 0 for the first request on its connection. */
  index: number
}

/** A hand-written upstream: parses requests (Content-Length bodies only) and lets the test answer. */
function rawUpstream(onRequest: (req: RawRequest, socket: Socket) => void): Promise<Upstream> {
  let conns = 0
  const server = createNetServer((socket) => {
    socket.setNoDelay(true)
    socket.on('error', () => {})
    const conn = conns++
    let index = 0
    let buf = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const [line = '', ...fields] = buf.toString('latin1', 0, end).split('\r\n')
        const [method = '', path = ''] = line.split(' ')
        const headers: Record<string, string> = {}
        for (const f of fields) {
          const colon = f.indexOf(':')
          headers[f.slice(0, colon).toLowerCase()] = f.slice(colon + 1).trim()
        }
        const length = Number(headers['content-length'] ?? 0)
        if (buf.length < end + 4 + length) return
        const body = Buffer.from(buf.subarray(end + 4, end + 4 + length))
        buf = buf.subarray(end + 4 + length)
        onRequest({ method, path, headers, body, conn, index: index++ }, socket)
      }
    })
  })
  return listen(server)
}

/** Writes `wire` one byte per write, a timer tick apart, so the client reads it in many pieces. */
async function dribble(socket: Socket, wire: string): Promise<void> {
  for (let i = 0; i < wire.length && !socket.destroyed; i++) {
    socket.write(wire[i]!, 'latin1')
    await sleep(1)
  }
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'

// ---------------------------------------------------------------------------------------------

describe('response framing', () => {
  it('decodes a chunked response with extensions and a trailer, written a byte at a time, and reuses the connection', async () => {
    const wire =
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\ncontent-type: text/plain\r\n\r\n' +
      '5;name=value\r\nhello\r\n' +
      '2 ; quoted="a;b"\r\n, \r\n' +
      'A\r\n0123456789\r\n' +
      '0;last\r\nx-checksum: 42\r\nx-other: y\r\n\r\n'
    const up = await rawUpstream((req, socket) => {
      if (req.path === '/chunked') void dribble(socket, wire)
      else socket.write(OK)
    })
    const inv = invoker()
    const res = await inv.invoke(attempt({ path: '/chunked' }), endpoint(up.origin), soon())
    expect(res.status).toBe(200)
    expect(await text(res.body)).toBe('hello, 0123456789')
    expect(res.headers['content-type']).toBe('text/plain')
    expect(res.headers['content-length']).toBeUndefined()
    expect(res.headers['transfer-encoding']).toBeUndefined()
    expect(res.headers.trailer).toBeUndefined()
    expect(res.headers['x-checksum']).toBeUndefined()

    const next = await inv.invoke(attempt({ path: '/next' }), endpoint(up.origin), soon())
    expect(await text(next.body)).toBe('ok')
    expect(up.sockets).toHaveLength(1)
  })

  it('reads a close-delimited response to the end and never reuses its connection', async () => {
    const up = await rawUpstream(async (req, socket) => {
      if (req.path !== '/close') return void socket.write(OK)
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart one, ')
      await sleep(20)
      socket.write('part two')
      await sleep(20)
      socket.end()
    })
    const inv = invoker()
    const res = await inv.invoke(attempt({ path: '/close' }), endpoint(up.origin), soon())
    expect(res.status).toBe(200)
    expect(await text(res.body)).toBe('part one, part two')

    const next = await inv.invoke(attempt({ path: '/next' }), endpoint(up.origin), soon())
    expect(await text(next.body)).toBe('ok')
    expect(up.sockets).toHaveLength(2)
    expect(await within(up.closes[0]!, HANG_GUARD_MS)).toBe('settled')
  })

  it('skips 100 and 103 interim responses, in separate writes or all in one', async () => {
    const interim =
      'HTTP/1.1 100 Continue\r\n\r\n' + 'HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n'
    const final = 'HTTP/1.1 201 Created\r\nx-final: yes\r\ncontent-length: 4\r\n\r\ndone'
    const up = await rawUpstream(async (req, socket) => {
      if (req.path === '/together') return void socket.write(interim + final)
      socket.write('HTTP/1.1 100 Continue\r\n\r\n')
      await sleep(10)
      socket.write('HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n')
      await sleep(10)
      socket.write(final)
    })
    const inv = invoker()
    for (const path of ['/apart', '/together']) {
      const res = await inv.invoke(attempt({ path }), endpoint(up.origin), soon())
      expect(res.status).toBe(201)
      expect(res.headers['x-final']).toBe('yes')
      expect(res.headers.link).toBeUndefined()
      expect(await text(res.body)).toBe('done')
    }
    expect(up.sockets).toHaveLength(1)
  })

  it('reads no body after HEAD, 204 and 304, and reuses the connection', async () => {
    const answers: Record<string, string> = {
      '/head': 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n',
      '/204': 'HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n',
      '/304': 'HTTP/1.1 304 Not Modified\r\netag: "v1"\r\ncontent-length: 5\r\n\r\n',
      '/last': 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlast',
    }
    const up = await rawUpstream((req, socket) => socket.write(answers[req.path]!))
    const inv = invoker()
    const head = await inv.invoke(attempt({ method: 'HEAD', path: '/head' }), endpoint(up.origin), soon())
    expect(head.status).toBe(200)
    expect(head.body).toBeNull()
    expect(head.headers['content-length']).toBe('5')
    const noContent = await inv.invoke(attempt({ path: '/204' }), endpoint(up.origin), soon())
    expect(noContent.status).toBe(204)
    expect(noContent.body).toBeNull()
    const notModified = await inv.invoke(attempt({ path: '/304' }), endpoint(up.origin), soon())
    expect(notModified.status).toBe(304)
    expect(notModified.body).toBeNull()
    // The five bytes HEAD and 304 announced never come: the next response on the wire is this one.
    const last = await inv.invoke(attempt({ path: '/last' }), endpoint(up.origin), soon())
    expect(await text(last.body)).toBe('last')
    expect(up.sockets).toHaveLength(1)
  })

  it('does not reuse a connection after `connection: close` or an HTTP/1.0 response', async () => {
    const answers: Record<string, string> = {
      '/close': 'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok',
      '/http10': 'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok',
      '/http10-keep': 'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok',
    }
    const up = await rawUpstream((req, socket) => socket.write(answers[req.path] ?? OK))
    const inv = invoker()
    for (const path of ['/close', '/http10', '/http10-keep', '/next']) {
      const res = await inv.invoke(attempt({ path }), endpoint(up.origin), soon())
      expect(await text(res.body)).toBe('ok')
    }
    // /close and /http10 each end their connection; /http10-keep's is reused by /next.
    expect(up.sockets).toHaveLength(3)
  })

  it('reads a small 5xx body whole before returning it, a large one as a stream', async () => {
    const small = 'e'.repeat(10_000)
    const up = await rawUpstream(async (req, socket) => {
      const body = req.path === '/small' ? small : 'E'.repeat(100_000)
      socket.write(`HTTP/1.1 503 Service Unavailable\r\ncontent-length: ${body.length}\r\n\r\n`)
      await sleep(10)
      socket.write(body.slice(0, 4000))
      await sleep(10)
      socket.write(body.slice(4000))
    })
    const inv = invoker()
    const res = await inv.invoke(attempt({ path: '/small' }), endpoint(up.origin), soon())
    expect(res.status).toBe(503)
    expect(res.body).toBeInstanceOf(Uint8Array)
    expect(await text(res.body)).toBe(small)
    const large = await inv.invoke(attempt({ path: '/large' }), endpoint(up.origin), soon())
    expect(large.body).not.toBeInstanceOf(Uint8Array)
    expect((await bytes(large.body)).length).toBe(100_000)
    expect(up.sockets).toHaveLength(1)
  })

  it('errors a body stream whose upstream goes silent for longer than bodyTimeout', async () => {
    const up = await rawUpstream((_req, socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf')
    })
    const inv = invoker({ bodyTimeout: 100 })
    const res = await inv.invoke(attempt(), endpoint(up.origin), soon())
    // The upstream neither sends the rest nor closes: only the client's body timer can end the stream,
    // and it is the client that then closes the connection.
    const err = await failureOf(bytes(res.body))
    expect(err.kind).toBe('reset')
    expect(await within(up.closes[0]!, HANG_GUARD_MS)).toBe('settled')
  })
})

// ---------------------------------------------------------------------------------------------

describe('stale keep-alive connections', () => {
  it('replays an idempotent request with an in-memory body on a new connection, never a POST', async () => {
    const seen: RawRequest[] = []
    // Answers the first request on each connection; closes the connection on the second, unanswered,
    // as an upstream whose keep-alive timer fired just as the request arrived.
    const up = await rawUpstream((req, socket) => {
      seen.push(req)
      if (req.index > 0) socket.destroy()
      else socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${req.body.length + 2}\r\n\r\nok${req.body}`)
    })
    const inv = invoker()
    const first = await inv.invoke(attempt(), endpoint(up.origin), soon())
    expect(await text(first.body)).toBe('ok')

    const get = await inv.invoke(attempt(), endpoint(up.origin), soon())
    expect(await text(get.body)).toBe('ok')
    expect(up.sockets).toHaveLength(2)

    const put = await inv.invoke(
      attempt({ method: 'PUT', body: Buffer.from('data') }),
      endpoint(up.origin),
      soon(),
    )
    expect(await text(put.body)).toBe('okdata')
    expect(up.sockets).toHaveLength(3)

    const post = inv.invoke(
      attempt({ method: 'POST', body: Buffer.from('once') }),
      endpoint(up.origin),
      soon(),
    )
    expect((await failureOf(post)).kind).toBe('reset')
    // The POST reached the upstream once and was not sent again.
    expect(seen.filter((r) => r.method === 'POST')).toHaveLength(1)
    expect(up.sockets).toHaveLength(3)
    expect(seen.map((r) => `${r.method} ${r.conn}.${r.index}`)).toEqual([
      'GET 0.0',
      'GET 0.1',
      'GET 1.0',
      'PUT 1.1',
      'PUT 2.0',
      'POST 2.1',
    ])
  })
})

// ---------------------------------------------------------------------------------------------

describe('odd but valid responses', () => {
  it('takes fields named like Object.prototype members as plain fields', async () => {
    const up = await rawUpstream((_req, socket) =>
      socket.write(
        'HTTP/1.1 200 OK\r\nconstructor: a\r\n__proto__: b\r\nhasOwnProperty: c\r\nconstructor: d\r\ncontent-length: 2\r\n\r\nok',
      ),
    )
    const res = await invoker().invoke(attempt(), endpoint(up.origin), soon())
    expect(res.headers.constructor).toEqual(['a', 'd'])
    const proto = '__proto__'
    expect(res.headers[proto]).toBe('b')
    expect(res.headers.hasownproperty).toBe('c')
    expect(await text(res.body)).toBe('ok')
  })
})

describe('malformed responses fail as a reset and close the connection', () => {
  /** A connection is pooled by a good exchange, then `wire` answers on it; then one more good one. */
  async function malformed(wire: string, opts?: Http1Options): Promise<UpstreamFailure> {
    const up = await rawUpstream((req, socket) => socket.write(req.path === '/bad' ? wire : OK))
    const inv = invoker(opts)
    const warm = await inv.invoke(attempt(), endpoint(up.origin), soon())
    expect(await text(warm.body)).toBe('ok')
    const err = await failureOf(inv.invoke(attempt({ path: '/bad' }), endpoint(up.origin), soon()))
    expect(await within(up.closes[0]!, HANG_GUARD_MS)).toBe('settled')
    const after = await inv.invoke(attempt(), endpoint(up.origin), soon())
    expect(await text(after.body)).toBe('ok')
    expect(up.sockets).toHaveLength(2)
    return err
  }

  it('a bad status line', async () => {
    expect((await malformed('HTTP/1.1 2O0 OK\r\ncontent-length: 2\r\n\r\nok')).kind).toBe('reset')
    expect((await malformed('HTTP/2 200 OK\r\ncontent-length: 2\r\n\r\nok')).kind).toBe('reset')
    expect((await malformed('ICY 200 OK\r\ncontent-length: 2\r\n\r\nok')).kind).toBe('reset')
  })

  it('a status below 100, which is no interim response', async () => {
    // RFC 9110 §15: status codes are 100..599; "099" must not be skipped like a 1xx.
    const err = await malformed('HTTP/1.1 099 Odd\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    expect(err.kind).toBe('reset')
  })

  it('two different Content-Lengths, as two fields or as a list', async () => {
    const two = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!'
    expect((await malformed(two)).kind).toBe('reset')
    expect((await malformed('HTTP/1.1 200 OK\r\ncontent-length: 3, 2\r\n\r\nok!')).kind).toBe('reset')
    expect((await malformed('HTTP/1.1 200 OK\r\ncontent-length: -2\r\n\r\nok')).kind).toBe('reset')
  })

  it('accepts repeated equal Content-Lengths as one (RFC 9110 §8.6)', async () => {
    const up = await rawUpstream((_req, socket) =>
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2, 2\r\n\r\nok'),
    )
    const inv = invoker()
    for (let i = 0; i < 2; i++) {
      const res = await inv.invoke(attempt(), endpoint(up.origin), soon())
      expect(res.headers['content-length']).toBe('2')
      expect(await text(res.body)).toBe('ok')
    }
    expect(up.sockets).toHaveLength(1)
  })

  it('a field name with whitespace before the colon', async () => {
    expect((await malformed('HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\nok')).kind).toBe('reset')
  })

  it.each([
    ['LF', 'one\ntwo'],
    ['CR', 'one\rtwo'],
    ['NUL', 'one\0two'],
  ])('a field value with a bare %s in it', async (_name, value) => {
    // RFC 9110 §5.5: a field value with CR, LF or NUL is rejected (or those replaced with SP); it must
    // never reach the pipeline, whose own server refuses to write it (ERR_INVALID_CHAR).
    const err = await malformed(`HTTP/1.1 200 OK\r\nx-a: ${value}\r\ncontent-length: 2\r\n\r\nok`)
    expect(err.kind).toBe('reset')
  })

  it('a response head larger than maxHeaderSize, whole or still unfinished', async () => {
    const big = `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(2000)}\r\ncontent-length: 2\r\n\r\nok`
    expect((await malformed(big, { maxHeaderSize: 1024 })).kind).toBe('reset')
    // The end of the head never comes: the client gives up once the limit is passed, not at a timeout
    // (the invoker's read timeout is set far beyond the test's own).
    const endless = `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(2000)}`
    expect((await malformed(endless, { maxHeaderSize: 1024, bodyTimeout: 600_000 })).kind).toBe('reset')
    // Just under the limit is fine.
    const up = await rawUpstream((_req, socket) =>
      socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(900)}\r\ncontent-length: 2\r\n\r\nok`),
    )
    const res = await invoker({ maxHeaderSize: 1024 }).invoke(attempt(), endpoint(up.origin), soon())
    expect(await text(res.body)).toBe('ok')
  })

  it('a bad chunk size fails the body stream', async () => {
    const up = await rawUpstream(async (_req, socket) => {
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n')
      await sleep(20)
      socket.write('zz\r\n')
    })
    const res = await invoker().invoke(attempt(), endpoint(up.origin), soon())
    expect((await failureOf(bytes(res.body))).kind).toBe('reset')
    expect(await within(up.closes[0]!, HANG_GUARD_MS)).toBe('settled')
  })

  it('a chunked body malformed in the same read as its head fails the attempt, not the process', async () => {
    // The caller cannot listen on a body before `invoke` has resolved; an 'error' emitted before then
    // with no listener would be an uncaught exception, which ends a sidecar. The bytes that came with
    // the head are decoded first, so the attempt fails as a whole (and may be retried).
    const uncaught: unknown[] = []
    const record = (err: unknown) => uncaught.push(err)
    process.on('uncaughtException', record)
    try {
      const up = await rawUpstream((_req, socket) =>
        socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n'),
      )
      expect((await failureOf(invoker().invoke(attempt(), endpoint(up.origin), soon()))).kind).toBe('reset')
      await sleep(10)
      expect(uncaught.map((e) => (e as Error).message)).toEqual([])
    } finally {
      process.off('uncaughtException', record)
    }
  })

  it('bytes after a complete Content-Length response: the connection is not reused', async () => {
    const up = await rawUpstream((req, socket) =>
      socket.write(req.path === '/extra' ? `${OK}HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nforged` : OK),
    )
    const inv = invoker()
    const res = await inv.invoke(attempt({ path: '/extra' }), endpoint(up.origin), soon())
    expect(await text(res.body)).toBe('ok')
    expect(await within(up.closes[0]!, HANG_GUARD_MS)).toBe('settled')
    // The extra bytes are never taken for the next response.
    const next = await inv.invoke(attempt({ path: '/next' }), endpoint(up.origin), soon())
    expect(await text(next.body)).toBe('ok')
    expect(up.sockets).toHaveLength(2)
  })
})

// ---------------------------------------------------------------------------------------------

describe('requests as the upstream sees them', () => {
  interface Seen {
    method: string
    headers: IncomingMessage['headers']
    rawHeaders: string[]
    body: Buffer
  }

  async function recorder(): Promise<{ up: Upstream; seen: Seen[] }> {
    const seen: Seen[] = []
    const up = await httpUpstream((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        seen.push({
          method: req.method ?? '',
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          body: Buffer.concat(chunks),
        })
        res.end('ok')
      })
    })
    return { up, seen }
  }

  async function* pieces(...parts: (string | Buffer)[]): AsyncIterable<Uint8Array> {
    for (const p of parts) {
      await sleep(1)
      yield typeof p === 'string' ? Buffer.from(p) : p
    }
  }

  it('frames each kind of body', async () => {
    const { up, seen } = await recorder()
    const inv = invoker()
    const send = async (req: Partial<AttemptRequest>) => {
      const res = await inv.invoke(attempt(req), endpoint(up.origin), soon())
      expect(await text(res.body)).toBe('ok')
      return seen.at(-1)!
    }
    const binary = Buffer.from([0, 1, 2, 0x0d, 0x0a, 0x30, 0x0d, 0x0a, 0x0d, 0x0a, 0xff])

    const bytesBody = await send({ method: 'POST', body: binary })
    expect(bytesBody.headers['content-length']).toBe(String(binary.length))
    expect(bytesBody.headers['transfer-encoding']).toBeUndefined()
    expect(bytesBody.body.equals(binary)).toBe(true)

    // A stated length is used as is; a wrong one from the caller is replaced for an in-memory body.
    const declared = await send({
      method: 'PUT',
      headers: { 'content-length': '13' },
      body: pieces('hello', Buffer.alloc(0), ', world', '!'),
    })
    expect(declared.headers['content-length']).toBe('13')
    expect(declared.headers['transfer-encoding']).toBeUndefined()
    expect(declared.body.toString()).toBe('hello, world!')
    const corrected = await send({ method: 'POST', headers: { 'content-length': '99' }, body: 'héllo' })
    expect(corrected.headers['content-length']).toBe('6')
    expect(corrected.body.toString()).toBe('héllo')

    // Unknown length: chunked, and an empty piece must not end the body early.
    const chunked = await send({ method: 'POST', body: pieces('a', Buffer.alloc(0), binary, 'z') })
    expect(chunked.headers['transfer-encoding']).toBe('chunked')
    expect(chunked.headers['content-length']).toBeUndefined()
    expect(chunked.body.equals(Buffer.concat([Buffer.from('a'), binary, Buffer.from('z')]))).toBe(true)

    const emptyPost = await send({ method: 'POST' })
    expect(emptyPost.headers['content-length']).toBe('0')
    expect(emptyPost.headers['transfer-encoding']).toBeUndefined()

    const get = await send({ method: 'GET' })
    expect(get.headers['content-length']).toBeUndefined()
    expect(get.headers['transfer-encoding']).toBeUndefined()
    expect(get.headers.host).toBe(up.origin.slice('http://'.length))

    expect(seen.map((s) => s.method)).toEqual(['POST', 'PUT', 'POST', 'POST', 'POST', 'GET'])
    expect(up.sockets).toHaveLength(1)
  })

  it('drops hop-by-hop request headers and keeps the end-to-end ones', async () => {
    const { up, seen } = await recorder()
    const res = await invoker().invoke(
      attempt({
        method: 'POST',
        headers: {
          host: 'svc.mesh',
          connection: 'keep-alive, x-private',
          'x-private': 'secret',
          'keep-alive': 'timeout=5',
          'proxy-connection': 'keep-alive',
          'proxy-authorization': 'Basic eA==',
          upgrade: 'websocket',
          te: 'trailers, deflate',
          'transfer-encoding': 'chunked',
          trailer: 'x-sum',
          expect: '100-continue',
          'x-end': ['a', 'b'],
        },
        body: 'body',
      }),
      endpoint(up.origin),
      soon(),
    )
    expect(await text(res.body)).toBe('ok')
    const [got] = seen
    const names = got!.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
    expect(names.sort()).toEqual(['content-length', 'host', 'te', 'x-end', 'x-end'])
    expect(got!.headers.host).toBe('svc.mesh')
    expect(got!.headers.te).toBe('trailers')
    expect(got!.headers['x-end']).toBe('a, b')
    expect(got!.body.toString()).toBe('body')
  })

  it('refuses a header or path that would split the request, before sending anything', async () => {
    const { up, seen } = await recorder()
    const inv = invoker()
    const bad: Partial<AttemptRequest>[] = [
      { headers: { 'x-a': 'ok\r\nx-injected: 1' } },
      { headers: { 'x-a': ['fine', 'evil\nx-injected: 1'] } },
      { headers: { 'x-a': 'nul\0' } },
      { headers: { 'x a': 'space in the name' } },
      { headers: { 'x-a\r\nx-injected': '1' } },
      { path: '/a b' },
      { path: '/a\r\nx-injected: 1' },
    ]
    for (const req of bad) {
      const err = await failureOf(inv.invoke(attempt(req), endpoint(up.origin), soon()))
      expect(err.kind).toBe('reset')
    }
    await sleep(20)
    expect(up.sockets).toHaveLength(0)
    expect(seen).toHaveLength(0)
  })

  it('never lets a request go out on a connection whose previous request body was cut short', async () => {
    // The upstream answers as soon as it has the head (as servers do with a 413 or a cached reply)
    // while the client is still streaming a body of a declared length.
    const received: string[] = []
    const server = createNetServer((socket) => {
      socket.on('error', () => {})
      const i = received.push('') - 1
      let early = false
      let next = false
      socket.on('data', (chunk: Buffer) => {
        received[i] += chunk.toString('latin1')
        const seen = received[i]!
        if (!early && seen.startsWith('POST /upload') && seen.includes('\r\n\r\n')) {
          early = true
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nearly')
        }
        if (!next && seen.includes('GET /next') && seen.endsWith('\r\n\r\n')) {
          next = true
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext')
        }
      })
    })
    const up = await listen(server)
    const inv = invoker()
    let open!: () => void
    const gate = new Promise<void>((r) => {
      open = r
    })
    async function* body(): AsyncIterable<Uint8Array> {
      yield Buffer.from('abcde')
      await gate
      yield Buffer.from('fghij')
    }
    const early = await inv.invoke(
      attempt({ method: 'POST', path: '/upload', headers: { 'content-length': '10' }, body: body() }),
      endpoint(up.origin),
      soon(),
    )
    expect(await text(early.body)).toBe('early')
    open()
    await sleep(20)
    const next = await inv.invoke(attempt({ path: '/next' }), endpoint(up.origin), soon())
    expect(await text(next.body)).toBe('next')
    // Either the whole declared body went up before the next request on that connection, or the
    // connection was not used again.
    const first = received[0]!
    const afterHead = first.slice(first.indexOf('\r\n\r\n') + 4)
    const between = afterHead.includes('GET /next')
      ? afterHead.slice(0, afterHead.indexOf('GET /next'))
      : 'not reused'
    expect(['abcdefghij', 'not reused']).toContain(between)
  })
})

// ---------------------------------------------------------------------------------------------

describe('pools, aborts and failures', () => {
  it('queues requests beyond the connection limit and runs them one after another on one connection', async () => {
    const up = await httpUpstream((req, res) => {
      setTimeout(() => res.end(req.url), 50)
    })
    const inv = invoker({ connections: 1 })
    const all = ['/a', '/b', '/c'].map((path) => inv.invoke(attempt({ path }), endpoint(up.origin), soon()))
    expect(inv.stats()[up.origin]!.pending).toBeGreaterThanOrEqual(1)
    await sleep(10)
    const during = inv.stats()[up.origin]!
    expect(during.connected).toBe(1)
    expect(during.running).toBe(1)
    expect(during.pending).toBeGreaterThanOrEqual(1)
    const bodies = await Promise.all(all.map(async (p) => text((await p).body)))
    expect(bodies).toEqual(['/a', '/b', '/c'])
    expect(up.sockets).toHaveLength(1)
    expect(inv.stats()[up.origin]).toEqual({ connected: 1, pending: 0, running: 0 })
  })

  it('fails as a timeout promptly when the signal aborts while waiting for the head, and closes the socket', async () => {
    const up = await httpUpstream(() => {
      // Never answers.
    })
    const inv = invoker()
    // The upstream never answers: only the signal can end the call (AbortSignal.timeout's own error).
    const err = await failureOf(inv.invoke(attempt(), endpoint(up.origin), AbortSignal.timeout(50)))
    expect(err.kind).toBe('timeout')
    expect(await within(up.closes[0]!, HANG_GUARD_MS)).toBe('settled')
    expect(await holdsWithin(() => inv.stats()[up.origin]!.connected === 0)).toBe(true)
    expect(inv.stats()[up.origin]!.running).toBe(0)
  })

  it('an abort while queued for a connection leaves the queue', async () => {
    const up = await httpUpstream((_req, res) => {
      setTimeout(() => res.end('ok'), 100)
    })
    const inv = invoker({ connections: 1 })
    const running = inv.invoke(attempt(), endpoint(up.origin), soon())
    const ac = new AbortController()
    const queued = inv.invoke(attempt(), endpoint(up.origin), ac.signal)
    expect(inv.stats()[up.origin]!.pending).toBe(1)
    ac.abort()
    expect((await failureOf(queued)).kind).toBe('timeout')
    expect(inv.stats()[up.origin]!.pending).toBe(0)
    expect(await text((await running).body)).toBe('ok')
    expect(up.sockets).toHaveLength(1)
  })

  it('an already aborted signal sends nothing', async () => {
    const up = await httpUpstream((_req, res) => res.end('ok'))
    const ac = new AbortController()
    ac.abort()
    expect((await failureOf(invoker().invoke(attempt(), endpoint(up.origin), ac.signal))).kind).toBe(
      'timeout',
    )
    await sleep(20)
    expect(up.sockets).toHaveLength(0)
  })

  it('fails as connect-failure on a closed port', async () => {
    const server = createNetServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as AddressInfo).port
    await new Promise<void>((r) => server.close(() => r()))
    const inv = invoker()
    const err = await failureOf(inv.invoke(attempt(), endpoint(`http://127.0.0.1:${port}`), soon()))
    expect(err.kind).toBe('connect-failure')
    expect(inv.stats()[`http://127.0.0.1:${port}`]).toEqual({ connected: 0, pending: 0, running: 0 })
  })
})

// ---------------------------------------------------------------------------------------------

describe('streaming bodies', () => {
  const SIZE = 20 * 1024 * 1024
  const payload = Buffer.alloc(SIZE)
  for (let i = 0; i < SIZE; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i)
  const digest = createHash('sha256').update(payload).digest('hex')

  /** Writes `payload` in 64 KiB pieces, honoring backpressure, until done or the client leaves. */
  function big(): Promise<Upstream> {
    return httpUpstream(async (_req, res) => {
      res.writeHead(200, { 'content-length': SIZE })
      for (let at = 0; at < SIZE && !res.destroyed; at += 65536) {
        if (!res.write(payload.subarray(at, at + 65536))) {
          await new Promise<void>((r) => {
            const go = () => {
              res.off('drain', go)
              res.off('close', go)
              r()
            }
            res.on('drain', go)
            res.on('close', go)
          })
        }
      }
      res.end()
    })
  }

  it('delivers 20 MB byte-exact to a slow reader, holding back the upstream meanwhile', async () => {
    const up = await big()
    const res = await invoker().invoke(attempt(), endpoint(up.origin), soon())
    const body = res.body as Readable
    expect(typeof body.pipe).toBe('function')
    const hash = createHash('sha256')
    let received = 0
    let nextPause = 0
    let bufferedAfterLongPause = -1
    for await (const chunk of body) {
      hash.update(chunk as Buffer)
      received += (chunk as Buffer).length
      if (received >= nextPause) {
        nextPause += 512 * 1024
        await sleep(1)
      }
      if (bufferedAfterLongPause < 0 && received >= 5 * 1024 * 1024) {
        // Long enough for the other 15 MB to arrive were nothing holding them back.
        await sleep(100)
        bufferedAfterLongPause = body.readableLength
      }
    }
    expect(received).toBe(SIZE)
    expect(hash.digest('hex')).toBe(digest)
    expect(bufferedAfterLongPause).toBeGreaterThanOrEqual(0)
    expect(bufferedAfterLongPause).toBeLessThan(1024 * 1024)
  })

  it('closes the upstream connection when the body stream is destroyed half-way', async () => {
    const up = await big()
    const inv = invoker()
    const res = await inv.invoke(attempt(), endpoint(up.origin), soon())
    const body = res.body as Readable
    let received = 0
    for await (const chunk of body) {
      received += (chunk as Buffer).length
      if (received >= 2 * 1024 * 1024) break // `break` destroys the stream
    }
    expect(body.destroyed).toBe(true)
    expect(await within(up.closes[0]!, HANG_GUARD_MS)).toBe('settled')
    expect(await holdsWithin(() => inv.stats()[up.origin]!.connected === 0)).toBe(true)
    expect(inv.stats()[up.origin]!.running).toBe(0)
  })
})

// ---------------------------------------------------------------------------------------------

describe('idle keep-alive connections', () => {
  it('closes a pooled connection once it has been idle for keepAliveTimeout', async () => {
    // An upstream that never closes a connection itself.
    const up = await rawUpstream((_req, socket) => socket.write(OK))
    const inv = invoker({ keepAliveTimeout: 200 })
    const res = await inv.invoke(attempt(), endpoint(up.origin), soon())
    expect(await text(res.body)).toBe('ok')
    expect(inv.stats()[up.origin]!.connected).toBe(1)
    // The upstream never closes: the client's idle timer is what closes this one.
    expect(await within(up.closes[0]!, HANG_GUARD_MS)).toBe('settled')
    expect(await holdsWithin(() => inv.stats()[up.origin]!.connected === 0)).toBe(true)
  })

  it('never reuses a connection idle for longer than keepAliveTimeout', async () => {
    const up = await httpUpstream((_req, res) => res.end('ok'))
    const inv = invoker({ keepAliveTimeout: 200 })
    const first = await inv.invoke(attempt(), endpoint(up.origin), soon())
    expect(await text(first.body)).toBe('ok')
    await sleep(300)
    const second = await inv.invoke(attempt(), endpoint(up.origin), soon())
    expect(await text(second.body)).toBe('ok')
    expect(up.sockets).toHaveLength(2)
  })
})

// ---------------------------------------------------------------------------------------------

describe('responses split at any write boundary (issue 23)', () => {
  const INTERIM = [
    'HTTP/1.1 100 Continue\r\n\r\n',
    'HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n',
    'HTTP/1.1 102 Processing\r\n\r\n',
  ]
  const response = fc.record({
    interim: fc.array(fc.constantFrom(...INTERIM), { maxLength: 3 }),
    status: fc.constantFrom(200, 201, 404, 500, 503),
    fields: fc.uniqueArray(
      fc.tuple(fc.stringMatching(/^x-[a-z0-9-]{1,12}$/), fc.stringMatching(/^[!-~]([ -~]{0,30}[!-~])?$/)),
      { maxLength: 6, selector: ([name]) => name },
    ),
    body: fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
    chunks: fc.option(fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 1, maxLength: 6 })),
    cuts: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
  })
  type Case = typeof response extends fc.Arbitrary<infer T> ? T : never

  function wire(c: Case): Buffer {
    let head = `${c.interim.join('')}HTTP/1.1 ${c.status} Whatever\r\n`
    for (const [name, value] of c.fields) head += `${name}: ${value}\r\n`
    if (c.chunks === null)
      return Buffer.concat([Buffer.from(`${head}content-length: ${c.body.length}\r\n\r\n`), c.body])
    const parts: Buffer[] = [Buffer.from(`${head}transfer-encoding: chunked\r\n\r\n`, 'latin1')]
    let at = 0
    for (let i = 0; at < c.body.length; i++) {
      const n = Math.min(c.chunks[i % c.chunks.length]!, c.body.length - at)
      parts.push(Buffer.from(`${n.toString(16)}\r\n`), c.body.subarray(at, at + n), Buffer.from('\r\n'))
      at += n
    }
    parts.push(Buffer.from('0\r\n\r\n'))
    return Buffer.concat(parts)
  }

  it('gives the same status, fields and body however the upstream splits its writes', async () => {
    let current: Case | undefined
    const up = await rawUpstream(async (_req, socket) => {
      const bytes = wire(current!)
      const cuts = [...new Set(current!.cuts.map((n) => n % bytes.length))].sort((a, b) => a - b)
      let from = 0
      for (const cut of [...cuts, bytes.length]) {
        if (cut <= from) continue
        socket.write(bytes.subarray(from, cut))
        from = cut
        // A timer tick between writes: the client's loop polls, and reads each piece on its own.
        await sleep(1)
      }
    })
    const inv = invoker()
    await fc.assert(
      fc.asyncProperty(response, async (c) => {
        current = c
        const res = await inv.invoke(attempt(), endpoint(up.origin), soon())
        expect(res.status).toBe(c.status)
        for (const [name, value] of c.fields) expect(res.headers[name]).toBe(value)
        expect(res.headers.link).toBeUndefined()
        expect((await bytes(res.body)).equals(c.body)).toBe(true)
      }),
      { numRuns: 60 },
    )
  })
})
