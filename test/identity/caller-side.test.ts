// The caller side with the real @aws-sdk/client-sts against the local STS: one mint per destination,
// the cached token answered synchronously, a background re-mint once 80% of its life is spent, and
// no STS call at all from a Lambda function that never calls the mesh.

import middy from '@middy/core'
import type { Context } from 'aws-lambda'
import { decodeJwt } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCallerIdentity, createStsMint } from '../../proxy-core/identity/index.ts'
import { mesh } from '../../proxy-core/lambda/index.ts'
import { createManualClock } from '../helpers/manual-clock.ts'
import { type IdentityProvider, startIdentityProvider } from '../helpers/sts-endpoint.ts'
import { AUDIENCE, KEYS, registerCallers, role, writeMesh } from './fixtures.ts'

let idp: IdentityProvider
const savedEnv = { ...process.env }

beforeAll(async () => {
  idp = await startIdentityProvider()
  registerCallers(idp)
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: KEYS.productpage,
    AWS_SECRET_ACCESS_KEY: 'test-secret',
    AWS_REGION: 'eu-west-1',
    AWS_ENDPOINT_URL_STS: idp.stsUrl,
    MESHGATE_XRAY: 'off',
  })
})

afterAll(async () => {
  process.env = savedEnv
  await idp?.close()
})

function identityFor(epoch: { now: number }) {
  const clock = createManualClock()
  const config = { identity: { issuers: [idp.issuer], audience: AUDIENCE } } as never
  return createCallerIdentity({
    config: () => config,
    clock,
    epochNow: () => epoch.now,
    mint: createStsMint(),
  })
}

describe('the caller side', () => {
  it('mints once per destination audience, then answers from the cache without a promise', async () => {
    const epoch = { now: Date.now() }
    const id = identityFor(epoch)
    const before = idp.mints.length
    const first = id.tokenFor('reviews')
    expect(first).toBeInstanceOf(Promise)
    const token = await first
    expect(typeof token).toBe('string')
    expect(decodeJwt(token!)).toMatchObject({ aud: `${AUDIENCE}/reviews`, sub: role('productpage-task') })
    for (let i = 0; i < 100; i++) expect(id.tokenFor('reviews')).toBe(token)
    await id.tokenFor('details')
    expect(idp.mints.length - before).toBe(2)
    expect(idp.mints.slice(before).map((m) => m.audience[0])).toEqual([
      `${AUDIENCE}/reviews`,
      `${AUDIENCE}/details`,
    ])
    expect(idp.mints.at(-1)).toMatchObject({ algorithm: 'RS256', durationSeconds: 900 })
  })

  it('re-mints in the background once 80% of the life is spent; the old token serves meanwhile', async () => {
    const epoch = { now: Date.now() }
    const id = identityFor(epoch)
    const old = await id.tokenFor('ratings')
    const mints = id.mints()
    epoch.now += 700_000 // 78%: still the cached one, nothing minted
    expect(id.tokenFor('ratings')).toBe(old)
    expect(id.mints()).toBe(mints)
    epoch.now += 30_000 // 81%: the same token answers at once, a fresh one is on its way
    expect(id.tokenFor('ratings')).toBe(old)
    expect(id.mints()).toBe(mints + 1)
    for (let i = 0; i < 50 && id.tokenFor('ratings') === old; i++) await new Promise((r) => setTimeout(r, 20))
    expect(id.tokenFor('ratings')).not.toBe(old)
    expect(id.mints()).toBe(mints + 1)
  })

  it('a failed mint sends calls without a token for a moment rather than queueing them on STS', async () => {
    const clock = createManualClock()
    let calls = 0
    const id = createCallerIdentity({
      config: () => ({ identity: { issuers: [], audience: AUDIENCE } }) as never,
      clock,
      mint: async () => {
        calls++
        throw new Error('AccessDenied')
      },
    })
    expect(await id.tokenFor('reviews')).toBeUndefined()
    expect(id.tokenFor('reviews')).toBeUndefined()
    expect(calls).toBe(1)
    await clock.advance(1000)
    expect(await id.tokenFor('reviews')).toBeUndefined()
    expect(calls).toBe(2)
  })

  it('a Lambda function that never calls the mesh makes no STS call', async () => {
    const config = writeMesh({
      version: 1,
      mesh: 'bookinfo',
      identity: { issuers: [idp.issuer], audience: AUDIENCE },
      services: { reviews: { targets: { v1: { http: 'http://127.0.0.1:9' } } } },
    })
    const before = idp.mints.length
    const handler = middy(async () => ({ statusCode: 200, body: 'no mesh call' })).use(
      mesh({ service: 'productpage', config }),
    )
    const context = {
      functionName: 'productpage-fn',
      getRemainingTimeInMillis: () => 3000,
    } as unknown as Context
    for (let i = 0; i < 3; i++) await handler({}, context)
    expect(idp.mints.length).toBe(before)
  })
})
