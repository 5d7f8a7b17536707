// The sidecar's HTTP/2 client against real node:http2 servers: the server's stream limit is honoured
// (more streams open more sessions), a GOAWAY moves new calls to a new session while the old one's
// streams finish, a session that dies is replaced, and a refused connection is a connect failure.

import { createServer, type Http2Server, type Http2Session, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { Cancellation } from '../../proxy-core/engine/cancel.ts'
import type { AttemptRequest, Endpoint, MeshResponse } from '../../proxy-core/engine/types.ts'
import { UpstreamFailure } from '../../proxy-core/engine/types.ts'
import { createHttp2Invoker, type Http2Invoker } from '../../proxy-core/http/http2-client.ts'

let server: Http2Server | undefined
let invoker: Http2Invoker | undefined

afterEach(async () => {
  await invoker?.close()
  invoker = undefined
  if (server !== undefined) {
    const s = server
    server = undefined
    await new Promise<void>((r) => s.close(() => r()))
  }
})

async function listen(
  onStream: (stream: ServerHttp2Stream, session: Http2Session) => void,
  maxConcurrentStreams = 100,
): Promise<Endpoint> {
  server = createServer({ settings: { maxConcurrentStreams } })
  server.on('stream', (stream) => {
    stream.on('error', () => {})
    onStream(stream, stream.session!)
  })
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()))
  const id = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    id,
    target: {
      kind: 'http',
      name: 'v1',
      protocol: 'http2',
      endpoints: [id],
      dnsRefresh: 0,
      loadBalancer: 'round-robin',
    },
  }
}

function req(path: string): AttemptRequest {
  return { method: 'GET', path, headers: { host: 'svc' }, body: null, service: 'svc', attempt: 1 }
}

async function text(res: MeshResponse): Promise<string> {
  const body = res.body
  if (body === null) return ''
  if (typeof body === 'string') return body
  if (body instanceof Uint8Array) return Buffer.from(body).toString()
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(Buffer.from(c))
  return Buffer.concat(chunks).toString()
}

describe('HTTP/2 client sessions', () => {
  it("honours the server's concurrent-stream limit: a full session makes the next call open another", async () => {
    const held: ServerHttp2Stream[] = []
    const sessions = new Set<Http2Session>()
    const ep = await listen((stream, session) => {
      sessions.add(session)
      held.push(stream)
    }, 2)
    invoker = createHttp2Invoker()
    // The first call learns the limit (SETTINGS come with the session).
    const first = invoker.invoke(req('/0'), ep, new Cancellation())
    while (held.length < 1) await new Promise((r) => setTimeout(r, 5))
    const rest = [1, 2, 3, 4].map((i) => invoker!.invoke(req(`/${i}`), ep, new Cancellation()))
    while (held.length < 5) await new Promise((r) => setTimeout(r, 5))
    // Five streams open at once, never more than two on one session.
    expect(sessions.size).toBe(3)
    for (const s of held) {
      s.respond({ ':status': 200 })
      s.end('ok')
    }
    for (const res of await Promise.all([first, ...rest])) expect(await text(res)).toBe('ok')
  })

  it('moves new calls to a new session after GOAWAY, while the open stream on the old one finishes', async () => {
    const sessions: Http2Session[] = []
    let held: ServerHttp2Stream | undefined
    const ep = await listen((stream, session) => {
      if (!sessions.includes(session)) sessions.push(session)
      if (stream.sentHeaders === undefined && held === undefined) {
        held = stream
        // The server is going away: no new streams on this session.
        session.goaway()
        return
      }
      stream.respond({ ':status': 200 })
      stream.end(`session ${sessions.indexOf(session)}`)
    })
    invoker = createHttp2Invoker()
    const pending = invoker.invoke(req('/held'), ep, new Cancellation())
    while (held === undefined) await new Promise((r) => setTimeout(r, 5))
    // Wait until the client has seen the GOAWAY (its stats drop the session).
    while (Object.values(invoker.stats())[0]!.connected > 0) await new Promise((r) => setTimeout(r, 5))
    const next = await invoker.invoke(req('/next'), ep, new Cancellation())
    expect(await text(next)).toBe('session 1')
    held!.respond({ ':status': 200 })
    held!.end('old session finished')
    expect(await text(await pending)).toBe('old session finished')
  })

  it('replaces a session that died', async () => {
    let n = 0
    const ep = await listen((stream, session) => {
      n++
      if (n === 2) {
        // The connection breaks under the second call.
        session.destroy()
        return
      }
      stream.respond({ ':status': 200 })
      stream.end(`call ${n}`)
    })
    invoker = createHttp2Invoker()
    expect(await text(await invoker.invoke(req('/1'), ep, new Cancellation()))).toBe('call 1')
    const broken = await invoker.invoke(req('/2'), ep, new Cancellation()).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(broken).toBeInstanceOf(UpstreamFailure)
    expect((broken as UpstreamFailure).kind).toBe('reset')
    expect(await text(await invoker.invoke(req('/3'), ep, new Cancellation()))).toBe('call 3')
  })

  it('reports a refused connection as a connect failure', async () => {
    const ep = await listen(() => {})
    const closed = ep.id
    await new Promise<void>((r) => server!.close(() => r()))
    server = undefined
    invoker = createHttp2Invoker()
    const err = await invoker.invoke(req('/'), { ...ep, id: closed }, new Cancellation()).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(UpstreamFailure)
    expect((err as UpstreamFailure).kind).toBe('connect-failure')
  })

  it('cancels the upstream stream when the attempt is aborted', async () => {
    let closedByClient = false
    const ep = await listen((stream) => {
      stream.on('close', () => {
        closedByClient = true
      })
    })
    invoker = createHttp2Invoker()
    const c = new Cancellation()
    const p = invoker.invoke(req('/slow'), ep, c)
    await new Promise((r) => setTimeout(r, 50))
    c.abort()
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((err as UpstreamFailure).kind).toBe('timeout')
    while (!closedByClient) await new Promise((r) => setTimeout(r, 5))
    expect(closedByClient).toBe(true)
  })
})
