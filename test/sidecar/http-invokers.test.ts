// The HTTP invokers against real servers on loopback: meshgate's own HTTP/1.1 client, streaming both
// ways, hop-by-hop headers, failure kinds, keep-alive reuse. Then the sidecar's combined invoker over
// TLS with a client certificate: HTTP/1.1 by ALPN, and HTTP/2 by ALPN for `protocol: http2` targets.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { Http2SecureServer } from 'node:http2'
import { createSecureServer } from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Endpoint, MeshBody } from '../../proxy-core/engine/types.ts'
import { UpstreamFailure } from '../../proxy-core/engine/types.ts'
import { createHttp1Invoker } from '../../proxy-core/http/http1-client.ts'
import { createHttpInvoker } from '../../proxy-core/invokers/http-invoker.ts'
import { createTlsMaterial } from '../../proxy-core/tls/index.ts'
import { attempt, endpoint } from '../helpers/attempt.ts'
import { makeCa, makeLeaf, makeTlsDir } from '../helpers/certs.ts'
import { createGate } from '../helpers/gate.ts'

async function text(body: MeshBody): Promise<string> {
  if (body === null) return ''
  if (typeof body === 'string') return body
  if (body instanceof Uint8Array) return Buffer.from(body).toString('utf8')
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(Buffer.from(c))
  return Buffer.concat(chunks).toString('utf8')
}

let server: Server
let origin: string
let connections = 0
/** `/slow` opens slowArrived when it has the request and answers once slowAnswer opens. */
let slowArrived = createGate()
let slowAnswer = createGate()
/** `/stream` sends the rest of its body once this opens. */
let streamRest = createGate()
const sockets = new Set<Socket>()

function route(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/'
  if (url === '/echo') {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'x-seen-length': req.headers['content-length'] ?? 'none',
    })
    req.pipe(res)
  } else if (url === '/headers') {
    const body = JSON.stringify(req.headers)
    res.writeHead(200, {
      connection: 'keep-alive, x-hop',
      'x-hop': 'drop me',
      'keep-alive': 'timeout=5',
      'x-end': 'keep me',
      'content-length': Buffer.byteLength(body),
    })
    res.end(body)
  } else if (url === '/slow') {
    slowArrived.open()
    void slowAnswer.opened.then(() => res.end('late'))
  } else if (url === '/reset') {
    req.socket.destroy()
  } else if (url === '/stream') {
    // First chunk now, the rest once the test opens the gate: the invoker must hand the body over
    // before it ends.
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('first;')
    void streamRest.opened.then(() => res.end('second'))
  } else if (url === '/error') {
    res.writeHead(503, { 'content-type': 'text/plain', 'content-length': 4 })
    res.end('nope')
  } else {
    res.end('ok')
  }
}

