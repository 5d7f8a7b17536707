// The Lambda-path HTTP invoker against real local sockets.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AttemptRequest, Endpoint } from '../../proxy-core/engine/types.ts'
import { UpstreamFailure } from '../../proxy-core/engine/types.ts'
import { createNodeHttpInvoker, stripHopByHop } from '../../proxy-core/invokers/http-node.ts'
import { createGate } from '../helpers/gate.ts'

let server: Server
let origin: string
let last: { headers: IncomingHttpHeaders; body: string; url: string } | undefined
const sockets = new Set<unknown>()
/** `/slow` opens `slowArrived` when it has the request, and answers once the test opens `slowAnswer`. */
let slowArrived = createGate()
let slowAnswer = createGate()

beforeAll(async () => {
  server = createServer((req, res) => {
    sockets.add(req.socket)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      last = { headers: req.headers, body: Buffer.concat(chunks).toString(), url: req.url ?? '' }
      if (req.url === '/reset') {
        req.socket.destroy()
        return
      }
      if (req.url === '/slow') {
        slowArrived.open()
        void slowAnswer.opened.then(() => res.end('late'))
        return
      }
      res.writeHead(201, { 'x-up': '1', 'set-cookie': ['a=1', 'b=2'], connection: 'keep-alive' })
      res.write('hello ')
      res.end('world')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  slowAnswer.open()
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

const ep = (id: string): Endpoint => ({
  id,
  target: { kind: 'http', name: 'v1', endpoints: [id], dnsRefresh: 5000, loadBalancer: 'round-robin' },
})

function req(path: string, over: Partial<AttemptRequest> = {}): AttemptRequest {
  return {
    service: 'ratings',
    attempt: 1,
    method: 'GET',
    path,
    headers: { host: 'ratings' },
    body: null,
    ...over,
  }
}

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(UpstreamFailure)
    return (e as UpstreamFailure).kind
  }
  throw new Error('expected a failure')
}

describe('createNodeHttpInvoker', () => {
  it('sends method, path, headers and body; collects the whole response', async () => {
    const invoker = createNodeHttpInvoker()
    const res = await invoker.invoke(
      req('/ratings/1?x=1', {
        method: 'POST',
        headers: {
          host: 'ratings',
          'x-in': 'a',
          connection: 'keep-alive, x-drop',
          'x-drop': 'no',
          te: 'trailers',
        },
        body: 'abc',
      }),
      ep(origin),
      new AbortController().signal,
    )
    expect(res.status).toBe(201)
    expect(new TextDecoder().decode(res.body as Uint8Array)).toBe('hello world')
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2'])
    expect(res.headers.connection).toBeUndefined()
    expect(res.headers['transfer-encoding']).toBeUndefined()
    expect(last?.url).toBe('/ratings/1?x=1')
    expect(last?.body).toBe('abc')
    expect(last?.headers['x-in']).toBe('a')
    expect(last?.headers['x-drop']).toBeUndefined()
    expect(last?.headers.te).toBeUndefined()
    expect(last?.headers['content-length']).toBe('3')
  })

  it('streams an async-iterable body and reuses keep-alive connections', async () => {
    const invoker = createNodeHttpInvoker()
    async function* body() {
      yield new TextEncoder().encode('one,')
      yield new TextEncoder().encode('two')
    }
    sockets.clear()
    await invoker.invoke(req('/s', { method: 'PUT', body: body() }), ep(origin), new AbortController().signal)
    expect(last?.body).toBe('one,two')
    expect(last?.headers['transfer-encoding']).toBe('chunked')
    for (let i = 0; i < 3; i++) await invoker.invoke(req('/again'), ep(origin), new AbortController().signal)
    expect(sockets.size).toBe(1)
  })

  it('maps refused, reset and aborted requests to failure kinds', async () => {
    const invoker = createNodeHttpInvoker()
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const dead = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    expect(await failure(invoker.invoke(req('/'), ep(dead), new AbortController().signal))).toBe(
      'connect-failure',
    )
    expect(await failure(invoker.invoke(req('/reset'), ep(origin), new AbortController().signal))).toBe(
      'reset',
    )
    slowArrived = createGate()
    slowAnswer = createGate()
    const timer = new AbortController()
    const aborted = failure(invoker.invoke(req('/slow'), ep(origin), timer.signal))
    await slowArrived.opened
    timer.abort()
    expect(await aborted).toBe('timeout')
    // Failed while the upstream still held its answer: the abort ended the call, not the upstream.
    expect(slowAnswer.isOpen).toBe(false)
    slowAnswer.open()
  })

  it('stripHopByHop drops the Connection-listed headers too', () => {
    expect(stripHopByHop({ connection: 'close, x-a', 'x-a': '1', 'x-b': '2', upgrade: 'h2c' })).toEqual({
      'x-b': '2',
    })
  })
})
