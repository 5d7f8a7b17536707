// The receiver's pieces as data and pure functions: the token bucket on a manual clock, the
// authorization decision, and the config checks of the identity keys.

import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfigText } from '../../proxy-core/config/load.ts'
import { callerOf, principalIndex } from '../../proxy-core/identity/caller.ts'
import type { GuardedCall, GuardInvoke } from '../../proxy-core/identity/index.ts'
import { decide, policyFor } from '../../proxy-core/identity/policy.ts'
import { createRateLimiter } from '../../proxy-core/identity/rate-limit.ts'
import { createManualClock } from '../helpers/manual-clock.ts'
import { fn, role } from './fixtures.ts'

describe('the token bucket', () => {
  it('allows exactly burst + rps × time over a steady flood', async () => {
    const clock = createManualClock()
    const limiter = createRateLimiter({ rps: 50, burst: 10, perCaller: {} }, clock)
    let allowed = 0
    // Requests at t = 0, 1, … 10 000 ms: 10 s of refill after the first.
    for (let ms = 0; ms <= 10_000; ms++) {
      if (limiter.take('flood', undefined) === 0) allowed++
      await clock.advance(1)
    }
    expect(allowed).toBe(10 + 500)
  })

  it('gives each caller its own bucket, and named callers their override', async () => {
    const clock = createManualClock()
    const limiter = createRateLimiter(
      { rps: 1, burst: 2, perCaller: { productpage: { rps: 1, burst: 5 } } },
      clock,
    )
    const takes = (key: string, override?: string) =>
      Array.from({ length: 8 }, () => limiter.take(key, override)).filter((w) => w === 0).length
    expect(takes('details')).toBe(2)
    expect(takes('anonymous')).toBe(2)
    expect(takes('productpage', 'productpage')).toBe(5)
    expect(limiter.take('details', undefined)).toBe(1000)
    await clock.advance(1000)
    expect(limiter.take('details', undefined)).toBe(0)
  })
})

const MESH = `
version: 1
mesh: m
identity: { issuers: [https://issuer.example], audience: https://m.mesh }
services:
  productpage:
    principals: [${role('pp')}, productpage-fn]
    targets: { v1: { http: http://127.0.0.1:1 } }
  reviews:
    targets: { v1: { http: http://127.0.0.1:2 } }
    authorization:
      default: deny
      rules:
        - name: reads
          from: [productpage]
          match: { method: GET, path: { prefix: /reviews }, headers: { x-tenant: { exact: a } } }
        - name: anyone-health
          from: ['*']
          match: { path: { exact: /health } }
`

describe('the authorization decision', () => {
  it('allows by caller service and method, path and header; else the default', async () => {
    const config = await loadConfigText(MESH, 'mesh.yaml')
    const policy = policyFor(config, 'reviews', (s) => `https://m.mesh/${s}`)!
    const index = principalIndex(config)
    const pp = callerOf(
      { subject: role('shared'), functionArn: `${fn('productpage-fn')}:live`, issuer: '', expires: 0 },
      index,
    )
    const other = callerOf({ subject: role('other'), functionArn: undefined, issuer: '', expires: 0 }, index)
    expect(pp.service).toBe('productpage')
    expect(other.service).toBeUndefined()
    const authz = policy.authorization!
    expect(decide(authz, pp, 'GET', '/reviews/1', { 'x-tenant': 'a' })).toEqual({
      allowed: true,
      rule: 'reads',
    })
    expect(decide(authz, pp, 'GET', '/reviews/1', { 'x-tenant': 'b' })).toEqual({
      allowed: false,
      rule: 'default',
    })
    expect(decide(authz, pp, 'POST', '/reviews/1', { 'x-tenant': 'a' }).allowed).toBe(false)
    expect(decide(authz, pp, 'GET', '/reviewsx', { 'x-tenant': 'a' }).allowed).toBe(false)
    expect(decide(authz, other, 'GET', '/reviews/1', { 'x-tenant': 'a' }).allowed).toBe(false)
    expect(decide(authz, other, 'GET', '/health', {})).toEqual({ allowed: true, rule: 'anyone-health' })
    expect(decide(authz, undefined, 'GET', '/health', {}).allowed).toBe(false)
    expect(policyFor(config, 'productpage', (s) => s)).toBeUndefined()
  })
})

