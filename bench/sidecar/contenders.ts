// The servers of the sidecar benchmark: the fixed-response upstream, and the three proxies in front of
// it. Every config is generated into the run's temp dir; every process is started pinned to the
// server core and stopped by its PID.
//
// The upstream is nginx answering `return 200 "ok"` from one worker: it does less work per request
// than any of the proxies, so it is never what limits them (its CPU is recorded in every cell to show
// it). It listens on two ports so that meshgate's two targets are two upstream pools, as two
// deployments of a service would be.

import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { basename, join, resolve } from 'node:path'
import { processTree, type Started, spawnPinned, stopProcess } from './proc.ts'

/** `baseline` is the meshgate sidecar built from another tree (`--baseline DIR`): before and after in one run. */
export const CONTENDERS = ['direct', 'haproxy', 'nginx', 'meshgate', 'baseline'] as const
export type ContenderName = (typeof CONTENDERS)[number]

/** The mesh service the sidecar routes to; every contender gets requests with this Host header. */
export const SERVICE = 'echo'

export interface Server {
  readonly name: string
  /** Where the load goes: `http://127.0.0.1:PORT/`. */
  readonly url: string
  /** PIDs whose CPU and memory are this server's (nginx: master and worker). */
  pids(): number[]
  readonly process: Started
  stop(): Promise<void>
}

const ROOT = resolve(import.meta.dirname, '..', '..')

/** Keep-alive requests per connection before a server closes it: effectively unbounded for a run. */
const KEEPALIVE_REQUESTS = 10_000_000

function nginxServer(name: string, dir: string, cpu: number | null, url: string, conf: string): Server {
  const file = join(dir, `${name}.conf`)
  writeFileSync(file, conf)
  // -e: nginx opens its error log before reading the config; keep even that one in the temp dir.
  const proc = spawnPinned(name, cpu, 'nginx', ['-p', dir, '-c', file, '-e', join(dir, `${name}.error.log`)])
  return {
    name,
    url,
    process: proc,
    pids: () => processTree(proc.pid),
    // SIGTERM is nginx's fast shutdown; it ends its workers itself.
    stop: () => stopProcess(proc),
  }
}

/** Directives every nginx here shares: foreground, one worker, all state in the temp dir, no logs. */
function nginxMain(dir: string, name: string): string {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}.error.log`)} warn;
events { worker_connections 4096; }
`
}

function nginxTemps(dir: string, name: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `  ${t}_temp_path ${join(dir, `${name}-${t}`)};`)
    .join('\n')
}

export function startUpstream(dir: string, cpu: number | null, ports: readonly [number, number]): Server {
  const name = 'upstream'
  const listen = ports.map((p) => `    listen 127.0.0.1:${p} backlog=4096;`).join('\n')
  const conf = `${nginxMain(dir, name)}
http {
  access_log off;
${nginxTemps(dir, name)}
  keepalive_requests ${KEEPALIVE_REQUESTS};
  keepalive_timeout 75s;
  default_type text/plain;
  server {
${listen}
    location / { return 200 "ok"; }
  }
}
`
  return nginxServer(name, dir, cpu, `http://127.0.0.1:${ports[0]}/`, conf)
}

export function startNginxProxy(dir: string, cpu: number | null, port: number, upstreamPort: number): Server {
  const name = 'nginx'
  const conf = `${nginxMain(dir, name)}
http {
  access_log off;
${nginxTemps(dir, name)}
  keepalive_requests ${KEEPALIVE_REQUESTS};
  keepalive_timeout 75s;
  upstream app {
    server 127.0.0.1:${upstreamPort};
    # Idle keep-alive connections kept per worker: one per client connection the bench opens at most.
    keepalive 64;
    keepalive_requests ${KEEPALIVE_REQUESTS};
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
  return nginxServer(name, dir, cpu, `http://127.0.0.1:${port}/`, conf)
}

