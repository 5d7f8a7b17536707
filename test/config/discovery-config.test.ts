// The config forms of Cloud Map targets and active health checks: what loads, with which defaults,
// and the message each malformed form gets.

import { describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { configProblems, pathAndMessage } from './problems.ts'

function mesh(target: unknown): string {
  return JSON.stringify({ version: 1, mesh: 'm', services: { web: { targets: { v1: target } } } })
}

function problemsOf(target: unknown): Promise<string[]> {
  return configProblems(mesh(target), 'mesh.json', pathAndMessage)
}

async function targetOf(target: unknown) {
  return (await loadConfigText(mesh(target), 'mesh.json')).services.web!.targets.v1!
}

describe('cloudmap:// targets', () => {
  it('loads namespace, service, attribute filters, the fallback port and the refresh default', async () => {
    expect(await targetOf({ http: 'cloudmap://bookinfo.local/reviews' })).toMatchObject({
      kind: 'http',
      endpoints: [],
      cloudMap: {
        namespace: 'bookinfo.local',
        service: 'reviews',
        queryParameters: {},
        optionalParameters: {},
        refresh: 30_000,
      },
    })
    const t = await targetOf({
      http: 'cloudmap://bookinfo.local:9080/reviews?version=v2&stage=prod%20a&optional.AVAILABILITY_ZONE=use1-az1',
      cloudMapRefresh: '10s',
    })
    expect(t).toMatchObject({
      cloudMap: {
        queryParameters: { version: 'v2', stage: 'prod a' },
        optionalParameters: { AVAILABILITY_ZONE: 'use1-az1' },
        defaultPort: 9080,
        refresh: 10_000,
      },
    })
  })

  it('names the bad part of a malformed URL', async () => {
    const cases: [string, RegExp][] = [
      ['cloudmap://bookinfo.local', /expected cloudmap:\/\/NAMESPACE\/SERVICE/],
      ['cloudmap:///reviews', /invalid Cloud Map namespace ""/],
      ['cloudmap://book info/reviews', /expected an origin like/],
      ['cloudmap://bookinfo..local/reviews', /invalid Cloud Map namespace "bookinfo..local"/],
      ['cloudmap://bookinfo.local/', /invalid Cloud Map service ""/],
      ['cloudmap://bookinfo.local/a/b', /invalid Cloud Map service "a\/b"/],
      ['cloudmap://bookinfo.local:0/reviews', /port after the namespace must be 1 to 65535/],
      ['cloudmap://bookinfo.local:http/reviews', /port after the namespace must be 1 to 65535/],
      ['cloudmap://bookinfo.local/reviews?version', /attribute "version" needs a value/],
      ['cloudmap://bookinfo.local/reviews?v=1&v=2', /attribute "v" given twice/],
      ['cloudmap://bookinfo.local/reviews?%zz=1', /invalid percent-encoding/],
      ['cloudmap://bookinfo.local/reviews?=1', /invalid attribute name ""/],
      ['cloudmap://bookinfo.local/reviews#x', /no #fragment/],
    ]
    for (const [url, message] of cases) {
      const problems = await problemsOf({ http: url })
      expect(problems, url).toHaveLength(1)
      expect(problems[0], url).toMatch(/^services\.web\.targets\.v1\.http: /)
      expect(problems[0], url).toMatch(message)
    }
  })

  it('refuses a cloudmap:// URL among others, and cloudMapRefresh without one', async () => {
    expect(await problemsOf({ http: ['cloudmap://ns/svc', 'http://127.0.0.1:1'] })).toEqual([
      'services.web.targets.v1.http: a cloudmap:// target must be the only URL of its target',
    ])
    expect(await problemsOf({ http: 'http://127.0.0.1:1', cloudMapRefresh: '5s' })).toEqual([
      'services.web.targets.v1.cloudMapRefresh: cloudMapRefresh applies only to a cloudmap:// target',
    ])
    expect(await problemsOf({ lambda: 'fn', cloudMapRefresh: '5s' })).toEqual([
      'services.web.targets.v1.cloudMapRefresh: cloudMapRefresh applies only to http targets',
    ])
  })
})

describe('healthCheck', () => {
  it("fills App Mesh's defaults (CDK HealthCheck.http) and keeps what is given", async () => {
    expect(await targetOf({ http: 'http://127.0.0.1:1', healthCheck: {} })).toMatchObject({
      healthCheck: {
        protocol: 'http',
        path: '/',
        interval: 5_000,
        timeout: 2_000,
        healthyThreshold: 2,
        unhealthyThreshold: 2,
      },
    })
    expect(
      await targetOf({
        http: 'cloudmap://ns/svc',
        healthCheck: {
          path: '/healthz?full=1',
          port: 8081,
          interval: '30s',
          timeout: '3s',
          healthyThreshold: 3,
          unhealthyThreshold: 5,
        },
      }),
    ).toMatchObject({
      healthCheck: {
        path: '/healthz?full=1',
        port: 8081,
        interval: 30_000,
        timeout: 3_000,
        healthyThreshold: 3,
        unhealthyThreshold: 5,
      },
    })
  })

  it("refuses values outside App Mesh's ranges", async () => {
    expect(
      await problemsOf({
        http: 'http://127.0.0.1:1',
        healthCheck: { interval: '1s', timeout: '61s', healthyThreshold: 1, unhealthyThreshold: 11 },
      }),
    ).toEqual([
      "services.web.targets.v1.healthCheck.interval: must be from 5s to 5m (App Mesh's range), got 1s",
      "services.web.targets.v1.healthCheck.timeout: must be from 2s to 1m (App Mesh's range), got 61s",
      'services.web.targets.v1.healthCheck.healthyThreshold: expected a whole number from 2 to 10, got 1',
      'services.web.targets.v1.healthCheck.unhealthyThreshold: expected a whole number from 2 to 10, got 11',
    ])
    expect(await problemsOf({ http: 'http://127.0.0.1:1', healthCheck: { path: 'health' } })).toEqual([
      'services.web.targets.v1.healthCheck.path: expected a path starting with /, got "health"',
    ])
    expect(await problemsOf({ http: 'http://127.0.0.1:1', healthCheck: { protocol: 'grpc' } })).toEqual([
      'services.web.targets.v1.healthCheck.protocol: expected one of http, got "grpc"',
    ])
  })

  it('refuses a health check on a Lambda target, with the reason', async () => {
    const problems = await problemsOf({ lambda: 'reviews-v1', healthCheck: { path: '/health' } })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(
      /^services\.web\.targets\.v1\.healthCheck: a Lambda target has no endpoints to probe/,
    )
    expect(problems[0]).toMatch(/outlier detection still covers Lambda targets/)
  })
})
