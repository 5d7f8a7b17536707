// The sidecar's own HTTP/1.1 server (proxy-core/http/http1-server.ts) at the edges of RFC 9112, over
// real sockets on loopback: hand-written `net` clients where the bytes on the wire must be exact,
// node:http where an ordinary client will do. Nothing is mocked; every listener and socket a test opens
// is closed after it.

import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { IncomingHttpHeaders } from 'node:http'
import { request as httpRequest } from 'node:http'
import type { Socket } from 'node:net'
import { connect } from 'node:net'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import type { DownstreamHandler, DownstreamRequest, Listener } from '../../proxy-core/http/http1-server.ts'
import { listenHttp1 } from '../../proxy-core/http/http1-server.ts'
import { holdsWithin } from '../helpers/attempt.ts'

// ---------------------------------------------------------------------------------------------
// Cleanup, servers, clients.

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

interface Deferred<T = void> {
  promise: Promise<T>
  resolve(value: T): void
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** Rejects if `p` has not settled within `ms`: a hang fails the test in 2 s, not at the test timeout. */
async function bounded<T>(p: Promise<T>, what: string, ms = 2000): Promise<T> {
  const ac = new AbortController()
  try {
    return await Promise.race([
      p,
      sleep(ms, undefined, { signal: ac.signal }).then(() => {
        throw new Error(`timed out waiting for ${what}`)
      }),
    ])
  } finally {
    ac.abort()
  }
}

/** Every byte of a request body as the handler sees it. */
async function readBody(body: Buffer | Readable | null): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0)
  if (Buffer.isBuffer(body)) return body
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

interface Server {
  listener: Listener
  host: string
  port: number
  /** Every request the handler was given, in order. */
  requests: DownstreamRequest[]
  /** What the listener's onError heard. */
  errors: unknown[]
}

async function serve(handler: DownstreamHandler): Promise<Server> {
  const requests: DownstreamRequest[] = []
  const errors: unknown[] = []
  const listener = await listenHttp1(
    { host: '127.0.0.1', port: 0 },
    (req) => {
      requests.push(req)
      return handler(req)
    },
    (err) => errors.push(err),
  )
  cleanups.push(() => listener.close())
  const colon = listener.address.lastIndexOf(':')
  return {
    listener,
    host: listener.address.slice(0, colon),
    port: Number(listener.address.slice(colon + 1)),
    requests,
    errors,
  }
}

/** Answers `METHOD url` as text/plain, keeping the connection. */
const hello: DownstreamHandler = (req) =>
  req.respond(
    { status: 200, headers: { 'content-type': 'text/plain' }, body: `${req.method} ${req.url}` },
    false,
  )

/** Fails the test if anything reaches process-level error handlers while it runs. */
function watchUncaught(): unknown[] {
  const seen: unknown[] = []
  const onError = (err: unknown) => seen.push(err)
  process.on('uncaughtException', onError)
  process.on('unhandledRejection', onError)
  cleanups.push(() => {
    process.off('uncaughtException', onError)
    process.off('unhandledRejection', onError)
  })
  return seen
}

interface Response {
  status: number
  /** The status line and field lines, exactly as received, without the blank line. */
  head: string
  /** Field values by lower-case name, in order. */
  headers: Record<string, string[]>
  body: Buffer
  framing: 'none' | 'length' | 'chunked' | 'close'
}

/** The one value of `name`, joined if repeated; undefined if absent. */
const field = (res: Response, name: string): string | undefined => res.headers[name]?.join(', ')

/** A hand-written client: writes exact bytes, parses the responses that come back, one by one. */
class RawClient {
  readonly socket: Socket
  private data = Buffer.alloc(0)
  /** Bytes of `data` already returned as responses. */
  private at = 0
  /** The server ended its side. */
  ended = false
  closed = false
  private wake: (() => void) | undefined

  constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk])
      this.poke()
    })
    socket.on('end', () => {
      this.ended = true
      this.poke()
    })
    socket.on('close', () => {
      this.ended = true
      this.closed = true
      this.poke()
    })
    socket.on('error', () => {})
  }

  write(wire: string | Buffer): void {
    this.socket.write(typeof wire === 'string' ? Buffer.from(wire, 'latin1') : wire)
  }

  /** Writes `wire` one byte per write, a timer tick apart, so the server reads it in many pieces. */
  async dribble(wire: string): Promise<void> {
    for (let i = 0; i < wire.length && !this.socket.destroyed; i++) {
      this.socket.write(wire[i]!, 'latin1')
      await sleep(1)
    }
  }

  /** Everything received so far, latin1. */
  get text(): string {
    return this.data.toString('latin1')
  }

  /** What came after the last response returned: nothing, on a connection framed right. */
  get unread(): string {
    return this.data.toString('latin1', this.at)
  }

  private poke(): void {
    const w = this.wake
    this.wake = undefined
    w?.()
  }

  /** Waits until `check` holds, for up to 10 s (a bound against a hang, not a measurement). */
  async until(check: () => boolean, what: string): Promise<void> {
    const end = performance.now() + 10_000
    while (!check()) {
      const left = end - performance.now()
      if (left <= 0)
        throw new Error(`timed out waiting for ${what}; received: ${JSON.stringify(this.text.slice(-300))}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
  }

  /** The next response; `head`: it answers a HEAD request, so it has no body whatever it says. */
  async response(opts: { head?: boolean } = {}): Promise<Response> {
    let res: Response | undefined
    await this.until(() => {
      res = this.parse(opts.head === true)
      return res !== undefined
    }, 'a response')
    return res!
  }

  /** Waits for the server to end the connection. */
  async end(): Promise<void> {
    await this.until(() => this.ended, 'the server to end the connection')
  }

  private parse(head: boolean): Response | undefined {
    const buf = this.data
    const incomplete = () => {
      if (this.ended) throw new Error(`connection ended mid-response: ${JSON.stringify(this.unread)}`)
      return undefined
    }
    const end = buf.indexOf('\r\n\r\n', this.at)
    if (end < 0) return incomplete()
    const headText = buf.toString('latin1', this.at, end)
    const [line = '', ...fields] = headText.split('\r\n')
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*$/.exec(line)
    if (m === null) throw new Error(`bad status line ${JSON.stringify(line)}`)
    const headers: Record<string, string[]> = {}
    for (const f of fields) {
      const colon = f.indexOf(':')
      if (colon <= 0 || /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(f.slice(0, colon)))
        throw new Error(`bad field line ${JSON.stringify(f)}`)
      const name = f.slice(0, colon).toLowerCase()
      headers[name] ??= []
      headers[name].push(f.slice(colon + 1).trim())
    }
    const status = Number(m[1])
    let at = end + 4
    let body = Buffer.alloc(0)
    let framing: Response['framing']
    if (head || status < 200 || status === 204 || status === 304) framing = 'none'
    else if (headers['transfer-encoding'] !== undefined) {
      framing = 'chunked'
      const pieces: Buffer[] = []
      for (;;) {
        const eol = buf.indexOf('\r\n', at)
        if (eol < 0) return incomplete()
        const size = Number.parseInt(buf.toString('latin1', at, eol), 16)
        if (Number.isNaN(size))
          throw new Error(`bad chunk size ${JSON.stringify(buf.toString('latin1', at, eol))}`)
        if (size === 0) {
          // No trailers from this server: the blank line follows at once.
          if (buf.length < eol + 4) return incomplete()
          if (buf.toString('latin1', eol, eol + 4) !== '\r\n\r\n') throw new Error('trailer after last chunk')
          at = eol + 4
          break
        }
        if (buf.length < eol + 2 + size + 2) return incomplete()
        pieces.push(buf.subarray(eol + 2, eol + 2 + size))
        if (buf.toString('latin1', eol + 2 + size, eol + 4 + size) !== '\r\n')
          throw new Error('chunk too long')
        at = eol + 4 + size
      }
      body = Buffer.concat(pieces)
    } else if (headers['content-length'] !== undefined) {
      framing = 'length'
      const n = Number(field({ status, head: headText, headers, body, framing }, 'content-length'))
      if (buf.length < at + n) return incomplete()
      body = Buffer.from(buf.subarray(at, at + n))
      at += n
    } else {
      framing = 'close'
      if (!this.ended) return undefined
      body = Buffer.from(buf.subarray(at))
      at = buf.length
    }
    this.at = at
    return { status, head: headText, headers, body, framing }
  }
}

async function rawClient(server: Server, opts: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
  const socket = connect({ host: server.host, port: server.port, allowHalfOpen: opts.allowHalfOpen ?? false })
  cleanups.push(() => socket.destroy())
  await once(socket, 'connect')
  return new RawClient(socket)
}

/** One request over node:http, on a connection of its own. */
async function httpCall(
  server: Server,
  opts: { method?: string; path?: string; headers?: Record<string, string | number>; body?: Buffer | string },
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return bounded(
    new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: server.host,
          port: server.port,
          method: opts.method ?? 'GET',
          path: opts.path ?? '/',
          headers: opts.headers ?? {},
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
          )
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(opts.body)
    }),
    'a node:http response',
    5000,
  )
}

/** A fresh connection still gets an ordinary answer. */
async function stillServes(server: Server): Promise<void> {
  const client = await rawClient(server)
  client.write('GET /still HTTP/1.1\r\nHost: svc\r\n\r\n')
  const res = await client.response()
  expect(res.status).toBe(200)
  client.socket.destroy()
}

// ---------------------------------------------------------------------------------------------

describe('keep-alive', () => {
  it('answers several requests on one connection, each with connection: keep-alive and a date', async () => {
    const server = await serve(hello)
    const client = await rawClient(server)
    for (const path of ['/one', '/two', '/three']) {
      client.write(`GET ${path} HTTP/1.1\r\nHost: svc\r\n\r\n`)
      const res = await client.response()
      expect(res.status).toBe(200)
      expect(res.body.toString()).toBe(`GET ${path}`)
      expect(field(res, 'content-length')).toBe(String(res.body.length))
      expect(field(res, 'connection')).toBe('keep-alive')
      expect(res.headers.date).toHaveLength(1)
      expect(Number.isNaN(Date.parse(field(res, 'date')!))).toBe(false)
      expect(field(res, 'content-type')).toBe('text/plain')
    }
    expect(server.listener.connections()).toBe(1)
    expect(client.ended).toBe(false)
    expect(server.requests.map((r) => r.url)).toEqual(['/one', '/two', '/three'])
    expect(server.requests[0]!.headers.host).toBe('svc')
    expect(server.requests[0]!.remoteAddress).toBe('127.0.0.1')
  })

  it('closes the connection after answering a request with connection: close', async () => {
    const server = await serve(hello)
    const client = await rawClient(server)
    client.write('GET /bye HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n')
    const res = await client.response()
    expect(res.status).toBe(200)
    expect(res.body.toString()).toBe('GET /bye')
    expect(field(res, 'connection')).toBe('close')
    await client.end()
    expect(client.unread).toBe('')
    expect(await holdsWithin(() => server.listener.connections() === 0)).toBe(true)
  })

  it('closes an HTTP/1.0 connection that did not ask for keep-alive', async () => {
    const server = await serve(hello)
    const client = await rawClient(server)
    client.write('GET /old HTTP/1.0\r\n\r\n')
    const res = await client.response()
    expect(res.status).toBe(200)
    expect(res.body.toString()).toBe('GET /old')
    expect(field(res, 'connection')).toBe('close')
    await client.end()
  })

  it('keeps an HTTP/1.0 connection that sent Connection: keep-alive', async () => {
    const server = await serve(hello)
    const client = await rawClient(server)
    for (const path of ['/a', '/b']) {
      client.write(`GET ${path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`)
      const res = await client.response()
      expect(res.body.toString()).toBe(`GET ${path}`)
      expect(field(res, 'connection')).toBe('keep-alive')
      expect(res.framing).toBe('length')
    }
    expect(client.ended).toBe(false)
    expect(server.listener.connections()).toBe(1)
  })

  it('processes no request that arrives after a connection: close request was answered', async () => {
    const server = await serve(hello)
    // A client that keeps its side open after the server's FIN, and sends anyway.
    const client = await rawClient(server, { allowHalfOpen: true })
    client.write('GET /last HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n')
    expect(field(await client.response(), 'connection')).toBe('close')
    await client.end()
    client.write('POST /after-close HTTP/1.1\r\nHost: svc\r\nContent-Length: 2\r\n\r\nhi')
    client.socket.end()
    // The server reads to the client's FIN before it closes: by then it has seen the POST.
    expect(await holdsWithin(() => server.listener.connections() === 0)).toBe(true)
    expect(server.requests.map((r) => r.url)).toEqual(['/last'])
  })
})

describe('pipelining', () => {
  it('answers three requests from one write in order, though the first takes longest', async () => {
    const delays: Record<string, number> = { '/1': 150, '/2': 50, '/3': 0 }
    const order: string[] = []
    const server = await serve(async (req) => {
      const body = (await readBody(req.body)).toString()
      await sleep(delays[req.url]!)
      order.push(req.url)
      await req.respond({ status: 200, headers: {}, body: `${req.url}:${body}` }, false)
    })
    const client = await rawClient(server)
    client.write(
      'GET /1 HTTP/1.1\r\nHost: svc\r\n\r\n' +
        'POST /2 HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\n\r\nxyz' +
        'GET /3 HTTP/1.1\r\nHost: svc\r\n\r\n',
    )
    const bodies: string[] = []
    for (let i = 0; i < 3; i++) {
      const res = await client.response()
      expect(res.status).toBe(200)
      expect(field(res, 'connection')).toBe('keep-alive')
      bodies.push(res.body.toString())
    }
    expect(bodies).toEqual(['/1:', '/2:xyz', '/3:'])
    expect(order).toEqual(['/1', '/2', '/3'])
    expect(client.unread).toBe('')
    expect(server.listener.connections()).toBe(1)
  })
})

describe('request bodies', () => {
  it('hands over a small Content-Length body that came with the head as a Buffer, byte for byte', async () => {
    const server = await serve(async (req) => {
      await req.respond(
        {
          status: 200,
          headers: {},
          body: createHash('sha256')
            .update(req.body as Buffer)
            .digest('hex'),
        },
        false,
      )
    })
    const payload = Buffer.from([0, 1, 2, 13, 10, 13, 10, 0x7f, 0x80, 0xfe, 0xff, 0x41])
    const client = await rawClient(server)
    client.write(
      Buffer.concat([
        Buffer.from(`POST /small HTTP/1.1\r\nHost: svc\r\nContent-Length: ${payload.length}\r\n\r\n`),
        payload,
      ]),
    )
    const res = await client.response()
    expect(res.body.toString()).toBe(createHash('sha256').update(payload).digest('hex'))
    const req = server.requests[0]!
    expect(Buffer.isBuffer(req.body)).toBe(true)
    expect(req.body).toEqual(payload)
    expect(req.contentLength).toBe(payload.length)
    expect(req.headers['content-length']).toBe(String(payload.length))
  })

  it('streams a Content-Length body that arrives in several writes, exactly', async () => {
    const started = deferred()
    let isStream = false
    const server = await serve(async (req) => {
      isStream = req.body instanceof Readable && !Buffer.isBuffer(req.body)
      started.resolve()
      const body = await readBody(req.body)
      await req.respond({ status: 200, headers: {}, body }, false)
    })
    const client = await rawClient(server)
    client.write('PUT /parts HTTP/1.1\r\nHost: svc\r\nContent-Length: 12\r\n\r\nab')
    await bounded(started.promise, 'the handler')
    for (const part of ['cde', 'fgh', 'ijkl']) {
      await sleep(20)
      client.write(part)
    }
    const res = await client.response()
    expect(isStream).toBe(true)
    expect(res.body.toString()).toBe('abcdefghijkl')
    expect(server.requests[0]!.contentLength).toBe(12)
    // The connection goes on.
    client.write('GET /next HTTP/1.1\r\nHost: svc\r\n\r\n')
    expect((await client.response()).status).toBe(200)
  })

  it('decodes a chunked body with extensions and trailers, dribbled a byte at a time, then the next request', async () => {
    const server = await serve(async (req) => {
      const body = await readBody(req.body)
      await req.respond({ status: 200, headers: {}, body: `${req.url}:${body.toString('latin1')}` }, false)
    })
    const client = await rawClient(server)
    await client.dribble(
      'POST /chunked HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5;name=value\r\nhello\r\n' +
        '2 ; quoted="a;b"\r\n, \r\n' +
        'A\r\n0123456789\r\n' +
        '0;last\r\nx-checksum: 42\r\nx-other: y\r\n\r\n' +
        'GET /after HTTP/1.1\r\nHost: svc\r\n\r\n',
    )
    expect((await client.response()).body.toString()).toBe('/chunked:hello, 0123456789')
    expect((await client.response()).body.toString()).toBe('/after:')
    const req = server.requests[0]!
    expect(req.contentLength).toBe(-1)
    expect(req.headers['x-checksum']).toBeUndefined()
    expect(client.unread).toBe('')
  })

  it('sends 100 Continue to Expect: 100-continue before the final response', async () => {
    const server = await serve(async (req) => {
      const body = await readBody(req.body)
      await req.respond({ status: 201, headers: {}, body }, false)
    })
    const client = await rawClient(server)
    client.write('POST /expect HTTP/1.1\r\nHost: svc\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n')
    const interim = await client.response()
    expect(interim.status).toBe(100)
    expect(client.text).toBe('HTTP/1.1 100 Continue\r\n\r\n')
    client.write('hello')
    const res = await client.response()
    expect(res.status).toBe(201)
    expect(res.body.toString()).toBe('hello')
  })

  it('receives a 5 MB upload consumed slowly, exactly and with backpressure', async () => {
    const payload = randomBytes(5 * 1024 * 1024)
    let maxBuffered = 0
    const server = await serve(async (req) => {
      const body = req.body as Readable
      const hash = createHash('sha256')
      let n = 0
      for await (const c of body) {
        hash.update(c as Buffer)
        n += (c as Buffer).length
        // A read takes all that is buffered: a piece this large means the socket was never paused.
        maxBuffered = Math.max(maxBuffered, (c as Buffer).length + body.readableLength)
        await sleep(1)
      }
      await req.respond({ status: 200, headers: {}, body: `${n} ${hash.digest('hex')}` }, false)
    })
    const res = await httpCall(server, {
      method: 'POST',
      path: '/upload',
      headers: { 'content-length': payload.length },
      body: payload,
    })
    expect(res.status).toBe(200)
    expect(res.body.toString()).toBe(
      `${payload.length} ${createHash('sha256').update(payload).digest('hex')}`,
    )
    expect(server.requests[0]!.body).toBeInstanceOf(Readable)
    // The socket was paused while the handler slept: never more than a few reads buffered.
    expect(maxBuffered).toBeLessThan(1024 * 1024)
  })
})

// ---------------------------------------------------------------------------------------------

const bigHead = 'GET / HTTP/1.1\r\nHost: svc\r\nX-Big: ' + 'a'.repeat(17 * 1024) + '\r\n\r\n'
const manyFields =
  'GET / HTTP/1.1\r\nHost: svc\r\n' +
  Array.from({ length: 100 }, (_, i) => `X-F${i}: v\r\n`).join('') +
  '\r\n'

const refusals: [string, string, number][] = [
  ['a garbage request line', 'hello world\r\n\r\n', 400],
  ['a request line with too many parts', 'GET / x HTTP/1.1\r\nHost: svc\r\n\r\n', 400],
  ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: svc\r\n\r\n', 505],
  ['CONNECT', 'CONNECT svc:443 HTTP/1.1\r\nHost: svc:443\r\n\r\n', 405],
  ['a head over 16 KiB', bigHead, 431],
  ['an unterminated head over 16 KiB', bigHead.slice(0, -4), 431],
  ['a request line over 16 KiB', `GET /${'a'.repeat(17 * 1024)} HTTP/1.1\r\nHost: svc\r\n\r\n`, 414],
  ['more than 100 field lines', manyFields, 431],
  ['two Host fields', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
  [
    'Content-Length and Transfer-Encoding',
    'POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    400,
  ],
  [
    'Transfer-Encoding: chunked, gzip',
    'POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
    400,
  ],
  ['Transfer-Encoding: gzip', 'POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: gzip\r\n\r\n', 400],
  [
    'two different Content-Lengths',
    'POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    400,
  ],
  [
    'a Content-Length list of different values',
    'POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 3, 4\r\n\r\nabcd',
    400,
  ],
  ['a negative Content-Length', 'POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: -1\r\n\r\n', 400],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: svc\r\nX-A: one\r\n  two\r\n\r\n', 400],
  ['whitespace before a colon', 'GET / HTTP/1.1\r\nHost : svc\r\n\r\n', 400],
  ['a bare CR in a field value', 'GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\rb\r\n\r\n', 400],
  ['a NUL in a field value', 'GET / HTTP/1.1\r\nHost: svc\r\nX-A: a\0b\r\n\r\n', 400],
  ['a field line without a colon', 'GET / HTTP/1.1\r\nHost: svc\r\nnocolon\r\n\r\n', 400],
  [
    'Expect: something-else',
    'POST / HTTP/1.1\r\nHost: svc\r\nExpect: bogus\r\nContent-Length: 5\r\n\r\n',
    417,
  ],
]

const CODE_OF: Record<number, string> = {
  400: 'bad_request',
  405: 'method_not_allowed',
  414: 'uri_too_long',
  417: 'expectation_failed',
  431: 'headers_too_large',
  505: 'version_not_supported',
}

describe('refusals', () => {
  it.each(refusals.map(([name, wire, status]) => ({ name, wire, status })))(
    'answers $name with $status and connection: close, then serves others',
    async ({ wire, status }) => {
      const server = await serve(hello)
      const client = await rawClient(server)
      client.write(wire)
      const res = await client.response()
      expect(res.status).toBe(status)
      expect(field(res, 'connection')).toBe('close')
      // The code is the error table's own for this status: one code per status.
      expect(field(res, 'x-meshgate-error')).toBe(CODE_OF[status])
      expect(JSON.parse(res.body.toString())).toEqual({ error: field(res, 'x-meshgate-error') })
      await client.end()
      expect(server.requests).toHaveLength(0)
      expect(
        await holdsWithin(() => server.listener.connections() === 0 && server.listener.inFlight() === 0),
      ).toBe(true)
      await stillServes(server)
    },
  )

  it('takes no request that arrives after a refusal, on the same connection', async () => {
    const server = await serve(hello)
    const client = await rawClient(server, { allowHalfOpen: true })
    client.write('GET / HTTP/2.0\r\nHost: svc\r\n\r\n')
    expect((await client.response()).status).toBe(505)
    await client.end()
    client.write('DELETE /after-refusal HTTP/1.1\r\nHost: svc\r\n\r\n')
    client.socket.end()
    expect(await holdsWithin(() => server.listener.connections() === 0)).toBe(true)
    expect(server.requests.map((r) => r.url)).toEqual([])
  })

  it('counts no request in flight once an unmet Expect was refused, though the client keeps its side open', async () => {
    const server = await serve(hello)
    const client = await rawClient(server, { allowHalfOpen: true })
    client.write('POST / HTTP/1.1\r\nHost: svc\r\nExpect: bogus\r\nContent-Length: 5\r\n\r\n')
    expect((await client.response()).status).toBe(417)
    await client.end()
    expect(server.requests).toHaveLength(0)
    // A drain waits for inFlight() to reach 0: a refused request must not hold it up.
    expect(await holdsWithin(() => server.listener.inFlight() === 0)).toBe(true)
  })

  it('refuses a transfer coding it does not implement ahead of chunked', async () => {
    const server = await serve(hello)
    const client = await rawClient(server)
    // The body is chunked over an unknown coding: decoding only the chunks would hand on garbage.
    client.write(
      'POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: x-unknown, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    )
    const res = await client.response()
    expect(res.status).toBe(501)
    expect(server.requests).toHaveLength(0)
  })

  it('errors the body stream on a malformed chunk size, answers 400 and closes, with nothing uncaught', async () => {
    const uncaught = watchUncaught()
    const firstPiece = deferred<string>()
    const failure = deferred<Error>()
    const server = await serve(async (req) => {
      if (req.body === null) return hello(req)
      const body = req.body as Readable
      try {
        for await (const c of body) firstPiece.resolve((c as Buffer).toString())
      } catch (err) {
        failure.resolve(err as Error)
        return
      }
      await req.respond({ status: 200, headers: {}, body: 'complete?' }, false)
    })
    const client = await rawClient(server)
    client.write('POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
    expect(await bounded(firstPiece.promise, 'the first chunk')).toBe('hello')
    client.write('zz\r\nmore\r\n0\r\n\r\n')
    const err = await bounded(failure.promise, 'the body stream to error')
    expect(err.message).toMatch(/chunk/)
    await client.until(() => client.closed, 'the connection to close')
    // The handler's own answer never goes out: the refusal from the error table does.
    expect(client.text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(client.text).toContain('x-meshgate-error: bad_request\r\n')
    expect(client.text).not.toContain('complete?')
    expect(
      await holdsWithin(() => server.listener.inFlight() === 0 && server.listener.connections() === 0),
    ).toBe(true)
    await stillServes(server)
    expect(uncaught).toEqual([])
  })

  it('answers 400 and closes on a malformed chunk that came with the head, no handler run, with nothing uncaught', async () => {
    const uncaught = watchUncaught()
    let handled = 0
    const server = await serve(async (req) => {
      handled++
      await sleep(20)
      await req.respond({ status: 200, headers: {}, body: 'ignored the body' }, false)
    })
    const client = await rawClient(server)
    client.write('POST /c HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\nnot-hex\r\n')
    await client.until(() => client.closed, 'the connection to close')
    expect(client.text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(client.text).not.toContain('ignored the body')
    expect(handled).toBe(0)
    expect(
      await holdsWithin(() => server.listener.inFlight() === 0 && server.listener.connections() === 0),
    ).toBe(true)
    await stillServes(server)
    expect(uncaught).toEqual([])
  })
})

// ---------------------------------------------------------------------------------------------

async function* pieces(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) {
    await sleep(5)
    yield Buffer.from(p)
  }
}

describe('responses', () => {
  it('sends a streamed body without a length chunked to an HTTP/1.1 client, and keeps the connection', async () => {
    const server = await serve(async (req) => {
      if (req.url === '/stream')
        await req.respond({ status: 200, headers: {}, body: pieces('one ', 'two ', 'three') }, false)
      else await hello(req)
    })
    const client = await rawClient(server)
    client.write('GET /stream HTTP/1.1\r\nHost: svc\r\n\r\n')
    const res = await client.response()
    expect(res.framing).toBe('chunked')
    expect(field(res, 'transfer-encoding')).toBe('chunked')
    expect(field(res, 'content-length')).toBeUndefined()
    expect(field(res, 'connection')).toBe('keep-alive')
    expect(res.body.toString()).toBe('one two three')
    client.write('GET /next HTTP/1.1\r\nHost: svc\r\n\r\n')
    expect((await client.response()).body.toString()).toBe('GET /next')
  })

  it('sends a streamed body without a length to an HTTP/1.0 client until close', async () => {
    const server = await serve((req) =>
      req.respond(
        { status: 200, headers: {}, body: Readable.from([Buffer.from('old '), Buffer.from('school')]) },
        false,
      ),
    )
    const client = await rawClient(server)
    client.write('GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    const res = await client.response()
    expect(res.framing).toBe('close')
    expect(field(res, 'transfer-encoding')).toBeUndefined()
    expect(field(res, 'connection')).toBe('close')
    expect(res.body.toString()).toBe('old school')
  })

  it('sends a streamed body with the upstream content-length as is', async () => {
    const server = await serve(async (req) => {
      if (req.url === '/sized')
        await req.respond(
          { status: 200, headers: { 'content-length': '11' }, body: pieces('hello', ' ', 'world') },
          false,
        )
      else await hello(req)
    })
    const client = await rawClient(server)
    client.write('GET /sized HTTP/1.1\r\nHost: svc\r\n\r\n')
    const res = await client.response()
    expect(res.framing).toBe('length')
    expect(res.headers['content-length']).toEqual(['11'])
    expect(field(res, 'transfer-encoding')).toBeUndefined()
    expect(res.body.toString()).toBe('hello world')
    client.write('GET /next HTTP/1.1\r\nHost: svc\r\n\r\n')
    expect((await client.response()).body.toString()).toBe('GET /next')
    expect(client.unread).toBe('')
  })

  it('answers HEAD with the given content-length and no body, whatever the body', async () => {
    const destroyed = deferred()
    const server = await serve(async (req) => {
      if (req.url === '/null')
        await req.respond({ status: 200, headers: { 'content-length': '1234' }, body: null }, false)
      else if (req.url === '/string')
        await req.respond({ status: 200, headers: { 'content-length': '5' }, body: 'hello' }, false)
      else if (req.url === '/stream') {
        const body = Readable.from(['never ', 'sent'])
        body.once('close', () => destroyed.resolve())
        await req.respond({ status: 200, headers: { 'content-length': '10' }, body }, false)
      } else await hello(req)
    })
    const client = await rawClient(server)
    for (const [path, length] of [
      ['/null', '1234'],
      ['/string', '5'],
      ['/stream', '10'],
    ]) {
      client.write(`HEAD ${path} HTTP/1.1\r\nHost: svc\r\n\r\n`)
      const res = await client.response({ head: true })
      expect(res.status).toBe(200)
      expect(res.headers['content-length']).toEqual([length])
      expect(field(res, 'transfer-encoding')).toBeUndefined()
      expect(field(res, 'connection')).toBe('keep-alive')
    }
    await bounded(destroyed.promise, 'the unsent stream to be destroyed')
    // Had any body bytes followed a HEAD response, they would be here instead of this response.
    client.write('GET /next HTTP/1.1\r\nHost: svc\r\n\r\n')
    expect((await client.response()).body.toString()).toBe('GET /next')
    expect(client.unread).toBe('')
  })

  it('sends 204 and 304 without content-length or body', async () => {
    const server = await serve(async (req) => {
      if (req.url === '/204')
        await req.respond({ status: 204, headers: { 'x-a': '1' }, body: 'hello' }, false)
      else if (req.url === '/304')
        await req.respond(
          { status: 304, headers: { etag: '"v1"', 'content-length': '3' }, body: Readable.from(['abc']) },
          false,
        )
      else await hello(req)
    })
    const client = await rawClient(server)
    client.write('GET /204 HTTP/1.1\r\nHost: svc\r\n\r\n')
    const noContent = await client.response()
    expect(noContent.status).toBe(204)
    expect(field(noContent, 'x-a')).toBe('1')
    client.write('GET /304 HTTP/1.1\r\nHost: svc\r\n\r\n')
    const notModified = await client.response()
    expect(notModified.status).toBe(304)
    expect(field(notModified, 'etag')).toBe('"v1"')
    for (const res of [noContent, notModified]) {
      expect(field(res, 'content-length')).toBeUndefined()
      expect(field(res, 'transfer-encoding')).toBeUndefined()
      expect(field(res, 'connection')).toBe('keep-alive')
    }
    client.write('GET /next HTTP/1.1\r\nHost: svc\r\n\r\n')
    expect((await client.response()).body.toString()).toBe('GET /next')
    expect(client.unread).toBe('')
  })

  it('forwards no hop-by-hop response fields, nor those the connection field names', async () => {
    const server = await serve((req) =>
      req.respond(
        {
          status: 200,
          headers: {
            connection: 'x-secret, close',
            'keep-alive': 'timeout=5',
            'transfer-encoding': 'chunked',
            trailer: 'x-sum',
            upgrade: 'h2c',
            'proxy-connection': 'keep-alive',
            'x-secret': 'hidden',
            'x-kept': 'yes',
            'set-cookie': ['a=1', 'b=2'],
          },
          body: 'hello',
        },
        false,
      ),
    )
    const client = await rawClient(server)
    client.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
    const res = await client.response()
    expect(res.body.toString()).toBe('hello')
    expect(res.framing).toBe('length')
    for (const name of [
      'keep-alive',
      'transfer-encoding',
      'trailer',
      'upgrade',
      'proxy-connection',
      'x-secret',
    ])
      expect(res.headers[name], name).toBeUndefined()
    // Exactly one connection field: the server's own.
    expect(res.headers.connection).toEqual(['keep-alive'])
    expect(field(res, 'x-kept')).toBe('yes')
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2'])
  })

  it('writes no field line smuggled into a header value or name', async () => {
    const server = await serve((req) =>
      req.respond(
        {
          status: 200,
          headers: {
            'x-evil': 'a\r\nx-injected: 1',
            'x-lf': 'a\nx-injected-lf: 1',
            'x-list': ['fine', 'b\r\nx-injected-list: 1'],
            'x-bad\r\nx-injected-name': 'v',
            'x-ok': 'fine',
          },
          body: 'ok',
        },
        false,
      ),
    )
    const client = await rawClient(server)
    client.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
    const res = await client.response()
    expect(res.status).toBe(200)
    expect(res.body.toString()).toBe('ok')
    expect(client.text).not.toMatch(/x-injected/i)
    expect(
      res.head
        .split('\r\n')
        .slice(1)
        .every((l) => /^[a-z0-9-]+: [^\r\n]*$/.test(l)),
    ).toBe(true)
    expect(field(res, 'x-ok')).toBe('fine')
    expect(res.headers['x-list']).toEqual(['fine'])
  })
})

// ---------------------------------------------------------------------------------------------

describe('answering before the body is read', () => {
  it('says connection: close, closes the connection and crashes nothing when a 1 MB body is still arriving', async () => {
    const uncaught = watchUncaught()
    const server = await serve((req) =>
      req.respond({ status: 404, headers: {}, body: 'no such thing' }, false),
    )
    const client = await rawClient(server)
    const size = 1024 * 1024
    client.write(`POST /missing HTTP/1.1\r\nHost: svc\r\nContent-Length: ${size}\r\n\r\n`)
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    for (let sent = 0; sent < size; sent += chunk.length) client.write(chunk)
    const res = await client.response()
    expect(res.status).toBe(404)
    expect(res.body.toString()).toBe('no such thing')
    expect(field(res, 'connection')).toBe('close')
    await client.end()
    expect(await holdsWithin(() => server.listener.inFlight() === 0)).toBe(true)
    // The server must let go of the connection, not leave it open until a 60 s timer.
    expect(await holdsWithin(() => server.listener.connections() === 0)).toBe(true)
    await client.until(() => client.closed, 'the connection to close')
    // Still serving (this handler answers everything with its 404).
    const next = await rawClient(server)
    next.write('GET /still HTTP/1.1\r\nHost: svc\r\n\r\n')
    expect((await next.response()).status).toBe(404)
    next.socket.destroy()
    expect(uncaught).toEqual([])
  })
})

describe('client going away', () => {
  it('aborts req.signal, and inFlight() and connections() drop, when the client closes before the response', async () => {
    const started = deferred()
    const aborted = deferred()
    const answered = deferred()
    const server = await serve(async (req) => {
      const signal = req.signal
      started.resolve()
      await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }))
      aborted.resolve()
      await req.respond({ status: 200, headers: {}, body: 'too late' }, false)
      answered.resolve()
    })
    const client = await rawClient(server)
    client.write('GET /slow HTTP/1.1\r\nHost: svc\r\n\r\n')
    await bounded(started.promise, 'the handler')
    expect(server.listener.inFlight()).toBe(1)
    expect(server.listener.connections()).toBe(1)
    client.socket.destroy()
    await bounded(aborted.promise, 'req.signal to abort')
    await bounded(answered.promise, 'respond() to resolve')
    expect(
      await holdsWithin(() => server.listener.inFlight() === 0 && server.listener.connections() === 0),
    ).toBe(true)
    expect(server.errors).toEqual([])
  })

  it('gives an aborted req.signal to a handler that first looks at it after the client left', async () => {
    const started = deferred()
    const gone = deferred()
    const seen = deferred<boolean>()
    const server = await serve(async (req) => {
      started.resolve()
      await gone.promise
      seen.resolve(req.signal.aborted)
      await req.respond({ status: 200, headers: {}, body: 'too late' }, false)
    })
    const client = await rawClient(server)
    client.write('GET /slow HTTP/1.1\r\nHost: svc\r\n\r\n')
    await bounded(started.promise, 'the handler')
    client.socket.destroy()
    expect(await holdsWithin(() => server.listener.connections() === 0)).toBe(true)
    gone.resolve()
    expect(await bounded(seen.promise, 'the handler to look')).toBe(true)
  })

  it('stops a streamed response when the client leaves mid-body', async () => {
    const stopped = deferred()
    let aborted = false
    const server = await serve(async (req) => {
      const signal = req.signal
      async function* forever(): AsyncIterable<Uint8Array> {
        try {
          for (;;) {
            yield Buffer.from('tick\n')
            await sleep(5)
          }
        } finally {
          stopped.resolve()
        }
      }
      await req.respond({ status: 200, headers: {}, body: forever() }, false)
      aborted = signal.aborted
    })
    const client = await rawClient(server)
    client.write('GET /forever HTTP/1.1\r\nHost: svc\r\n\r\n')
    await client.until(() => client.text.includes('tick'), 'the first piece')
    client.socket.destroy()
    await bounded(stopped.promise, 'the body to be stopped')
    expect(
      await holdsWithin(() => server.listener.inFlight() === 0 && server.listener.connections() === 0),
    ).toBe(true)
    expect(await holdsWithin(() => aborted)).toBe(true)
  })
})

describe('drain', () => {
  it('stopAccepting() refuses new connections and still answers an open keep-alive one', async () => {
    const server = await serve(hello)
    const client = await rawClient(server)
    client.write('GET /before HTTP/1.1\r\nHost: svc\r\n\r\n')
    expect((await client.response()).status).toBe(200)

    server.listener.stopAccepting()
    const refused = await bounded(
      new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        const s = connect({ host: server.host, port: server.port })
        s.once('connect', () => {
          s.destroy()
          resolve(undefined)
        })
        s.once('error', resolve)
      }),
      'the connection attempt',
    )
    expect(refused?.code).toBe('ECONNREFUSED')

    client.write('GET /during HTTP/1.1\r\nHost: svc\r\n\r\n')
    const res = await client.response()
    expect(res.status).toBe(200)
    expect(res.body.toString()).toBe('GET /during')
    expect(client.ended).toBe(false)
  })

  it('closeIdle() closes idle keep-alive connections, and a busy one once answered', async () => {
    const release = deferred()
    const started = deferred()
    const server = await serve(async (req) => {
      if (req.url === '/busy') {
        started.resolve()
        await release.promise
      }
      await hello(req)
    })
    const idle = await rawClient(server)
    idle.write('GET /idle HTTP/1.1\r\nHost: svc\r\n\r\n')
    expect(field(await idle.response(), 'connection')).toBe('keep-alive')
    const busy = await rawClient(server)
    busy.write('GET /busy HTTP/1.1\r\nHost: svc\r\n\r\n')
    await bounded(started.promise, 'the busy request')

    server.listener.stopAccepting()
    server.listener.closeIdle()
    await idle.end()
    expect(busy.ended).toBe(false)
    release.resolve()
    const res = await busy.response()
    expect(res.body.toString()).toBe('GET /busy')
    await busy.end()
    // The last response on a connection the server closes says so (RFC 9112 §9.6).
    expect(field(res, 'connection')).toBe('close')
  })

  it('close() resolves and ends every connection', async () => {
    const server = await serve(hello)
    const client = await rawClient(server)
    client.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
    await client.response()
    await bounded(server.listener.close(), 'close()')
    await client.until(() => client.closed, 'the connection to close')
    expect(server.listener.connections()).toBe(0)
  })
})

describe('a handler that throws', () => {
  it('answers 500, reports the error and keeps serving', async () => {
    const server = await serve(async (req) => {
      if (req.url === '/boom') throw new Error('boom')
      await hello(req)
    })
    const res = await httpCall(server, { path: '/boom' })
    expect(res.status).toBe(500)
    expect(res.headers.connection).toBe('close')
    expect(server.errors).toHaveLength(1)
    expect((server.errors[0] as Error).message).toBe('boom')
    const next = await httpCall(server, { path: '/fine' })
    expect(next.status).toBe(200)
    expect(next.body.toString()).toBe('GET /fine')
    expect(server.listener.inFlight()).toBe(0)
  })
})
