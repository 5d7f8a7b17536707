// Properties of the HTTP/1.1 codec the sidecar's server and client share, and of the server under
// arbitrary bytes: whatever a client sends, the process keeps running and the connection ends in a
// response or a close, never a hang.

import { connect } from 'node:net'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HeaderMap } from '../../proxy-core/engine/types.ts'
import {
  ChunkedDecoder,
  connectionHas,
  contentLength,
  fieldName,
  parseFields,
  statusOf,
} from '../../proxy-core/http/http1-codec.ts'
import { type Listener, listenHttp1 } from '../../proxy-core/http/http1-server.ts'

/** The chunked coding of `pieces`, with a chunk extension and a trailer now and then. */
function encodeChunked(pieces: Uint8Array[], ext: boolean, trailer: boolean): Buffer {
  const parts: Buffer[] = []
  for (const p of pieces) {
    if (p.length === 0) continue
    parts.push(
      Buffer.from(`${p.length.toString(16)}${ext ? ';name="v"' : ''}\r\n`),
      Buffer.from(p),
      Buffer.from('\r\n'),
    )
  }
  parts.push(Buffer.from(`0\r\n${trailer ? 'x-sum: 1\r\n' : ''}\r\n`))
  return Buffer.concat(parts)
}

/** Splits `buf` at the given cut points (sorted, within bounds). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b)
  const out: Buffer[] = []
  let from = 0
  for (const c of at) {
    out.push(buf.subarray(from, c))
    from = c
  }
  out.push(buf.subarray(from))
  return out
}

describe('ChunkedDecoder', () => {
  it('decodes any body, however the bytes are split across reads, and stops at its end', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        fc.boolean(),
        (pieces, cuts, ext, trailer) => {
          const next = Buffer.from('GET /next HTTP/1.1\r\n')
          const wire = Buffer.concat([encodeChunked(pieces, ext, trailer), next])
          const decoder = new ChunkedDecoder()
          const got: Buffer[] = []
          const sink = { piece: (p: Buffer) => got.push(Buffer.from(p)) }
          let rest = Buffer.alloc(0)
          for (const read of split(wire, cuts)) {
            if (decoder.done) {
              rest = Buffer.concat([rest, read])
              continue
            }
            const at = decoder.feed(read, 0, sink)
            expect(at).toBeGreaterThanOrEqual(0)
            if (decoder.done) rest = Buffer.concat([rest, read.subarray(at)])
          }
          expect(decoder.done).toBe(true)
          expect(Buffer.concat(got)).toEqual(Buffer.concat(pieces.map((p) => Buffer.from(p))))
          // What follows the message is left for the next one, byte for byte.
          expect(rest).toEqual(next)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('refuses sizes that are not hex and data longer than its size', () => {
    for (const wire of ['zz\r\nabc\r\n', '3\r\nabcd\r\n', '-1\r\n', '3\nabc\r\n', `${'f'.repeat(13)}\r\n`]) {
      const decoder = new ChunkedDecoder()
      expect(decoder.feed(Buffer.from(wire), 0, { piece: () => {} })).toBe(-1)
      expect(decoder.error).toBeDefined()
    }
  })
})

describe('field lines and Content-Length', () => {
  it('never throws, whatever the lines hold', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 10 }), fc.boolean(), (lines, fold) => {
        const headers: HeaderMap = Object.create(null)
        const out = parseFields(['GET / HTTP/1.1', ...lines], 1, headers, fold)
        expect(typeof out === 'string' || typeof out === 'number').toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('keeps repeated fields in order and folds continuation lines only when asked', () => {
    const headers: HeaderMap = Object.create(null)
    expect(parseFields(['', 'A: 1', 'b:2 ', 'a:  3', ' more'], 1, headers, true)).toBe(3)
    expect(headers).toEqual({ a: ['1', '3 more'], b: '2' })
    expect(parseFields(['', 'a: 1', ' more'], 1, Object.create(null), false)).toMatch(/folding/)
    expect(parseFields(['', 'a : 1'], 1, Object.create(null), false)).toMatch(/field name/)
  })

  it('takes a length only as digits, and a list only of equal values', () => {
    expect(contentLength('42')).toBe(42)
    expect(contentLength(['7', '7'])).toBe(7)
    expect(contentLength('7, 7')).toBe(7)
    for (const bad of ['', '-1', '1.5', '0x10', '7, 8', ['7', '8'], '1e3', ' ', '9'.repeat(16)]) {
      expect(contentLength(bad)).toBe(-1)
    }
  })
})

describe('the server under arbitrary bytes', () => {
  let listener: Listener
  let port: number
  const uncaught: unknown[] = []
  const record = (err: unknown) => uncaught.push(err)

  beforeAll(async () => {
    process.on('uncaughtException', record)
    listener = await listenHttp1({ host: '127.0.0.1', port: 0 }, async (req) => {
      if (req.body !== null && !Buffer.isBuffer(req.body)) for await (const _ of req.body) void _
      await req.respond({ status: 200, headers: { 'content-type': 'text/plain' }, body: 'ok' }, false)
    })
    port = Number(listener.address.split(':').at(-1))
  })

  afterAll(async () => {
    process.off('uncaughtException', record)
    await listener.close()
  })

  /** Sends `bytes`, half-closes, and collects what comes back until the server closes (or 2 s). */
  function exchange(bytes: Buffer): Promise<{ text: string; closed: boolean }> {
    return new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1')
      let text = ''
      const timer = setTimeout(() => {
        socket.destroy()
        resolve({ text, closed: false })
      }, 2000)
      socket.on('data', (c: Buffer) => {
        text += c.toString('latin1')
      })
      socket.on('error', () => {})
      socket.on('close', () => {
        clearTimeout(timer)
        resolve({ text, closed: true })
      })
      socket.end(bytes)
    })
  }

  const requestish = fc
    .tuple(
      fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'CONNECT', 'G T', ''),
      fc.constantFrom('/', '/a?b=c', 'http://svc/x', '*', '', '/ /'),
      fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 ', 'http/1.1'),
      fc.array(
        fc.oneof(
          fc.constantFrom(
            'Host: svc',
            'Content-Length: 3',
            'Content-Length: x',
            'Transfer-Encoding: chunked',
            'Transfer-Encoding: gzip',
            'Expect: 100-continue',
            'Connection: close',
            ' folded',
            'bad header',
          ),
          fc.string({ maxLength: 20 }).map((s) => `x-f: ${s}`),
        ),
        { maxLength: 6 },
      ),
      fc.string({ maxLength: 30 }),
    )
    .map(([m, t, v, fields, body]) =>
      Buffer.from(`${m} ${t} ${v}\r\n${fields.join('\r\n')}\r\n\r\n${body}`, 'latin1'),
    )

  it('answers or closes, and never crashes, whatever a client sends', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          requestish,
          fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
        ),
        async (bytes) => {
          const { text, closed } = await exchange(bytes)
          // The client half-closed: the server must end the connection after whatever it answers.
          expect(closed).toBe(true)
          if (text !== '') expect(text).toMatch(/^HTTP\/1\.1 \d{3} /)
        },
      ),
      { numRuns: 150 },
    )
    expect(uncaught).toEqual([])
    expect(listener.inFlight()).toBe(0)
  })
})

