// gRPC between two sidecars over mutual TLS, end to end on loopback: a real @grpc/grpc-js client sends
// to sidecar A's outbound listener; A reaches sidecar B's inbound listener over TLS with its mesh
// certificate, negotiating h2 by ALPN; B hands the stream to a real grpc-js server. B runs PERMISSIVE,
// so the same port also takes HTTP/1.1 over TLS (ALPN http/1.1) and cleartext h2 by preface. A third
// sidecar whose certificate comes from another CA is refused by B.

import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect as h2connect } from 'node:http2'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCa, makeTlsDir } from '../helpers/certs.ts'
import { grpc } from '../helpers/grpc.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'

const run = promisify(execFile)
const files = meshDir()
const certs = mkdtempSync(join(tmpdir(), 'meshgate-grpc-mtls-'))
let app: grpc.Server
let appPort: number
const seen = { echo: 0, chat: 0 }
let b: SidecarProcess
let a: SidecarProcess
let rogue: SidecarProcess
let tlsA: ReturnType<typeof makeTlsDir>
let bPort: number

const raw = {
  requestSerialize: (v: Buffer) => v,
  requestDeserialize: (v: Buffer) => v,
  responseSerialize: (v: Buffer) => v,
  responseDeserialize: (v: Buffer) => v,
}
/** A service of raw bytes (no proto needed): one unary method, one bidirectional stream. */
const RawService = {
  Echo: { path: '/meshtest.Raw/Echo', requestStream: false, responseStream: false, ...raw },
  Chat: { path: '/meshtest.Raw/Chat', requestStream: true, responseStream: true, ...raw },
} as const
const RawClient = grpc.makeGenericClientConstructor(RawService, 'Raw')

/** What the app saw of the caller's certificate, as a trailer. */
function sawTrailers(md: grpc.Metadata): grpc.Metadata {
  const t = new grpc.Metadata()
  t.set('x-trailer', `trailer:${String(md.get('x-echo')[0] ?? '')}`)
  t.set('x-saw-xfcc', String(md.get('x-forwarded-client-cert')[0] ?? 'none'))
  return t
}

/** One gRPC message as it goes on the wire: uncompressed flag, length, bytes. */
function grpcFrame(text: string): Buffer {
  const message = Buffer.from(text)
  const frame = Buffer.alloc(5)
  frame.writeUInt32BE(message.length, 1)
  return Buffer.concat([frame, message])
}

const hashOf = (fingerprint: string) => fingerprint.replaceAll(':', '').toLowerCase()

beforeAll(async () => {
  const mesh = makeCa(certs, 'mesh')
  const other = makeCa(certs, 'other')
  const tlsB = makeTlsDir(join(certs, 'b'), mesh, 'echo', ['DNS:echo', 'IP:127.0.0.1'])
  tlsA = makeTlsDir(join(certs, 'a'), mesh, 'client', ['URI:spiffe://grpc/client'])
  // Another CA's certificate, trusting the mesh CA: it accepts B, B must refuse it.
  const tlsR = makeTlsDir(join(certs, 'r'), other, 'rogue', ['URI:spiffe://grpc/rogue'])

  app = new grpc.Server()
  app.addService(RawService, {
    Echo(call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
      seen.echo++
      const md = new grpc.Metadata()
      md.set('x-initial', `initial:${String(call.metadata.get('x-echo')[0] ?? '')}`)
      call.sendMetadata(md)
      cb(null, Buffer.concat([call.request, Buffer.from('!')]), sawTrailers(call.metadata))
    },
    Chat(call: grpc.ServerDuplexStream<Buffer, Buffer>) {
      seen.chat++
      call.on('data', (m: Buffer) => call.write(Buffer.concat([Buffer.from('echo:'), m])))
      call.on('end', () => call.end(sawTrailers(call.metadata)))
    },
  })
  appPort = await new Promise<number>((res, rej) =>
    app.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? rej(err) : res(p),
    ),
  )
  const inboundConfig = files.write('inbound.json', {
    version: 1,
    mesh: 'grpc-mtls',
    services: { echo: { targets: { app: { http: 'http://127.0.0.1:1', protocol: 'grpc' } } } },
  })
  b = await startSidecarProcess({
    configPath: inboundConfig,
    service: 'echo',
    app: `http://127.0.0.1:${appPort}`,
    env: { MESHGATE_TLS_DIR: tlsB.dir, MESHGATE_TLS_MODE: 'permissive' },
  })
  bPort = Number(new URL(b.inbound!).port)
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'grpc-mtls',
    services: {
      echo: {
        targets: { b: { http: `https://127.0.0.1:${bPort}`, protocol: 'grpc' } },
        routes: [
          { name: 'raw', match: { grpc: { service: 'meshtest.Raw' } }, to: 'b', retries: { attempts: 0 } },
        ],
      },
    },
  })
  ;[a, rogue] = await Promise.all([
    startSidecarProcess({ configPath, service: 'client', env: { MESHGATE_TLS_DIR: tlsA.dir } }),
    startSidecarProcess({
      configPath,
      service: 'rogue',
      env: { MESHGATE_TLS_CERT: tlsR.cert, MESHGATE_TLS_KEY: tlsR.key, MESHGATE_TLS_CA: tlsA.ca },
    }),
  ])
}, 60_000)

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), rogue?.stop()])
  await new Promise<void>((r) => {
    if (app === undefined) return r()
    app.tryShutdown(() => r())
    setTimeout(() => app.forceShutdown(), 2000).unref()
  })
  files.remove()
  rmSync(certs, { recursive: true, force: true })
})

