// Path normalization on both sidecar listeners, over raw sockets (so no client library tidies the
// request line first), with recording upstreams: every dot-segment and escape trick lands on the route
// of its normal form, and the upstream receives that same normal form.
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { PATH_BYPASSES, PATH_REFUSALS } from '../http/edge-cases.ts'
import { parseReply, type RawReply } from '../http/raw-peer.ts'

const files = meshDir()
let pub: Upstream
let admin: Upstream
let app: Upstream
/** Default normalization: merge slashes, refuse escaped slashes. */
let strict: SidecarProcess
let keep: SidecarProcess
let decode: SidecarProcess

function meshWith(pathNormalization: Record<string, unknown> | undefined) {
  return {
    version: 1,
    mesh: 'paths',
    ...(pathNormalization === undefined ? {} : { pathNormalization }),
    services: {
      svc: {
        targets: { pub: { http: pub.url }, admin: { http: admin.url } },
        routes: [
          { name: 'public', match: { path: { prefix: '/public' } }, to: 'pub' },
          { name: 'admin', match: { path: { prefix: '/admin' } }, to: 'admin' },
        ],
      },
      // The inbound side's own service: its routes do not apply inbound, the app gets everything.
      self: { targets: { app: { http: 'http://127.0.0.1:9' } } },
    },
  }
}

beforeAll(async () => {
  ;[pub, admin, app] = await Promise.all([startUpstream('pub'), startUpstream('admin'), startUpstream('app')])
  const start = (name: string, pn: Record<string, unknown> | undefined) =>
    startSidecarProcess({ configPath: files.write(name, meshWith(pn)), service: 'self', app: app.url })
  ;[strict, keep, decode] = await Promise.all([
    start('strict.json', undefined),
    start('keep.json', { escapedSlashes: 'keep', mergeSlashes: false }),
    start('decode.json', { escapedSlashes: 'decode' }),
  ])
}, 60_000)

afterAll(async () => {
  await Promise.all([strict, keep, decode].map((s) => s?.stop()))
  await Promise.all([pub, admin, app].map((u) => u?.close()))
  files.remove()
})

/** One request written byte for byte on a fresh connection; the reply read until the server closes. */
function raw(base: string, target: string, host = 'svc'): Promise<RawReply> {
  const { port } = new URL(base)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1')
    let text = ''
    // A bound, not a measurement: a hung exchange fails the test instead of hanging it.
    const timer = setTimeout(() => socket.destroy(new Error(`no reply to ${target}`)), 10_000)
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1')
    })
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(parseReply(text))
    })
    socket.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, 'latin1')
  })
}

function upstreamUrl(r: RawReply): string {
  return (JSON.parse(r.body) as { url: string }).url
}

describe('outbound listener', () => {
  for (const [sent, normal] of PATH_BYPASSES) {
    it(`${sent} routes and forwards as ${normal}`, async () => {
      const before = pub.count()
      const r = await raw(strict.outbound, sent)
      expect(r.status).toBe(200)
      expect(r.headers['x-upstream']).toBe('admin')
      expect(upstreamUrl(r)).toBe(normal)
      expect(admin.requests().at(-1)?.url).toBe(normal)
      expect(pub.count()).toBe(before)
    })
  }

  it('a normal path that stays under /public goes to public', async () => {
    const r = await raw(strict.outbound, '/public/a/./b/../c')
    expect(r.headers['x-upstream']).toBe('pub')
    expect(upstreamUrl(r)).toBe('/public/a/c')
  })

  for (const [sent, reason] of PATH_REFUSALS) {
    it(`${sent} is refused with 400 invalid_path (${reason})`, async () => {
      const before = pub.count() + admin.count()
      const r = await raw(strict.outbound, sent)
      expect(r.status).toBe(400)
      expect(r.headers['x-meshgate-error']).toBe('invalid_path')
      expect(JSON.parse(r.body)).toMatchObject({ error: 'invalid_path', reason })
      expect(pub.count() + admin.count()).toBe(before)
    })
  }

  it('escapedSlashes: keep forwards %2F encoded (upper-case), on the route of the undecoded path', async () => {
    const r = await raw(keep.outbound, '/public/..%2fadmin')
    expect(r.headers['x-upstream']).toBe('pub')
    expect(upstreamUrl(r)).toBe('/public/..%2Fadmin')
  })

  it('mergeSlashes: false keeps empty segments', async () => {
    const r = await raw(keep.outbound, '/admin//x')
    expect(upstreamUrl(r)).toBe('/admin//x')
  })

  it('escapedSlashes: decode decodes before dot segments, so the request lands where it leads', async () => {
    const r = await raw(decode.outbound, '/public/..%2Fadmin%2f%2Fx')
    expect(r.headers['x-upstream']).toBe('admin')
    expect(upstreamUrl(r)).toBe('/admin/x')
  })
})

describe('inbound listener', () => {
  for (const [sent, normal] of PATH_BYPASSES) {
    it(`${sent} reaches the app as ${normal}`, async () => {
      const r = await raw(strict.inbound!, sent, 'self')
      expect(r.status).toBe(200)
      expect(r.headers['x-upstream']).toBe('app')
      expect(upstreamUrl(r)).toBe(normal)
      expect(app.requests().at(-1)?.url).toBe(normal)
    })
  }

  it('refuses an escaped slash by default, an invalid escape always', async () => {
    const before = app.count()
    for (const sent of ['/public/..%2Fadmin', '/a%G0', '/a\\b']) {
      const r = await raw(strict.inbound!, sent, 'self')
      expect(r.status).toBe(400)
      expect(r.headers['x-meshgate-error']).toBe('invalid_path')
    }
    expect(app.count()).toBe(before)
  })

  it('keep and decode do what they say inbound too', async () => {
    expect(upstreamUrl(await raw(keep.inbound!, '/a/..%2Fb', 'self'))).toBe('/a/..%2Fb')
    expect(upstreamUrl(await raw(decode.inbound!, '/a/..%2Fb', 'self'))).toBe('/b')
  })
})
