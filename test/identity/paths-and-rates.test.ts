// A real sidecar guarding `/admin` behind an allow rule for `/public`: path tricks never reach a path
// the policy did not allow, since the rule judges the one normal form the app is then sent. And the
// per-caller rate limit under a bounded flood: the flooding caller is held to its bucket, the others
// are not starved.

import fc from 'fast-check'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { type IdentityProvider, startIdentityProvider } from '../helpers/sts-endpoint.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { AUDIENCE, callerEnv, KEYS, registerCallers, role, send, writeMesh } from './fixtures.ts'

let idp: IdentityProvider
let app: Upstream
let reviews: SidecarProcess
const tokens: Record<string, string> = {}

const RATE = { rps: 5, burst: 10 }

beforeAll(async () => {
  idp = await startIdentityProvider()
  registerCallers(idp)
  app = await startUpstream('reviews-app')
  const config = writeMesh({
    version: 1,
    mesh: 'bookinfo',
    identity: { issuers: [idp.issuer], audience: AUDIENCE },
    services: {
      productpage: {
        principals: [role('productpage-task')],
        targets: { v1: { http: 'http://127.0.0.1:9' } },
      },
      details: { principals: [role('details-task')], targets: { v1: { http: 'http://127.0.0.1:9' } } },
      reviews: {
        targets: { v1: { http: app.url } },
        authorization: {
          default: 'deny',
          rules: [
            {
              name: 'public',
              from: ['productpage', 'details', role('stranger-task')],
              match: { method: ['GET', 'HEAD'], path: { prefix: '/public' } },
            },
          ],
        },
        rateLimit: { ...RATE, perCaller: { productpage: { rps: 100_000, burst: 100_000 } } },
      },
    },
  })
  reviews = await startSidecarProcess({
    configPath: config,
    service: 'reviews',
    app: app.url,
    env: callerEnv(idp, KEYS.stranger),
    startTimeoutMs: 45_000,
  })
  for (const [name, sub] of [
    ['productpage', role('productpage-task')],
    ['details', role('details-task')],
    ['stranger', role('stranger-task')],
  ] as const) {
    tokens[name] = await idp.sign({ sub, aud: `${AUDIENCE}/reviews` })
  }
}, 60_000)

afterAll(async () => {
  await reviews?.stop()
  await app?.close()
  await idp?.close()
})

beforeEach(() => app.reset())

const asProductpage = (target: string) =>
  send(reviews.inbound!, target, { 'x-meshgate-identity': tokens.productpage! })

/** Under /public, segment-aware. */
const allowed = (url: string) => /^\/public(\/|\?|$)/.test(url)

describe('path-policy bypass attempts', () => {
  const attempts = [
    '/public/../admin',
    '/public/./../admin',
    '/public/%2e%2e/admin',
    '/public/%2E%2E/admin',
    '/public/.%2e/admin',
    '/public/%2e./admin',
    '/public%2f..%2fadmin',
    '/public/..%2Fadmin',
    '/public/..%5cadmin',
    '/public/..\\admin',
    '//admin',
    '///admin',
    '/public//../admin',
    '/public/..//admin',
    '/PUBLIC/../admin',
    '/Public',
    '/admin',
    '/admin?/public',
    '/public/%00/../admin',
    '/%70ublic/../admin',
    'http://reviews/public/../admin',
    'http://reviews/admin',
    'http://reviews//admin',
  ]

  it.each(attempts)('%s never reaches a denied path', async (target) => {
    const res = await asProductpage(target)
    expect([400, 403]).toContain(res.status)
    expect(app.requests()).toHaveLength(0)
  })

  it('the allowed path itself passes, in its normal form', async () => {
    for (const target of ['/public/x', '/public/a/../b', '/%70ublic/x', 'http://reviews/public/y']) {
      const res = await asProductpage(target)
      expect(res.status).toBe(200)
    }
    expect(app.requests().map((r) => r.url)).toEqual(['/public/x', '/public/b', '/public/x', '/public/y'])
  })

  it('any mix of dot segments, escapes, slashes and case reaches the app only under /public', async () => {
    const part = fc.constantFrom(
      'public',
      'PUBLIC',
      'admin',
      '..',
      '.',
      '%2e%2e',
      '%2E',
      '.%2e',
      '%2f',
      '%5c',
      '',
      '%70ublic',
      '%61dmin',
      ';',
      '..;',
    )
    await fc.assert(
      fc.asyncProperty(fc.array(part, { minLength: 1, maxLength: 6 }), async (parts) => {
        app.reset()
        const res = await asProductpage(`/${parts.join('/')}`)
        for (const r of app.requests()) expect(allowed(r.url)).toBe(true)
        if (res.status === 200) expect(app.requests()).toHaveLength(1)
        else expect([400, 403]).toContain(res.status)
      }),
      { numRuns: 150 },
    )
  }, 60_000)
})

describe('per-caller rate limit', () => {
  it('holds the flooding caller to its bucket while the others pass', async () => {
    const start = performance.now()
    const results: { status: number; who: string; error?: string; retryAfter?: string }[] = []
    // 200 requests from details in waves of 20; between waves, the other callers ask too.
    for (let wave = 0; wave < 10; wave++) {
      const batch = await Promise.all([
        ...Array.from({ length: 20 }, () =>
          send(reviews.inbound!, '/public/flood', { 'x-meshgate-identity': tokens.details! }).then((r) => ({
            who: 'details',
            status: r.status,
            error: r.headers['x-meshgate-error'] as string | undefined,
            retryAfter: r.headers['retry-after'] as string | undefined,
          })),
        ),
        asProductpage('/public/other').then((r) => ({ who: 'productpage', status: r.status })),
      ])
      results.push(...batch)
      if (wave % 2 === 0) {
        const r = await send(reviews.inbound!, '/public/quiet', { 'x-meshgate-identity': tokens.stranger! })
        results.push({ who: 'stranger', status: r.status })
      }
    }
    const elapsedS = (performance.now() - start) / 1000
    const flood = results.filter((r) => r.who === 'details')
    const passed = flood.filter((r) => r.status === 200).length
    // The bucket: `burst` at once, then `rps` per second, never more (one token of slack for a refill
    // that lands between the clock reads).
    expect(passed).toBeGreaterThanOrEqual(RATE.burst)
    expect(passed).toBeLessThanOrEqual(RATE.burst + Math.ceil(RATE.rps * elapsedS) + 1)
    const refused = flood.filter((r) => r.status !== 200)
    expect(refused.length).toBeGreaterThan(0)
    for (const r of refused) {
      expect(r.status).toBe(429)
      expect(r.error).toBe('rate_limited')
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1)
    }
    // Not starved: the other callers have buckets of their own.
    expect(results.filter((r) => r.who === 'productpage').every((r) => r.status === 200)).toBe(true)
    expect(results.filter((r) => r.who === 'stranger').every((r) => r.status === 200)).toBe(true)
    expect(app.requests().filter((r) => r.url === '/public/flood')).toHaveLength(passed)
  }, 60_000)
})