describe('status lines, field names and Connection tokens', () => {
  const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: |$)/
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

  it('statusOf reads exactly the lines `HTTP/1.x SP 3DIGIT [SP reason]`', () => {
    const line = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc
        .tuple(
          fc.constantFrom('HTTP/1.1 ', 'HTTP/1.0 ', 'HTTP/1.2 ', 'HTTP/2.0 ', 'http/1.1 ', 'HTTP/1.1'),
          fc.string({ maxLength: 8 }),
        )
        .map(([a, b]) => a + b),
    )
    fc.assert(
      fc.property(line, (l) => {
        const m = STATUS_LINE.exec(l)
        expect(statusOf(l)).toBe(m === null ? -1 : Number(m[2]))
      }),
      { numRuns: 5000 },
    )
    expect(statusOf('HTTP/1.1 200 OK')).toBe(200)
    expect(statusOf('HTTP/1.0 404')).toBe(404)
    expect(statusOf('HTTP/1.1 20 OK')).toBe(-1)
  })

  it('fieldName lower-cases tokens, refuses the rest, and answers the same the second time', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (raw) => {
        const want = TOKEN.test(raw) ? raw.toLowerCase() : undefined
        expect(fieldName(raw)).toBe(want)
        expect(fieldName(raw)).toBe(want)
      }),
      { numRuns: 3000 },
    )
  })

  it('connectionHas finds a token alone, in a list, in any case', () => {
    expect(connectionHas('keep-alive', 'keep-alive')).toBe(true)
    expect(connectionHas('Keep-Alive', 'keep-alive')).toBe(true)
    expect(connectionHas('x-foo, close', 'close')).toBe(true)
    expect(connectionHas(['x-foo', ' CLOSE '], 'close')).toBe(true)
    expect(connectionHas('closed', 'close')).toBe(false)
    expect(connectionHas(undefined, 'close')).toBe(false)
  })
})

describe('parseFields values', () => {
  it('drops spaces and tabs around a value, and nothing else', () => {
    const headers: HeaderMap = Object.create(null)
    const n = parseFields(
      ['', 'a:x', 'b: \t y z \t', 'c:', 'd:  ', 'f: one space', 'g: voil\u00c3\u00a0'],
      1,
      headers,
      false,
    )
    expect(n).toBe(6)
    // `voilà` in UTF-8 ends in the byte A0 after its lead byte C3: a letter, not a space.
    expect({ ...headers }).toEqual({ a: 'x', b: 'y z', c: '', d: '', f: 'one space', g: 'voil\u00c3\u00a0' })
  })

  it('refuses in a request a value with other whitespace or controls at its edges; a response keeps a no-break space', () => {
    for (const value of [
      '5\u000b',
      '\u000c5',
      '5\u00a0',
      '\u00a05',
      '5\u00c2\u00a0',
      '\u00c2\u00a05',
      '5\u0000',
      'a\rb',
      'a\nb',
    ]) {
      expect(parseFields(['', `content-length: ${value}`], 1, Object.create(null), false)).toMatch(/value/)
    }
    const headers: HeaderMap = Object.create(null)
    expect(parseFields(['', 'e: \u00a0v\u00a0'], 1, headers, true)).toBe(1)
    expect(headers.e).toBe('\u00a0v\u00a0')
  })
})
