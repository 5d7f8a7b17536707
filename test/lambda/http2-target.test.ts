// context.mesh.fetch to a target with `protocol: http2`: an h2c-only server (node:http2, no HTTP/1.1
// fallback) reached from a handler under the real middy engine.
import { createServer, type Http2Server } from 'node:http2'
import type { AddressInfo } from 'node:net'
import middy from '@middy/core'
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mesh } from '../../proxy-core/lambda/index.ts'

let server: Http2Server
let origin: string

beforeAll(async () => {
  server = createServer()
  server.on('stream', (stream, headers) => {
    let body = ''
    stream.setEncoding('utf8')
    stream.on('data', (c: string) => {
      body += c
    })
    stream.on('end', () => {
      stream.respond({ ':status': 201, 'content-type': 'application/json' })
      stream.end(JSON.stringify({ path: headers[':path'], method: headers[':method'], body, http: 2 }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()))
})

const context = {
  callbackWaitsForEmptyEventLoop: false,
  functionName: 'caller',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:caller',
  memoryLimitInMB: '256',
  awsRequestId: 'req-h2',
  logGroupName: '/aws/lambda/caller',
  logStreamName: 's',
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context

const event = {
  version: '2.0',
  routeKey: '$default',
  rawPath: '/',
  rawQueryString: '',
  headers: {},
  requestContext: {
    http: { method: 'GET', path: '/', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 't' },
  },
  isBase64Encoded: false,
} as unknown as APIGatewayProxyEventV2

describe('context.mesh.fetch to an HTTP/2 target', () => {
  it('speaks HTTP/2 with prior knowledge to a protocol: http2 target and returns the whole response', async () => {
    const config = JSON.stringify({
      version: 1,
      mesh: 'h2lambda',
      accessLog: false,
      services: { modern: { targets: { v1: { http: origin, protocol: 'http2' } } } },
    })
    const handler = middy(async (_e: APIGatewayProxyEventV2, ctx: Context) => {
      const res = await ctx.mesh.fetch('http://modern/items/7?x=1', { method: 'POST', body: 'payload' })
      return { statusCode: res.status, body: await res.text() }
    }).use(mesh({ service: 'caller', config }))
    const result = (await handler(event, context)) as { statusCode: number; body: string }
    expect(result.statusCode).toBe(201)
    expect(JSON.parse(result.body)).toEqual({
      path: '/items/7?x=1',
      method: 'POST',
      body: 'payload',
      http: 2,
    })
  })
})
