// Metric cardinality from the outside: every Host a client makes up is a new "service" to the
// pipeline, and each series costs memory and /metrics bytes for good. Through a real sidecar process,
// 10 000 distinct unknown hosts must leave the series (exactly) and RSS (within a bound) where a
// baseline put them.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { load, send } from '../sidecar/client.ts'
import { parsePrometheus } from './prom-parse.ts'

const files = meshDir()
let upstream: Upstream
let sidecar: SidecarProcess

beforeAll(async () => {
  upstream = await startUpstream('v1')
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'cardinality',
    accessLog: false,
    services: {
      catalog: {
        targets: { v1: { http: upstream.url } },
        routes: [{ name: 'items', match: { path: { prefix: '/items' } }, to: 'v1' }],
      },
    },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'shop' })
}, 30_000)

afterAll(async () => {
  await sidecar?.stop()
  await upstream?.close()
  files.remove()
})

/** Distinct unknown hosts, known-service calls and unmatched paths, as a scanner would send them. */
async function scan(from: number, count: number): Promise<void> {
  const r = await load(sidecar.outbound, {
    concurrency: 16,
    total: count,
    make: (i) => {
      const n = from + i
      if (n % 10 === 0) return { host: 'catalog', path: '/items/1' }
      if (n % 10 === 1) return { host: 'catalog', path: `/nothing-${n}` }
      return { host: `scanner-${n}.example.com`, path: `/${n}` }
    },
  })
  expect(r.errors).toEqual([])
  expect(r.byStatus.get(404)).toBeGreaterThan(0)
  expect(r.byStatus.get(200)).toBeGreaterThan(0)
}

async function metrics(): Promise<{ bytes: number; series: Set<string> }> {
  const reply = await send(sidecar.admin, { path: '/metrics' })
  expect(reply.status).toBe(200)
  const series = new Set<string>()
  for (const family of parsePrometheus(reply.body).values()) {
    for (const s of family.samples) {
      const { le: _le, code_class: _cls, ...labels } = s.labels
      series.add(`${family.name}${JSON.stringify(labels)}`)
    }
  }
  return { bytes: Buffer.byteLength(reply.body), series }
}

it('10 000 distinct unknown hosts leave /metrics and RSS flat', async () => {
  // The baseline has already seen every kind of label: unknown hosts, a matched and an unmatched route.
  await scan(0, 2000)
  const before = await metrics()
  const rssBefore = sidecar.peakRss()
  // Of the series that name a service (the edge's refusal and the config counters name none).
  const services = new Set([...before.series].flatMap((k) => /"service":"([^"]*)"/.exec(k)?.[1] ?? []))
  expect(services).toEqual(new Set(['catalog', 'unknown']))

  await scan(2000, 10_000)
  const after = await metrics()
  expect([...after.series].sort()).toEqual([...before.series].sort())
  // Only the counters' digits may grow.
  expect(after.bytes).toBeLessThan(before.bytes + 1024)
  // Before the fix, 3 000 hosts grew RSS by 40 MB; about 0.7 MB after it; the bound leaves room for heap and GC noise only.
  expect(sidecar.peakRss() - rssBefore).toBeLessThan(8 * 1024 * 1024)
}, 120_000)
