// One X-Ray trace across Lambda and containers (issue 5, "done when" 1), and the EMF lines of the same
// invocations (3). Everything is real: serverless-offline runs the gateway and three mesh functions
// (test/fixtures/trace/functions.ts); the Lambda targets are invoked by the real client-lambda through
// serverless-offline's Invoke API; the container service is a node:http app behind a sidecar child
// process; the X-Ray daemon is a UDP socket on loopback.
//
//   client ─▶ gateway ─▶ frontend (Lambda) ─┬▶ catalog (Lambda)
//                                           └▶ orders: sidecar inbound ─▶ app ─▶ sidecar outbound ─▶ inventory (Lambda)
//
// Roots: serverless-offline writes no Lambda facade segment and (checked below, through what each
// function reports) does not set `_X_AMZN_TRACE_ID`, so the mesh in each function takes the trace from
// the event's `x-amzn-trace-id`, whose Parent is the caller's attempt subsegment. The client's span is
// then the one root of the tree. In real Lambda, each function's facade segment would sit between the
// caller's attempt and the function's subsegments; if the emulator ever sets `_X_AMZN_TRACE_ID`, its
// Parent (a facade segment the emulator does not write) is accepted as a root of that function's part.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type OrdersApp, startOrdersApp } from '../fixtures/trace/orders-app.ts'
import { startXRayDaemon, type XRayDaemon, type XRayDocument } from '../fixtures/trace/xray-daemon.ts'
import { validateEmf } from '../helpers/emf-spec.ts'
import { type OfflineService, prepareOffline } from '../helpers/serverless-offline.ts'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { ROOT } from '../lambda/service-dir.ts'

function hex(n: number): string {
  let out = ''
  for (let i = 0; i < n; i++) out += Math.floor(Math.random() * 16).toString(16)
  return out
}

function newRoot(): string {
  return `1-${Math.floor(Date.now() / 1000).toString(16)}-${hex(24)}`
}

/** The parts of `X-Amzn-Trace-Id`, keys lower-cased. */
function traceParts(value: string | null): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of (value ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0) out[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim()
  }
  return out
}

function meshConfig(ordersUrl: string): object {
  // No local sampling: every document below exists because the client's Sampled=1 travelled with it.
  // No retries: one attempt per call, so the tree's size is exact.
  return {
    version: 1,
    mesh: 'trace',
    defaults: { timeout: '25s', retries: { attempts: 0 } },
    tracing: { sampling: { reservoirPerSecond: 0, rate: 0 } },
    gateway: { routes: [{ name: 'shop', match: { path: { prefix: '/shop' } }, service: 'frontend' }] },
    services: {
      frontend: {
        targets: { fn: { lambda: 'trace-frontend' } },
        routes: [{ name: 'default', match: { path: { prefix: '/' } }, to: 'fn' }],
      },
      catalog: {
        targets: { fn: { lambda: 'trace-catalog' } },
        routes: [{ name: 'default', match: { path: { prefix: '/' } }, to: 'fn' }],
      },
      orders: {
        targets: { container: { http: ordersUrl } },
        routes: [{ name: 'default', match: { path: { prefix: '/' } }, to: 'container' }],
      },
      inventory: {
        targets: { fn: { lambda: 'trace-inventory' } },
        routes: [{ name: 'default', match: { path: { prefix: '/' } }, to: 'fn' }],
      },
    },
  }
}

let daemon: XRayDaemon
let app: OrdersApp
let sidecar: SidecarProcess | undefined
let files: ReturnType<typeof meshDir>
let offline: OfflineService | undefined
let api: string

