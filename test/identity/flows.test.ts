// Identity across the mesh's four paths, each with the real parts: Lambda → sidecar, sidecar →
// sidecar, gateway → Lambda and sidecar → Lambda. Callers mint with the real @aws-sdk/client-sts
// against a local STS (awsQuery); receivers verify against the local issuer's HTTPS JWKS. For each
// path: an allowed caller passes, a disallowed one gets 403 and the app sees nothing, and audit mode
// lets it pass and records it (access log `caller`/`rule`, metrics per decision).

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import middy from '@middy/core'
import type { Context } from 'aws-lambda'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createGatewayHandler, mesh } from '../../proxy-core/lambda/index.ts'
import { type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { type IdentityProvider, startIdentityProvider } from '../helpers/sts-endpoint.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { AUDIENCE, callerEnv, fn, KEYS, registerCallers, role, send, writeMesh } from './fixtures.ts'

let idp: IdentityProvider
let reviewsApp: Upstream
let reviews: SidecarProcess
let reviewsAudit: SidecarProcess
let productpage: SidecarProcess
let details: SidecarProcess
let lambdaServer: Server
let configPath: string
let doc: object
/** Invocations that reached a function's handler: function name and the headers it saw. */
const ran: { name: string; headers: Record<string, string> }[] = []
const savedEnv = { ...process.env }

function lambdaContext(name: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: fn(name),
    memoryLimitInMB: '256',
    awsRequestId: `req-${Math.random()}`,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 's',
    getRemainingTimeInMillis: () => 30_000,
    done() {},
    fail() {},
    succeed() {},
  } as unknown as Context
}

/** A Lambda function reached over HTTP: the app records what it saw; mesh() stands in front of it. */
function httpFunction(name: string, service: string) {
  return middy(async (event: { headers?: Record<string, string> }) => {
    ran.push({ name, headers: { ...event.headers } })
    return { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: `${name} ran` }
  }).use(mesh({ service, config: configPath }))
}

beforeAll(async () => {
  idp = await startIdentityProvider()
  registerCallers(idp)
  reviewsApp = await startUpstream('reviews-app')

  // Lambda's Invoke API, running the receiving functions in this process through the real middy engine.
  const functions: Record<string, ReturnType<typeof httpFunction>> = {}
  lambdaServer = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const name = decodeURIComponent(/\/functions\/([^/]+)\/invocations/.exec(req.url ?? '')?.[1] ?? '')
      const handler = functions[name]
      if (handler === undefined) {
        res.writeHead(404, { 'x-amzn-errortype': 'ResourceNotFoundException' }).end('{}')
        return
      }
      const result = await handler(JSON.parse(Buffer.concat(chunks).toString('utf8')), lambdaContext(name))
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result))
    })
  })
  await new Promise<void>((r) => lambdaServer.listen(0, '127.0.0.1', r))
  const lambdaEndpoint = `http://127.0.0.1:${(lambdaServer.address() as AddressInfo).port}`
  // Read once by mesh() when a handler is built: set before any is.
  Object.assign(process.env, {
    AWS_SECRET_ACCESS_KEY: 'test-secret',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_STS: idp.stsUrl,
    MESHGATE_IDENTITY_CA: idp.caFile,
    MESHGATE_LAMBDA_ENDPOINT: lambdaEndpoint,
    MESHGATE_XRAY: 'off',
  })

  // Placeholders until the receivers' inbound listeners are bound.
  const reviewsUrl = 'http://127.0.0.1:1'
  const auditUrl = 'http://127.0.0.1:2'
  doc = {
    version: 1,
    mesh: 'bookinfo',
    identity: { issuers: [idp.issuer], audience: AUDIENCE },
    gateway: {
      routes: [
        { match: { path: { prefix: '/api/ratings' } }, service: 'ratings', rewrite: { prefix: '/ratings' } },
        { match: { path: { prefix: '/api/strict' } }, service: 'ratings-strict' },
        { match: { path: { prefix: '/api/audit' } }, service: 'ratings-audit' },
      ],
    },
    services: {
      // productpage is a container task and a Lambda function sharing one execution role with others.
      productpage: {
        principals: [role('productpage-task'), 'productpage-fn'],
        targets: { v1: { http: 'http://127.0.0.1:9' } },
      },
      details: { principals: [role('details-task')], targets: { v1: { http: 'http://127.0.0.1:9' } } },
      reviews: {
        targets: { v1: { http: reviewsUrl } },
        authorization: {
          default: 'deny',
          rules: [
            {
              name: 'productpage-reads',
              from: ['productpage'],
              match: { method: 'GET', path: { prefix: '/reviews' } },
            },
          ],
        },
      },
      'reviews-audit': {
        targets: { v1: { http: auditUrl } },
        authorization: { mode: 'audit', default: 'deny', rules: [] },
      },
      ratings: {
        targets: { v1: { lambda: 'ratings-fn' } },
        authorization: {
          rules: [{ name: 'callers', from: ['productpage', fn('gateway-fn')] }],
        },
      },
      'ratings-strict': {
        targets: { v1: { lambda: 'ratings-strict-fn' } },
        authorization: { rules: [{ name: 'pp-only', from: ['productpage'] }] },
      },
      'ratings-audit': {
        targets: { v1: { lambda: 'ratings-audit-fn' } },
        authorization: { mode: 'audit', rules: [] },
      },
    },
  }
  // Receivers first (their policy is all they read), then the callers with the receivers' addresses.
  const receiverConfig = writeMesh(doc)
  const receivers = await Promise.all(
    ['reviews', 'reviews-audit'].map((service) =>
      startSidecarProcess({
        configPath: receiverConfig,
        service,
        app: reviewsApp.url,
        env: callerEnv(idp, KEYS.stranger),
        startTimeoutMs: 45_000,
      }),
    ),
  )
  reviews = receivers[0]!
  reviewsAudit = receivers[1]!
  doc = JSON.parse(
    JSON.stringify(doc).replace(reviewsUrl, reviews.inbound!).replace(auditUrl, reviewsAudit.inbound!),
  )
  configPath = writeMesh(doc)
  functions['ratings-fn'] = httpFunction('ratings-fn', 'ratings')
  functions['ratings-strict-fn'] = httpFunction('ratings-strict-fn', 'ratings-strict')
  functions['ratings-audit-fn'] = httpFunction('ratings-audit-fn', 'ratings-audit')
  const callers = await Promise.all(
    (['productpage', 'details'] as const).map((service) =>
      startSidecarProcess({
        configPath,
        service,
        env: { ...callerEnv(idp, KEYS[service]), MESHGATE_LAMBDA_ENDPOINT: lambdaEndpoint },
        startTimeoutMs: 45_000,
      }),
    ),
  )
  productpage = callers[0]!
  details = callers[1]!
}, 120_000)

