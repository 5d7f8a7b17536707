// Route lookup throughput: meshgate's route table against find-my-way (Fastify's radix-tree router) on
// the same paths, in the same process. Run with `node bench/routing.ts` (Node 24 strips the types).
//
// The tables are shaped like a large mesh gateway: one route family per service, mostly segment
// prefixes (`/svc123/items`), some exact paths, a few header-matched canary routes and a few regexes.
// find-my-way gets each prefix as `/p` plus `/p/*`, and regexes as a regex parameter. It has no
// header matching without a custom constraint strategy, so header routes are plain prefixes there:
// meshgate does strictly more work per lookup on those.

import FindMyWay from 'find-my-way'
import { createRouteTable } from '../proxy-core/engine/route-table.ts'
import type { HeaderMap, RouteMatchConfig } from '../proxy-core/engine/types.ts'

interface BenchRoute {
  name: string
  match: RouteMatchConfig
}
interface BenchRequest {
  path: string
  headers: HeaderMap
}

const sizes = [10, 1_000, 10_000]
/** Distinct requests per table; cycled through in every round. */
const requestCount = 4_096
const rounds = 7
/** Each round runs this long (ms); with 2 routers × 3 sizes × (rounds + warm-up) the run stays near 15 s. */
const roundMs = 300

/** mulberry32, so every run measures the same request mix. */
function seeded(seed: number): () => number {
  let s = seed | 0
  return () => {
    s = (s + 0x6d2b79f5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Route kinds by position: 85% prefix, 10% exact, 2.5% header canary, 2.5% regex. */
function kindOf(i: number): 'prefix' | 'exact' | 'header' | 'regex' {
  const slot = i % 40
  if (slot === 7) return 'header'
  if (slot === 23) return 'regex'
  if (slot % 10 === 3) return 'exact'
  return 'prefix'
}

function buildRoutes(n: number): BenchRoute[] {
  const routes: BenchRoute[] = []
  for (let i = 0; i < n; i++) {
    const kind = kindOf(i)
    const name = `r${i}`
    if (kind === 'prefix') routes.push({ name, match: { path: { prefix: `/svc${i}/items` } } })
    else if (kind === 'exact') routes.push({ name, match: { path: { exact: `/svc${i}/health` } } })
    else if (kind === 'regex') routes.push({ name, match: { path: { regex: `/svc${i}/orders/[0-9]+` } } })
    else {
      routes.push({
        name,
        match: { path: { prefix: `/svc${i}` }, headers: { 'end-user': { exact: 'jason' } } },
      })
    }
  }
  return routes
}

/** Requests that hit routes spread over the whole table, with about one in ten missing. */
function buildRequests(n: number): BenchRequest[] {
  const random = seeded(n)
  const out: BenchRequest[] = []
  for (let k = 0; k < requestCount; k++) {
    const i = Math.floor(random() * n)
    const id = Math.floor(random() * 100_000)
    const miss = random() < 0.1
    const kind = kindOf(i)
    if (miss) {
      // Not under a header route's prefix: find-my-way, blind to headers, would count that as a hit.
      const near = k % 2 === 1 && kind !== 'header'
      out.push({ path: near ? `/svc${i}/itemsx/${id}` : `/nosuch${id}/items`, headers: {} })
    } else if (kind === 'prefix') {
      out.push({ path: k % 3 === 0 ? `/svc${i}/items?page=${id}` : `/svc${i}/items/${id}`, headers: {} })
    } else if (kind === 'exact') {
      out.push({ path: `/svc${i}/health`, headers: {} })
    } else if (kind === 'regex') {
      out.push({ path: `/svc${i}/orders/${id}`, headers: {} })
    } else {
      out.push({ path: `/svc${i}/profile/${id}`, headers: { 'end-user': 'jason' } })
    }
  }
  return out
}

function buildFindMyWay(routes: BenchRoute[]) {
  const router = FindMyWay()
  const handler = () => {}
  for (const r of routes) {
    const p = r.match.path
    if (p?.prefix !== undefined) {
      router.on('GET', p.prefix, handler, r)
      router.on('GET', `${p.prefix}/*`, handler, r)
    } else if (p?.exact !== undefined) {
      router.on('GET', p.exact, handler, r)
    } else if (p?.regex !== undefined) {
      router.on('GET', p.regex.replace('[0-9]+', ':id(^\\d+$)'), handler, r)
    }
  }
  return router
}

/** Lookups per second over `roundMs`, checking the clock only once per pass over the requests. */
function measure(requests: BenchRequest[], lookup: (r: BenchRequest) => boolean): number {
  let lookups = 0
  let hits = 0
  const start = performance.now()
  let elapsed = 0
  while (elapsed < roundMs) {
    for (let k = 0; k < requests.length; k++) if (lookup(requests[k]!)) hits++
    lookups += requests.length
    elapsed = performance.now() - start
  }
  // Reading `hits` keeps the lookups observable, so the JIT cannot drop them.
  if (hits < 0) console.log(hits)
  return (lookups / elapsed) * 1000
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b)
  return s[s.length >> 1]!
}

function formatRate(x: number): string {
  return `${(x / 1e6).toFixed(2)} M/s`
}

const rows: string[][] = []
for (const n of sizes) {
  const routes = buildRoutes(n)
  const requests = buildRequests(n)
  const table = createRouteTable(routes)
  const fmw = buildFindMyWay(routes)
  const meshgate = (r: BenchRequest) => table.match('GET', r.path, r.headers) !== undefined
  const findMyWay = (r: BenchRequest) => fmw.find('GET', r.path) !== null

  // Both routers must agree on which requests hit anything; a mismatch means the bench is unfair.
  let meshHits = 0
  let fmwHits = 0
  for (const r of requests) {
    if (meshgate(r)) meshHits++
    if (findMyWay(r)) fmwHits++
  }

  // Warm-up rounds let both routers reach their optimised code before anything is recorded; rounds
  // then alternate so drift (thermal, GC) affects both alike.
  measure(requests, meshgate)
  measure(requests, findMyWay)
  const meshRates: number[] = []
  const fmwRates: number[] = []
  for (let i = 0; i < rounds; i++) {
    meshRates.push(measure(requests, meshgate))
    fmwRates.push(measure(requests, findMyWay))
  }
  const m = median(meshRates)
  const f = median(fmwRates)
  rows.push([
    n.toLocaleString('en-US'),
    formatRate(m),
    formatRate(f),
    `${(m / f).toFixed(2)}x`,
    `${meshHits}/${fmwHits} of ${requests.length}`,
  ])
}

const header = ['routes', 'meshgate matches/s', 'find-my-way lookups/s', 'ratio', 'hits (mg/fmw)']
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)))
const line = (cells: string[]) => `| ${cells.map((cell, c) => cell.padStart(widths[c]!)).join(' | ')} |`
console.log(
  `node ${process.version}, ${requestCount} distinct requests, median of ${rounds} rounds of ${roundMs} ms`,
)
console.log(line(header))
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
for (const r of rows) console.log(line(r))
