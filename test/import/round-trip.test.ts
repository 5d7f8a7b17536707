// The round trip: a meshgate config → `export gateway-api` (HTTPRoutes) → `import gateway-api` gives an
// equivalent config. Equivalent means the same routing decisions: for every request (generated to hit
// each route, plus random ones), the engine's own route tables (compileMesh) of both configs pick a
// route with the same normalized weights, rewrite, header operations and timeout, and the gateway picks
// the same service and rewrite. Names may differ; decisions may not.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { compileMesh } from '../../proxy-core/engine/compile.ts'
import type { HeaderMap, MeshConfig, RouteMatchConfig } from '../../proxy-core/engine/types.ts'
import { exportGatewayApi, importDocuments } from '../../proxy-core/import/index.ts'
import { readDocuments } from '../../proxy-core/import/reader.ts'

type Raw = Record<string, unknown>

/** Regex paths with a request known to match each. */
const REGEX_PATHS: [string, string][] = [
  ['/r/[0-9]+', '/r/42'],
  ['/a/.*/end', '/a/x/end'],
]
const PATHS = ['/a', '/a/b', '/b', '/a/b/c', '/cart']
const HEADERS: [string, unknown, string][] = [
  ['x-a', 'v', 'v'],
  ['x-b', { prefix: 'p' }, 'p1'],
  ['x-c', { regex: 'r[a-z]*' }, 'rr'],
  ['x-d', { present: true }, 'anything'],
]

const matchArb = fc.record(
  {
    path: fc.oneof(
      fc.constantFrom(...PATHS).map((p) => ({ exact: p })),
      fc.constantFrom(...PATHS, '/').map((p) => ({ prefix: p })),
      fc.constantFrom(...REGEX_PATHS).map(([r]) => ({ regex: r })),
    ),
    method: fc.constantFrom(['GET'], ['POST'], ['GET', 'POST']),
    headers: fc
      .subarray(HEADERS, { minLength: 1, maxLength: 2 })
      .map((hs) => Object.fromEntries(hs.map(([n, m]) => [n, m]))),
    query: fc.constantFrom({ debug: '1' }, { q: { regex: 'x+' } }),
  },
  { requiredKeys: [] },
)

function serviceArb(name: string) {
  const targets = [0, 1, 2].map((i) => `${name}-t${i}`)
  const route = fc.record({
    match: matchArb,
    to: fc.oneof(
      fc.constantFrom(...targets),
      fc
        .subarray(targets, { minLength: 2 })
        .chain((ts) =>
          fc
            .tuple(...ts.map(() => fc.integer({ min: 1, max: 9 })))
            .map((ws) => Object.fromEntries(ts.map((t, i) => [t, ws[i]!]))),
        ),
    ),
    timeout: fc.constantFrom(undefined, '3s', '250ms'),
    headers: fc.constantFrom(
      undefined,
      { request: { set: { 'x-canary': '1' } } },
      { response: { remove: ['server'] } },
    ),
    rewriteKind: fc.constantFrom('none', 'path', 'prefix'),
    retries: fc.constantFrom(undefined, { attempts: 0 }),
  })
  return fc.array(route, { minLength: 1, maxLength: 6 }).map((routes) => ({
    targets: Object.fromEntries(
      targets.map((t) => [t, { http: `dns://${t}.default.svc.cluster.local:8080` }]),
    ),
    routes: routes.map((r, i) => {
      const out: Raw = { name: `r${i}`, match: r.match, to: r.to }
      if (r.timeout) out.timeout = r.timeout
      if (r.headers) out.headers = r.headers
      if (r.retries) out.retries = r.retries
      if (r.rewriteKind === 'path') out.rewrite = { path: '/z' }
      if (r.rewriteKind === 'prefix' && (r.match.path as Raw | undefined)?.prefix !== undefined)
        out.rewrite = { prefix: '/p' }
      return out
    }),
  }))
}

const meshArb = fc
  .record({
    s0: serviceArb('s0'),
    s1: serviceArb('s1'),
    gateway: fc.array(
      fc.record({
        path: fc.constantFrom(...PATHS),
        exact: fc.boolean(),
        service: fc.constantFrom('s0', 's1'),
        rewrite: fc.boolean(),
      }),
      { maxLength: 4 },
    ),
  })
  .map(({ s0, s1, gateway }) => ({
    version: 1,
    mesh: 'roundtrip',
    gateway: {
      routes: gateway.map((g, i) => ({
        name: `g${i}`,
        match: { path: g.exact ? { exact: g.path } : { prefix: g.path } },
        service: g.service,
        ...(g.rewrite && !g.exact ? { rewrite: { prefix: '/' } } : {}),
      })),
    },
    services: { s0, s1 },
  }))

/**
 * Gateway API precedence, written here on its own from the spec's words (Exact, then longest prefix;
 * regex between them as the importer documents; then method, header count, query count), to order
 * generated routes so that first-match and precedence agree.
 */
function specificity(m: Raw): number[] {
  const p = (m.path ?? {}) as Raw
  const rank = p.exact !== undefined ? 0 : p.regex !== undefined ? 1 : 2
  const len = rank === 2 ? String(p.prefix ?? '/').length : 0
  return [
    rank,
    -len,
    m.method ? 0 : 1,
    -Object.keys((m.headers ?? {}) as Raw).length,
    -Object.keys((m.query ?? {}) as Raw).length,
  ]
}
function bySpecificity(a: { match?: unknown }, b: { match?: unknown }): number {
  const x = specificity((a.match ?? {}) as Raw)
  const y = specificity((b.match ?? {}) as Raw)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!
  return 0
}

