// Runs a translated mesh for real: every target of every service gets an upstream that answers with its
// own name (`SERVICE/TARGET` in `x-upstream`), the target's address is pointed at it, and a sidecar
// child process serves the result. The translated addresses themselves are checked by the tests apart
// from this (they are DNS names of a cluster or a VPC that this machine does not have).
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parse } from 'yaml'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { type Reply, send } from '../sidecar/client.ts'

export const FIXTURES = resolve(import.meta.dirname, '..', 'fixtures', 'import')
export const fixture = (...p: string[]) => join(FIXTURES, ...p)

/** The 1-based line of the first line of `file` containing `text` (after line `after`). */
export function lineOfText(file: string, text: string, after = 0): number {
  const lines = readFileSync(file, 'utf8').split('\n')
  for (let i = after; i < lines.length; i++) if (lines[i]!.includes(text)) return i + 1
  throw new Error(`${text} not in ${file}`)
}

export interface RunningMesh {
  sidecar: SidecarProcess
  upstreams: Map<string, Upstream>
  /** One request through the sidecar's outbound listener to `service`. */
  request(
    service: string,
    opts?: { method?: string; path?: string; headers?: Record<string, string> },
  ): Promise<Reply>
  close(): Promise<void>
}

type Mesh = { services: Record<string, { targets: Record<string, { http?: unknown }> }> }

export async function runTranslated(yamlText: string): Promise<RunningMesh> {
  const mesh = parse(yamlText) as Mesh
  const upstreams = new Map<string, Upstream>()
  for (const [svc, s] of Object.entries(mesh.services)) {
    for (const [t, target] of Object.entries(s.targets)) {
      const u = await startUpstream(`${svc}/${t}`)
      upstreams.set(`${svc}/${t}`, u)
      target.http = u.url
    }
  }
  const files = meshDir()
  const configPath = files.write('mesh.json', mesh)
  let sidecar: SidecarProcess
  try {
    sidecar = await startSidecarProcess({ configPath, service: 'importer-test' })
  } catch (e) {
    await Promise.all([...upstreams.values()].map((u) => u.close()))
    files.remove()
    throw e
  }
  return {
    sidecar,
    upstreams,
    request: (service, opts = {}) =>
      send(sidecar.outbound, {
        host: service,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers ?? {},
      }),
    async close() {
      await sidecar.stop()
      await Promise.all([...upstreams.values()].map((u) => u.close()))
      files.remove()
    },
  }
}

export interface ConformanceRow {
  /** What the source system documents for this request. */
  why: string
  service: string
  method?: string
  path: string
  headers?: Record<string, string>
  /** `SERVICE/TARGET` that must answer, or a status the mesh itself answers with. */
  expect: string | { status: number; error?: string } | { weights: Record<string, number> }
}

/**
 * Checks one row: a single request for a fixed target or status; for weights, 200 requests whose
 * shares must each lie within 4 binomial standard deviations of the weight (plus half a point).
 */
export async function checkRow(mesh: RunningMesh, row: ConformanceRow): Promise<string | null> {
  const opts = { method: row.method ?? 'GET', path: row.path, headers: row.headers ?? {} }
  const e = row.expect
  if (typeof e === 'string') {
    const r = await mesh.request(row.service, opts)
    const got = r.headers['x-upstream']
    return got === e && r.status === 200 ? null : `expected ${e}, got ${String(got)} (status ${r.status})`
  }
  if ('status' in e) {
    const r = await mesh.request(row.service, opts)
    if (r.status !== e.status) return `expected status ${e.status}, got ${r.status}`
    if (e.error !== undefined && r.headers['x-meshgate-error'] !== e.error)
      return `expected x-meshgate-error ${e.error}, got ${String(r.headers['x-meshgate-error'])}`
    return null
  }
  const n = 200
  const counts = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const r = await mesh.request(row.service, opts)
    const got = String(r.headers['x-upstream'])
    counts.set(got, (counts.get(got) ?? 0) + 1)
  }
  const total = Object.values(e.weights).reduce((a, b) => a + b, 0)
  for (const got of counts.keys()) if (!(got in e.weights)) return `unexpected upstream ${got}`
  for (const [t, w] of Object.entries(e.weights)) {
    const p = w / total
    const share = (counts.get(t) ?? 0) / n
    const tolerance = 4 * Math.sqrt((p * (1 - p)) / n) + 0.005
    if (Math.abs(share - p) > tolerance)
      return `${t}: share ${share}, expected ${p} ± ${tolerance.toFixed(3)}`
  }
  return null
}