beforeAll(async () => {
  daemon = await startXRayDaemon()
  app = await startOrdersApp()
  files = meshDir()
  offline = await prepareOffline(readFileSync(join(ROOT, 'test/fixtures/trace/serverless.trace.yml'), 'utf8'))
  api = offline.api

  // The container service: its sidecar passes inbound traffic to the app and sends the app's calls on.
  sidecar = await startSidecarProcess({
    configPath: files.write('mesh.json', meshConfig(app.url)),
    service: 'orders',
    app: app.url,
    drain: '1s',
    env: {
      MESHGATE_XRAY: 'on',
      AWS_XRAY_DAEMON_ADDRESS: daemon.address,
      MESHGATE_LAMBDA_ENDPOINT: `http://127.0.0.1:${offline.lambdaPort}`,
      AWS_REGION: 'us-east-1',
    },
  })
  app.useSidecar(sidecar.outbound)

  // The Lambda side: the gateway's and frontend's `orders` target is the sidecar's inbound listener.
  writeFileSync(join(offline.service.dir, 'trace-mesh.json'), JSON.stringify(meshConfig(sidecar.inbound!)))
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    // The functions must see only what this test sets: no trace id or daemon from the machine.
    if (!k.startsWith('AWS_') && k !== '_X_AMZN_TRACE_ID') env[k] = v
  }
  await offline.start({
    ...env,
    TRACE_HTTP_PORT: String(offline.httpPort),
    TRACE_LAMBDA_PORT: String(offline.lambdaPort),
    TRACE_XRAY_ADDRESS: daemon.address,
  })
}, 120_000)

afterAll(async () => {
  await offline?.stop()
  await sidecar?.stop()
  await app?.close()
  await daemon?.close()
  files?.remove()
}, 30_000)

interface ShopReply {
  status: number
  body: {
    frontend: { lambdaTraceEnv: string | null; traceHeader: string | null }
    catalog: { lambdaTraceEnv: string | null; traceHeader: string | null }
    orders: {
      traceHeader: string | null
      inventory: { lambdaTraceEnv: string | null; traceHeader: string | null }
    }
  }
}

