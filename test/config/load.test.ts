import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfigFile, loadConfigText } from '../../proxy-core/config/load.ts'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import { configProblems, withPosition } from './problems.ts'

function problemsOf(text: string, source = 'mesh.yaml'): Promise<string[]> {
  return configProblems(text, source, withPosition)
}

describe('loadConfig', () => {
  it('loads the Bookinfo example with defaults applied', async () => {
    const c = await loadConfigFile('infra/examples/bookinfo.yaml')
    expect(c.mesh).toBe('bookinfo')
    const reviews = c.services.reviews!
    expect(reviews.targets.v1).toEqual({ kind: 'lambda', name: 'v1', functionName: 'bookinfo-reviews-v1' })
    expect(reviews.targets.v3).toMatchObject({
      kind: 'http',
      loadBalancer: 'least-request',
      endpoints: ['http://reviews-v3-a.bookinfo.local:15006', 'http://reviews-v3-b.bookinfo.local:15006'],
    })
    const canary = reviews.routes[1]!
    expect(canary).toMatchObject({ name: 'canary', to: { v1: 97, v3: 3 }, timeout: 3000 })
    expect(canary.retries).toMatchObject({
      attempts: 3,
      perTryTimeout: 1000,
      on: ['5xx', 'reset'],
      backoff: { base: 25, max: 250 },
    })
    // Route without its own policies gets the mesh defaults; services the Istio/Envoy defaults.
    expect(c.services.ratings!.routes[0]!.retries.on).toEqual([
      'connect-failure',
      'reset',
      '502',
      '503',
      '504',
    ])
    expect(c.services.details!.outlierDetection).toEqual({
      consecutive5xx: 5,
      consecutiveGatewayErrors: 0,
      interval: 10_000,
      baseEjectionTime: 30_000,
      maxEjectionPercent: 10,
    })
    expect(reviews.retryBudget).toEqual({ percent: 50, minPerSecond: 20 })
    expect(c.services.details!.retryBudget).toEqual({ percent: 20, minPerSecond: 10 })
    expect(() => compileMesh(c)).not.toThrow()
  })

  it('reports every problem at once with line, column and path', async () => {
    const text = [
      'version: 1', // 1
      'mesh: m', // 2
      'services:', // 3
      '  reviews:', // 4
      '    targets:', // 5
      '      v1: { lambda: reviews-v1 }', // 6
      '    routes:', // 7
      '      - match: { path: { prefix: /x }, headers: { a: { regex: "[" } } }', // 8
      '        to: { v1: 50, v9: 50 }', // 9
      '        timeout: soon', // 10
      '        mirror: { target: v7, percent: 101 }', // 11
      '        retrys: 2', // 12
      'gateway:', // 13
      '  routes:', // 14
      '    - service: nope', // 15
    ].join('\n')
    expect(await problemsOf(text)).toEqual([
      '8:63 services.reviews.routes[0].match.headers.a.regex: invalid regular expression: Invalid regular expression: /[/: Unterminated character class',
      '9:23 services.reviews.routes[0].to.v9: unknown target "v9" (service reviews has v1)',
      '10:18 services.reviews.routes[0].timeout: expected a duration like 250ms, 2s or 1m, got "soon"',
      '11:27 services.reviews.routes[0].mirror.target: unknown target "v7" (service reviews has v1)',
      '11:40 services.reviews.routes[0].mirror.percent: expected a percentage from 0 to 100, got 101',
      '12:9 services.reviews.routes[0].retrys: unknown key (expected one of name, match, to, stickiness, timeout, retries, fault, mirror, headers, rewrite, rollout, idleTimeout)',
      '15:16 gateway.routes[0].service: unknown service "nope" (the mesh has reviews)',
    ])
  })

  it('formats problems as FILE:LINE:COL: path: message', async () => {
    await expect(loadConfigText('version: 2\nmesh: m\nservices: {}\n', 'a/mesh.yaml')).rejects.toThrow(
      /^a\/mesh\.yaml:1:10: version: expected 1, got 2\na\/mesh\.yaml:3:11: services: expected at least 1 entry$/,
    )
  })

  it('locates problems in JSON too, and reports syntax errors', async () => {
    const json =
      '{\n  "version": 1,\n  "mesh": "m",\n  "services": { "a": { "targets": { "v1": { "http": 5 } } } }\n}'
    expect(await problemsOf(json, 'mesh.json')).toEqual([
      '4:53 services.a.targets.v1.http: expected an origin like http://host:port, dns://host:port, cloudmap://NAMESPACE/SERVICE, or a list of origins, got 5',
    ])
    const broken = await problemsOf('version: 1\nmesh: [unclosed\n')
    expect(broken[0]).toMatch(/^\d+:\d+ \(root\): syntax: /)
  })

  it('accepts inline JSON and needs exactly one of lambda/http', async () => {
    const c = await loadConfigText(
      JSON.stringify({ version: 1, mesh: 'm', services: { a: { targets: { v1: { http: 'http://h:1' } } } } }),
      'MESHGATE_CONFIG',
    )
    expect(c.services.a!.routes[0]).toMatchObject({ name: 'default', to: { v1: 1 } })
    expect(
      await problemsOf(
        'version: 1\nmesh: m\nservices:\n  a:\n    targets:\n      v1: { lambda: f, http: "http://h:1" }\n',
      ),
    ).toEqual(['6:11 services.a.targets.v1: expected exactly one of lambda, http, tcp, got lambda, http'])
  })

  it('never throws anything but ConfigError, whatever the input', async () => {
    const valid = readFileSync('infra/examples/bookinfo.yaml', 'utf8')
    const mutate = fc.tuple(fc.nat(valid.length), fc.nat(20), fc.string({ maxLength: 12 }))
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
          mutate.map(([at, del, ins]) => valid.slice(0, at) + ins + valid.slice(at + del)),
          fc.anything().map((v) => JSON.stringify({ version: 1, mesh: 'm', services: { a: v } }) ?? ''),
        ),
        async (text) => {
          try {
            await loadConfigText(text, 'fuzz.yaml')
          } catch (e) {
            if (!(e instanceof ConfigError)) throw e
            for (const p of e.problems) {
              expect(p.line).toBeGreaterThanOrEqual(1)
              expect(p.column).toBeGreaterThanOrEqual(1)
              expect(p.path.length).toBeGreaterThan(0)
            }
          }
        },
      ),
      { numRuns: 400 },
    )
  })
})
