// A quicker look than the full benchmark, for work on the request path: user and system CPU per
// request of the sidecar (or HAProxy) under `wrk -c16`, split, over a few interleaved short runs.
// Installs nothing (nginx, HAProxy and wrk as for bench:sidecar). CPU from /proc, load on the other core.
//
//   node bench/sidecar/probe.ts [--runs 3] [--seconds 4] [--variants 'image;haproxy'] [--other DIR]
//                               [--rate 1000]   (open loop at a fixed rate instead of wrk)
//
// Variants, separated by `;`: `image` (the bundle as the image runs it: its NODE_OPTIONS and
// MALLOC_ARENA_MAX), `image-nolog` (accessLog: false), `image-notrace` (MESHGATE_XRAY=off),
// `image:--flag --flag2` (extra node flags), `other…` (the same, built from the meshgate tree `--other
// DIR`, e.g. a `git worktree` of an older commit, to measure a change against it), `haproxy`.
// Prints one line per run and the medians.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  imageSidecar,
  SERVICE,
  type Server,
  startHaproxy,
  startMeshgate,
  startUpstream,
  waitReady,
} from './contenders.ts'
import { runOpenLoop, runWrk } from './load.ts'
import { cpuTimes, freePorts, holdShallowIdle, onlineCpus, pinSelf } from './proc.ts'
import { median } from './report.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
/** Seconds of load on each contender before anything is measured. */
const WARMUP_S = 2
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '4' },
    variants: { type: 'string', default: 'image;haproxy' },
    connections: { type: 'string', default: '16' },
    /** Another meshgate tree (e.g. a worktree of an older commit) whose bundle is the `other` variant. */
    other: { type: 'string' },
    /** Load at this fixed rate (the open-loop generator) instead of wrk's closed loop. */
    rate: { type: 'string' },
  },
})
const runs = Number(values.runs)
const seconds = Number(values.seconds)
const variants = values.variants.split(';')
const [serverCpu, loadCpu] = onlineCpus()
pinSelf(loadCpu ?? 0)
const idleHold = holdShallowIdle()
if (idleHold === undefined) console.log('cores not held out of deep idle (/dev/cpu_dma_latency needs root)')

function line(label: string, rps: number, ratio: string, user: number, sys: number): string {
  const count = Math.round(rps).toString().padStart(7)
  return `${label.padEnd(46)} ${count} req/s${ratio}  user ${user.toFixed(1)} µs  sys ${sys.toFixed(1)} µs`
}

const dir = mkdtempSync(join(tmpdir(), 'meshgate-probe-'))
const servers: Server[] = []
try {
  const [up1, up2, ...ports] = await freePorts(2 + variants.length * 2)
  const upstream = startUpstream(dir, serverCpu ?? null, [up1!, up2!])
  servers.push(upstream)
  const image = await imageSidecar(ROOT, dir)
  const other =
    values.other === undefined ? undefined : await imageSidecar(resolve(values.other), dir, 'other')
  const byName = new Map<string, Server>()
  variants.forEach((v, i) => {
    const port = ports[i * 2]!
    if (v === 'haproxy') {
      byName.set(v, startHaproxy(dir, serverCpu ?? null, port, up1!))
      return
    }
    const vdir = join(dir, `v-${i}`)
    mkdirSync(vdir)
    // `image:--flag --flag2`: the image's bundle and environment, plus these node flags.
    const flags = v.includes(':') ? v.slice(v.indexOf(':') + 1).split(' ') : []
    const built = v.startsWith('other') ? other : image
    if (built === undefined) throw new Error(`variant ${v} needs --other DIR`)
    const env: Record<string, string> = { ...built.env }
    if (v.includes('notrace')) env.MESHGATE_XRAY = 'off'
    byName.set(
      v,
      startMeshgate({
        dir: vdir,
        cpu: serverCpu ?? null,
        port,
        adminPort: ports[i * 2 + 1]!,
        upstreamPorts: [up1!, up2!],
        // The discard port: segments are built and sent as in production, and nobody reads them.
        xrayPort: 9,
        accessLog: !v.includes('nolog'),
        image: { entry: built.entry, env },
        nodeFlags: flags,
      }),
    )
  })
  servers.push(...byName.values())
  for (const s of byName.values()) await waitReady(s)
  // Unmeasured: the JIT compiles the request path and the pools fill before the first measured run.
  for (const s of byName.values()) {
    await runWrk({
      cpu: loadCpu ?? null,
      url: s.url,
      connections: 16,
      seconds: WARMUP_S,
      headers: { Host: SERVICE },
    })
  }
  const results = new Map<string, { rps: number[]; user: number[]; sys: number[] }>()
  for (let r = 0; r < runs; r++) {
    for (const v of variants) {
      const s = byName.get(v)!
      const pid = s.pids()[0]!
      const before = cpuTimes(pid)
      const load = { cpu: loadCpu ?? null, url: s.url, connections: Number(values.connections), seconds }
      const w =
        values.rate === undefined
          ? await runWrk({ ...load, headers: { Host: SERVICE } })
          : await runOpenLoop({
              ...load,
              rate: Number(values.rate),
              warmupSeconds: 0,
              headers: { host: SERVICE },
            }).then((o) => ({ requests: o.responses, requestsPerSecond: o.responses / seconds }))
      const after = cpuTimes(pid)
      const user = ((after.user - before.user) * 1e6) / w.requests
      const sys = ((after.sys - before.sys) * 1e6) / w.requests
      const row = results.get(v) ?? { rps: [], user: [], sys: [] }
      row.rps.push(w.requestsPerSecond)
      row.user.push(user)
      row.sys.push(sys)
      results.set(v, row)
      console.log(line(`run ${r + 1} ${v}`, w.requestsPerSecond, '', user, sys))
    }
  }
  console.log('medians:')
  const hap = results.get('haproxy')
  for (const [v, row] of results) {
    const ratio = hap ? ` ${(median(row.rps) / median(hap.rps)).toFixed(2)}× HAProxy` : ''
    console.log(line(`  ${v}`, median(row.rps), ratio, median(row.user), median(row.sys)))
  }
} finally {
  for (const s of servers.reverse()) await s.stop()
  rmSync(dir, { recursive: true, force: true })
  idleHold?.release()
}
