import { describe, expect, it } from 'vitest'
import type { AttemptRequest } from '../../proxy-core/engine/types.ts'
import {
  collectBody,
  detectEventKind,
  EventKinds,
  encodeBody,
  fromLambdaResult,
  normalizeEvent,
  toHttpApiV2Event,
  toLambdaResult,
} from '../../proxy-core/lambda/events.ts'

const v2Event = {
  version: '2.0',
  routeKey: '$default',
  rawPath: '/api/reviews/0',
  rawQueryString: 'a=1&b=x%20y',
  cookies: ['session=abc', 'theme=dark'],
  headers: {
    'end-user': 'jason',
    'content-type': 'application/json',
    'x-amzn-trace-id': 'Root=1-5759e988-bd862e3fe1be46a994272793',
  },
  requestContext: {
    http: {
      method: 'post',
      path: '/api/reviews/0',
      protocol: 'HTTP/1.1',
      sourceIp: '203.0.113.9',
      userAgent: 'curl',
    },
    requestId: 'r1',
  },
  body: '{"x":1}',
  isBase64Encoded: false,
}

const v1Event = {
  resource: '/{proxy+}',
  path: '/api/details/1',
  httpMethod: 'GET',
  headers: { Host: 'example.com', 'Set-Thing': 'b' },
  multiValueHeaders: { Host: ['example.com'], Accept: ['text/html', 'application/json'] },
  queryStringParameters: { q: 'a b' },
  multiValueQueryStringParameters: { q: ['a b', 'c&d'] },
  requestContext: { identity: { sourceIp: '198.51.100.1' }, stage: 'prod' },
  body: Buffer.from([0, 1, 2, 255]).toString('base64'),
  isBase64Encoded: true,
}

const albEvent = {
  requestContext: { elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:...' } },
  httpMethod: 'GET',
  path: '/productpage',
  queryStringParameters: { u: 'normal%20user' },
  headers: { 'x-forwarded-for': '192.0.2.10, 10.0.0.1', 'user-agent': 'test' },
  body: '',
  isBase64Encoded: false,
}

describe('detectEventKind', () => {
  it('tells the three sources apart and refuses anything else', () => {
    expect(detectEventKind(v2Event)).toBe(EventKinds.httpApiV2)
    expect(detectEventKind(v1Event)).toBe(EventKinds.restApiV1)
    expect(detectEventKind(albEvent)).toBe(EventKinds.alb)
    expect(detectEventKind({ Records: [] })).toBeUndefined()
    expect(detectEventKind(null)).toBeUndefined()
    expect(() => normalizeEvent({ Records: [] })).toThrow(TypeError)
  })
})

describe('normalizeEvent', () => {
  it('HTTP API v2: raw path and query, cookies back into Cookie, upper-case method', () => {
    const { kind, multiValue, request } = normalizeEvent(v2Event)
    expect(kind).toBe('http-api-v2')
    expect(multiValue).toBe(false)
    expect(request.method).toBe('POST')
    expect(request.path).toBe('/api/reviews/0?a=1&b=x%20y')
    expect(request.headers.cookie).toBe('session=abc; theme=dark')
    expect(request.headers['end-user']).toBe('jason')
    expect(request.body).toBe('{"x":1}')
    expect(request.remoteAddress).toBe('203.0.113.9')
  })

  it('REST API v1: lower-cased headers with every value, query re-encoded, base64 body decoded', () => {
    const { kind, multiValue, request } = normalizeEvent(v1Event)
    expect(kind).toBe('rest-api-v1')
    expect(multiValue).toBe(true)
    expect(request.headers.accept).toEqual(['text/html', 'application/json'])
    expect(request.headers.host).toBe('example.com')
    expect(request.headers['set-thing']).toBe('b')
    expect(request.path).toBe('/api/details/1?q=a%20b&q=c%26d')
    expect(Array.from(request.body as Uint8Array)).toEqual([0, 1, 2, 255])
    expect(request.remoteAddress).toBe('198.51.100.1')
  })

  it('ALB: query kept percent-encoded, client from X-Forwarded-For, empty body is null', () => {
    const { kind, multiValue, request } = normalizeEvent(albEvent)
    expect(kind).toBe('alb')
    expect(multiValue).toBe(false)
    expect(request.path).toBe('/productpage?u=normal%20user')
    expect(request.body).toBeNull()
    expect(request.remoteAddress).toBe('192.0.2.10')
  })
})

describe('toLambdaResult', () => {
  const res = {
    status: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'set-cookie': ['a=1', 'b=2'],
      vary: ['accept', 'origin'],
      'transfer-encoding': 'chunked',
    },
    body: 'hello',
  }

  it('v2: set-cookie becomes cookies, duplicates are comma-joined, framing headers dropped', async () => {
    const out = await toLambdaResult(res, { kind: 'http-api-v2', multiValue: false })
    expect(out).toEqual({
      statusCode: 200,
      headers: { 'content-type': 'text/html; charset=utf-8', vary: 'accept,origin' },
      cookies: ['a=1', 'b=2'],
      body: 'hello',
      isBase64Encoded: false,
    })
  })

  it('v1 answers with multiValueHeaders when the event used them', async () => {
    const multi = await toLambdaResult(res, { kind: 'rest-api-v1', multiValue: true })
    expect(multi).toMatchObject({
      multiValueHeaders: { 'set-cookie': ['a=1', 'b=2'], vary: ['accept', 'origin'] },
    })
    expect('headers' in multi).toBe(false)
    const single = await toLambdaResult(res, { kind: 'rest-api-v1', multiValue: false })
    expect(single).toMatchObject({ headers: { 'set-cookie': 'b=2', vary: 'accept,origin' } })
  })

  it('ALB carries statusDescription; binary bodies go out as base64', async () => {
    const bytes = new Uint8Array([0xff, 0xd8, 0xff, 0x00])
    const out = await toLambdaResult(
      { status: 404, headers: { 'content-type': 'image/jpeg' }, body: bytes },
      { kind: 'alb', multiValue: false },
    )
    expect(out).toMatchObject({ statusCode: 404, statusDescription: '404 Not Found', isBase64Encoded: true })
    expect(Buffer.from(out.body as string, 'base64')).toEqual(Buffer.from(bytes))
  })

  it('collects streamed bodies', async () => {
    async function* chunks() {
      yield new TextEncoder().encode('{"a":')
      yield new TextEncoder().encode('1}')
    }
    const out = await toLambdaResult(
      { status: 201, headers: { 'content-type': 'application/json' }, body: chunks() },
      { kind: 'http-api-v2', multiValue: false },
    )
    expect(out.body).toBe('{"a":1}')
    expect(out.isBase64Encoded).toBe(false)
  })
})

