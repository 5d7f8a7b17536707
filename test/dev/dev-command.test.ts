// `meshgate dev` end to end: the real CLI as a child process, the Bookinfo mesh through its gateway,
// the dashboard's JSON, and a clean stop on SIGINT with nothing left of its process group.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DevProcess, eventually, startDev } from './dev-process.ts'

interface RouteState {
  name: string
  to: Record<string, number>
  observed: Record<string, number>
  observedTotal: number
}
interface State {
  mesh: string
  services: { name: string; runtime: string; routes: RouteState[] }[]
  edges: { from: string; to: string; rps: number; requests: number }[]
  traces: { spans: unknown[] }[]
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers })
  return { status: res.status, text: await res.text() }
}

describe('meshgate dev', () => {
  let dev: DevProcess

  beforeAll(async () => {
    dev = await startDev(['--port', '0', '--dashboard', '0', '--traffic-rate', '40'])
  }, 40_000)

  afterAll(async () => {
    await dev?.stop()
  })

  it('serves the Bookinfo product page through the gateway', async () => {
    const page = await eventually(
      async () => {
        const r = await get(`${dev.gateway}/productpage`)
        return r.status === 200 && r.text.includes('data-reviews-version') ? r : undefined
      },
      20_000,
      'a full product page',
    )
    expect(page.text).toContain('The Comedy of Errors')
    expect(page.text).toContain('served by details-lambda')
    expect(page.text).toContain('productpage served by productpage (container)')
  })

  it('sends end-user jason to reviews v2: black stars', async () => {
    // ratings has a 5 s delay on 10% of its requests: a try may time out, so ask until a page is whole.
    const page = await eventually(
      async () => {
        const r = await get(`${dev.gateway}/productpage`, { 'end-user': 'jason' })
        return r.status === 200 && r.text.includes('stars-') ? r : undefined
      },
      30_000,
      "jason's product page with stars",
    )
    expect(page.text).toContain('signed in as jason')
    expect(page.text).toContain('data-reviews-version="v2"')
    expect(page.text).toContain('stars stars-black')
    expect(page.text).not.toContain('stars-red')
  })

  it("reports the canary's observed split on the dashboard's JSON endpoint", async () => {
    const canary = await eventually(
      async () => {
        const res = await fetch(`${dev.dashboard}/api/state`)
        const state = (await res.json()) as State
        const route = state.services
          .find((s) => s.name === 'reviews')
          ?.routes.find((r) => r.name === 'canary')
        return route && route.observedTotal >= 600 ? { state, route } : undefined
      },
      60_000,
      '600 generated requests on reviews/canary',
    )
    expect(canary.route.to).toEqual({ v1: 97, v3: 3 })
    const v1 = canary.route.observed.v1 ?? 0
    const v3 = canary.route.observed.v3 ?? 0
    expect(v1 + v3).toBe(canary.route.observedTotal)
    // 3% configured: over ≥600 requests the share of v3 is 3% ± 0.7 (one standard deviation), so
    // 1–6% holds unless the split is wrong.
    expect(v3 / canary.route.observedTotal).toBeGreaterThan(0.01)
    expect(v3 / canary.route.observedTotal).toBeLessThan(0.06)
    const edges = canary.state.edges.map((e) => `${e.from}->${e.to}`)
    expect(edges).toEqual(
      expect.arrayContaining(['gateway->productpage', 'productpage->reviews', 'productpage->details']),
    )
    expect(canary.state.traces.length).toBeGreaterThan(0)
  }, 70_000)

  it('stops everything on SIGINT, leaving no process behind', async () => {
    expect(dev.survivors()).toContain(dev.pid)
    dev.signal('SIGINT')
    const exit = await dev.exited
    expect(exit.code).toBe(0)
    expect(dev.output()).toContain('stopped')
    expect(dev.survivors()).toEqual([])
  }, 20_000)
})
