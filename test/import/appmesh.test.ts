// App Mesh → meshgate, from its three spellings (CloudFormation, the controller's Kubernetes resources,
// the API's JSON), each translated and routed by a real sidecar the way App Mesh documents it: routes by
// priority, header and query matches, relative weights, retry policies and the gateway's routes.
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

const CFN = fixture('appmesh', 'color-cfn.yaml')
const K8S = fixture('appmesh', 'colorapp-k8s.yaml')
const API = [
  'virtual-service.json',
  'virtual-router.json',
  'virtual-nodes.json',
  'route-headers.json',
  'route-weighted.json',
].map((f) => fixture('appmesh', 'api', f))

const imports: Record<string, ImportResult> = {}
const meshes: Record<string, RunningMesh> = {}

beforeAll(async () => {
  imports.cfn = await importFiles('appmesh', [CFN])
  imports.k8s = await importFiles('appmesh', [K8S])
  imports.api = await importFiles('appmesh', API)
  // One sidecar serves all three: their service names differ (color, colorteller) but two are `color`.
  meshes.cfn = await runTranslated(imports.cfn.yaml)
  meshes.k8s = await runTranslated(imports.k8s.yaml)
  meshes.api = await runTranslated(imports.api.yaml)
})
afterAll(async () => {
  await Promise.all(Object.values(meshes).map((m) => m.close()))
})

const tables: Record<string, ConformanceRow[]> = {
  cfn: [
    {
      why: 'priority 1: header prefix redorgreen → red',
      service: 'color',
      path: '/',
      headers: { color_header: 'redorgreen-1' },
      expect: 'color/red-node',
    },
    {
      why: 'priority 2: exact green → green (priority 1 does not match)',
      service: 'color',
      path: '/',
      headers: { color_header: 'green' },
      expect: 'color/green-node',
    },
    {
      why: 'priority 10: POST /tea… splits 3:1 red/blue',
      service: 'color',
      method: 'POST',
      path: '/tea/cup',
      expect: { weights: { 'color/red-node': 3, 'color/blue-node': 1 } },
    },
    {
      why: 'App Mesh prefixes are character prefixes: POST /teapot matches /tea',
      service: 'color',
      method: 'POST',
      path: '/teapot',
      expect: { weights: { 'color/red-node': 3, 'color/blue-node': 1 } },
    },
    {
      why: 'method match: GET /tea falls through to priority 1000 → blue',
      service: 'color',
      path: '/tea/cup',
      expect: 'color/blue-node',
    },
    { why: 'no header: priority 1000 → blue', service: 'color', path: '/x', expect: 'color/blue-node' },
  ],
  k8s: [
    {
      why: 'priority 1: /paths?color=red → red',
      service: 'color',
      path: '/paths?color=red',
      expect: 'color/red',
    },
    {
      why: 'priority 10: everything else 1:1 blue/red',
      service: 'color',
      path: '/paths?color=blue',
      expect: { weights: { 'color/blue': 1, 'color/red': 1 } },
    },
  ],
  api: [
    {
      why: 'priority 1: header suffix black → black',
      service: 'colorteller',
      path: '/',
      headers: { color_header: 'jet-black' },
      expect: 'colorteller/colorteller-black',
    },
    {
      why: 'priority 2: 9:1 white/black',
      service: 'colorteller',
      path: '/',
      expect: { weights: { 'colorteller/colorteller-white': 9, 'colorteller/colorteller-black': 1 } },
    },
  ],
}

describe('appmesh import, routed by the sidecar', () => {
  for (const [source, rows] of Object.entries(tables)) {
    for (const row of rows) {
      it(`${source}: ${row.why}`, async () => {
        expect(await checkRow(meshes[source]!, row)).toBeNull()
      })
    }
  }

  it('retries a 503 as the route policy says (server-error), up to maxRetries', async () => {
    const m = meshes.k8s!
    const blue = m.upstreams.get('color/blue')!
    const red = m.upstreams.get('color/red')!
    blue.set({ failRate: 1, failStatus: 503 })
    red.set({ failRate: 1, failStatus: 503 })
    blue.reset()
    red.reset()
    const r = await m.request('color', { path: '/x' })
    blue.set({})
    red.set({})
    expect(r.status).toBe(503)
    // maxRetries 4: five tries in all, over both targets' endpoints.
    expect(blue.count() + red.count()).toBe(5)
  })
})

describe('appmesh gateway routes', () => {
  it('rewrites the matched prefix to / by default, and to the given value when set; priority first', () => {
    const gw = compileMesh(imports.k8s!.config).gateway
    const a = gw.match('GET', '/test/x', {})!
    expect(a.service).toBe('color')
    expect(rewritePath('/test/x?q=1', a.match.path?.prefix, a.rewrite!)).toBe('/red/x?q=1')
    const b = gw.match('GET', '/color/paths', {})!
    expect(b.name).toBe('color-prefix')
    expect(rewritePath('/color/paths', b.match.path?.prefix, b.rewrite!)).toBe('/paths')
    expect(gw.match('GET', '/other', {})).toBeUndefined()
  })
})

