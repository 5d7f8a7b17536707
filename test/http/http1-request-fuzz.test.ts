// Issue 16's fuzz test of the edge's HTTP/1.1 request parser: fast-check over arbitrary bytes and over
// mutations of valid requests (bytes inserted, removed, replaced by the ones smuggling is made of,
// lines repeated). Whatever the parser accepts must re-serialize, the way the sidecar writes it to
// the next hop, into exactly one request that parses back to the same thing; it never throws. The
// same holds for chunked bodies. A last part sends the mutations to a real sidecar process and shows
// it keeps serving.

import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HeaderMap } from '../../proxy-core/engine/types.ts'
import { isHopByHop } from '../../proxy-core/http/header-policy.ts'
import { ChunkedDecoder, fieldLines } from '../../proxy-core/http/http1-codec.ts'
import { HeadRefusal, parseRequestHead, type RequestHead } from '../../proxy-core/http/http1-request.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { send } from '../sidecar/client.ts'
import { exchange, type RawUpstream, startRawUpstream, statuses } from './raw-peer.ts'

// ---------------------------------------------------------------------------------------------
// Valid requests, and the mutations of them.

const valid = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'X-CUSTOM'),
    target: fc.constantFrom('/', '/a/b?c=d&e', '/%2e%2E/x', 'http://up/p?q', 'https://up:8443/', '/~user'),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0'),
    fields: fc.array(
      fc.constantFrom(
        'Accept: */*',
        'X-A: one, two',
        'X-B:\tvalue with spaces\t',
        'Cookie: a=b; c=d',
        'Connection: keep-alive',
        'Connection: x-a',
        'TE: trailers',
        'User-Agent: fuzz/1.0',
        'X-Utf8: caf\xc3\xa9',
      ),
      { maxLength: 5 },
    ),
    framing: fc.constantFrom('none', 'length', 'chunked', 'expect'),
  })
  .map(({ method, target, version, fields, framing }) => {
    const lines = [`${method} ${target} ${version}`, 'Host: up', ...fields]
    if (framing === 'length' || framing === 'expect') lines.push('Content-Length: 5')
    if (framing === 'expect') lines.push('Expect: 100-continue')
    if (framing === 'chunked' && version === 'HTTP/1.1') lines.push('Transfer-Encoding: chunked')
    return lines.join('\r\n')
  })

/** The bytes smuggling is made of, and some neighbours. */
const NASTY = [
  '\r',
  '\n',
  '\r\n',
  ' ',
  '\t',
  '\x0b',
  '\x0c',
  '\x00',
  '\xa0',
  '\xc2\xa0',
  ',',
  ';',
  ':',
  '"',
  '%',
  '#',
  '\x7f',
  '\xff',
]

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom(...NASTY) }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: fc.constantFrom(...NASTY) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), text: fc.constant('') }),
  fc.record({ kind: fc.constant('repeat-line' as const), at: fc.nat(), text: fc.constant('') }),
  fc.record({
    kind: fc.constant('add-line' as const),
    at: fc.nat(),
    text: fc.constantFrom(
      'Content-Length: 5',
      'Content-Length: 0',
      'Transfer-Encoding: chunked',
      'Transfer-Encoding: gzip, chunked',
      'Host: other',
      ' folded',
      'X-Y : 1',
    ),
  }),
)

function mutate(text: string, m: { kind: string; at: number; text: string }): string {
  const at = m.at % (text.length + 1)
  switch (m.kind) {
    case 'insert':
      return text.slice(0, at) + m.text + text.slice(at)
    case 'replace':
      return text.slice(0, at) + m.text + text.slice(at + 1)
    case 'delete':
      return text.slice(0, at) + text.slice(at + 1)
    case 'repeat-line': {
      const lines = text.split('\r\n')
      const i = m.at % lines.length
      lines.splice(i, 0, lines[i]!)
      return lines.join('\r\n')
    }
    default: {
      const lines = text.split('\r\n')
      lines.splice(1 + (m.at % lines.length), 0, m.text)
      return lines.join('\r\n')
    }
  }
}

