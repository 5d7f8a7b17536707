// A multi-host mesh in network namespaces: three "pods" (productpage → reviews → ratings), each its own
// network namespace with an app and its sidecar on the real default ports, joined by veth links to a
// bridge in a fourth namespace, on 10.79.0.0/24 (an address range that exists only inside these
// namespaces). Each app calls the next service through its own pod's outbound sidecar; that sidecar
// routes across the link to the next pod's inbound sidecar, which passes the call to its app.
// Needs root for `ip netns`; without it the test fails and says so.

import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir } from '../helpers/sidecar-process.ts'
import type { Netns, NetnsProcess } from '../infra/netns.ts'
import { createNetns, httpGetInNetns, removeStaleNetns, vethLink } from '../infra/netns.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const CLI = join(ROOT, 'bin', 'meshgate.js')
const POD_APP = join(ROOT, 'test', 'infra', 'pod-app.ts')
const APP = '127.0.0.1:8080'
const OUTBOUND = '127.0.0.1:15001'
const ADMIN = '127.0.0.1:15000'
const INBOUND_PORT = 15006

interface Pod {
  service: string
  ip: string
  ns: Netns
  app: NetnsProcess
  sidecar: NetnsProcess
}

const pods = [
  { service: 'productpage', ip: '10.79.0.11', next: 'reviews' },
  { service: 'reviews', ip: '10.79.0.12', next: 'ratings' },
  { service: 'ratings', ip: '10.79.0.13', next: undefined },
] as const

const files = meshDir()
const namespaces: Netns[] = []
const running: Pod[] = []

/** A clean environment: no AWS settings of this machine, no telemetry leaving the namespace. */
function env(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, MESHGATE_XRAY: 'off', MESHGATE_CLOUDWATCH: 'off' }
}

interface AppAnswer {
  app: string
  url: string
  headers: Record<string, string>
  downstream?: { status: number; body: AppAnswer }
}

function get(ns: Netns, url: string, host: string) {
  return httpGetInNetns(ns.name, url, { host, env: env() })
}

beforeAll(async () => {
  removeStaleNetns()
  const config = {
    version: 1,
    mesh: 'netns',
    services: Object.fromEntries(
      pods.map((p) => [
        p.service,
        {
          targets: { v1: { http: `http://${p.ip}:${INBOUND_PORT}` } },
          routes: [{ name: 'default', to: 'v1', timeout: '10s' }],
        },
      ]),
    ),
  }
  const configPath = files.write('mesh.json', config)

  const bridge = createNetns('br')
  namespaces.push(bridge)
  bridge.ip(['link', 'add', 'br0', 'type', 'bridge'])
  bridge.ip(['link', 'set', 'br0', 'up'])
  for (const [i, p] of pods.entries()) {
    const ns = createNetns(p.service)
    namespaces.push(ns)
    vethLink(ns, 'eth0', `${p.ip}/24`, bridge, `port${i}`, undefined)
    bridge.ip(['link', 'set', `port${i}`, 'master', 'br0'])
  }
  await Promise.all(
    pods.map(async (p, i) => {
      const ns = namespaces[i + 1]!
      const appArgs =
        p.next === undefined ? [POD_APP, p.service, APP] : [POD_APP, p.service, APP, p.next, OUTBOUND]
      const app = ns.node(appArgs, env())
      await app.waitForLine(/"event":"listening"/)
      // The sidecar on its defaults (each pod has its own network): outbound 127.0.0.1:15001,
      // inbound 0.0.0.0:15006, admin 127.0.0.1:15000.
      const sidecar = ns.node(
        [CLI, 'sidecar', '--config', configPath, '--service', p.service, '--app', `http://${APP}`],
        env(),
      )
      await sidecar.waitForLine(/"event":"listening"/, 20_000)
      running.push({ service: p.service, ip: p.ip, ns, app, sidecar })
    }),
  )
}, 40_000)

afterAll(async () => {
  await Promise.all(running.flatMap((p) => [p.sidecar.stop(5000), p.app.stop(2000)]))
  for (const ns of namespaces) ns.remove()
  files.remove()
})

const pod = (service: string) => running.find((p) => p.service === service)!

describe('a mesh across network namespaces', () => {
  it("routes productpage's call through both sidecars of each hop, across the links", async () => {
    const a = pod('productpage')
    // The client is inside pod A, calling its own app, which calls reviews through A's sidecar.
    const r = await get(a.ns, `http://${APP}/reviews/0`, 'productpage')
    expect(r.status).toBe(200)
    const top = JSON.parse(r.body!) as AppAnswer
    expect(top.app).toBe('productpage')

    const reviews = top.downstream!
    expect(reviews.status).toBe(200)
    expect(reviews.body.app).toBe('reviews')
    expect(reviews.body.url).toBe('/reviews/0')
    // B's app got the call from its inbound sidecar, which saw A's sidecar connect from A's address
    // (the last hop of x-forwarded-for; A's outbound sidecar added the app's loopback address before it).
    const lastHop = (xff: string | undefined) => xff?.split(',').at(-1)?.trim()
    expect(lastHop(reviews.body.headers['x-forwarded-for'])).toBe(pod('productpage').ip)
    const trace = reviews.body.headers['x-amzn-trace-id']
    expect(trace).toMatch(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]$/)
    expect(reviews.body.headers['x-request-id']).toBeTruthy()

    const ratings = reviews.body.downstream!
    expect(ratings.status).toBe(200)
    expect(ratings.body.app).toBe('ratings')
    expect(lastHop(ratings.body.headers['x-forwarded-for'])).toBe(pod('reviews').ip)
    // One trace across the hops: reviews passed its trace header on, and the Root survived both sidecars.
    const root = (t: string) => /Root=([^;]+)/.exec(t)?.[1]
    expect(root(ratings.body.headers['x-amzn-trace-id']!)).toBe(root(trace!))
  })

  it("counts the call in B's inbound metrics", async () => {
    const b = pod('reviews')
    const metrics = await get(b.ns, `http://${ADMIN}/metrics`, 'localhost')
    expect(metrics.status).toBe(200)
    expect(metrics.body).toMatch(
      /meshgate_requests_total\{[^}]*service="reviews",route="inbound"[^}]*code_class="2xx"\} [1-9]/,
    )
  })

  it('keeps each app behind its sidecar: only the inbound port is reachable from another pod', async () => {
    const a = pod('productpage')
    const b = pod('reviews')
    const direct = await get(a.ns, `http://${b.ip}:8080/`, 'reviews')
    expect(direct.error).toBe('ECONNREFUSED')
    const outbound = await get(a.ns, `http://${b.ip}:15001/`, 'reviews')
    expect(outbound.error).toBe('ECONNREFUSED')
    const inbound = await get(a.ns, `http://${b.ip}:${INBOUND_PORT}/direct`, 'reviews')
    expect(inbound.status).toBe(200)
    expect((JSON.parse(inbound.body!) as AppAnswer).app).toBe('reviews')
  })

  it("refuses a host outside the mesh on A's outbound listener", async () => {
    const a = pod('productpage')
    const r = await get(a.ns, `http://${OUTBOUND}/`, `${pod('ratings').ip}:8080`)
    expect(r.status).toBe(404)
    expect(r.headers?.['x-meshgate-error']).toBe('unknown_service')
  })
})
