// Istio → meshgate: the Bookinfo-shaped fixture translated, then routed by a real sidecar the way
// Istio documents it (first match wins, subsets by header, 80/20 weights, fault abort, mirror).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import { type ImportResult, importFiles } from '../../proxy-core/import/index.ts'
import {
  type ConformanceRow,
  checkRow,
  fixture,
  lineOfText,
  type RunningMesh,
  runTranslated,
} from './translated-mesh.ts'

const BOOKINFO = fixture('istio', 'bookinfo.yaml')
let result: ImportResult
let mesh: RunningMesh

beforeAll(async () => {
  result = await importFiles('istio', [BOOKINFO])
  mesh = await runTranslated(result.yaml)
})
afterAll(async () => {
  await mesh?.close()
})

const table: ConformanceRow[] = [
  {
    why: 'header match: end-user jason → reviews v2',
    service: 'reviews',
    path: '/reviews/0',
    headers: { 'end-user': 'jason' },
    expect: 'reviews/v2',
  },
  {
    why: 'first match wins: jason POSTing /reviews still gets v2',
    service: 'reviews',
    method: 'POST',
    path: '/reviews/1',
    headers: { 'end-user': 'jason' },
    expect: 'reviews/v2',
  },
  {
    why: 'uri prefix + method: POST /reviews… → v3',
    service: 'reviews',
    method: 'POST',
    path: '/reviews/1',
    expect: 'reviews/v3',
  },
  {
    why: 'Istio prefixes are character prefixes: POST /reviewsX matches prefix /reviews',
    service: 'reviews',
    method: 'POST',
    path: '/reviewsX',
    expect: 'reviews/v3',
  },
  {
    why: 'weights 80/20 between v1 and v3',
    service: 'reviews',
    path: '/reviews/2',
    expect: { weights: { 'reviews/v1': 80, 'reviews/v3': 20 } },
  },
  {
    why: 'fault abort 100% for jason: 500 from the mesh',
    service: 'ratings',
    path: '/ratings/0',
    headers: { 'end-user': 'jason' },
    expect: { status: 500, error: 'fault_abort' },
  },
  {
    why: 'a sourceLabels match cannot be told apart: it is left out, not widened, so others get v1',
    service: 'ratings',
    path: '/ratings/0',
    expect: 'ratings/v1',
  },
  {
    why: 'a service with no VirtualService of its own gets all traffic on its one target',
    service: 'productpage',
    path: '/productpage',
    expect: 'productpage/productpage',
  },
]

describe('istio import, routed by the sidecar', () => {
  for (const row of table) {
    it(row.why, async () => {
      expect(await checkRow(mesh, row)).toBeNull()
    })
  }

  it('mirrors 10% of the default ratings route to v2', async () => {
    const v2 = mesh.upstreams.get('ratings/v2')!
    v2.reset()
    for (let i = 0; i < 300; i++) {
      const r = await mesh.request('ratings', { path: '/ratings/1' })
      expect(r.headers['x-upstream']).toBe('ratings/v1')
    }
    // The mirror is fire-and-forget: wait (bounded) for the copies to land, then judge the share.
    for (let i = 0; i < 50 && v2.count() < 10; i++) await new Promise((r) => setTimeout(r, 20))
    const share = v2.count() / 300
    expect(share).toBeGreaterThan(0.03)
    expect(share).toBeLessThan(0.2)
  })

  it('routes the gateway-bound VirtualService to productpage, by exact path and character prefix', () => {
    const table = compileMesh(result.config).gateway
    expect(table.match('GET', '/productpage', {})?.service).toBe('productpage')
    expect(table.match('GET', '/static/x.css', {})?.service).toBe('productpage')
    expect(table.match('GET', '/staticfoo', {})?.service).toBe('productpage')
    expect(table.match('GET', '/api/v1/products/1', {})?.service).toBe('productpage')
    expect(table.match('GET', '/productpage/x', {})).toBeUndefined()
    expect(table.match('GET', '/other', {})).toBeUndefined()
  })
})