function client(sidecar: SidecarProcess): grpc.Client {
  return new RawClient(sidecar.outbound.replace(/^http:\/\//, ''), grpc.credentials.createInsecure(), {
    'grpc.default_authority': 'echo',
    'grpc.enable_retries': 0,
  })
}

interface UnaryResult {
  res?: Buffer
  err?: grpc.ServiceError
  metadata?: grpc.Metadata
  status?: grpc.StatusObject
}

function echoCall(c: grpc.Client, body: string, md: grpc.Metadata): Promise<UnaryResult> {
  return new Promise((resolve) => {
    const out: UnaryResult = {}
    let done = 0
    const finish = () => {
      if (++done === 2) resolve(out)
    }
    const call = (c as unknown as Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>).Echo!.call(
      c,
      Buffer.from(body),
      md,
      { deadline: Date.now() + 10_000 },
      (err: grpc.ServiceError | null, res: Buffer) => {
        if (err) out.err = err
        else out.res = res
        finish()
      },
    )
    call.on('metadata', (m: grpc.Metadata) => {
      out.metadata = m
    })
    call.on('status', (s: grpc.StatusObject) => {
      out.status = s
      finish()
    })
  })
}

async function bStats(): Promise<{ tls: { handshakeFailures: Record<string, number | undefined> } }> {
  const res = await fetch(`${b.admin}/stats`)
  return (await res.json()) as { tls: { handshakeFailures: Record<string, number | undefined> } }
}