export function startHaproxy(dir: string, cpu: number | null, port: number, upstreamPort: number): Server {
  const name = 'haproxy'
  const file = join(dir, 'haproxy.cfg')
  // HTTP mode with keep-alive on both sides (HAProxy's default `http-keep-alive`); idle server
  // connections are reused across client connections (`http-reuse safe`, the default).
  writeFileSync(
    file,
    `global
  nbthread 1
  # Two descriptors per connection must fit under the open-file limit (often 20 000 in containers).
  maxconn 4096
  pidfile ${join(dir, 'haproxy.pid')}

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 75s

frontend bench
  bind 127.0.0.1:${port}
  default_backend app

backend app
  server up 127.0.0.1:${upstreamPort}
`,
  )
  // -db: foreground, no master process: one PID that does all the work.
  const proc = spawnPinned(name, cpu, 'haproxy', ['-db', '-f', file])
  return {
    name,
    url: `http://127.0.0.1:${port}/`,
    process: proc,
    pids: () => [proc.pid],
    stop: () => stopProcess(proc),
  }
}

/**
 * The mesh the sidecar runs with: one service with two targets (both on the upstream, one per port),
 * a header-match route first (which ordinary requests miss), then a 90/10 weighted route with a
 * timeout, retries with backoff, a retry budget, outlier detection and a circuit breaker. Metrics are
 * always on in the sidecar; tracing uses the default sampling (1/s then 5%) and goes to a UDP port
 * the bench reads.
 */
export function meshConfig(upstreamPorts: readonly [number, number], accessLog: boolean): string {
  const [a, b] = upstreamPorts
  return `version: 1
mesh: bench
accessLog: ${accessLog}
defaults:
  timeout: 15s
  retries: { attempts: 2, perTryTimeout: 2s, on: [connect-failure, reset, 502, 503, 504] }
  retryBudget: { percent: 20, minPerSecond: 10 }
services:
  ${SERVICE}:
    targets:
      v1: { http: http://127.0.0.1:${a} }
      v2: { http: http://127.0.0.1:${b} }
    routes:
      - name: canary-tester
        match: { headers: { end-user: canary-tester } }
        to: v2
      - name: split
        match: { path: { prefix: / } }
        to: { v1: 90, v2: 10 }
        timeout: 3s
        retries: { attempts: 3, perTryTimeout: 1s, on: [5xx, reset, connect-failure], backoff: { base: 25ms, max: 250ms } }
    outlierDetection: { consecutive5xx: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50 }
    circuitBreaker: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024 }
    retryBudget: { percent: 20, minPerSecond: 10 }
`
}

export interface MeshgateOptions {
  /** The meshgate checkout whose `bin/meshgate.js` runs (default: this one). */
  root?: string
  dir: string
  cpu: number | null
  port: number
  adminPort: number
  upstreamPorts: readonly [number, number]
  xrayPort: number
  accessLog: boolean
  /** Write a V8 CPU profile here when the sidecar exits. */
  cpuProfDir?: string
  /** The contender's name (`meshgate` unless it is the `baseline` tree). */
  name?: 'meshgate' | 'baseline'
  /** More node/V8 flags for the sidecar, e.g. `--max-semi-space-size=2`. */
  nodeFlags?: readonly string[]
  /**
   * Run this file (the image's bundle) instead of `bin/meshgate.js sidecar`, with `env` on top (the
   * image's ENV lines): the sidecar as it ships.
   */
  image?: { entry: string; env: Record<string, string> }
}

export interface MeshgateServer extends Server {
  readonly admin: string
}

/** The environment of the sidecar: nothing of the machine's AWS or meshgate settings leaks in. */
function sidecarEnv(xrayPort: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('AWS_') || k.startsWith('MESHGATE_') || k === 'ECS_CONTAINER_METADATA_URI_V4') continue
    if (k === 'NODE_OPTIONS') continue
    env[k] = v
  }
  env.AWS_XRAY_DAEMON_ADDRESS = `127.0.0.1:${xrayPort}`
  // CloudWatch needs AWS credentials; it publishes once a minute and is not on the request path.
  env.MESHGATE_CLOUDWATCH = 'off'
  return env
}

