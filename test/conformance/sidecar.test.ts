// The shared routing cases against the sidecar: a real child process, real upstream servers.
import { afterAll, beforeAll, describe } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { send } from '../sidecar/client.ts'
import { conformanceMesh, parseJson, type Runner } from './cases.ts'
import { runConformance } from './run-cases.ts'

const files = meshDir()
let upstreams: Upstream[] = []
let sidecar: SidecarProcess

beforeAll(async () => {
  upstreams = await Promise.all(
    ['v1', 'v2', 'v3'].map((n) => startUpstream(n, { headers: { 'x-upstream-port': 'x' } })),
  )
  const [v1, v2, v3] = upstreams.map((u) => u.url) as [string, string, string]
  const configPath = files.write('conformance.json', conformanceMesh({ v1, v2, v3 }))
  sidecar = await startSidecarProcess({ configPath, service: 'productpage' })
})

afterAll(async () => {
  await sidecar?.stop()
  await Promise.all(upstreams.map((u) => u.close()))
  files.remove()
})

const runner: Runner = async (req) => {
  const reply = await send(sidecar.outbound, {
    method: req.method ?? 'GET',
    path: req.path,
    host: req.service,
    headers: req.headers ?? {},
  })
  const headers: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(reply.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v
  return { status: reply.status, headers, json: parseJson(reply.body) }
}

describe('conformance: sidecar', () => runConformance(() => runner))
