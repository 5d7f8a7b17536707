// gRPC through the mesh, end to end: a real @grpc/grpc-js client sends to an outbound sidecar, which
// routes by gRPC service and method to one of two inbound sidecars, each in front of a real grpc-js
// server. Sidecars are child processes on loopback; the servers and gates live in this process.

import { createServer as createH2Server, type Http2Server, type ServerHttp2Stream } from 'node:http2'
import { createServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  EchoClient,
  type EchoServer,
  grpc,
  HealthClient,
  type Msg,
  meshClient,
  OtherClient,
  startEchoServer,
  unary,
} from '../helpers/grpc.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'

const files = meshDir()
let v1: EchoServer
let v2: EchoServer
let in1: SidecarProcess
let in2: SidecarProcess
let out: SidecarProcess
let echo: grpc.Client
let deadPort: number
/** An HTTP/2 server that takes every stream and never answers: only the mesh's timer can end a call. */
let hang: Http2Server
const hung: ServerHttp2Stream[] = []
const hungTimeouts: string[] = []

const SPLIT_CALLS = 1000
const FLAKY_CALLS = 1000

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** A client of one unary method at `path` with raw bytes in and out (no proto needed). */
function rawClient(path: string) {
  return grpc.makeGenericClientConstructor(
    {
      Call: {
        path,
        requestStream: false,
        responseStream: false,
        requestSerialize: (v: Buffer) => v,
        requestDeserialize: (v: Buffer) => v,
        responseSerialize: (v: Buffer) => v,
        responseDeserialize: (v: Buffer) => v,
      },
    },
    'Raw',
  )
}

function hostPort(url: string): string {
  return url.replace(/^http:\/\//, '')
}

/** Runs `n` calls with at most `width` in flight. */
async function pooled<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(n)
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++
        results[i] = await fn(i)
      }
    }),
  )
  return results
}

beforeAll(async () => {
  v1 = await startEchoServer({ version: 'v1', flakyShare: 0.3, seed: 7 })
  v2 = await startEchoServer({ version: 'v2' })
  deadPort = await closedPort()
  hang = createH2Server()
  hang.on('stream', (stream, headers) => {
    stream.on('error', () => {})
    hung.push(stream)
    hungTimeouts.push(String(headers['grpc-timeout']))
  })
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()))
  const hangPort = (hang.address() as { port: number }).port
  // The inbound sidecars route nothing: any valid config naming their service will do.
  const inboundConfig = files.write('inbound.json', {
    version: 1,
    mesh: 'grpc',
    services: { echo: { targets: { app: { http: 'http://127.0.0.1:1', protocol: 'grpc' } } } },
  })
  ;[in1, in2] = await Promise.all([
    startSidecarProcess({ configPath: inboundConfig, service: 'echo', app: v1.url }),
    startSidecarProcess({ configPath: inboundConfig, service: 'echo', app: v2.url }),
  ])
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'grpc',
    services: {
      echo: {
        targets: {
          v1: { http: in1.inbound!, protocol: 'grpc' },
          v2: { http: in2.inbound!, protocol: 'grpc' },
          dead: { http: `http://127.0.0.1:${deadPort}`, protocol: 'grpc' },
          hang: { http: `http://127.0.0.1:${hangPort}`, protocol: 'grpc' },
        },
        // Generous on purpose: this test measures what retries can do, not the budget.
        retryBudget: { percent: 100, minPerSecond: 1000 },
        routes: [
          {
            name: 'gold',
            match: { grpc: { service: 'meshtest.Echo' }, headers: { 'x-tenant': 'gold' } },
            to: 'v2',
          },
          {
            name: 'split',
            match: { grpc: { service: 'meshtest.Echo', method: 'Version' } },
            to: { v1: 90, v2: 10 },
          },
          {
            name: 'flaky',
            match: { grpc: { service: 'meshtest.Echo', method: 'Flaky' } },
            to: 'v1',
            retries: { attempts: 10, on: ['unavailable'], backoff: { base: '1ms', max: '5ms' } },
          },
          {
            name: 'flaky-once',
            match: { grpc: { method: 'FlakyNoRetry' } },
            to: 'v1',
            retries: { attempts: 0 },
          },
          { name: 'slow', match: { grpc: { method: 'Slow' } }, to: 'v1', timeout: '400ms' },
          { name: 'health', match: { grpc: { service: 'grpc.health.v1.Health' } }, to: 'v1' },
          {
            name: 'down',
            match: { grpc: { service: 'meshtest.Down' } },
            to: 'dead',
            retries: { attempts: 0 },
          },
          {
            name: 'hang',
            match: { grpc: { service: 'meshtest.Hang' } },
            to: 'hang',
            timeout: '300ms',
            retries: { attempts: 0 },
          },
          { name: 'echo', match: { grpc: { service: 'meshtest.Echo' } }, to: 'v1' },
        ],
      },
    },
  })
  out = await startSidecarProcess({ configPath, service: 'client' })
  echo = meshClient(EchoClient, hostPort(out.outbound), 'echo')
}, 60_000)

