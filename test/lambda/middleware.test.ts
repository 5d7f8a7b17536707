// mesh() through the real middy engine, routing to a real local HTTP server.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import middy from '@middy/core'
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mesh } from '../../proxy-core/lambda/index.ts'
import { createGate } from '../helpers/gate.ts'

let server: Server
let origin: string
let closedOrigin: string
const received: { url: string; headers: IncomingHttpHeaders }[] = []
/** `/slow` answers once the test opens this. */
let slowAnswer = createGate()

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      received.push({ url: req.url ?? '', headers: req.headers })
      if (req.url?.startsWith('/slow')) {
        void slowAnswer.opened.then(() => res.writeHead(200).end('late'))
        return
      }
      const body = JSON.stringify({
        url: req.url,
        method: req.method,
        body: Buffer.concat(chunks).toString(),
      })
      // Some latency, so that concurrent calls really overlap.
      setTimeout(
        () =>
          res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] }).end(body),
        20,
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  closedOrigin = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`
  await new Promise<void>((resolve) => closed.close(() => resolve()))
})

afterAll(async () => {
  slowAnswer.open()
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

function config(): string {
  return JSON.stringify({
    version: 1,
    mesh: 'mwtest',
    services: {
      ratings: {
        targets: { v1: { http: origin } },
        routes: [
          {
            name: 'slow',
            match: { path: { prefix: '/slow' } },
            to: 'v1',
            timeout: '150ms',
            retries: { attempts: 0 },
          },
          { name: 'default', match: { path: { prefix: '/' } }, to: 'v1' },
        ],
      },
      down: {
        targets: { v1: { http: closedOrigin } },
        routes: [
          {
            name: 'default',
            match: { path: { prefix: '/ok' } },
            to: 'v1',
            retries: { attempts: 1, perTryTimeout: '200ms' },
          },
        ],
      },
    },
  })
}

function lambdaContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'reviews-v2',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:reviews-v2',
    memoryLimitInMB: '256',
    awsRequestId: 'req-1',
    logGroupName: '/aws/lambda/reviews-v2',
    logStreamName: 's',
    getRemainingTimeInMillis: () => 30_000,
    done() {},
    fail() {},
    succeed() {},
  } as unknown as Context
}

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

/** Capture what is written to stdout while `fn` runs: the EMF lines, the access-log lines and the writes. */
async function captureStdout<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; lines: string[]; access: Record<string, unknown>[]; writes: number }> {
  const original = process.stdout.write
  const chunks: string[] = []
  process.stdout.write = ((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString())
    return true
  }) as typeof process.stdout.write
  try {
    const result = await fn()
    const all = chunks.join('').split('\n')
    return {
      result,
      lines: all.filter((l) => l.startsWith('{"_aws"')),
      access: all.filter((l) => l.startsWith('{') && !l.startsWith('{"_aws"')).map((l) => JSON.parse(l)),
      writes: chunks.length,
    }
  } finally {
    process.stdout.write = original
  }
}

const ROOT = '1-5759e988-bd862e3fe1be46a994272793'
const FUNCTION_SEGMENT = '53995c3f42cd8ad8'

afterEach(() => {
  delete process.env._X_AMZN_TRACE_ID
})

describe('mesh() options', () => {
  it('validates options once, when the handler is built', () => {
    expect(() => mesh({ bogus: 'x' } as never)).toThrow(/no option "bogus"/)
    expect(() => mesh({ service: '' })).toThrow(/non-empty string/)
    const saved = process.env.MESHGATE_CONFIG
    delete process.env.MESHGATE_CONFIG
    try {
      expect(() => mesh()).toThrow(/MESHGATE_CONFIG/)
    } finally {
      if (saved !== undefined) process.env.MESHGATE_CONFIG = saved
    }
  })

  it('returns named before/after/onError hooks', () => {
    const mw = mesh({ config: config() })
    expect(mw.before.name).toBe('meshBefore')
    expect(mw.after.name).toBe('meshAfter')
    expect(mw.onError.name).toBe('meshOnError')
  })
})

describe('context.mesh.fetch through the real middy engine', () => {
  it('routes concurrent calls to a real HTTP server, with trace context from _X_AMZN_TRACE_ID', async () => {
    process.env._X_AMZN_TRACE_ID = `Root=${ROOT};Parent=${FUNCTION_SEGMENT};Sampled=0`
    const handler = middy(async (_event: APIGatewayProxyEventV2, context: Context) => {
      const responses = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          context.mesh.fetch(`http://ratings/ratings/${i}?n=${i}`, {
            method: 'POST',
            headers: { 'end-user': 'jason' },
            body: `payload-${i}`,
          }),
        ),
      )
      const bodies = await Promise.all(
        responses.map((r) => r.json() as Promise<{ url: string; body: string }>),
      )
      return {
        statusCode: 200,
        body: JSON.stringify({
          statuses: responses.map((r) => r.status),
          bodies,
          cookie: responses[0]!.headers.getSetCookie(),
        }),
      }
    }).use(mesh({ service: 'reviews', config: config() }))

    received.length = 0
    const { result, lines } = await captureStdout(() => handler(event, lambdaContext()))
    const out = JSON.parse((result as { body: string }).body)
    expect(out.statuses).toEqual(Array(12).fill(200))
    out.bodies.forEach((b: { url: string; body: string }, i: number) => {
      expect(b.url).toBe(`/ratings/${i}?n=${i}`)
      expect(b.body).toBe(`payload-${i}`)
    })
    expect(out.cookie).toEqual(['a=1', 'b=2'])
    // Each attempt carries the invocation's root with its own span as parent.
    expect(received).toHaveLength(12)
    for (const r of received) {
      const amzn = String(r.headers['x-amzn-trace-id'])
      expect(amzn).toContain(`Root=${ROOT}`)
      expect(amzn).not.toContain(`Parent=${FUNCTION_SEGMENT}`)
      expect(r.headers['end-user']).toBe('jason')
    }
    // One EMF document for the one series touched, with every call counted.
    expect(lines).toHaveLength(1)
    const doc = JSON.parse(lines[0]!)
    expect(doc).toMatchObject({
      Mesh: 'mwtest',
      Service: 'ratings',
      Route: 'default',
      Target: 'v1',
      Requests: 12,
    })
  })

  it('loads and compiles the config once per container', async () => {
    const cfg = config()
    const runtimes: unknown[] = []
    const handler = middy(async (_e: unknown, context: Context) => {
      runtimes.push(context.mesh.runtime)
      return { statusCode: 204 }
    }).use(mesh({ config: cfg }))
    await captureStdout(async () => {
      await handler(event, lambdaContext())
      await handler(event, lambdaContext())
    })
    expect(runtimes).toHaveLength(2)
    expect(runtimes[0]).toBe(runtimes[1])
  })
})