afterAll(async () => {
  await Promise.all([reviews, reviewsAudit, productpage, details].map((s) => s?.stop()))
  await reviewsApp?.close()
  lambdaServer?.closeAllConnections()
  await new Promise((r) => lambdaServer?.close(r))
  await idp?.close()
  process.env = savedEnv
})

beforeEach(() => {
  reviewsApp.reset()
  ran.length = 0
})

/** The newest access-log line of `s` that matches, once written (the line follows the response). */
async function logLine(s: SidecarProcess, match: Record<string, unknown>): Promise<Record<string, unknown>> {
  const before = s.accessLogCount()
  for (let i = 0; i < 100; i++) {
    const found = s
      .accessLogs()
      .slice(-(s.accessLogCount() - before + 1))
      .reverse()
      .find((l) => Object.entries(match).every(([k, v]) => l[k] === v))
    if (found !== undefined) return found
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(
    `no access-log line with ${JSON.stringify(match)}: ${JSON.stringify(s.accessLogs().slice(-3))}`,
  )
}

/** Via a sidecar's outbound listener, as its app would call: Host names the service. */
function viaSidecar(s: SidecarProcess, service: string, path: string) {
  return send(s.outbound, path, { host: service })
}

async function decisions(s: SidecarProcess, service: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${s.admin}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/meshgate_authz_decisions_total\{([^}]*)\} (\d+)/g)) {
    if (!m[1]!.includes(`service="${service}"`)) continue
    out[/decision="([a-z_]+)"/.exec(m[1]!)![1]!] = Number(m[2])
  }
  return out
}

describe('sidecar → sidecar', () => {
  it('an allowed caller passes; the app sees the request but not the token', async () => {
    const res = await viaSidecar(productpage, 'reviews', '/reviews/1')
    expect(res.status).toBe(200)
    expect(reviewsApp.requests()).toHaveLength(1)
    expect(reviewsApp.requests()[0]!.headers['x-meshgate-identity']).toBeUndefined()
    const line = await logLine(reviews, { path: '/reviews/1', status: 200 })
    expect(line).toMatchObject({ service: 'reviews', caller: 'productpage', rule: 'productpage-reads' })
    // One mint for the destination, then the cached token.
    const mints = idp.mints.filter((m) => m.accessKeyId === KEYS.productpage).length
    await viaSidecar(productpage, 'reviews', '/reviews/2')
    expect(idp.mints.filter((m) => m.accessKeyId === KEYS.productpage).length).toBe(mints)
    expect(idp.mints.find((m) => m.accessKeyId === KEYS.productpage)).toMatchObject({
      audience: [`${AUDIENCE}/reviews`],
      algorithm: 'RS256',
    })
  })

  it('an allowed caller on a path no rule allows gets 403', async () => {
    const res = await send(productpage.outbound, '/reviews/1', { host: 'reviews' }, 'DELETE')
    expect(res.status).toBe(403)
    expect(reviewsApp.requests()).toHaveLength(0)
  })

  it('a disallowed caller gets 403 forbidden and the app sees nothing', async () => {
    const res = await viaSidecar(details, 'reviews', '/reviews/1')
    expect(res.status).toBe(403)
    expect(res.headers['x-meshgate-error']).toBe('forbidden')
    expect(reviewsApp.requests()).toHaveLength(0)
    expect(await logLine(reviews, { caller: 'details' })).toMatchObject({
      rule: 'default',
      errorCode: 'forbidden',
    })
    expect((await decisions(reviews, 'reviews')).deny).toBeGreaterThanOrEqual(1)
  })

  it('audit mode lets a caller it would deny pass, and records it', async () => {
    const res = await viaSidecar(details, 'reviews-audit', '/reviews/1')
    expect(res.status).toBe(200)
    expect(reviewsApp.requests()).toHaveLength(1)
    expect(await logLine(reviewsAudit, { caller: 'details' })).toMatchObject({ rule: 'default', status: 200 })
    expect((await decisions(reviewsAudit, 'reviews-audit')).audit).toBeGreaterThanOrEqual(1)
  })
})