const mutated = fc
  .tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 }))
  .map(([text, ms]) => ms.reduce(mutate, text))

// ---------------------------------------------------------------------------------------------
// The property: parse, and if accepted, write as the sidecar writes it to the next hop and parse again.

/** The head as the sidecar's HTTP/1.1 client writes it: its own framing, hop-by-hop fields left out. */
function reserialize(head: RequestHead): string {
  const fields = fieldLines(head.headers)
  if (typeof fields !== 'string') throw new Error(`accepted a field it cannot write: ${fields.name}`)
  const host = head.headers.host === undefined ? 'host: up\r\n' : ''
  const framing =
    head.length < 0
      ? 'transfer-encoding: chunked\r\n'
      : head.length > 0
        ? `content-length: ${head.length}\r\n`
        : ''
  return `${head.method} ${head.target} HTTP/1.1\r\n${host}${fields}${framing}\r\n`
}

/** What the next hop must see of a head: everything but the fields that stop at this hop. */
function forwarded(headers: HeaderMap): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  const named = new Set(
    ([] as string[])
      .concat(headers.connection ?? [])
      .flatMap((v) => v.split(','))
      .map((t) => t.trim().toLowerCase()),
  )
  for (const name in headers) {
    if (isHopByHop(name) || named.has(name) || name === 'expect' || name === 'content-length') continue
    out[name] = headers[name]!
  }
  return out
}

function checkHead(text: string): 'accepted' | 'refused' {
  const head = parseRequestHead(text)
  if (head instanceof HeadRefusal) {
    expect(typeof head.code).toBe('string')
    return 'refused'
  }
  const wire = reserialize(head)
  // One request: the blank line that ends the head is the only one, at the very end.
  expect(wire.indexOf('\r\n\r\n')).toBe(wire.length - 4)
  const again = parseRequestHead(wire.slice(0, -4))
  if (again instanceof HeadRefusal) throw new Error(`re-serialized head refused (${again.reason}):\n${wire}`)
  expect(again.method).toBe(head.method)
  expect(again.target).toBe(head.target)
  expect(again.length).toBe(head.length)
  const want = forwarded(head.headers)
  if (head.headers.host === undefined) want.host = 'up'
  expect(forwarded(again.headers)).toEqual(want)
  return 'accepted'
}

describe('the request head parser', () => {
  it('never throws on arbitrary bytes, and what it accepts re-serializes to the same one request', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = Buffer.from(bytes).toString('latin1')
        const end = text.indexOf('\r\n\r\n')
        checkHead(end < 0 ? text : text.slice(0, end))
      }),
      { numRuns: 3000 },
    )
  })

  it('never throws on mutations of valid requests, and what it accepts re-serializes to the same one request', () => {
    const seen = { accepted: 0, refused: 0 }
    fc.assert(
      fc.property(mutated, (text) => {
        seen[checkHead(text)]++
      }),
      { numRuns: 5000 },
    )
    // Both sides of the parser were exercised, not only one.
    expect(seen.accepted).toBeGreaterThan(200)
    expect(seen.refused).toBeGreaterThan(200)
  })

  it('accepts every valid request unmutated', () => {
    fc.assert(
      fc.property(valid, (text) => {
        expect(checkHead(text)).toBe('accepted')
      }),
      { numRuns: 500 },
    )
  })
})

// ---------------------------------------------------------------------------------------------

