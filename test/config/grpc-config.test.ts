// The config side of gRPC: `protocol` on targets, `match.grpc`, gRPC retry conditions, and what the
// validator refuses (a gRPC route to a Lambda function or to an HTTP/1.1-only target).

import { describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import { grpcStatusFor, MeshError } from '../../proxy-core/engine/errors.ts'
import { formatGrpcTimeout, isGrpcRequest, parseGrpcTimeout } from '../../proxy-core/engine/grpc.ts'
import { createRetryPolicy } from '../../proxy-core/engine/retry-policy.ts'
import { configProblems, withPosition } from './problems.ts'

function problemsOf(text: string): Promise<string[]> {
  return configProblems(text, 'mesh.yaml', withPosition)
}

const GRPC_MESH = `
version: 1
mesh: m
services:
  echo:
    targets:
      v1: { http: http://127.0.0.1:9000, protocol: grpc }
      v2: { http: http://127.0.0.1:9001, protocol: http2 }
    routes:
      - name: get
        match: { grpc: { service: pkg.Echo, method: Get }, headers: { x-tenant: gold } }
        to: { v1: 90, v2: 10 }
        retries: { attempts: 3, on: [unavailable, resource-exhausted, cancelled, deadline-exceeded, internal] }
      - name: svc
        match: { grpc: { service: pkg.Echo } }
        to: v1
      - name: any-method
        match: { grpc: { method: Get } }
        to: v1
`

describe('gRPC config', () => {
  it('loads gRPC targets, matches and retry conditions', async () => {
    const c = await loadConfigText(GRPC_MESH, 'mesh.yaml')
    const echo = c.services.echo!
    expect(echo.targets.v1).toMatchObject({ kind: 'http', protocol: 'grpc' })
    expect(echo.routes[0]!.match.path).toEqual({ exact: '/pkg.Echo/Get' })
    expect(echo.routes[0]!.match.headers?.['x-tenant']).toEqual({ exact: 'gold' })
    // gRPC calls are POSTs: a gRPC route's retries apply to them.
    expect(echo.routes[0]!.retries.methods).toEqual(['POST'])
    const table = compileMesh(c).services.get('echo')!.routes
    const grpc = { 'content-type': 'application/grpc', 'x-tenant': 'gold' }
    expect(table.match('POST', '/pkg.Echo/Get', grpc)?.name).toBe('get')
    expect(table.match('POST', '/pkg.Echo/Put', grpc)?.name).toBe('svc')
    expect(table.match('POST', '/other.Svc/Get', { 'content-type': 'application/grpc+proto' })?.name).toBe(
      'any-method',
    )
    // A plain HTTP request on the same path takes no gRPC route.
    expect(table.match('POST', '/pkg.Echo/Get', { 'content-type': 'application/json' })).toBeUndefined()
    expect(table.match('POST', '/pkg.Echo.Sub/Get', { 'content-type': 'application/grpc' })?.name).toBe(
      'any-method',
    )
  })

  it('refuses a gRPC route to a Lambda function, to an HTTP/1.1 target, or with a path too', async () => {
    const problems = await problemsOf(`
version: 1
mesh: m
services:
  echo:
    targets:
      fn: { lambda: echo-fn }
      old: { http: http://127.0.0.1:9000 }
    routes:
      - name: a
        match: { grpc: { service: pkg.Echo } }
        to: fn
      - name: b
        match: { grpc: { service: pkg.Echo }, path: { prefix: /x } }
        to: old
`)
    expect(problems).toEqual([
      expect.stringMatching(
        /services\.echo\.routes\[0\]\.to: target "fn" is a Lambda function, which cannot serve gRPC/,
      ),
      expect.stringMatching(/services\.echo\.routes\[1\]\.match\.path: a gRPC match names the path itself/),
      expect.stringMatching(
        /services\.echo\.routes\[1\]\.to: target "old" speaks HTTP\/1\.1, which cannot carry gRPC/,
      ),
    ])
  })

  it('refuses protocol on a Lambda target and an unknown protocol', async () => {
    const problems = await problemsOf(`
version: 1
mesh: m
services:
  a:
    targets:
      fn: { lambda: f, protocol: grpc }
      web: { http: http://127.0.0.1:1, protocol: spdy }
`)
    expect(problems.join('\n')).toMatch(
      /targets\.fn\.protocol: a Lambda target is invoked through the Lambda API/,
    )
    expect(problems.join('\n')).toMatch(/targets\.web\.protocol: expected one of http1, http2, grpc/)
  })
})

describe('gRPC semantics', () => {
  it('reads and writes grpc-timeout', () => {
    expect(parseGrpcTimeout('100m')).toBe(100)
    expect(parseGrpcTimeout('2S')).toBe(2000)
    expect(parseGrpcTimeout('1H')).toBe(3_600_000)
    expect(parseGrpcTimeout('500u')).toBe(0.5)
    expect(parseGrpcTimeout('123456789m')).toBeUndefined()
    expect(parseGrpcTimeout('10x')).toBeUndefined()
    expect(parseGrpcTimeout(undefined)).toBeUndefined()
    for (const ms of [0, 0.5, 1, 250, 99_999, 3_600_000, 10 * 86_400_000]) {
      const back = parseGrpcTimeout(formatGrpcTimeout(ms))!
      expect(back).toBeGreaterThanOrEqual(ms)
      expect(back - ms).toBeLessThan(Math.max(0.002, ms * 0.001))
    }
  })

  it('tells gRPC from gRPC-Web and other content types', () => {
    expect(isGrpcRequest({ 'content-type': 'application/grpc' })).toBe(true)
    expect(isGrpcRequest({ 'content-type': 'application/grpc+proto' })).toBe(true)
    expect(isGrpcRequest({ 'content-type': 'application/grpc-web' })).toBe(false)
    expect(isGrpcRequest({ 'content-type': 'application/json' })).toBe(false)
    expect(isGrpcRequest({})).toBe(false)
  })

  it("maps the error table's codes to gRPC statuses as DESIGN says", () => {
    const code = (c: string, status?: number) =>
      grpcStatusFor(new MeshError(c as never, c, status === undefined ? undefined : { status }))
    expect(code('upstream_unavailable')).toBe(14)
    expect(code('circuit_open')).toBe(14)
    expect(code('timeout')).toBe(4)
    expect(code('no_route')).toBe(12)
    expect(code('unknown_service')).toBe(12)
    // Codes the identity branch adds, by name.
    expect(code('unauthenticated', 401)).toBe(16)
    expect(code('forbidden', 403)).toBe(7)
    expect(code('rate_limited', 429)).toBe(8)
    expect(code('fault_abort', 503)).toBe(14)
  })

  it('retries on gRPC status names only when the status is one of them', () => {
    const p = createRetryPolicy({
      attempts: 2,
      perTryTimeout: 0,
      on: ['unavailable'],
      backoff: { base: 1, max: 1 },
      methods: ['POST'],
    })
    expect(p.onGrpcStatus).toBe(true)
    expect(p.retriableOutcome({ status: 200, grpcStatus: 14 })).toBe(true)
    expect(p.retriableOutcome({ status: 200, grpcStatus: 13 })).toBe(false)
    expect(p.retriableOutcome({ status: 200 })).toBe(false)
  })
})