beforeAll(async () => {
  server = createServer(route)
  server.on('connection', (s: Socket) => {
    connections++
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  slowAnswer.open()
  streamRest.open()
  for (const s of sockets) s.destroy()
  await new Promise<void>((r) => server.close(() => r()))
})

const invokers = [{ name: 'meshgate http1', create: () => createHttp1Invoker() }]

describe.each(invokers)('$name invoker', ({ create }) => {
  const invoker = create()
  afterAll(() => invoker.close())

  it('streams a request body through and the response body back', async () => {
    async function* chunks() {
      for (let i = 0; i < 50; i++) yield Buffer.from(`chunk-${i};`)
    }
    const res = await invoker.invoke(
      attempt({ method: 'POST', path: '/echo', body: chunks() }),
      endpoint(origin),
      new AbortController().signal,
    )
    expect(res.status).toBe(200)
    expect(res.headers['x-seen-length']).toBe('none')
    expect(await text(res.body)).toBe(Array.from({ length: 50 }, (_, i) => `chunk-${i};`).join(''))
  })

  it('returns the response before its body has ended', async () => {
    streamRest = createGate()
    const res = await invoker.invoke(
      attempt({ path: '/stream' }),
      endpoint(origin),
      new AbortController().signal,
    )
    // The upstream holds the rest of the body until now.
    expect(streamRest.isOpen).toBe(false)
    expect(typeof res.body).toBe('object')
    streamRest.open()
    expect(await text(res.body)).toBe('first;second')
  })

  it('drops hop-by-hop headers both ways and keeps TE: trailers only', async () => {
    const res = await invoker.invoke(
      attempt({
        path: '/headers',
        headers: {
          connection: 'x-private',
          'x-private': 'secret',
          'keep-alive': '1',
          'proxy-authorization': 'Basic eA==',
          upgrade: 'websocket',
          te: 'trailers, deflate',
          'transfer-encoding': 'chunked',
          expect: '100-continue',
          'x-end': ['a', 'b'],
        },
      }),
      endpoint(origin),
      new AbortController().signal,
    )
    const seen = JSON.parse(await text(res.body)) as Record<string, string>
    expect(seen['x-private']).toBeUndefined()
    expect(seen['proxy-authorization']).toBeUndefined()
    expect(seen.upgrade).toBeUndefined()
    expect(seen.expect).toBeUndefined()
    expect(seen['transfer-encoding']).toBeUndefined()
    expect(seen.te).toBe('trailers')
    expect(seen['x-end']).toBe('a, b')
    expect(res.headers['x-hop']).toBeUndefined()
    expect(res.headers['keep-alive']).toBeUndefined()
    expect(res.headers.connection).toBeUndefined()
    expect(res.headers['x-end']).toBe('keep me')
  })

  it('reuses keep-alive connections', async () => {
    const before = connections
    for (let i = 0; i < 20; i++) {
      const res = await invoker.invoke(attempt(), endpoint(origin), new AbortController().signal)
      expect(await text(res.body)).toBe('ok')
    }
    expect(connections - before).toBeLessThanOrEqual(1)
  })

  it('buffers small error bodies so a discarded response frees its connection', async () => {
    const res = await invoker.invoke(
      attempt({ path: '/error' }),
      endpoint(origin),
      new AbortController().signal,
    )
    expect(res.status).toBe(503)
    expect(res.body).toBeInstanceOf(Uint8Array)
    expect(await text(res.body)).toBe('nope')
  })

  it('maps failures to connect-failure, reset and timeout', async () => {
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const deadOrigin = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`
    await new Promise<void>((r) => closed.close(() => r()))

    const kind = async (p: Promise<unknown>) => {
      try {
        await p
        return 'resolved'
      } catch (err) {
        expect(err).toBeInstanceOf(UpstreamFailure)
        return (err as UpstreamFailure).kind
      }
    }
    expect(await kind(invoker.invoke(attempt(), endpoint(deadOrigin), new AbortController().signal))).toBe(
      'connect-failure',
    )
    expect(
      await kind(invoker.invoke(attempt({ path: '/reset' }), endpoint(origin), new AbortController().signal)),
    ).toBe('reset')
    slowArrived = createGate()
    slowAnswer = createGate()
    const timer = new AbortController()
    const aborted = kind(invoker.invoke(attempt({ path: '/slow' }), endpoint(origin), timer.signal))
    await slowArrived.opened
    timer.abort()
    expect(await aborted).toBe('timeout')
    // Failed while the upstream still held its answer: the abort ended the call, not the upstream.
    expect(slowAnswer.isOpen).toBe(false)
    slowAnswer.open()
  })
})

describe('the sidecar invoker', () => {
  it('reaches a TLS upstream through its own pools: HTTP/1.1 by ALPN, verified, the session resumed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshgate-tls-'))
    let h2: Http2SecureServer | undefined
    const ca = makeCa(dir, 'mesh')
    const server = makeTlsDir(join(dir, 'server'), ca, 'upstream', ['IP:127.0.0.1'])
    const client = makeTlsDir(join(dir, 'client'), ca, 'caller', ['DNS:caller'])
    const material = createTlsMaterial(client, { watch: false })
    const tls = createHttpInvoker({ tls: material })
    try {
      const seen: { version: string; reused: boolean; client: string | undefined }[] = []
      h2 = createSecureServer(
        {
          key: readFileSync(server.key),
          cert: readFileSync(server.cert),
          ca: readFileSync(ca.cert),
          requestCert: true,
          rejectUnauthorized: true,
          // The upstream speaks HTTP/2 too; an HTTP/1.1 target's client offers only http/1.1.
          allowHTTP1: true,
        },
        (req, res) => {
          const socket = req.socket as TLSSocket
          seen.push({
            version: req.httpVersion,
            reused: socket.isSessionReused(),
            client: socket.getPeerCertificate().subject?.CN as string | undefined,
          })
          // A new connection for every request: the second must resume the first one's session.
          res.setHeader('connection', 'close')
          res.end(`hello over ${req.httpVersion}`)
        },
      )
      await new Promise<void>((r) => h2!.listen(0, '127.0.0.1', r))
      const tlsOrigin = `https://127.0.0.1:${(h2.address() as AddressInfo).port}`
      for (let i = 0; i < 2; i++) {
        const res = await tls.invoke(
          attempt({ headers: { host: 'svc' } }),
          endpoint(tlsOrigin),
          new AbortController().signal,
        )
        expect(res.status).toBe(200)
        expect(await text(res.body)).toBe('hello over 1.1')
      }
      expect(seen.map((s) => s.version)).toEqual(['1.1', '1.1'])
      expect(seen.map((s) => s.client?.startsWith('caller'))).toEqual([true, true])
      expect(seen.map((s) => s.reused)).toEqual([false, true])
      expect(Object.values(tls.stats())[0]).toMatchObject({ opened: 2, resumed: 1 })
    } finally {
      material.close()
      await tls.close()
      await new Promise<void>((r) => (h2 ? h2.close(() => r()) : r()))
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reaches an HTTP/2 TLS upstream for a protocol: http2 target: h2 by ALPN, client certificate, trailers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshgate-tls-'))
    const servers: Http2SecureServer[] = []
    const closers: (() => Promise<void>)[] = []
    const serials: string[] = []
    const ca = makeCa(dir, 'mesh')
    const other = makeCa(dir, 'other')
    const server = makeTlsDir(join(dir, 'server'), ca, 'upstream', ['IP:127.0.0.1'])
    const stranger = makeTlsDir(join(dir, 'stranger'), other, 'upstream', ['IP:127.0.0.1'])
    const client = makeTlsDir(join(dir, 'client'), ca, 'caller', ['DNS:caller'])
    const material = createTlsMaterial(client, { watch: false })
    const invoker = createHttpInvoker({ tls: material })
    const h2Target = (origin: string): Endpoint => {
      const base = endpoint(origin).target
      if (base.kind !== 'http') throw new Error('an http target expected')
      return { id: origin, target: { ...base, protocol: 'http2' } }
    }
    async function listen(files: { key: string; cert: string }, allowHTTP1: boolean): Promise<string> {
      const srv = createSecureServer(
        {
          key: readFileSync(files.key),
          cert: readFileSync(files.cert),
          ca: readFileSync(ca.cert),
          requestCert: true,
          rejectUnauthorized: true,
          allowHTTP1,
        },
        (req, res) => {
          const socket = req.socket as TLSSocket
          const peer = socket.getPeerCertificate()
          const cn = peer.subject?.CN as string | undefined
          serials.push(peer.serialNumber)
          res.addTrailers({ 'x-seen': `${req.httpVersion} ${req.headers[':scheme']} ${cn}` })
          res.end(`hello over ${req.httpVersion}`)
        },
      )
      servers.push(srv)
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
      return `https://127.0.0.1:${(srv.address() as AddressInfo).port}`
    }
    try {
      const good = await listen(server, false)
      for (let i = 0; i < 2; i++) {
        const res = await invoker.invoke(attempt(), h2Target(good), new AbortController().signal)
        expect(res.status).toBe(200)
        expect(await text(res.body)).toBe('hello over 2.0')
        expect((await res.trailers)?.['x-seen']).toMatch(/^2\.0 https caller/)
      }
      // Both calls on one session.
      expect(invoker.stats()[`${good} mutual  (h2)`]).toMatchObject({ connected: 1 })
      expect(serials[1]).toBe(client.leaf.serial)

      // The client certificate rotates: the next call goes on a new session, with the new certificate.
      const rotated = makeLeaf(dir, ca, 'caller-next', ['DNS:caller'], { cert: client.cert, key: client.key })
      expect(material.reload()).toBe(true)
      const after = await invoker.invoke(attempt(), h2Target(good), new AbortController().signal)
      expect(await text(after.body)).toBe('hello over 2.0')
      expect(serials.at(-1)).toBe(rotated.serial)
      expect(serials.at(-1)).not.toBe(client.leaf.serial)

      // A server whose certificate comes from another CA: refused before any request goes out.
      const bad = await listen(stranger, false)
      const refused = await invoker.invoke(attempt(), h2Target(bad), new AbortController().signal).then(
        () => 'answered',
        (e: UpstreamFailure) => `${e.kind}: ${e.message}`,
      )
      expect(refused).toMatch(/^connect-failure: .*unable to verify the first certificate/)

      // A server that speaks only HTTP/1.1 over TLS and does no ALPN: no h2, a clear failure. (One that
      // does ALPN without h2 ends the handshake itself, with a no_application_protocol alert.)
      const h1Sockets: TLSSocket[] = []
      const h1 = createTlsServer(
        { key: readFileSync(server.key), cert: readFileSync(server.cert) },
        (socket) => {
          h1Sockets.push(socket)
          socket.end('HTTP/1.1 400 Bad Request\r\n\r\n')
        },
      )
      closers.push(() => {
        for (const socket of h1Sockets) socket.destroy()
        return new Promise<void>((r) => h1.close(() => r()))
      })
      await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r))
      const h1Origin = `https://127.0.0.1:${(h1.address() as AddressInfo).port}`
      const noH2 = await invoker.invoke(attempt(), h2Target(h1Origin), new AbortController().signal).then(
        () => 'answered',
        (e: UpstreamFailure) => `${e.kind}: ${e.message}`,
      )
      expect(noH2).toMatch(/^connect-failure: .*did not negotiate h2 by ALPN/)
    } finally {
      material.close()
      await invoker.close()
      for (const srv of servers) await new Promise<void>((r) => srv.close(() => r()))
      for (const close of closers) await close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
