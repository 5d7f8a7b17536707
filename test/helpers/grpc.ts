// A real @grpc/grpc-js server and client for the gRPC tests: the Echo service of
// test/fixtures/grpc/echo.proto (all four call shapes, plus calls that fail on purpose, wait on a gate,
// or name their backend) and the standard health service from grpc-health-check.

import { join, resolve } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check'

const PROTO = resolve(import.meta.dirname, '..', 'fixtures', 'grpc', 'echo.proto')

export interface Msg {
  text: string
  n: number
}

type Ctor = new (
  address: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => grpc.Client

function loadPackage(file: string, includeDirs: string[] = []): grpc.GrpcObject {
  const def = protoLoader.loadSync(file, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    includeDirs,
  })
  return grpc.loadPackageDefinition(def)
}

const pkg = loadPackage(PROTO)
const meshtest = pkg.meshtest as grpc.GrpcObject
export const EchoClient = meshtest.Echo as unknown as Ctor & { service: grpc.ServiceDefinition }
export const OtherClient = meshtest.Other as unknown as Ctor & { service: grpc.ServiceDefinition }
const healthPkg = loadPackage(healthProtoPath, [join(healthProtoPath, '..', '..', '..')])
export const HealthClient = ((healthPkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject)
  .v1 as grpc.GrpcObject

/** A seeded PRNG (mulberry32): the flaky calls fail the same way in every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface EchoServerOptions {
  /** What Version answers with. */
  version: string
  /** Share of Flaky and FlakyNoRetry calls that fail with UNAVAILABLE. */
  flakyShare?: number
  seed?: number
}

export interface EchoServer {
  readonly port: number
  readonly url: string
  /** Calls of each method seen. */
  readonly calls: Record<string, number>
  /** Flaky/FlakyNoRetry attempts answered UNAVAILABLE. */
  unavailable: number
  /** Slow calls wait for this gate; `release()` opens it. */
  slowWaiting: number
  slowFinished: number
  release(): void
  /** ServerStream sends its first message, then waits for this gate. */
  streamGate: { open(): void }
  health: HealthImplementation
  close(): Promise<void>
}

export async function startEchoServer(opts: EchoServerOptions): Promise<EchoServer> {
  const server = new grpc.Server()
  const random = seeded(opts.seed ?? 1)
  const calls: Record<string, number> = {}
  const count = (m: string) => {
    calls[m] = (calls[m] ?? 0) + 1
  }
  let release!: () => void
  const slowGate = new Promise<void>((r) => {
    release = r
  })
  let openStream!: () => void
  const streamGate = new Promise<void>((r) => {
    openStream = r
  })
  const state = { unavailable: 0, slowWaiting: 0, slowFinished: 0 }
  const flaky = (name: string) => (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
    count(name)
    if (random() < (opts.flakyShare ?? 0)) {
      state.unavailable++
      cb({ code: grpc.status.UNAVAILABLE, details: 'flaky on purpose' })
      return
    }
    cb(null, { text: call.request.text, n: call.request.n })
  }
  server.addService(EchoClient.service, {
    Unary(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('Unary')
      const md = new grpc.Metadata()
      const echo = call.metadata.get('x-echo')
      md.set('x-initial', `initial:${String(echo[0] ?? '')}`)
      md.set('x-bin-bin', Buffer.from([0, 1, 2, 255]))
      call.sendMetadata(md)
      const trailer = new grpc.Metadata()
      trailer.set('x-trailer', `trailer:${String(echo[0] ?? '')}`)
      cb(null, { text: `${call.request.text}!`, n: call.request.n + 1 }, trailer)
    },
    async ServerStream(call: grpc.ServerWritableStream<Msg, Msg>) {
      count('ServerStream')
      call.write({ text: 'first', n: 0 })
      await streamGate
      for (let i = 1; i < call.request.n; i++) call.write({ text: `m${i}`, n: i })
      call.end()
    },
    ClientStream(call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('ClientStream')
      let sum = 0
      let texts = ''
      call.on('data', (m: Msg) => {
        sum += m.n
        texts += m.text
      })
      call.on('end', () => cb(null, { text: texts, n: sum }))
    },
    Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
      count('Bidi')
      call.on('data', (m: Msg) => call.write({ text: `echo:${m.text}`, n: m.n }))
      call.on('end', () => call.end())
    },
    Version(_call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('Version')
      cb(null, { text: opts.version, n: 0 })
    },
    Flaky: flaky('Flaky'),
    FlakyNoRetry: flaky('FlakyNoRetry'),
    async Slow(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('Slow')
      state.slowWaiting++
      await slowGate
      state.slowFinished++
      cb(null, { text: call.request.text, n: 0 })
    },
  })
  const health = new HealthImplementation({ '': 'SERVING', 'meshtest.Echo': 'SERVING' })
  health.addToServer(server)
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? rej(err) : res(p),
    ),
  )
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    calls,
    get unavailable() {
      return state.unavailable
    },
    get slowWaiting() {
      return state.slowWaiting
    },
    get slowFinished() {
      return state.slowFinished
    },
    release,
    streamGate: { open: openStream },
    health,
    close: () =>
      new Promise<void>((r) => {
        release()
        openStream()
        server.tryShutdown(() => r())
        setTimeout(() => server.forceShutdown(), 2000).unref()
      }),
  } as EchoServer
}

/** A client of `Ctor` that sends to the sidecar at `address` (`127.0.0.1:PORT`) with `:authority` = `service`. */
export function meshClient<T extends grpc.Client>(Ctor: Ctor, address: string, service: string): T {
  return new Ctor(address, grpc.credentials.createInsecure(), {
    'grpc.default_authority': service,
    // The test counts every call's own outcome: no retries in the client library.
    'grpc.enable_retries': 0,
  }) as T
}

/** A unary call as a promise: the response, its initial metadata and its status (with trailers). */
export function unary(
  client: grpc.Client,
  method: string,
  req: Msg,
  opts: { metadata?: grpc.Metadata; deadlineMs?: number } = {},
): Promise<{ res?: Msg; err?: grpc.ServiceError; metadata?: grpc.Metadata; status?: grpc.StatusObject }> {
  return new Promise((resolveCall) => {
    const out: { res?: Msg; err?: grpc.ServiceError; metadata?: grpc.Metadata; status?: grpc.StatusObject } =
      {}
    const callOpts: grpc.CallOptions = {}
    if (opts.deadlineMs !== undefined) callOpts.deadline = Date.now() + opts.deadlineMs
    const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method]!.bind(client)
    let done = 0
    const finish = () => {
      if (++done === 2) resolveCall(out)
    }
    const call = fn(
      req,
      opts.metadata ?? new grpc.Metadata(),
      callOpts,
      (err: grpc.ServiceError | null, res: Msg) => {
        if (err) out.err = err
        else out.res = res
        finish()
      },
    ) as grpc.ClientUnaryCall
    call.on('metadata', (md: grpc.Metadata) => {
      out.metadata = md
    })
    call.on('status', (s: grpc.StatusObject) => {
      out.status = s
      finish()
    })
  })
}

export { grpc }
