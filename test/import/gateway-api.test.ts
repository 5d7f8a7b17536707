// Gateway API → meshgate: HTTPRoutes bound to a Service (GAMMA) routed by a real sidecar under Gateway
// API's precedence (not file order), Gateway-bound routes as the gateway's routes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import { rewritePath } from '../../proxy-core/engine/runtime.ts'
import { type ImportResult, importFiles } from '../../proxy-core/import/index.ts'
import {
  type ConformanceRow,
  checkRow,
  fixture,
  lineOfText,
  type RunningMesh,
  runTranslated,
} from './translated-mesh.ts'

const STORE = fixture('gateway-api', 'store.yaml')
let result: ImportResult
let mesh: RunningMesh

beforeAll(async () => {
  result = await importFiles('gateway-api', [STORE])
  mesh = await runTranslated(result.yaml)
})
afterAll(async () => {
  await mesh?.close()
})

const table: ConformanceRow[] = [
  {
    why: 'an Exact path beats every prefix, though written third',
    service: 'store',
    method: 'POST',
    path: '/cart/checkout',
    expect: 'store/store-checkout',
  },
  {
    why: 'Exact needs its method: GET /cart/checkout falls to the prefix with a header, if the header is there',
    service: 'store',
    path: '/cart/checkout',
    headers: { env: 'canary' },
    expect: 'store/store-canary',
  },
  {
    why: 'same prefix: more header matches win, though written later',
    service: 'store',
    path: '/cart/1',
    headers: { env: 'canary' },
    expect: 'store/store-canary',
  },
  { why: 'prefix /cart, no header → v2', service: 'store', path: '/cart', expect: 'store/store-v2' },
  {
    why: 'PathPrefix is per segment: /cartoon is not /cart',
    service: 'store',
    path: '/cartoon',
    expect: { weights: { 'store/store-v1': 90, 'store/store-v2': 10 } },
  },
  {
    why: 'no match in a rule: prefix / with weights 90/10',
    service: 'store',
    path: '/',
    expect: { weights: { 'store/store-v1': 90, 'store/store-v2': 10 } },
  },
]

describe('gateway-api import, routed by the sidecar', () => {
  for (const row of table) {
    it(row.why, async () => {
      expect(await checkRow(mesh, row)).toBeNull()
    })
  }

  it('adds the header of RequestHeaderModifier on the way to the backend', async () => {
    const r = await mesh.request('store', { path: '/cart/2' })
    expect(JSON.parse(r.body).headers['my-header']).toBe('foo')
  })
})

describe('gateway-api gateway routes', () => {
  it('routes by precedence (longest prefix first) and rewrites ReplacePrefixMatch', () => {
    const gw = compileMesh(result.config).gateway
    const a = gw.match('GET', '/store/items', {})!
    expect(a.service).toBe('store')
    expect(rewritePath('/store/items', a.match.path?.prefix, a.rewrite!)).toBe('/items')
    const q = { magic: 'foo' }
    expect(gw.match('GET', '/some/thing?great=example', q)?.service).toBe('my-service2')
    expect(gw.match('POST', '/some/thing?great=example', q)).toBeUndefined()
    expect(gw.match('GET', '/some/thing', q)).toBeUndefined()
  })
})

describe('gateway-api import, what it wrote', () => {
  it('addresses backends as cluster Services with their ports; keeps timeouts, retries and mirrors', () => {
    const store = result.config.services.store!
    expect(store.targets['store-v1']).toMatchObject({
      kind: 'http',
      dns: { host: 'store-v1.default.svc.cluster.local', port: 8080 },
    })
    const checkout = store.routes.find((r) => r.to['store-checkout'] !== undefined)!
    expect(checkout.timeout).toBe(3000)
    expect(checkout.retries).toMatchObject({ attempts: 2, on: ['503'] })
    const canary = store.routes.find((r) => r.to['store-canary'] !== undefined)!
    expect(canary.mirror).toEqual({ target: 'store-v2', percent: 25 })
    // No retry field: Gateway API does not retry.
    expect(store.routes.at(-1)!.retries.attempts).toBe(0)
  })

  it('reports GRPCRoutes and hostnames at their lines', () => {
    const text = result.report.format()
    expect(text).toContain(
      `${STORE}:${lineOfText(STORE, 'kind: GRPCRoute')}: GRPCRoute/foo-grpcroute: kind: gRPC routes are not in this version`,
    )
    expect(text).toContain(
      `${STORE}:${lineOfText(STORE, 'hostnames:')}: HTTPRoute/http-app-1: spec.hostnames:`,
    )
  })
})
