// The dev gateway (meshgate dev's edge) normalizes paths as the sidecar and the Lambda gateway do:
// over a raw socket, so the request line reaches it exactly as written.
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../proxy-core/config/load.ts'
import { type DevGateway, startDevGateway } from '../../proxy-core/dev/gateway.ts'
import { createNodeHttpInvoker } from '../../proxy-core/invokers/http-node.ts'
import { createLambdaInvoker } from '../../proxy-core/invokers/lambda-invoker.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

let pub: Upstream
let admin: Upstream
let gateway: DevGateway

beforeAll(async () => {
  ;[pub, admin] = await Promise.all([startUpstream('pub'), startUpstream('admin')])
  const config = await loadConfig(
    JSON.stringify({
      version: 1,
      mesh: 'dev',
      gateway: {
        routes: [
          { match: { path: { prefix: '/public' } }, service: 'pub' },
          { match: { path: { prefix: '/admin' } }, service: 'admin' },
        ],
      },
      services: {
        pub: { targets: { v1: { http: pub.url } } },
        admin: { targets: { v1: { http: admin.url } } },
      },
    }),
  )
  gateway = await startDevGateway({
    host: '127.0.0.1',
    port: 0,
    config,
    invokers: { http: createNodeHttpInvoker(), lambda: createLambdaInvoker() },
    telemetry: {},
  })
})

afterAll(async () => {
  await gateway?.close()
  await Promise.all([pub, admin].map((u) => u?.close()))
})

/** Status and body of one raw request (`Connection: close`, read to the end). */
function raw(target: string): Promise<{ status: number; body: string }> {
  const port = Number(new URL(gateway.url).port)
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
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
      const status = Number(text.split(' ')[1])
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) })
    })
    socket.write(`GET ${target} HTTP/1.1\r\nHost: dev\r\nConnection: close\r\n\r\n`)
  })
}

describe('dev gateway path normalization', () => {
  for (const target of ['/public/../admin', '/public/%2e%2e/admin', '/public/./.%2E/admin', '//admin']) {
    it(`${target} reaches admin as /admin`, async () => {
      const before = pub.count()
      const r = await raw(target)
      expect(r.status).toBe(200)
      expect(JSON.parse(r.body)).toMatchObject({ upstream: 'admin', url: '/admin' })
      expect(pub.count()).toBe(before)
    })
  }

  it('refuses an escaped slash with 400 invalid_path', async () => {
    const r = await raw('/public/..%2Fadmin')
    expect(r.status).toBe(400)
    expect(JSON.parse(r.body)).toMatchObject({ error: 'invalid_path', reason: 'escaped_slash' })
  })
})