interface Req {
  method: string
  path: string
  headers: HeaderMap
}

/** A request that each route's match accepts, plus the neighbours that probe its edges. */
function requestsFor(config: MeshConfig): Req[] {
  const out: Req[] = []
  const add = (m: RouteMatchConfig) => {
    const headers: HeaderMap = {}
    for (const [n] of Object.entries(m.headers ?? {})) headers[n] = HEADERS.find(([h]) => h === n)?.[2] ?? 'v'
    let path =
      m.path?.exact ??
      (m.path?.prefix !== undefined ? `${m.path.prefix.replace(/\/$/, '')}/x` : undefined) ??
      REGEX_PATHS.find(([r]) => r === m.path?.regex)?.[1] ??
      '/anything'
    const q = Object.keys(m.query ?? {})
    if (q.includes('debug')) path += '?debug=1'
    else if (q.includes('q')) path += '?q=xx'
    for (const method of m.methods ?? ['GET']) {
      out.push({ method, path, headers })
      out.push({ method, path, headers: {} })
      out.push({ method, path: path.split('?')[0]!, headers })
    }
  }
  for (const s of Object.values(config.services)) for (const r of s.routes) add(r.match)
  for (const g of config.gateway.routes) add(g.match)
  for (const p of [...PATHS, '/', '/ab', '/r/1', '/a/q/end'])
    out.push({ method: 'GET', path: p, headers: { 'x-a': 'v', 'x-d': '1' } })
  return out
}

function normalizedTo(to: Record<string, number>): Record<string, number> {
  const total = Object.values(to).reduce((a, b) => a + b, 0)
  return Object.fromEntries(Object.entries(to).map(([t, w]) => [t, Math.round((w / total) * 1e6) / 1e6]))
}

function decisions(config: MeshConfig, reqs: Req[]): unknown[] {
  const mesh = compileMesh(structuredClone({ ...config }))
  const out: unknown[] = []
  for (const req of reqs) {
    for (const svc of mesh.services.values()) {
      const r = svc.routes.match(req.method, req.path, req.headers)
      out.push(
        r === undefined
          ? null
          : {
              to: normalizedTo(r.to),
              rewrite: r.rewrite ?? null,
              headers: r.headers,
              timeout: r.timeout,
              mirror: r.mirror ?? null,
            },
      )
    }
    const g = mesh.gateway.match(req.method, req.path, req.headers)
    out.push(g === undefined ? null : { service: g.service, rewrite: g.rewrite ?? null })
  }
  return out
}

async function roundTrip(raw: unknown) {
  const original = await loadConfigText(JSON.stringify(raw), 'generated.json')
  const exported = exportGatewayApi(original)
  const docs = readDocuments('exported.yaml', exported.yaml)
  const back = await importDocuments('gateway-api', docs, ['exported.yaml'])
  return { original, exported, back }
}

const precedenceLines = (lines: { why: string; field: string }[]) =>
  lines.filter((l) => l.why.includes('precedence'))

describe('round trip: export gateway-api, then import gateway-api', () => {
  it('routes in precedence order come back with the same decisions and no report', async () => {
    await fc.assert(
      fc.asyncProperty(meshArb, async (raw) => {
        for (const s of Object.values(raw.services)) s.routes.sort(bySpecificity)
        raw.gateway.routes.sort(bySpecificity)
        const { original, exported, back } = await roundTrip(raw)
        expect(exported.report.lines).toEqual([])
        expect(back.report.lines).toEqual([])
        const reqs = requestsFor(original)
        expect(decisions(back.config, reqs)).toEqual(decisions(original, reqs))
      }),
      { numRuns: 150 },
    )
  })

  it('routes in any order: when export reports no precedence change, the decisions are the same', async () => {
    let unchanged = 0
    await fc.assert(
      fc.asyncProperty(meshArb, async (raw) => {
        const { original, exported, back } = await roundTrip(raw)
        if (precedenceLines(exported.report.lines).length > 0) return
        unchanged++
        const reqs = requestsFor(original)
        expect(decisions(back.config, reqs)).toEqual(decisions(original, reqs))
      }),
      // A fixed seed: how many generated meshes avoid a reorder varies by seed, and the count below must
      // not flake. The first property runs on fresh seeds.
      { numRuns: 300, seed: 20261204 },
    )
    // The property must not hold vacuously.
    expect(unchanged).toBeGreaterThan(10)
  })

  it('reports the route that Gateway API precedence would try first', async () => {
    const { exported } = await roundTrip({
      version: 1,
      mesh: 'm',
      services: {
        reviews: {
          targets: {
            v1: { http: 'dns://v1.default.svc.cluster.local:80' },
            v2: { http: 'dns://v2.default.svc.cluster.local:80' },
          },
          routes: [
            { name: 'jason', match: { headers: { 'end-user': 'jason' } }, to: 'v2' },
            { name: 'api', match: { path: { prefix: '/api' } }, to: 'v1' },
          ],
        },
      },
    })
    expect(precedenceLines(exported.report.lines).map((l) => l.field)).toEqual(['routes[1]'])
  })
})