describe('Lambda → sidecar', () => {
  const call = (config: string, path: string) =>
    middy(async (_e: unknown, context: Context) => {
      const res = await context.mesh.fetch(`http://reviews${path}`)
      return { statusCode: res.status, body: await res.text() }
    }).use(mesh({ service: 'productpage', config }))({}, lambdaContext('productpage-fn'))

  it('a function named as a principal passes (its role is shared; the function ARN tells it apart)', async () => {
    process.env.AWS_ACCESS_KEY_ID = KEYS.productpageFn
    const res = (await call(JSON.stringify(doc), '/reviews/1')) as { statusCode: number }
    expect(res.statusCode).toBe(200)
    expect(reviewsApp.requests()).toHaveLength(1)
    expect(await logLine(reviews, { caller: 'productpage', status: 200 })).toMatchObject({
      rule: 'productpage-reads',
    })
  })

  it('a function that is no principal of an allowed service gets 403 and the app sees nothing', async () => {
    process.env.AWS_ACCESS_KEY_ID = KEYS.gateway
    const res = (await call(JSON.stringify(doc, null, 1), '/reviews/1')) as { statusCode: number }
    expect(res.statusCode).toBe(403)
    expect(reviewsApp.requests()).toHaveLength(0)
    expect(await logLine(reviews, { caller: fn('gateway-fn') })).toMatchObject({
      rule: 'default',
      status: 403,
    })
  })
})

describe('gateway → Lambda', () => {
  const httpEvent = (path: string) => ({
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { host: 'api.example.com' },
    requestContext: {
      http: { method: 'GET', path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.9' },
      requestId: 'r',
      stage: '$default',
    },
    isBase64Encoded: false,
  })
  let handler: ReturnType<typeof createGatewayHandler>

  beforeAll(() => {
    process.env.AWS_ACCESS_KEY_ID = KEYS.gateway
    handler = createGatewayHandler({ config: JSON.stringify(doc, null, 2) })
  })

  it('an allowed caller (the gateway function, by ARN) passes', async () => {
    const res = await handler(httpEvent('/api/ratings/1'), lambdaContext('gateway-fn'))
    expect(res.statusCode).toBe(200)
    expect(ran.map((r) => r.name)).toEqual(['ratings-fn'])
    expect(Object.keys(ran[0]!.headers).map((h) => h.toLowerCase())).not.toContain('x-meshgate-identity')
  })

  it('a disallowed caller gets 403 and the function never runs', async () => {
    const res = await handler(httpEvent('/api/strict/1'), lambdaContext('gateway-fn'))
    expect(res.statusCode).toBe(403)
    expect((res as { headers?: Record<string, string> }).headers?.['x-meshgate-error']).toBe('forbidden')
    expect(ran).toHaveLength(0)
  })

  it('audit mode lets it pass and records the decision', async () => {
    const lines: string[] = []
    const write = process.stdout.write.bind(process.stdout)
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      lines.push(String(chunk))
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest)
    }) as typeof process.stdout.write
    try {
      const res = await handler(httpEvent('/api/audit/1'), lambdaContext('gateway-fn'))
      expect(res.statusCode).toBe(200)
    } finally {
      process.stdout.write = write
    }
    expect(ran.map((r) => r.name)).toEqual(['ratings-audit-fn'])
    const access = lines
      .join('')
      .split('\n')
      .filter((l) => l.includes('"type":"access"') && l.includes('"route":"inbound"'))
      .map((l) => JSON.parse(l))
    expect(access.at(-1)).toMatchObject({ caller: fn('gateway-fn'), rule: 'default' })
    expect(lines.join('')).toContain('"AuthzAudited":1')
  })
})

describe('sidecar → Lambda', () => {
  it('an allowed caller passes', async () => {
    const res = await viaSidecar(productpage, 'ratings', '/ratings/1')
    expect(res.status).toBe(200)
    expect(ran.map((r) => r.name)).toEqual(['ratings-fn'])
  })

  it('a disallowed caller gets 403 and the function never runs', async () => {
    const res = await viaSidecar(details, 'ratings', '/ratings/1')
    expect(res.status).toBe(403)
    expect(res.headers['x-meshgate-error']).toBe('forbidden')
    expect(ran).toHaveLength(0)
  })

  it('audit mode lets it pass', async () => {
    const res = await viaSidecar(details, 'ratings-audit', '/ratings/1')
    expect(res.status).toBe(200)
    expect(ran.map((r) => r.name)).toEqual(['ratings-audit-fn'])
  })
})
