// The `prometheus:URL` reader against a real Prometheus (Debian's package; .ci/run installs it)
// scraping a sidecar-format /metrics every second: increase() and histogram_quantile() over the window,
// through the HTTP query API.
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { reservePort } from '../../proxy-core/dev/containers.ts'
import { createMetricReader } from '../../proxy-core/rollout/metric-reader.ts'
import { createMetricsRegistry } from '../../proxy-core/telemetry/metrics.ts'
import { formatPrometheus } from '../../proxy-core/telemetry/prometheus.ts'

const PROMETHEUS = process.env.PROMETHEUS_PATH ?? '/usr/bin/prometheus'
const registry = createMetricsRegistry()
let metrics: Server
let prometheus: ChildProcess | undefined
let dir = ''
let url = ''
let scrapes = 0

async function until(what: string, probe: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = performance.now() + ms
  while (!(await probe().catch(() => false))) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

beforeAll(async () => {
  if (!existsSync(PROMETHEUS))
    throw new Error(`no Prometheus at ${PROMETHEUS}: apt-get install -y prometheus`)
  metrics = createServer((_req, res) => {
    scrapes++
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
    res.end(formatPrometheus(registry))
  })
  await new Promise<void>((r) => metrics.listen(0, '127.0.0.1', r))
  const target = `127.0.0.1:${(metrics.address() as AddressInfo).port}`
  dir = await mkdtemp(join(tmpdir(), 'meshgate-prometheus-'))
  await writeFile(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s }\nscrape_configs:\n  - job_name: sidecar\n    static_configs: [{ targets: ['${target}'] }]\n`,
  )
  const port = await reservePort('127.0.0.1')
  await port.release()
  url = `http://127.0.0.1:${port.port}`
  prometheus = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port.port}`,
    ],
    { stdio: 'ignore' },
  )
  await until('Prometheus to be ready', async () => (await fetch(`${url}/-/ready`)).ok)
}, 30_000)

afterAll(async () => {
  prometheus?.kill('SIGTERM')
  if (prometheus && prometheus.exitCode === null) await new Promise((r) => prometheus!.once('exit', r))
  metrics?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('prometheus:URL reader', () => {
  it("reads a window's requests, errors and p99 per target from the query API", async () => {
    const v1 = registry.get('shop', 'reviews', 'default', 'v1')
    const v2 = registry.get('shop', 'reviews', 'default', 'v2')
    v1.recordRequest(200, 5, 0, false)
    v2.recordRequest(200, 5, 0, false)
    await until('two scrapes of the starting counts', async () => scrapes >= 2)
    const start = Date.now()
    for (let i = 0; i < 200; i++) v1.recordRequest(200, 8, 0, false)
    for (let i = 0; i < 100; i++) v2.recordRequest(i % 10 === 0 ? 503 : 200, i < 95 ? 10 : 700, 0, false)
    const after = scrapes
    await until('two scrapes of the new counts', async () => scrapes >= after + 2)
    const reader = await createMetricReader(`prometheus:${url}`)
    const [canary, stable] = await reader.read(
      [
        { mesh: 'shop', service: 'reviews', route: 'default', target: 'v2' },
        { mesh: 'shop', service: 'reviews', route: 'default', target: 'v1' },
      ],
      start - 1_500,
      Date.now(),
    )
    // increase() extrapolates to the window's edges: close to the counts, not exact.
    expect(canary!.requests[0]).toBeGreaterThan(80)
    expect(canary!.requests[0]).toBeLessThan(160)
    expect(canary!.errors[0]! / canary!.requests[0]!).toBeCloseTo(0.1, 1)
    expect(canary!.p99Ms[0]).toBeGreaterThan(400)
    expect(stable!.requests[0]).toBeGreaterThan(160)
    expect(stable!.errors[0]).toBe(0)
    expect(stable!.p99Ms[0]).toBeLessThan(20)
    // A series Prometheus has never seen: no samples, so the analysis waits.
    const [none] = await reader.read(
      [{ mesh: 'shop', service: 'reviews', route: 'default', target: 'v9' }],
      start,
      Date.now(),
    )
    expect(none!.requests).toEqual([])
  }, 40_000)
})