describe('encodeBody', () => {
  it('keeps valid UTF-8 text as text, and bytes that are not UTF-8 as base64 even when labelled text', () => {
    expect(encodeBody(new TextEncoder().encode('héllo'), 'text/plain')).toEqual({
      body: 'héllo',
      isBase64Encoded: false,
    })
    expect(encodeBody(new Uint8Array([0xc3, 0x28]), 'text/plain').isBase64Encoded).toBe(true)
    expect(encodeBody(new TextEncoder().encode('{}'), 'application/problem+json').isBase64Encoded).toBe(false)
    expect(encodeBody(new TextEncoder().encode('abc'), 'application/octet-stream').isBase64Encoded).toBe(true)
    expect(encodeBody(null, undefined)).toEqual({ body: '', isBase64Encoded: false })
  })
  it('collectBody joins chunks', async () => {
    async function* gen() {
      yield new Uint8Array([1])
      yield new Uint8Array([2, 3])
    }
    expect(Array.from((await collectBody(gen())) as Uint8Array)).toEqual([1, 2, 3])
  })
})

describe('Lambda targets: the v2 event out and the result back', () => {
  const attempt: AttemptRequest = {
    service: 'reviews',
    attempt: 1,
    method: 'get',
    path: '/reviews/0?x=1&x=2&y=a%2Bb',
    headers: { host: 'reviews', cookie: 'a=1; b=2', 'user-agent': 'ua', accept: ['a', 'b'] },
    body: null,
    remoteAddress: '10.0.0.5',
  }

  it('builds an API Gateway HTTP API v2 event', () => {
    const ev = toHttpApiV2Event(attempt, null, {
      timeEpoch: Date.UTC(2020, 2, 12, 19, 3, 58),
      requestId: 'id1',
    })
    expect(ev).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/reviews/0',
      rawQueryString: 'x=1&x=2&y=a%2Bb',
      cookies: ['a=1', 'b=2'],
      queryStringParameters: { x: '1,2', y: 'a+b' },
      isBase64Encoded: false,
      requestContext: {
        http: {
          method: 'GET',
          path: '/reviews/0',
          protocol: 'HTTP/1.1',
          sourceIp: '10.0.0.5',
          userAgent: 'ua',
        },
        requestId: 'id1',
        routeKey: '$default',
        stage: '$default',
        time: '12/Mar/2020:19:03:58 +0000',
        domainName: 'reviews',
      },
    })
    expect(ev.headers).toEqual({ host: 'reviews', 'user-agent': 'ua', accept: 'a,b' })
    expect('body' in ev).toBe(false)
    // The event round-trips through the inbound normalizer.
    const back = normalizeEvent(ev).request
    expect(back.path).toBe(attempt.path)
    expect(back.headers.cookie).toBe('a=1; b=2')
  })

  it('base64-encodes a binary request body', () => {
    const ev = toHttpApiV2Event(
      { ...attempt, method: 'POST', headers: { 'content-type': 'application/octet-stream' } },
      new Uint8Array([1, 2, 3]),
    )
    expect(ev.isBase64Encoded).toBe(true)
    expect(ev.body).toBe('AQID')
  })

  it('reads structured results: headers, multiValueHeaders, cookies, base64', () => {
    const res = fromLambdaResult({
      statusCode: 201,
      headers: { 'Content-Type': 'image/png', 'X-One': 1 },
      multiValueHeaders: { 'X-Many': ['a', 'b'] },
      cookies: ['s=1'],
      body: 'AQID',
      isBase64Encoded: true,
    })
    expect(res.status).toBe(201)
    expect(res.headers).toEqual({
      'content-type': 'image/png',
      'x-one': '1',
      'x-many': ['a', 'b'],
      'set-cookie': ['s=1'],
    })
    expect(Array.from(res.body as Uint8Array)).toEqual([1, 2, 3])
  })

  it('answers a result that is not a structured response as API Gateway v2 does', () => {
    expect(fromLambdaResult('hello')).toEqual({
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: 'hello',
    })
    expect(fromLambdaResult({ a: 1 })).toMatchObject({ status: 200, body: '{"a":1}' })
    expect(fromLambdaResult(42)).toMatchObject({ status: 200, body: '42' })
    expect(fromLambdaResult(null)).toMatchObject({ status: 200, body: 'null' })
  })
})
