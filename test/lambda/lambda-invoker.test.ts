// The real @aws-sdk/client-lambda against a real local endpoint: a node:http server that speaks the
// Lambda Invoke REST protocol (POST /2015-03-31/functions/{name}/invocations, X-Amz-Function-Error for
// function errors, x-amzn-errortype for API errors).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AttemptRequest, Endpoint } from '../../proxy-core/engine/types.ts'
import { UpstreamFailure } from '../../proxy-core/engine/types.ts'
import { createLambdaInvoker } from '../../proxy-core/invokers/lambda-invoker.ts'
import { createGate } from '../helpers/gate.ts'

interface Seen {
  name: string
  qualifier: string | null
  invocationType: string | undefined
  event: Record<string, unknown>
}

/** `slow` opens `slowArrived` when it is invoked, and answers once the test opens `slowAnswer`. */
let slowArrived = createGate()
let slowAnswer = createGate()

type Fn = (event: Record<string, unknown>, req: IncomingMessage, res: ServerResponse) => void

const functions: Record<string, Fn> = {
  echo(event, _req, res) {
    const reply = {
      statusCode: 200,
      headers: { 'content-type': 'application/json', 'x-served-by': 'echo' },
      cookies: ['a=1', 'b=2'],
      body: JSON.stringify({ path: event.rawPath, body: event.body, b64: event.isBase64Encoded }),
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply))
  },
  bare(_event, _req, res) {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify('just a string'))
  },
  thrower(_event, _req, res) {
    res
      .writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' })
      .end(JSON.stringify({ errorType: 'Error', errorMessage: 'boom', trace: [] }))
  },
  throttled(_event, _req, res) {
    res
      .writeHead(429, { 'content-type': 'application/json', 'x-amzn-errortype': 'TooManyRequestsException' })
      .end(
        JSON.stringify({
          message: 'Rate Exceeded.',
          Type: 'User',
          Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded',
        }),
      )
  },
  slow(_event, _req, res) {
    slowArrived.open()
    void slowAnswer.opened.then(() => res.writeHead(200).end('{"statusCode":200,"body":"late"}'))
  },
  hangup(_event, req) {
    req.socket.destroy()
  },
}

let server: Server
let endpoint: string
const seen: Seen[] = []

beforeAll(async () => {
  server = createServer((req, res) => {
    const m = /^\/2015-03-31\/functions\/([^/]+)\/invocations(?:\?(.*))?$/.exec(req.url ?? '')
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.method !== 'POST' || !m) {
        res.writeHead(400).end()
        return
      }
      const name = decodeURIComponent(m[1]!)
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
      seen.push({
        name,
        qualifier: new URLSearchParams(m[2] ?? '').get('Qualifier'),
        invocationType: req.headers['x-amz-invocation-type'] as string | undefined,
        event,
      })
      const fn = functions[name]
      if (!fn) {
        res
          .writeHead(404, {
            'content-type': 'application/json',
            'x-amzn-errortype': 'ResourceNotFoundException',
          })
          .end(JSON.stringify({ Type: 'User', Message: `Function not found: ${name}` }))
        return
      }
      fn(event, req, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  slowAnswer.open()
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

function ep(functionName: string, qualifier?: string): Endpoint {
  return {
    id: functionName,
    target: { kind: 'lambda', name: 'v1', functionName, ...(qualifier ? { qualifier } : {}) },
  }
}

const req: AttemptRequest = {
  service: 'reviews',
  attempt: 1,
  method: 'POST',
  path: '/reviews/0?x=1',
  headers: { host: 'reviews', 'content-type': 'application/octet-stream', 'end-user': 'jason' },
  body: new Uint8Array([1, 2, 3]),
}

async function failureOf(p: Promise<unknown>): Promise<UpstreamFailure> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamFailure)
    return err as UpstreamFailure
  }
  throw new Error('expected a failure')
}

describe('createLambdaInvoker (real client-lambda, local Invoke endpoint)', () => {
  it('invokes RequestResponse with an HTTP API v2 event and maps the result', async () => {
    const invoker = createLambdaInvoker({ endpoint, region: 'eu-west-1' })
    const res = await invoker.invoke(req, ep('echo', 'live'), new AbortController().signal)
    expect(res.status).toBe(200)
    expect(res.headers['x-served-by']).toBe('echo')
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2'])
    expect(JSON.parse(res.body as string)).toEqual({ path: '/reviews/0', body: 'AQID', b64: true })
    const last = seen.at(-1)!
    expect(last).toMatchObject({ name: 'echo', qualifier: 'live' })
    expect(last.invocationType ?? 'RequestResponse').toBe('RequestResponse')
    expect(last.event).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/reviews/0',
      rawQueryString: 'x=1',
      headers: { 'end-user': 'jason' },
      requestContext: { http: { method: 'POST', path: '/reviews/0' } },
    })
  })

  it('answers a non-structured result as API Gateway v2 does', async () => {
    const invoker = createLambdaInvoker({ endpoint })
    const res = await invoker.invoke(req, ep('bare'), new AbortController().signal)
    expect(res).toMatchObject({ status: 200, body: 'just a string' })
    expect(res.headers['content-type']).toBe('application/json')
  })

  it('reuses one client for every call', async () => {
    const invoker = createLambdaInvoker({ endpoint })
    const all = await Promise.all(
      [1, 2, 3].map(() => invoker.invoke(req, ep('echo'), new AbortController().signal)),
    )
    expect(all.map((r) => r.status)).toEqual([200, 200, 200])
  })

  it('maps the failures to the kinds the retry policy knows', async () => {
    const invoker = createLambdaInvoker({ endpoint })
    const signal = () => new AbortController().signal
    expect((await failureOf(invoker.invoke(req, ep('thrower'), signal()))).kind).toBe('function-error')
    const throttled = await failureOf(invoker.invoke(req, ep('throttled'), signal()))
    expect(throttled.kind).toBe('throttled')
    expect((await failureOf(invoker.invoke(req, ep('missing'), signal()))).kind).toBe('connect-failure')
    expect((await failureOf(invoker.invoke(req, ep('hangup'), signal()))).kind).toBe('reset')
  })

  it('stops on abort with a timeout', async () => {
    const invoker = createLambdaInvoker({ endpoint })
    slowArrived = createGate()
    slowAnswer = createGate()
    const timer = new AbortController()
    const failed = failureOf(invoker.invoke(req, ep('slow'), timer.signal))
    await slowArrived.opened
    timer.abort()
    expect((await failed).kind).toBe('timeout')
    // Failed while the function still held its result: the abort ended the call, not the function.
    expect(slowAnswer.isOpen).toBe(false)
    slowAnswer.open()
  })

  it('reports a refused connection as connect-failure', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const invoker = createLambdaInvoker({ endpoint: `http://127.0.0.1:${port}` })
    const failure = await failureOf(invoker.invoke(req, ep('echo'), new AbortController().signal))
    expect(failure.kind).toBe('connect-failure')
  })

  it('takes the endpoint from MESHGATE_LAMBDA_ENDPOINT', async () => {
    const before = process.env.MESHGATE_LAMBDA_ENDPOINT
    process.env.MESHGATE_LAMBDA_ENDPOINT = endpoint
    try {
      const invoker = createLambdaInvoker()
      const res = await invoker.invoke(req, ep('echo'), new AbortController().signal)
      expect(res.status).toBe(200)
    } finally {
      if (before === undefined) delete process.env.MESHGATE_LAMBDA_ENDPOINT
      else process.env.MESHGATE_LAMBDA_ENDPOINT = before
    }
  })
})