async function shop(traceHeader: string): Promise<ShopReply> {
  const res = await fetch(`${api}/shop/cart`, {
    headers: { 'x-amzn-trace-id': traceHeader },
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  expect(res.status, text).toBe(200)
  return { status: res.status, body: JSON.parse(text) }
}

/** The documents of one trace, waited for until `n` have come, then for a settle period for extras. */
async function collect(traceId: string, n: number): Promise<XRayDocument[]> {
  await daemon.waitFor(traceId, n, 15_000)
  await new Promise((r) => setTimeout(r, 750))
  return daemon.documents().filter((d) => d.trace_id === traceId)
}

/** Every document reachable from a root through parent ids, with no cycles and no strangers. */
function checkTree(docs: XRayDocument[], roots: Set<string>): void {
  const byId = new Map<string, XRayDocument>()
  for (const d of docs) {
    expect(byId.has(d.id), `duplicate id ${d.id}`).toBe(false)
    expect(d.id).toMatch(/^[0-9a-f]{16}$/)
    byId.set(d.id, d)
  }
  for (const d of docs) {
    expect(d.parent_id, `${d.name} ${d.id} has no parent`).toBeTypeOf('string')
    const known = roots.has(d.parent_id!) || byId.has(d.parent_id!)
    expect(known, `orphan: ${d.name} ${d.id} → parent ${d.parent_id}`).toBe(true)
    // Walk up: must end at a root within docs.length steps (no cycle).
    let at: XRayDocument | undefined = d
    let steps = 0
    while (at !== undefined && !roots.has(at.parent_id!)) {
      at = byId.get(at.parent_id!)
      steps++
      expect(steps).toBeLessThanOrEqual(docs.length)
    }
    expect(at, `${d.name} ${d.id} does not reach a root`).toBeDefined()
  }
}

function one(docs: XRayDocument[], what: string, pick: (d: XRayDocument) => boolean): XRayDocument {
  const found = docs.filter(pick)
  expect(found.length, `${what}: ${JSON.stringify(docs, null, 1)}`).toBe(1)
  return found[0]!
}

function isAttempt(d: XRayDocument, service: string): boolean {
  return d.type === 'subsegment' && d.namespace === 'remote' && d.annotations?.service === service
}

describe('one trace across the gateway, Lambda functions and a container service', () => {
  it('sends every segment with the same trace id, in one tree rooted at the client span', async () => {
    const root = newRoot()
    const clientSpan = hex(16)
    const reply = await shop(`Root=${root};Parent=${clientSpan};Sampled=1`)
    const docs = await collect(root, 5)
    expect(daemon.malformed()).toEqual([])

    // Which ids are roots: the client span, plus any Lambda facade the emulator announced.
    const roots = new Set([clientSpan])
    const envs = [
      reply.body.frontend.lambdaTraceEnv,
      reply.body.catalog.lambdaTraceEnv,
      reply.body.orders.inventory.lambdaTraceEnv,
    ]
    for (const env of envs) {
      if (env === null) continue
      const parts = traceParts(env)
      expect(parts.root, 'the emulator started another trace').toBe(root)
      if (parts.parent) roots.add(parts.parent)
    }
    // serverless-offline 14 sets no _X_AMZN_TRACE_ID, so the parent links asserted below go straight
    // from a caller's attempt to the callee's subsegments. An emulator that sets it (with a facade
    // Parent, as Lambda does) would fail here first, and the links below would need that facade.
    expect(envs, 'the emulator now sets _X_AMZN_TRACE_ID: expect facade parents').toEqual([null, null, null])

    for (const d of docs) expect(d.trace_id).toBe(root)
    checkTree(docs, roots)

    // The expected parts, and how they hang together.
    const gateway = one(docs, 'gateway attempt to frontend', (d) => isAttempt(d, 'frontend'))
    expect(gateway.parent_id).toBe(clientSpan)
    expect(gateway.annotations).toMatchObject({ mesh: 'trace', route: 'default', target: 'fn', attempt: 1 })
    expect(gateway.http?.response?.status).toBe(200)

    const catalog = one(docs, 'frontend attempt to catalog', (d) => isAttempt(d, 'catalog'))
    const orders = one(docs, 'frontend attempt to orders', (d) => isAttempt(d, 'orders'))
    expect(catalog.parent_id).toBe(gateway.id)
    expect(orders.parent_id).toBe(gateway.id)
    expect(orders.annotations?.target).toBe('container')

    const inbound = one(docs, "the sidecar's inbound segment", (d) => d.type === undefined)
    expect(inbound).toMatchObject({ name: 'orders', origin: 'AWS::ECS::Container', parent_id: orders.id })
    expect(inbound.annotations).toMatchObject({ mesh: 'trace', service: 'orders', route: 'inbound' })
    expect(inbound.http?.response?.status).toBe(200)

    const inventory = one(docs, "the sidecar's outbound attempt to inventory", (d) =>
      isAttempt(d, 'inventory'),
    )
    expect(inventory.parent_id).toBe(inbound.id)
    expect(inventory.http?.response?.status).toBe(200)

    expect(docs).toHaveLength(5)
    for (const d of docs) {
      expect(d.end_time).toBeGreaterThanOrEqual(d.start_time)
      expect(d.fault).toBeUndefined()
    }

    // What each hop was told: the Parent it received is the document that called it.
    expect(traceParts(reply.body.frontend.traceHeader)).toMatchObject({
      root,
      parent: gateway.id,
      sampled: '1',
    })
    expect(traceParts(reply.body.catalog.traceHeader)).toMatchObject({ root, parent: catalog.id })
    expect(traceParts(reply.body.orders.traceHeader)).toMatchObject({ root, parent: inbound.id })
    expect(traceParts(reply.body.orders.inventory.traceHeader)).toMatchObject({ root, parent: inventory.id })
  }, 60_000)

  it('emits nothing at all for a request with Sampled=0', async () => {
    const unsampled = newRoot()
    const reply = await shop(`Root=${unsampled};Parent=${hex(16)};Sampled=0`)
    // The decision went all the way down the chain.
    expect(traceParts(reply.body.orders.inventory.traceHeader)).toMatchObject({
      root: unsampled,
      sampled: '0',
    })
    // A sampled request after it is the barrier: once its five documents (sent by the same processes,
    // over the same sockets) are in, and a settle period has passed, the unsampled one had its chance.
    const barrier = newRoot()
    await shop(`Root=${barrier};Parent=${hex(16)};Sampled=1`)
    await collect(barrier, 5)
    expect(daemon.documents().filter((d) => d.trace_id === unsampled)).toEqual([])
  }, 60_000)
})

// ---------------------------------------------------------------------------------------------
// EMF: the functions' stdout lines, as serverless-offline passed them through.

interface EmfLine {
  namespace: string
  doc: Record<string, unknown>
}

/** EMF lines in serverless-offline's output, in order. Each function has its own namespace. */
function emfLines(): EmfLine[] {
  const out: EmfLine[] = []
  for (const line of offline!.output().split('\n')) {
    if (!line.startsWith('{"_aws"')) continue
    const doc = validateEmf(line)
    const directives = (doc._aws as { CloudWatchMetrics: { Namespace: string }[] }).CloudWatchMetrics
    out.push({ namespace: directives[0]!.Namespace, doc })
  }
  return out
}

async function waitForEmf(pick: (l: EmfLine) => boolean, n: number): Promise<EmfLine[]> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const found = emfLines().filter(pick)
    if (found.length >= n) return found
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`fewer than ${n} EMF lines; output:\n${offline!.output().slice(-4000)}`)
}