describe('metrics flush', () => {
  it('still flushes when another middleware responds early (middy 7 then runs no after hook)', async () => {
    let handlerRan = false
    const cache = {
      // A cache-like middleware that answers from a mesh call and stops the chain.
      async before(request: { context: Context }) {
        const res = await request.context.mesh.fetch('http://ratings/cached')
        return { statusCode: 200, body: await res.text() }
      },
    }
    const handler = middy(async () => {
      handlerRan = true
      return { statusCode: 500 }
    })
      .use(mesh({ service: 'reviews', config: config() }))
      .use(cache)
    const { result, lines } = await captureStdout(() => handler(event, lambdaContext()))
    expect(handlerRan).toBe(false)
    expect((result as { statusCode: number }).statusCode).toBe(200)
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0]!)).toMatchObject({ Service: 'ratings', Route: 'default', Requests: 1 })
  })

  it('writes one access-log line per mesh call, with the metrics, in one stdout write', async () => {
    const handler = middy(async (_e: unknown, context: Context) => {
      await context.mesh.fetch('http://ratings/a')
      await context.mesh.fetch('http://ratings/b', { method: 'POST', body: 'x' })
      return { statusCode: 204 }
    }).use(mesh({ service: 'reviews', config: config() }))
    process.env._X_AMZN_TRACE_ID = `Root=${ROOT};Parent=${FUNCTION_SEGMENT};Sampled=0`
    const { access, lines, writes } = await captureStdout(() => handler(event, lambdaContext()))
    expect(writes).toBe(1)
    expect(lines.length).toBeGreaterThan(0)
    expect(access.map((l) => [l.method, l.path, l.status, l.service, l.route])).toEqual([
      ['GET', '/a', 200, 'ratings', 'default'],
      ['POST', '/b', 200, 'ratings', 'default'],
    ])
    expect(access[0]).toMatchObject({ traceId: ROOT, mesh: 'mwtest', target: 'v1' })
  })

  it('flushes on early responses from after hooks and in onError, exactly once', async () => {
    const earlyAfter = {
      after() {
        return { statusCode: 202 }
      },
    }
    const h1 = middy(async (_e: unknown, context: Context) => {
      await (await context.mesh.fetch('http://ratings/x')).text()
      return { statusCode: 200 }
    })
      .use(mesh({ config: config() }))
      .use(earlyAfter)
    const r1 = await captureStdout(() => h1(event, lambdaContext()))
    expect((r1.result as { statusCode: number }).statusCode).toBe(202)
    expect(r1.lines).toHaveLength(1)

    const h2 = middy(async (_e: unknown, context: Context) => {
      await (await context.mesh.fetch('http://ratings/y')).text()
      throw new Error('handler failed')
    }).use(mesh({ config: config() }))
    const r2 = await captureStdout(() => h2(event, lambdaContext()).catch((e: Error) => e.message))
    expect(r2.result).toBe('handler failed')
    expect(r2.lines).toHaveLength(1)
    expect(JSON.parse(r2.lines[0]!)).toMatchObject({ Service: 'ratings', Requests: 1 })
  })
})