describe('istio import, what it wrote', () => {
  it('addresses subsets as per-version Services in the cluster, with the port from the Service manifest', () => {
    const reviews = result.config.services.reviews!
    const t = reviews.targets.v2!
    expect(t.kind === 'http' && t.dns).toEqual({
      host: 'reviews-v2.default.svc.cluster.local',
      port: 9080,
      protocol: 'http',
    })
    const pp = result.config.services.productpage!.targets.productpage!
    expect(pp.kind === 'http' && pp.dns?.host).toBe('productpage.default.svc.cluster.local')
  })

  it("keeps Istio's defaults: 2 retries on connect-failure, reset, 503; no outlier detection unless set", () => {
    const ratings = result.config.services.ratings!
    expect(ratings.routes[0]!.retries.attempts).toBe(2)
    expect(ratings.routes[0]!.retries.on).toEqual(['connect-failure', 'reset', '503'])
    expect(ratings.outlierDetection.consecutive5xx).toBe(0)
    const reviews = result.config.services.reviews!
    expect(reviews.outlierDetection).toMatchObject({
      consecutive5xx: 7,
      interval: 300_000,
      baseEjectionTime: 900_000,
    })
    expect(reviews.circuitBreaker).toMatchObject({ maxConnections: 100, maxPendingRequests: 10 })
    const canary = reviews.routes.find((r) => r.name === 'canary')!
    expect(canary.timeout).toBe(10_000)
    expect(canary.retries).toMatchObject({
      attempts: 3,
      perTryTimeout: 2000,
      on: ['gateway-error', 'connect-failure', 'reset'],
    })
  })

  it('comments each service with the resources it came from', () => {
    expect(result.yaml).toMatch(
      new RegExp(`# from VirtualService/reviews \\(${BOOKINFO}:\\d+\\)\\n.*DestinationRule/reviews`),
    )
  })

  it('reports each untranslated field at its file and line', () => {
    const lines = result.report.format().split('\n')
    const at = (text: string, after = 0) => `${BOOKINFO}:${lineOfText(BOOKINFO, text, after)}: `
    expect(lines).toContain(
      `${at('corsPolicy:')}VirtualService/reviews: spec.http[2].corsPolicy: meshgate does not answer CORS preflights; instead: configure CORS on API Gateway or in the app`,
    )
    expect(
      lines.some((l) =>
        l.startsWith(`${at('sourceLabels:')}VirtualService/ratings: spec.http[1].match[0].sourceLabels:`),
      ),
    ).toBe(true)
    expect(
      lines.some((l) => l.startsWith(`${at('tls:')}DestinationRule/ratings: spec.trafficPolicy.tls:`)),
    ).toBe(true)
    expect(lines.some((l) => l.startsWith(`${at('maxRequestsPerConnection')}DestinationRule/reviews:`))).toBe(
      true,
    )
    for (const l of lines) expect(l).toMatch(/^\S+:\d+: \S+: \S+: .+; instead: .+$/)
  })

  it('reports ambiguities instead of guessing: a second VirtualService, an undefined subset, weights not 100', async () => {
    const file = fixture('istio', 'ambiguous.yaml')
    const r = await importFiles('istio', [file])
    const text = r.report.format()
    expect(text).toContain(
      `${file}:${lineOfText(file, 'details.default.svc')}: VirtualService/details-again: spec.hosts[0]: a second VirtualService for details.default.svc.cluster.local`,
    )
    expect(text).toContain(
      `${file}:${lineOfText(file, 'subset: v1')}: VirtualService/details: spec.http[0].route[0].destination.subset: subset v1 of details is defined by no DestinationRule`,
    )
    expect(text).toContain(`VirtualService/details: spec.http[0].route: weights sum to 60, not 100`)
    // The second VirtualService was not merged in: the first one's split stands.
    expect(r.config.services.details!.routes[0]!.to).toEqual({ v1: 30, v2: 30 })
  })
})