describe('config checks', () => {
  async function problems(yaml: string): Promise<string> {
    try {
      await loadConfigText(yaml, 'mesh.yaml')
      return ''
    } catch (err) {
      if (err instanceof ConfigError) return err.message
      throw err
    }
  }

  it('refuses a principal claimed by two services', async () => {
    const msg = await problems(
      MESH.replace(
        '    targets: { v1: { http: http://127.0.0.1:2 } }',
        `    principals: [productpage-fn]\n    targets: { v1: { http: http://127.0.0.1:2 } }`,
      ),
    )
    expect(msg).toContain(
      'services.reviews.principals[0]: principal "productpage-fn" is already service productpage\'s',
    )
  })

  it('refuses a rule naming a caller nobody is', async () => {
    expect(await problems(MESH.replace('from: [productpage]', 'from: [nobody]'))).toContain(
      'services.reviews.authorization.rules[0].from[0]: "nobody" is neither a service of the mesh nor a principal',
    )
  })

  it('refuses authorization in a mesh without identity', async () => {
    expect(await problems(MESH.replace(/^identity:.*$/m, ''))).toContain(
      "services.reviews.authorization: authorization needs the mesh's identity",
    )
  })

  it('refuses an http:// issuer and a bad rate', async () => {
    const msg = await problems(
      `${MESH.replace('https://issuer.example', 'http://issuer.example')}    rateLimit: { rps: 0 }\n`,
    )
    expect(msg).toContain('identity.issuers[0]: expected an https:// issuer URL')
    expect(msg).toContain('services.reviews.rateLimit.rps')
  })
})

describe('the receiver', () => {
  it('verifies a token once, then answers from the cache until exp (plus the leeway), and never past it', async () => {
    const { exportJWK, generateKeyPair, SignJWT } = await import('jose')
    const { createReceiver } = await import('../../proxy-core/identity/index.ts')
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }
    const config = await loadConfigText(MESH, 'mesh.yaml')
    const epoch = { ms: Date.now() }
    let fetches = 0
    const receiver = createReceiver({
      config: () => config,
      clock: createManualClock(),
      epochNow: () => epoch.ms,
      fetchJwks: async () => {
        fetches++
        return { keys: [jwk] }
      },
      labels: { route: 'inbound' },
    })
    const app: GuardInvoke<GuardedCall> = async () => ({ status: 200, headers: {}, body: null })
    const pipeline = receiver.layers<GuardedCall>().reduceRight((next, l) => l(next), app)
    const exp = Math.floor(epoch.ms / 1000) + 300
    const token = await new SignJWT({
      sub: role('pp'),
      aud: 'https://m.mesh/reviews',
      iss: 'https://issuer.example',
    })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setExpirationTime(exp)
      .sign(privateKey)
    const ask = () =>
      pipeline({
        service: 'reviews',
        method: 'GET',
        path: '/health',
        headers: { 'x-meshgate-identity': token },
      })
    expect((await ask()).status).toBe(200)
    expect((await ask()).status).toBe(200)
    expect(fetches).toBe(1)
    epoch.ms = (exp + 59) * 1000
    expect((await ask()).status).toBe(200)
    epoch.ms = (exp + 61) * 1000
    const res = await ask()
    expect(res.status).toBe(401)
    expect(JSON.parse(String(res.body)).reason).toBe('expired')
    // Asked again after expiry, the token is verified afresh and refused by jose itself.
    expect((await ask()).status).toBe(401)
  })
})

describe('derived principals', () => {
  it("a Lambda target's function is a principal of its service, unless listed elsewhere or ambiguous", async () => {
    const config = await loadConfigText(
      `
version: 1
mesh: m
identity: { issuers: [https://issuer.example], audience: https://m.mesh }
services:
  reviews:
    targets: { v1: { lambda: reviews-v1 }, v2: { lambda: 'arn:aws:lambda:us-east-1:123456789012:function:reviews-v2:live' } }
  ratings:
    principals: [shared-fn]
    targets: { v1: { lambda: ratings-v1 }, v2: { lambda: shared-fn } }
  details:
    targets: { v1: { lambda: shared-fn }, v2: { lambda: both-fn } }
  other:
    targets: { v1: { lambda: both-fn } }
    authorization: { rules: [{ from: [reviews-v1] }] }
`,
      'mesh.yaml',
    )
    const index = principalIndex(config)
    expect(index.get('reviews-v1')).toBe('reviews')
    expect(index.get('reviews-v2')).toBe('reviews')
    expect(index.get('ratings-v1')).toBe('ratings')
    expect(index.get('shared-fn')).toBe('ratings')
    expect(index.has('both-fn')).toBe(false)
    const caller = callerOf(
      { subject: role('r'), functionArn: fn('reviews-v2'), issuer: '', expires: 0 },
      index,
    )
    expect(caller.service).toBe('reviews')
  })
})