describe('gRPC between two sidecars over mutual TLS (h2 by ALPN)', () => {
  it('carries a unary call with metadata and trailers; B vouches for A in x-forwarded-client-cert', async () => {
    const c = client(a)
    try {
      const md = new grpc.Metadata()
      md.set('x-echo', 'hello')
      // A caller cannot speak for the certificate: B drops this and writes what it verified.
      md.set('x-forwarded-client-cert', 'Hash=forged')
      const r = await echoCall(c, 'ping', md)
      expect(r.err).toBeUndefined()
      expect(r.res?.toString()).toBe('ping!')
      expect(r.metadata?.get('x-initial')).toEqual(['initial:hello'])
      expect(r.status?.code).toBe(grpc.status.OK)
      expect(r.status?.metadata.get('x-trailer')).toEqual(['trailer:hello'])
      const xfcc = String(r.status?.metadata.get('x-saw-xfcc')[0])
      expect(xfcc).toContain(`Hash=${hashOf(tlsA.leaf.fingerprint)}`)
      expect(xfcc).toContain('URI=spiffe://grpc/client')
    } finally {
      c.close()
    }
  })

  it('carries a bidirectional stream both ways, trailers at its end', async () => {
    const c = client(a)
    try {
      const md = new grpc.Metadata()
      md.set('x-echo', 'chat')
      const call = (
        c as unknown as Record<string, (...args: unknown[]) => grpc.ClientDuplexStream<Buffer, Buffer>>
      ).Chat!.call(c, md, { deadline: Date.now() + 10_000 })
      const got: string[] = []
      const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve))
      const ended = new Promise<void>((resolve) => call.on('end', () => resolve()))
      call.on('error', () => {})
      call.on('data', (m: Buffer) => {
        got.push(m.toString())
        // One at a time: each answer has crossed both sidecars before the next message goes.
        if (got.length < 3) call.write(Buffer.from(`m${got.length}`))
        else call.end()
      })
      call.write(Buffer.from('m0'))
      const s = await status
      await ended
      expect(s.code).toBe(grpc.status.OK)
      expect(got).toEqual(['echo:m0', 'echo:m1', 'echo:m2'])
      expect(s.metadata.get('x-trailer')).toEqual(['trailer:chat'])
      expect(String(s.metadata.get('x-saw-xfcc')[0])).toContain(`Hash=${hashOf(tlsA.leaf.fingerprint)}`)
    } finally {
      c.close()
    }
  })

  it('refuses a sidecar whose certificate another CA signed: UNAVAILABLE, the app never called', async () => {
    const before = { ...seen }
    const failuresBefore = (await bStats()).tls.handshakeFailures.bad_client_certificate ?? 0
    const c = client(rogue)
    try {
      const r = await echoCall(c, 'ping', new grpc.Metadata())
      expect(r.err?.code).toBe(grpc.status.UNAVAILABLE)
      expect(r.status?.metadata.get('x-meshgate-error')).toEqual(['upstream_unavailable'])
    } finally {
      c.close()
    }
    expect(seen).toEqual(before)
    expect((await bStats()).tls.handshakeFailures.bad_client_certificate).toBeGreaterThan(failuresBefore)
  })

  it('serves HTTP/1.1 over TLS on the same port when the client offers http/1.1', async () => {
    const res = await new Promise<{
      status: number
      version: string
      alpn: unknown
      body: Buffer
      trailers: unknown
    }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: bPort,
          method: 'POST',
          path: '/meshtest.Raw/Echo',
          // gRPC's framing over HTTP/1.1: the sidecar carries it to the app over h2.
          headers: { host: 'echo', 'content-type': 'application/grpc', te: 'trailers', 'x-echo': 'h1' },
          // An agent of its own, offering http/1.1 in ALPN as browsers and curl do.
          agent: new HttpsAgent({
            ca: readFileSync(tlsA.ca),
            cert: readFileSync(tlsA.cert),
            key: readFileSync(tlsA.key),
            ALPNProtocols: ['http/1.1'],
          }),
        },
        (r) => {
          const chunks: Buffer[] = []
          r.on('data', (c: Buffer) => chunks.push(c))
          r.on('end', () =>
            resolve({
              status: r.statusCode ?? 0,
              version: r.httpVersion,
              alpn: (r.socket as TLSSocket).alpnProtocol,
              body: Buffer.concat(chunks),
              trailers: r.trailers,
            }),
          )
        },
      )
      req.on('error', reject)
      req.end(grpcFrame('hi'))
    })
    expect(res).toMatchObject({ status: 200, version: '1.1', alpn: 'http/1.1' })
    expect(res.body.subarray(5).toString()).toBe('hi!')
    // An HTTP/1.1 hop carries no trailers (docs/protocols.md): the body is the app's answer.
    expect(res.trailers).toEqual({})
  })

  it('negotiates h2 with a node http2 TLS client; the stream carries its certificate to the app', async () => {
    const session = h2connect(`https://127.0.0.1:${bPort}`, {
      ca: readFileSync(tlsA.ca),
      cert: readFileSync(tlsA.cert),
      key: readFileSync(tlsA.key),
    })
    try {
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve())
        session.once('error', reject)
      })
      expect(session.alpnProtocol).toBe('h2')
      const stream = session.request({
        ':method': 'POST',
        ':path': '/meshtest.Raw/Echo',
        ':authority': 'echo',
        'content-type': 'application/grpc',
        te: 'trailers',
        'x-echo': 'direct',
        'x-forwarded-client-cert': 'Hash=forged',
      })
      stream.end(grpcFrame('hi'))
      const chunks: Buffer[] = []
      const result = await new Promise<{ status: number; trailers: Record<string, unknown> }>(
        (resolve, reject) => {
          let status = 0
          stream.on('response', (h) => {
            status = Number(h[':status'])
          })
          stream.on('data', (c: Buffer) => chunks.push(c))
          stream.on('trailers', (t) => resolve({ status, trailers: t }))
          stream.on('error', reject)
        },
      )
      expect(result.status).toBe(200)
      expect(result.trailers['grpc-status']).toBe('0')
      expect(result.trailers['x-trailer']).toBe('trailer:direct')
      expect(String(result.trailers['x-saw-xfcc'])).toContain(`Hash=${hashOf(tlsA.leaf.fingerprint)}`)
      expect(Buffer.concat(chunks).subarray(5).toString()).toBe('hi!')
    } finally {
      session.close()
    }
  })

  it('negotiates h2 with curl --http2 over TLS (a gRPC call written by hand)', async () => {
    const body = join(certs, 'frame.bin')
    writeFileSync(body, grpcFrame('curl'))
    const { stdout } = await run('curl', [
      '-sS',
      '--http2',
      '-k',
      '--cert',
      tlsA.cert,
      '--key',
      tlsA.key,
      '-H',
      'Host: echo',
      '-H',
      'content-type: application/grpc',
      '-H',
      'te: trailers',
      '--data-binary',
      `@${body}`,
      '-w',
      '\\n%{http_version} %{http_code}',
      `https://127.0.0.1:${bPort}/meshtest.Raw/Echo`,
    ])
    const lines = stdout.split('\n')
    expect(lines.at(-1)).toBe('2 200')
    expect(lines.slice(0, -1).join('\n')).toContain('curl!')
  })

  it('still takes cleartext h2 by preface on the permissive port, with no client certificate to vouch for', async () => {
    const c = new RawClient(`127.0.0.1:${bPort}`, grpc.credentials.createInsecure(), {
      'grpc.default_authority': 'echo',
      'grpc.enable_retries': 0,
    })
    try {
      const md = new grpc.Metadata()
      md.set('x-forwarded-client-cert', 'Hash=forged')
      const r = await echoCall(c, 'plain', md)
      expect(r.res?.toString()).toBe('plain!')
      expect(r.status?.metadata.get('x-saw-xfcc')).toEqual(['none'])
    } finally {
      c.close()
    }
  })
})
