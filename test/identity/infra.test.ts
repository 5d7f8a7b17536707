// The example mesh with identity loads, and the Serverless resources derive each function's
// permission to mint tokens from the mesh: only the audiences of the services it calls.

import { createRequire } from 'node:module'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../proxy-core/config/load.ts'
import { principalIndex } from '../../proxy-core/identity/caller.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const { identityStatement } = createRequire(import.meta.url)('../../infra/serverless/mesh-resources.cjs') as {
  identityStatement(mesh: object, fn: object): Record<string, unknown> | undefined
}

describe('identity in the infra', () => {
  it('infra/examples/bookinfo-identity.yaml is a valid mesh whose Lambda services are derived principals', async () => {
    const config = await loadConfig(resolve(ROOT, 'infra/examples/bookinfo-identity.yaml'))
    expect(config.identity?.audience).toBe('https://bookinfo.mesh')
    expect(config.services.reviews!.authorization!.mode).toBe('audit')
    expect(config.services.details!.authorization).toMatchObject({ mode: 'enforce', default: 'deny' })
    const index = principalIndex(config)
    expect(index.get('bookinfo-details')).toBe('details')
    expect(index.get('bookinfo-reviews-v1')).toBe('reviews')
  })

  it("a function may mint tokens for the audiences of the services it calls, and no other's", () => {
    const mesh = {
      identity: { audience: 'https://bookinfo.mesh' },
      gateway: { routes: [{ service: 'productpage' }, { service: 'reviews' }, { service: 'productpage' }] },
    }
    expect(identityStatement(mesh, { gateway: true })).toEqual({
      Effect: 'Allow',
      Action: 'sts:GetWebIdentityToken',
      Resource: '*',
      Condition: {
        'ForAllValues:StringEquals': {
          'sts:IdentityTokenAudience': ['https://bookinfo.mesh/productpage', 'https://bookinfo.mesh/reviews'],
        },
        StringEquals: { 'sts:SigningAlgorithm': 'RS256' },
        NumericLessThanEquals: { 'sts:DurationSeconds': 900 },
      },
    })
    expect(identityStatement(mesh, { calls: [] })).toBeUndefined()
    expect(identityStatement({}, { calls: ['ratings'] })).toBeUndefined()
  })
})