describe('EMF from the functions under serverless-offline', () => {
  it('writes spec-shaped lines, with ColdStart on the first invocation of each function only', async () => {
    // Whatever ran before (the ready probe, the trace tests), two more invocations of each function.
    await shop(`Root=${newRoot()};Parent=${hex(16)};Sampled=0`)
    await shop(`Root=${newRoot()};Parent=${hex(16)};Sampled=0`)
    // frontend: one line per series it touched (catalog, orders) for each of ≥ 3 invocations.
    await waitForEmf((l) => l.namespace === 'trace-frontend', 6)
    const lines = emfLines()

    for (const ns of ['trace-gateway', 'trace-frontend', 'trace-catalog', 'trace-inventory']) {
      const mine = lines.filter((l) => l.namespace === ns)
      expect(mine.length, ns).toBeGreaterThan(0)
      // The first line of the sandbox's first invocation carries ColdStart: 1 in its own directive...
      expect(mine[0]!.doc.ColdStart, ns).toBe(1)
      const directives = (mine[0]!.doc._aws as { CloudWatchMetrics: { Metrics: { Name: string }[] }[] })
        .CloudWatchMetrics
      expect(directives.some((d) => d.Metrics.some((m) => m.Name === 'ColdStart'))).toBe(true)
      // ...and no later line does (serverless-offline keeps one worker per function between calls).
      for (const later of mine.slice(1)) expect(later.doc.ColdStart, ns).toBeUndefined()
    }

    // Leaves make no mesh calls: only the cold-start line, never an empty line afterwards.
    expect(lines.filter((l) => l.namespace === 'trace-catalog')).toHaveLength(1)
    expect(lines.filter((l) => l.namespace === 'trace-inventory')).toHaveLength(1)

    // The gateway's series: frontend / default / fn, one request per invocation.
    const gateway = lines.filter((l) => l.namespace === 'trace-gateway' && l.doc.Service === 'frontend')
    expect(gateway.length).toBeGreaterThanOrEqual(3)
    for (const l of gateway) {
      expect(l.doc).toMatchObject({
        Mesh: 'trace',
        Route: 'default',
        Target: 'fn',
        Requests: 1,
        Responses2xx: 1,
        Responses5xx: 0,
      })
      const latency = l.doc.Latency as number[]
      expect(latency).toHaveLength(1)
      expect(latency[0]).toBeGreaterThanOrEqual(0)
    }

    // frontend: two series per invocation (one value per dimension per document), written together,
    // so each invocation's pair shares its Timestamp.
    const frontend = lines.filter((l) => l.namespace === 'trace-frontend')
    const byInvocation = new Map<number, string[]>()
    for (const l of frontend) {
      const ts = (l.doc._aws as { Timestamp: number }).Timestamp
      byInvocation.set(ts, [...(byInvocation.get(ts) ?? []), String(l.doc.Service)])
    }
    for (const services of byInvocation.values()) expect(services.sort()).toEqual(['catalog', 'orders'])
  }, 60_000)
})