afterAll(async () => {
  echo?.close()
  await Promise.all([out?.stop(), in1?.stop(), in2?.stop()])
  await Promise.all([v1?.close(), v2?.close()])
  for (const s of hung) s.destroy()
  await new Promise<void>((r) => (hang ? hang.close(() => r()) : r()))
  files.remove()
})

describe('gRPC through an outbound and an inbound sidecar', () => {
  it('carries a unary call with its metadata, binary metadata and trailers intact', async () => {
    const md = new grpc.Metadata()
    md.set('x-echo', 'hello')
    const r = await unary(echo, 'Unary', { text: 'hi', n: 41 }, { metadata: md })
    expect(r.err).toBeUndefined()
    expect(r.res).toEqual({ text: 'hi!', n: 42 })
    expect(r.metadata?.get('x-initial')).toEqual(['initial:hello'])
    expect(r.metadata?.get('x-bin-bin')).toEqual([Buffer.from([0, 1, 2, 255])])
    expect(r.status?.code).toBe(grpc.status.OK)
    expect(r.status?.metadata.get('x-trailer')).toEqual(['trailer:hello'])
  })

  it('streams a server-streaming call: the first message arrives before the server sends the rest', async () => {
    const call = (echo as unknown as { ServerStream(m: Msg): grpc.ClientReadableStream<Msg> }).ServerStream({
      text: 'go',
      n: 5,
    })
    const got: Msg[] = []
    const ended = new Promise<void>((resolve, reject) => {
      call.on('data', (m: Msg) => {
        got.push(m)
        // The server holds the rest back until the first message is here: no buffering in between.
        if (got.length === 1) v1.streamGate.open()
      })
      call.on('end', () => resolve())
      call.on('error', reject)
    })
    await ended
    expect(got.map((m) => m.text)).toEqual(['first', 'm1', 'm2', 'm3', 'm4'])
  })

  it('streams a client-streaming call', async () => {
    const result = await new Promise<Msg>((resolve, reject) => {
      const call = (
        echo as unknown as {
          ClientStream(cb: (err: grpc.ServiceError | null, m: Msg) => void): grpc.ClientWritableStream<Msg>
        }
      ).ClientStream((err, m) => (err ? reject(err) : resolve(m)))
      for (let i = 1; i <= 100; i++) call.write({ text: 'x', n: i })
      call.end()
    })
    expect(result).toEqual({ text: 'x'.repeat(100), n: 5050 })
  })

  it('streams a bidirectional call in lock step: each reply comes before the next message is sent', async () => {
    const call = (echo as unknown as { Bidi(): grpc.ClientDuplexStream<Msg, Msg> }).Bidi()
    const replies: Msg[] = []
    let waiting: ((m: Msg) => void) | undefined
    call.on('data', (m: Msg) => {
      replies.push(m)
      waiting?.(m)
    })
    for (let i = 0; i < 20; i++) {
      const reply = new Promise<Msg>((r) => {
        waiting = r
      })
      call.write({ text: `p${i}`, n: i })
      // The next message is written only once this one came back through both sidecars.
      expect(await reply).toEqual({ text: `echo:p${i}`, n: i })
    }
    const ended = new Promise<void>((r) => call.on('end', () => r()))
    call.end()
    await ended
    expect(replies).toHaveLength(20)
  })

  it('splits Version 90/10 between v1 and v2 within tolerance', async () => {
    const results = await pooled(SPLIT_CALLS, 16, () => unary(echo, 'Version', { text: '', n: 0 }))
    const byVersion: Record<string, number> = {}
    for (const r of results) {
      expect(r.err).toBeUndefined()
      byVersion[r.res!.text] = (byVersion[r.res!.text] ?? 0) + 1
    }
    // Binomial(1000, 0.1): sd 9.5; ±40 is more than 4 sd.
    expect(byVersion.v2).toBeGreaterThan(100 - 40)
    expect(byVersion.v2).toBeLessThan(100 + 40)
    expect(byVersion.v1! + byVersion.v2!).toBe(SPLIT_CALLS)
  })

  it('routes on metadata: x-tenant gold goes to v2 whatever the method', async () => {
    const md = new grpc.Metadata()
    md.set('x-tenant', 'gold')
    const results = await pooled(20, 4, () => unary(echo, 'Version', { text: '', n: 0 }, { metadata: md }))
    for (const r of results) expect(r.res?.text).toBe('v2')
  })

  it('retries UNAVAILABLE: 30% failing tries become at least 99.9% successful calls', async () => {
    const before = v1.unavailable
    const results = await pooled(FLAKY_CALLS, 16, (i) => unary(echo, 'Flaky', { text: `f${i}`, n: i }))
    const ok = results.filter((r) => r.err === undefined && r.res?.n !== undefined).length
    const failedTries = v1.unavailable - before
    // The server did fail about 30% of its tries...
    expect(failedTries).toBeGreaterThan(FLAKY_CALLS * 0.3 * 0.8)
    // ...and the caller saw nearly none of it.
    expect(ok / FLAKY_CALLS).toBeGreaterThanOrEqual(0.999)
    // Every answer is its own call's.
    for (let i = 0; i < FLAKY_CALLS; i++) if (results[i]!.res) expect(results[i]!.res!.n).toBe(i)
  })

  it('without retries the same server fails about 30% of calls (the retries did it)', async () => {
    const results = await pooled(200, 8, (i) => unary(echo, 'FlakyNoRetry', { text: '', n: i }))
    const failed = results.filter((r) => r.err?.code === grpc.status.UNAVAILABLE).length
    expect(failed).toBeGreaterThan(200 * 0.15)
    expect(failed).toBeLessThan(200 * 0.45)
  })

  it("ends a call whose deadline is shorter than the server's delay in DEADLINE_EXCEEDED, while the server still waits", async () => {
    const waitingBefore = v1.slowWaiting
    const r = await unary(echo, 'Slow', { text: 's', n: 0 }, { deadlineMs: 150 })
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    // The server is still held at its gate: the error did not wait for it.
    expect(v1.slowFinished).toBe(0)
    expect(v1.slowWaiting).toBeGreaterThan(waitingBefore)
  })

  it("answers the route's own timeout as a trailers-only DEADLINE_EXCEEDED with x-meshgate-error", async () => {
    const hungBefore = hung.length
    const Hang = rawClient('/meshtest.Hang/Call')
    const hangClient = new Hang(hostPort(out.outbound), grpc.credentials.createInsecure(), {
      'grpc.default_authority': 'echo',
    })
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      (hangClient as unknown as Record<string, (...args: unknown[]) => unknown>).Call!(
        Buffer.alloc(0),
        (e: grpc.ServiceError) => resolve(e),
      ),
    )
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    expect(err.metadata.get('x-meshgate-error')).toEqual(['timeout'])
    // The upstream got the call, told of the route's deadline, and never answered.
    expect(hung.length).toBe(hungBefore + 1)
    const told = /^(\d+)([mu])$/.exec(hungTimeouts.at(-1)!)
    expect(told).not.toBeNull()
    const toldMs = Number(told![1]) / (told![2] === 'u' ? 1000 : 1)
    expect(toldMs).toBeGreaterThan(0)
    expect(toldMs).toBeLessThanOrEqual(300)
    hangClient.close()
  })

  it('answers the standard health service through the mesh', async () => {
    const Health = HealthClient.Health as unknown as new (
      a: string,
      c: grpc.ChannelCredentials,
      o: grpc.ChannelOptions,
    ) => grpc.Client
    const health = new Health(hostPort(out.outbound), grpc.credentials.createInsecure(), {
      'grpc.default_authority': 'echo',
    })
    const check = (service: string) =>
      new Promise<{ status: string }>((resolve, reject) =>
        (health as unknown as Record<string, (...args: unknown[]) => unknown>).Check!(
          { service },
          (err: grpc.ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res)),
        ),
      )
    expect(await check('meshtest.Echo')).toEqual({ status: 'SERVING' })
    v1.health.setStatus('meshtest.Echo', 'NOT_SERVING')
    expect(await check('meshtest.Echo')).toEqual({ status: 'NOT_SERVING' })
    v1.health.setStatus('meshtest.Echo', 'SERVING')
    health.close()
  })

  it('answers mesh errors as gRPC statuses: unknown service and no route 12, unreachable target 14', async () => {
    const stranger = meshClient(EchoClient, hostPort(out.outbound), 'nosuch')
    const a = await unary(stranger, 'Unary', { text: '', n: 0 })
    expect(a.err?.code).toBe(grpc.status.UNIMPLEMENTED)
    expect(a.err?.metadata.get('x-meshgate-error')).toEqual(['unknown_service'])
    stranger.close()

    const other = meshClient(OtherClient, hostPort(out.outbound), 'echo')
    const b = await unary(other, 'Call', { text: '', n: 0 })
    expect(b.err?.code).toBe(grpc.status.UNIMPLEMENTED)
    expect(b.err?.metadata.get('x-meshgate-error')).toEqual(['no_route'])
    other.close()

    // A client of a service routed to a port nothing listens on.
    const Down = rawClient('/meshtest.Down/Call')
    const down = new Down(hostPort(out.outbound), grpc.credentials.createInsecure(), {
      'grpc.default_authority': 'echo',
    })
    const c = await new Promise<grpc.ServiceError>((resolve) =>
      (down as unknown as Record<string, (...args: unknown[]) => unknown>).Call!(
        Buffer.alloc(0),
        (err: grpc.ServiceError) => resolve(err),
      ),
    )
    expect(c.code).toBe(grpc.status.UNAVAILABLE)
    expect(c.metadata.get('x-meshgate-error')).toEqual(['upstream_unavailable'])
    down.close()
  })

  it('counts calls by gRPC status in /metrics and the access log', async () => {
    const text = await (await fetch(`${out.admin}/metrics`)).text()
    expect(text).toMatch(/meshgate_grpc_responses_total\{[^}]*route="flaky"[^}]*grpc_status="OK"\} \d+/)
    expect(text).toMatch(
      /meshgate_grpc_responses_total\{[^}]*route="slow"[^}]*grpc_status="DEADLINE_EXCEEDED"\} \d+/,
    )
    expect(text).toMatch(
      /meshgate_grpc_responses_total\{[^}]*route="flaky-once"[^}]*grpc_status="UNAVAILABLE"\} \d+/,
    )
    const inbound = await (await fetch(`${in1.admin}/metrics`)).text()
    expect(inbound).toMatch(/meshgate_grpc_responses_total\{[^}]*grpc_status="OK"\} \d+/)
  })
})