describe('appmesh import, what it wrote', () => {
  it('turns service discovery into addresses: DNS (LOADBALANCER one origin, ENDPOINTS every record), Cloud Map DNS names', () => {
    const t = imports.cfn!.config.services.color!.targets
    expect(t['red-node']).toMatchObject({
      kind: 'http',
      endpoints: ['http://red.howto-http-headers.local:8080'],
    })
    expect(t['blue-node']).toMatchObject({
      kind: 'http',
      dns: { host: 'blue.howto-http-headers.local', port: 8080 },
    })
    expect(t['green-node']).toMatchObject({
      kind: 'http',
      dns: { host: 'color.howto-http-headers.local', port: 8080 },
    })
  })

  it('keeps retry policies, timeouts, outlier detection and connection limits; App Mesh defaults elsewhere', () => {
    const svc = imports.cfn!.config.services.color!
    const retry = svc.routes.find((r) => r.name === 'color-route-retry')!
    expect(retry.timeout).toBe(5000)
    expect(retry.retries).toMatchObject({
      attempts: 4,
      perTryTimeout: 2000,
      on: ['5xx', 'reset', 'connect-failure'],
    })
    const def = svc.routes.find((r) => r.name === 'color-route-default')!
    expect(def.timeout).toBe(15_000)
    expect(def.retries).toMatchObject({ attempts: 2, on: ['connect-failure', 'reset', '503'] })
    expect(def.retries.methods).toContain('POST')
    expect(svc.outlierDetection).toMatchObject({
      consecutive5xx: 3,
      interval: 10_000,
      baseEjectionTime: 30_000,
      maxEjectionPercent: 50,
    })
    expect(svc.circuitBreaker).toMatchObject({ maxConnections: 50, maxPendingRequests: 20 })
    expect(imports.cfn!.config.mesh).toBe('howto-http-headers')
  })

  it('orders routes by priority, not by file order', () => {
    expect(imports.cfn!.config.services.color!.routes.map((r) => r.name)).toEqual([
      'color-route-red',
      'color-route-green',
      'color-route-retry',
      'color-route-default',
    ])
  })

  it('reports gRPC routes, range matches, Cloud Map attributes, health checks and client policies at their lines', () => {
    const cfn = imports.cfn!.report.format().split('\n')
    const at = (file: string, text: string, after = 0) => `${file}:${lineOfText(file, text, after)}: `
    expect(
      cfn.some((l) =>
        l.startsWith(`${at(CFN, 'GrpcRoute:')}AWS::AppMesh::Route/RouteGrpc: spec.grpcRoute: gRPC routes`),
      ),
    ).toBe(true)
    expect(
      cfn.some((l) =>
        l.startsWith(
          `${at(CFN, 'Range: {')}AWS::AppMesh::Route/RouteBlueRange: spec.httpRoute.match.headers[0].match.range:`,
        ),
      ),
    ).toBe(true)
    expect(
      cfn.some((l) =>
        l.startsWith(
          `${at(CFN, 'Attributes:')}AWS::AppMesh::VirtualNode/GreenNode: spec.serviceDiscovery.awsCloudMap.attributes:`,
        ),
      ),
    ).toBe(true)
    expect(
      cfn.some((l) =>
        l.startsWith(
          `${at(CFN, 'HealthCheck:')}AWS::AppMesh::VirtualNode/RedNode: spec.listeners[0].healthCheck:`,
        ),
      ),
    ).toBe(true)
    const api = imports.api!.report.format()
    const nodes = API[2]!
    expect(api).toContain(
      `${at(nodes, 'backendDefaults')}VirtualNode/colorteller-black: spec.backendDefaults:`,
    )
    for (const l of [...cfn, ...api.split('\n')]) expect(l).toMatch(/^\S+:\d+: \S+: \S+: .+; instead: .+$/)
  })
})

describe('appmesh Bookinfo on EKS (docs/migrate.md)', () => {
  it('translates with an empty report and routes jason to v2, others 97/3', async () => {
    const r = await importFiles('appmesh', [fixture('appmesh', 'bookinfo-eks.yaml')])
    expect(r.report.lines).toEqual([])
    const mesh = compileMesh(r.config)
    const reviews = mesh.services.get('reviews')!.routes
    expect(reviews.match('GET', '/reviews/0', { 'end-user': 'jason' })?.to).toEqual({ 'reviews-v2': 100 })
    expect(reviews.match('GET', '/reviews/0', {})?.to).toEqual({ 'reviews-v1': 97, 'reviews-v3': 3 })
    expect(mesh.gateway.match('GET', '/productpage', {})?.service).toBe('productpage')
  })
})