describe('mesh errors come back as responses from the error table', () => {
  async function call(url: string): Promise<{ status: number; error: string | null; body: unknown }> {
    const handler = middy(async (_e: unknown, context: Context) => {
      const res = await context.mesh.fetch(url)
      return { status: res.status, error: res.headers.get('x-meshgate-error'), body: await res.json() }
    }).use(mesh({ config: config() }))
    const { result } = await captureStdout(() => handler(event, lambdaContext()))
    return result as { status: number; error: string | null; body: unknown }
  }

  it('unknown service: 404 unknown_service (never an open proxy)', async () => {
    expect(await call('http://example.com/')).toMatchObject({
      status: 404,
      error: 'unknown_service',
      body: { error: 'unknown_service', service: 'example.com' },
    })
  })

  it('no matching route: 404 no_route', async () => {
    expect(await call('http://down/elsewhere')).toMatchObject({ status: 404, error: 'no_route' })
  })

  it('connection refused on every try: 503 upstream_unavailable', async () => {
    expect(await call('http://down.mesh/ok')).toMatchObject({ status: 503, error: 'upstream_unavailable' })
  })

  it('route timeout: 504 timeout', async () => {
    slowAnswer = createGate()
    const before = received.filter((r) => r.url.startsWith('/slow')).length
    expect(await call('http://ratings/slow')).toMatchObject({ status: 504, error: 'timeout' })
    // Answered while the upstream still held its answer: the route's timer ended the call, after the
    // one try (retries: 0) reached the upstream.
    expect(slowAnswer.isOpen).toBe(false)
    expect(received.filter((r) => r.url.startsWith('/slow')).length).toBe(before + 1)
    slowAnswer.open()
  })
})
