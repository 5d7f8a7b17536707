// The Lambda edge gateway normalizes the event's path before its routes match: API Gateway and ALB
// hand the path on as the client sent it. Real middy engine, a real upstream recording what it got.
import type { Context } from 'aws-lambda'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createGatewayHandler, type GatewayHandler } from '../../proxy-core/lambda/index.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

let pub: Upstream
let admin: Upstream
let handler: GatewayHandler

beforeAll(async () => {
  ;[pub, admin] = await Promise.all([startUpstream('pub'), startUpstream('admin')])
  handler = createGatewayHandler({
    config: JSON.stringify({
      version: 1,
      mesh: 'm',
      accessLog: false,
      gateway: {
        routes: [
          { match: { path: { prefix: '/public' } }, service: 'pub' },
          { match: { path: { prefix: '/admin' } }, service: 'admin', rewrite: { prefix: '/internal' } },
        ],
      },
      services: {
        pub: { targets: { v1: { http: pub.url } } },
        admin: { targets: { v1: { http: admin.url } } },
      },
    }),
  })
})

afterAll(async () => {
  await Promise.all([pub, admin].map((u) => u?.close()))
})

function httpApiEvent(rawPath: string, rawQueryString = '') {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers: { host: 'gateway.local' },
    requestContext: { http: { method: 'GET', path: rawPath, sourceIp: '127.0.0.1' } },
    isBase64Encoded: false,
  }
}

function restEvent(path: string) {
  return {
    resource: '/{proxy+}',
    path,
    httpMethod: 'GET',
    headers: { Host: 'gateway.local' },
    multiValueHeaders: null,
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    requestContext: { identity: { sourceIp: '127.0.0.1' } },
    body: null,
    isBase64Encoded: false,
  }
}

describe('gateway path normalization', () => {
  for (const path of ['/public/../admin/x', '/public/%2e%2e/admin/x', '/public/.%2e/admin/x', '//admin//x']) {
    it(`${path} is routed and forwarded as /admin/x (HTTP API and REST API events)`, async () => {
      for (const event of [httpApiEvent(path, 'q=/../'), restEvent(path)]) {
        const before = pub.count()
        const res = await handler(event, {} as Context)
        expect(res.statusCode).toBe(200)
        const body = JSON.parse(String(res.body)) as { upstream: string; url: string }
        expect(body.upstream).toBe('admin')
        expect(body.url.startsWith('/internal/x')).toBe(true)
        expect(pub.count()).toBe(before)
      }
      expect(admin.requests().at(-2)?.url).toBe('/internal/x?q=/../')
    })
  }

  it('refuses an escaped slash and a broken escape with 400 invalid_path', async () => {
    const before = pub.count() + admin.count()
    for (const path of ['/public/..%2Fadmin', '/public/%zz']) {
      const res = await handler(httpApiEvent(path), {} as Context)
      expect(res.statusCode).toBe(400)
      expect(res.headers?.['x-meshgate-error']).toBe('invalid_path')
    }
    expect(pub.count() + admin.count()).toBe(before)
  })
})
