// Attacks on the receiver, each its own test, against a real sidecar process: the token is checked
// against a real HTTPS JWKS of a local issuer, and every case ends in 401 `unauthenticated` with
// nothing reaching the app.

import { createHmac } from 'node:crypto'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { type IdentityProvider, startIdentityProvider } from '../helpers/sts-endpoint.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { AUDIENCE, callerEnv, KEYS, registerCallers, role, send, writeMesh } from './fixtures.ts'

let idp: IdentityProvider
let app: Upstream
let reviews: SidecarProcess

const b64url = (v: object | string) =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

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
        authorization: { default: 'deny', rules: [{ name: 'pp', from: ['productpage'] }] },
      },
    },
  })
  reviews = await startSidecarProcess({
    configPath: config,
    service: 'reviews',
    app: app.url,
    env: callerEnv(idp, KEYS.stranger),
  })
}, 30_000)

afterAll(async () => {
  await reviews?.stop()
  await app?.close()
  await idp?.close()
})

beforeEach(() => app.reset())

const claims = (extra: Record<string, unknown> = {}) => ({
  sub: role('productpage-task'),
  aud: `${AUDIENCE}/reviews`,
  ...extra,
})

async function refused(headers: Record<string, string>, reason?: string): Promise<void> {
  const res = await send(reviews.inbound!, '/reviews/1', headers)
  expect(res.status).toBe(401)
  expect(res.headers['x-meshgate-error']).toBe('unauthenticated')
  if (reason !== undefined) expect(JSON.parse(res.body).reason).toBe(reason)
  expect(app.requests()).toHaveLength(0)
}

describe('the receiver refuses', () => {
  it('a valid token first (the control case): it passes and the app never sees the token', async () => {
    const res = await send(reviews.inbound!, '/reviews/1', {
      'x-meshgate-identity': await idp.sign(claims()),
    })
    expect(res.status).toBe(200)
    expect(app.requests()).toHaveLength(1)
    expect(app.requests()[0]!.headers['x-meshgate-identity']).toBeUndefined()
  })

  it('no token', async () => {
    await refused({}, 'missing')
  })

  it('an expired token (past the leeway)', async () => {
    const t = Math.floor(Date.now() / 1000)
    await refused(
      { 'x-meshgate-identity': await idp.sign(claims(), { issuedAt: t - 1000, expiresIn: -120 }) },
      'expired',
    )
  })

  it('a token not yet valid (nbf past the leeway)', async () => {
    const t = Math.floor(Date.now() / 1000)
    await refused(
      { 'x-meshgate-identity': await idp.sign(claims(), { notBefore: t + 600 }) },
      'not_yet_valid',
    )
  })

  it('a token for another audience', async () => {
    await refused(
      { 'x-meshgate-identity': await idp.sign(claims({ aud: 'https://other.mesh/reviews' })) },
      'wrong_audience',
    )
  })

  it('a token from an issuer the mesh does not trust', async () => {
    await refused(
      { 'x-meshgate-identity': await idp.sign(claims({ iss: 'https://evil.example' })) },
      'untrusted_issuer',
    )
  })

  it('alg: none, without and with a signature part', async () => {
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...claims(), iss: idp.issuer, exp: 9e9 })}`
    await refused({ 'x-meshgate-identity': `${unsigned}.` })
    await refused({ 'x-meshgate-identity': `${unsigned}.${b64url('x'.repeat(32))}` }, 'unsupported_algorithm')
  })

  it('HS256 signed with the issuer public key as the HMAC secret', async () => {
    const header = b64url({ alg: 'HS256', typ: 'JWT', kid: 'meshgate-test-1' })
    const payload = b64url({ ...claims(), iss: idp.issuer, exp: Math.floor(Date.now() / 1000) + 600 })
    // The classic confusion attack: the public key, in each form a verifier might hand HMAC.
    for (const secret of [JSON.stringify(idp.publicJwk), idp.publicJwk.n!]) {
      const sig = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url')
      await refused({ 'x-meshgate-identity': `${header}.${payload}.${sig}` }, 'unsupported_algorithm')
    }
  })

  it('an unknown kid', async () => {
    await refused({ 'x-meshgate-identity': await idp.sign(claims(), { kid: 'no-such-key' }) }, 'unknown_key')
  })

  it('1 000 distinct unknown kids fetch the JWKS a handful of times at most', async () => {
    const before = idp.jwksFetches()
    const tokens = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => idp.sign(claims(), { kid: `bogus-${i}` })),
    )
    // 50 at a time, over keep-alive-free connections: a flood, bounded.
    for (let i = 0; i < tokens.length; i += 50) {
      const batch = await Promise.all(
        tokens
          .slice(i, i + 50)
          .map((t) => send(reviews.inbound!, '/reviews/1', { 'x-meshgate-identity': t })),
      )
      for (const r of batch) expect(r.status).toBe(401)
    }
    expect(app.requests()).toHaveLength(0)
    expect(idp.jwksFetches() - before).toBeLessThanOrEqual(3)
  }, 60_000)

  it('a token minted for another service, replayed here', async () => {
    await refused(
      { 'x-meshgate-identity': await idp.sign(claims({ aud: `${AUDIENCE}/details` })) },
      'wrong_audience',
    )
  })

  it('a truncated token', async () => {
    const t = await idp.sign(claims())
    await refused({ 'x-meshgate-identity': t.slice(0, t.length - 10) }, 'bad_signature')
    await refused({ 'x-meshgate-identity': t.slice(0, t.lastIndexOf('.')) }, 'malformed')
  })

  it('an oversized token', async () => {
    const t = await idp.sign(claims({ pad: 'x'.repeat(9000) }))
    await refused({ 'x-meshgate-identity': t }, 'too_large')
  })

  it('a token signed by another key under the published kid', async () => {
    const { generateKeyPair, SignJWT } = await import('jose')
    const { privateKey } = await generateKeyPair('RS256')
    const forged = await new SignJWT({ ...claims(), iss: idp.issuer })
      .setProtectedHeader({ alg: 'RS256', kid: 'meshgate-test-1' })
      .setExpirationTime('10m')
      .sign(privateKey)
    await refused({ 'x-meshgate-identity': forged }, 'bad_signature')
  })

  it('the header sent twice', async () => {
    const t = await idp.sign(claims())
    const u = new URL(reviews.inbound!)
    const { request } = await import('node:http')
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: u.hostname, port: u.port, path: '/reviews/1', agent: false }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.setHeader('x-meshgate-identity', [t, t])
      req.on('error', reject)
      req.end()
    })
    expect(status).toBe(401)
    expect(app.requests()).toHaveLength(0)
  })

  it('and counts each refusal as unauthenticated in the metrics', async () => {
    const res = await fetch(`${reviews.admin}/metrics`)
    const text = await res.text()
    const m =
      /meshgate_authz_decisions_total\{[^}]*service="reviews"[^}]*decision="unauthenticated"\} (\d+)/.exec(
        text,
      )
    expect(Number(m?.[1])).toBeGreaterThan(1000)
  })
})