export function startMeshgate(o: MeshgateOptions): MeshgateServer {
  const name = o.name ?? 'meshgate'
  const file = join(o.dir, `${name}.yaml`)
  writeFileSync(file, meshConfig(o.upstreamPorts, o.accessLog))
  const nodeFlags = [
    ...(o.nodeFlags ?? []),
    ...(o.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`]),
  ]
  const args = [
    ...nodeFlags,
    ...(o.image === undefined ? [join(o.root ?? ROOT, 'bin', 'meshgate.js'), 'sidecar'] : [o.image.entry]),
    '--config',
    file,
    '--service',
    SERVICE,
    '--outbound',
    `127.0.0.1:${o.port}`,
    '--admin',
    `127.0.0.1:${o.adminPort}`,
    '--drain',
    '2s',
  ]
  // stdout (the access log, one line per request) goes to /dev/null: reading it here would put its
  // cost on the load generator's core. stderr (notices only) is kept for error messages.
  const proc = spawnPinned(name, o.cpu, process.execPath, args, {
    cwd: o.root ?? ROOT,
    env: { ...sidecarEnv(o.xrayPort), ...o.image?.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  return {
    name,
    url: `http://127.0.0.1:${o.port}/`,
    admin: `http://127.0.0.1:${o.adminPort}`,
    process: proc,
    pids: () => [proc.pid],
    // SIGTERM drains (up to --drain) and exits 0, which is also when --cpu-prof writes its profile.
    stop: () => stopProcess(proc, 10_000),
  }
}

/** The image's sidecar: its bundle built into `dir`, and the ENV of its Dockerfile that tunes node. */
export async function imageSidecar(
  root: string,
  dir: string,
  name = 'image',
): Promise<{ entry: string; env: Record<string, string> }> {
  const { buildSidecar } = (await import(join(root, 'scripts', 'build.ts'))) as {
    buildSidecar(outfile: string): Promise<unknown>
  }
  const entry = join(dir, name, 'meshgate-sidecar.mjs')
  await buildSidecar(entry)
  const dockerfile = readFileSync(join(root, 'infra', 'docker', 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ')
  const env: Record<string, string> = {}
  for (const m of dockerfile.matchAll(/\b(NODE_OPTIONS|MALLOC_ARENA_MAX)=(\S+)/g)) env[m[1]!] = m[2]!
  return { entry, env }
}

export interface Reply {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
}

/** One GET on a fresh connection. */
export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 2000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        body += c
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

/** Polls until the server answers 200 with the upstream's body, or throws with its output. */
export async function waitReady(server: Server, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let last = ''
  while (performance.now() < deadline) {
    if (server.process.child.exitCode !== null) break
    try {
      const r = await get(server.url, { host: SERVICE })
      if (r.status === 200 && r.body === 'ok') return
      last = `HTTP ${r.status} ${r.body.slice(0, 200)}`
    } catch (err) {
      last = String(err)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${server.name} did not become ready (${last})\n${server.process.tail()}`)
}

export interface Revision {
  /** The meshgate tree that ran. */
  root: string
  /** Its commit, when it is a git checkout. */
  commit: string | null
  /** Files under proxy-core/ and bin/ that differ from that commit. */
  uncommitted: string[]
}

/** Which meshgate was measured, from read-only git queries (nothing in the tree is changed). */
export function meshgateRevision(root = ROOT): Revision {
  const git = (args: string[]) => {
    const r = spawnSync('git', ['-C', root, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    // Trailing newlines only: a porcelain status line starts with a meaningful space.
    return r.status === 0 ? r.stdout.trimEnd() : null
  }
  // Only a tree that is the top of its own checkout counts: an exported copy inside another repo doesn't.
  const top = git(['rev-parse', '--show-toplevel'])
  if (top === null || resolve(top) !== resolve(root)) return { root, commit: null, uncommitted: [] }
  const status = git(['status', '--porcelain', '--', 'proxy-core', 'bin']) ?? ''
  return {
    root,
    commit: git(['rev-parse', '--short=10', 'HEAD']),
    uncommitted: status === '' ? [] : status.split('\n').map((l) => l.slice(3)),
  }
}

export function revisionLine(r: Revision): string {
  const where = r.root === ROOT ? 'this checkout' : r.root
  if (r.commit === null) return `meshgate from ${basename(r.root)} (an exported tree, not a git checkout)`
  const dirty =
    r.uncommitted.length === 0
      ? ''
      : ` plus ${r.uncommitted.length} uncommitted file(s) under proxy-core/ and bin/`
  return `meshgate at commit ${r.commit}${dirty} (${where})`
}