/** A chunked body as the sidecar's client writes it: one chunk per piece, no extensions, no trailers. */
function encodeChunks(pieces: Buffer[]): Buffer {
  const out: Buffer[] = []
  for (const p of pieces)
    if (p.length > 0) out.push(Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n'))
  out.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(out)
}

/** Decodes `wire` whole; the payload pieces and where the message ended, or undefined if refused. */
function decode(wire: Buffer): { pieces: Buffer[]; end: number } | undefined {
  const decoder = new ChunkedDecoder()
  const pieces: Buffer[] = []
  const end = decoder.feed(wire, 0, { piece: (p) => pieces.push(Buffer.from(p)) })
  if (end < 0) {
    expect(typeof decoder.error).toBe('string')
    return undefined
  }
  return decoder.done ? { pieces, end } : undefined
}

describe('the chunked decoder', () => {
  const body = fc
    .tuple(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 4 }),
      fc.array(fc.record({ at: fc.nat(), byte: fc.constantFrom(...NASTY, '0', 'a', 'g', '-', '=') }), {
        maxLength: 3,
      }),
    )
    .map(([pieces, edits]) => {
      let wire = encodeChunks(pieces.map((p) => Buffer.from(p)))
        .toString('latin1')
        .replace(/\r\n/, ';ext="v"\r\n')
      for (const e of edits) {
        const at = e.at % (wire.length + 1)
        wire = wire.slice(0, at) + e.byte + wire.slice(at)
      }
      return Buffer.from(wire, 'latin1')
    })

  it('never throws, and what it accepts re-encodes to one body that decodes the same', () => {
    let accepted = 0
    fc.assert(
      fc.property(body, (wire) => {
        const first = decode(wire)
        if (first === undefined) return
        accepted++
        const again = decode(encodeChunks(first.pieces))
        expect(again).toBeDefined()
        expect(Buffer.concat(again!.pieces)).toEqual(Buffer.concat(first.pieces))
      }),
      { numRuns: 3000 },
    )
    expect(accepted).toBeGreaterThan(100)
  })
})

// ---------------------------------------------------------------------------------------------

describe('a sidecar process under the mutations', () => {
  let upstream: RawUpstream
  let sidecar: SidecarProcess
  const files = meshDir()

  beforeAll(async () => {
    upstream = await startRawUpstream((_req, socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    })
    const configPath = files.write('mesh.json', {
      version: 1,
      mesh: 'edge',
      services: { up: { targets: { v1: { http: upstream.url } }, routes: [{ name: 'default', to: 'v1' }] } },
    })
    // A tiny body timeout: a mutation whose body never completes is answered 408 at once.
    sidecar = await startSidecarProcess({
      configPath,
      service: 'up',
      app: upstream.url,
      env: { MESHGATE_BODY_IDLE_TIMEOUT: '200ms' },
    })
  })

  afterAll(async () => {
    await sidecar?.stop()
    await upstream?.close()
    files.remove()
  })

  it('answers or closes every one, forwards only well-formed requests, and keeps serving', async () => {
    const samples = fc.sample(
      fc.tuple(mutated, fc.constantFrom('', 'hello', '5\r\nhello\r\n0\r\n\r\n', '5\r\nhel')),
      { numRuns: 150, seed: 16 },
    )
    for (const [i, [head, body]] of samples.entries()) {
      const base = i % 2 === 0 ? sidecar.outbound : sidecar.inbound!
      const wire = Buffer.from(`${head}\r\n\r\n${body}`, 'latin1')
      const { text, closed } = await exchange(base, wire, 5000, (t) => statuses(t).length > 0)
      // A response or a close for every one, never a hang: a complete head is answered, an incomplete
      // body ends in 408 after the body timeout.
      expect(closed || text !== '').toBe(true)
      if (text !== '') expect(text).toMatch(/^HTTP\/1\.1 \d{3} /)
    }
    // Whatever reached the upstream was one well-formed request each (the raw upstream marks
    // anything it cannot parse with method `?`).
    expect(upstream.requests.filter((r) => r.method === '?')).toEqual([])
    const after = await send(sidecar.outbound, { host: 'up', path: '/after' })
    expect(after.status).toBe(200)
    expect(sidecar.child.exitCode).toBeNull()
  })
})
