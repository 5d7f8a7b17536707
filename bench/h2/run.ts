// HTTP/2 and gRPC through a proxy, with h2load (Debian's nghttp2-client) as the load generator:
// meshgate's sidecar against HAProxy (`proto h2` both sides) and nginx (`grpc_pass`), plus the
// upstream direct, in the same run, interleaved round by round (TOOLCHAIN: this VM drifts 2–3×
// within minutes; compare ratios from the same round).
//
//   node bench/h2/run.ts [--rounds 3] [--seconds 5] [--connections 16] [--streams 10]
//
// Two scenarios: `h2` (GET, an nginx h2c upstream answering `ok`) and `grpc` (unary calls of the test
// Echo service on a @grpc/grpc-js upstream). The proxies run on one core; h2load and the upstreams on
// the other (pinned with taskset, as bench/sidecar does). Every process is stopped by its PID.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  freePorts,
  hasCommand,
  onlineCpus,
  runBounded,
  type Started,
  spawnPinned,
  stopProcess,
} from '../sidecar/proc.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    streams: { type: 'string', default: '10' },
  },
})
const ROUNDS = Number(values.rounds)
const SECONDS = Number(values.seconds)
const CONNECTIONS = Number(values.connections)
const STREAMS = Number(values.streams)

for (const cmd of ['h2load', 'nginx', 'haproxy', 'taskset']) {
  if (!hasCommand(cmd)) {
    console.error(`${cmd} is missing: apt-get install -y nginx haproxy nghttp2-client util-linux`)
    process.exit(2)
  }
}
const cpus = onlineCpus()
const PROXY_CPU = cpus[0] ?? null
const LOAD_CPU = cpus.length > 1 ? cpus[1]! : null

const dir = mkdtempSync(join(tmpdir(), 'meshgate-h2bench-'))
const started: Started[] = []
const [h2Up, grpcUp, hapH2, hapGrpc, ngxH2, ngxGrpc, mgPort, mgAdmin] = await freePorts(8)

async function waitListening(port: number, what: string): Promise<void> {
  const { connect } = await import('node:net')
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        r(true)
      })
      s.once('error', () => r(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  const tails = started.map((p) => `${p.name}: ${p.tail()}`).join('\n')
  throw new Error(`${what} did not listen on ${port}\n${tails}`)
}

function nginxConf(name: string, body: string): string {
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `  ${t}_temp_path ${join(dir, `${name}-${t}`)};`)
    .join('\n')
  return `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}.error.log`)} warn;
events { worker_connections 4096; }
http {
  access_log off;
${temps}
  keepalive_requests 10000000;
  http2_max_concurrent_streams 128;
${body}
}
`
}

function startNginx(name: string, cpu: number | null, body: string): Started {
  const file = join(dir, `${name}.conf`)
  writeFileSync(file, nginxConf(name, body))
  const p = spawnPinned(name, cpu, 'nginx', ['-p', dir, '-c', file, '-e', join(dir, `${name}.error.log`)])
  started.push(p)
  return p
}

try {
  // Upstreams, on the load generator's core.
  startNginx(
    'upstream',
    LOAD_CPU,
    `  server { listen 127.0.0.1:${h2Up} http2; location / { default_type text/plain; return 200 "ok"; } }`,
  )
  started.push(
    spawnPinned(
      'grpc-upstream',
      LOAD_CPU,
      process.execPath,
      [join(ROOT, 'bench', 'h2', 'grpc-upstream.ts'), String(grpcUp)],
      {
        cwd: ROOT,
      },
    ),
  )
  // The proxies, on the proxy core.
  startNginx(
    'nginx',
    PROXY_CPU,
    // Upstream connections kept alive (without `keepalive`, grpc_pass opens one per request).
    `  upstream h2up { server 127.0.0.1:${h2Up}; keepalive 32; }
  upstream grpcup { server 127.0.0.1:${grpcUp}; keepalive 32; }
  server { listen 127.0.0.1:${ngxH2} http2; location / { grpc_pass grpc://h2up; } }
  server { listen 127.0.0.1:${ngxGrpc} http2; location / { grpc_pass grpc://grpcup; } }`,
  )
  const hapFile = join(dir, 'haproxy.cfg')
  writeFileSync(
    hapFile,
    `global
  maxconn 4096
  nbthread 1
  pidfile ${join(dir, 'haproxy.pid')}
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend h2
  bind 127.0.0.1:${hapH2} proto h2
  default_backend h2up
frontend grpc
  bind 127.0.0.1:${hapGrpc} proto h2
  default_backend grpcup
backend h2up
  server s1 127.0.0.1:${h2Up} proto h2
backend grpcup
  server s1 127.0.0.1:${grpcUp} proto h2
`,
  )
  started.push(spawnPinned('haproxy', PROXY_CPU, 'haproxy', ['-db', '-f', hapFile]))
  const meshFile = join(dir, 'mesh.json')
  writeFileSync(
    meshFile,
    JSON.stringify({
      version: 1,
      mesh: 'bench',
      // Off, as in the other two (no access log there either).
      accessLog: false,
      services: {
        echo: { targets: { v1: { http: `http://127.0.0.1:${h2Up}`, protocol: 'http2' } } },
        grpc: {
          targets: { v1: { http: `http://127.0.0.1:${grpcUp}`, protocol: 'grpc' } },
          routes: [{ name: 'echo', match: { grpc: { service: 'meshtest.Echo' } }, to: 'v1' }],
        },
      },
    }),
  )
  started.push(
    spawnPinned(
      'meshgate',
      PROXY_CPU,
      process.execPath,
      [
        join(ROOT, 'bin', 'meshgate.js'),
        'sidecar',
        '--config',
        meshFile,
        '--service',
        'bench',
        '--outbound',
        `127.0.0.1:${mgPort}`,
        '--admin',
        `127.0.0.1:${mgAdmin}`,
        '--drain',
        '1s',
      ],
      {
        cwd: ROOT,
        env: { ...process.env, MESHGATE_XRAY: 'off', MESHGATE_CLOUDWATCH: 'off' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    ),
  )
  for (const [port, what] of [
    [h2Up, 'upstream'],
    [grpcUp, 'grpc upstream'],
    [ngxH2, 'nginx'],
    [hapH2, 'haproxy'],
    [mgPort, 'meshgate'],
  ] as const)
    await waitListening(port, what)

  // Msg{text: "hello", n: 1} as one gRPC message (uncompressed flag, 4-byte length).
  const message = Buffer.from([0x0a, 0x05, ...Buffer.from('hello'), 0x10, 0x01])
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message])
  const bodyFile = join(dir, 'unary.bin')
  writeFileSync(bodyFile, framed)

  const contenders = {
    h2: { direct: h2Up, haproxy: hapH2, nginx: ngxH2, meshgate: mgPort },
    grpc: { direct: grpcUp, haproxy: hapGrpc, nginx: ngxGrpc, meshgate: mgPort },
  } as const
  type Scenario = keyof typeof contenders
  interface Cell {
    rps: number
    meanMs: number
    sdMs: number
    failed: number
    succeeded: number
  }
  const results: Record<string, Cell[]> = {}

  async function cell(scenario: Scenario, name: string, port: number): Promise<Cell> {
    const args = [
      '-D',
      String(SECONDS),
      '--warm-up-time',
      '1',
      '-c',
      String(CONNECTIONS),
      '-m',
      String(STREAMS),
      '-t',
      '1',
      '-H',
      `:authority: ${scenario === 'h2' ? 'echo' : 'grpc'}`,
    ]
    let url = `http://127.0.0.1:${port}/`
    if (scenario === 'grpc') {
      args.push('-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers')
      url = `http://127.0.0.1:${port}/meshtest.Echo/Unary`
    }
    args.push(url)
    const r = await runBounded(`h2load-${name}`, LOAD_CPU, 'h2load', args, (SECONDS + 30) * 1000)
    const out = r.stdout
    const rps = Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out)?.[1] ?? Number.NaN)
    const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(out)
    const time =
      /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(
        out,
      )
    const ms = (v: string, unit: string) => Number(v) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1)
    if (Number.isNaN(rps)) throw new Error(`${name}/${scenario}: h2load said:\n${out}\n${r.stderr}`)
    return {
      rps,
      meanMs: time ? ms(time[5]!, time[6]!) : Number.NaN,
      sdMs: time ? ms(time[7]!, time[8]!) : Number.NaN,
      succeeded: Number(req?.[4] ?? 0),
      failed: Number(req?.[5] ?? 0),
    }
  }

  console.log(
    `h2load -D ${SECONDS}s -c ${CONNECTIONS} -m ${STREAMS}; proxies on cpu ${PROXY_CPU}, h2load and upstreams on cpu ${LOAD_CPU}`,
  )
  for (let round = 1; round <= ROUNDS; round++) {
    for (const scenario of ['h2', 'grpc'] as const) {
      const line: string[] = []
      for (const [name, port] of Object.entries(contenders[scenario])) {
        const c = await cell(scenario, name, port)
        const key = `${scenario}/${name}`
        results[key] = [...(results[key] ?? []), c]
        line.push(`${name} ${Math.round(c.rps)} req/s (${c.meanMs.toFixed(3)} ms mean, ${c.failed} failed)`)
      }
      console.log(`round ${round} ${scenario}: ${line.join(' · ')}`)
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  console.log(
    '\n| scenario | contender | req/s (median of rounds) | mean latency ms | failed | meshgate ÷ it, per round |',
  )
  console.log('|---|---|---:|---:|---:|---|')
  for (const scenario of ['h2', 'grpc'] as const) {
    const mg = results[`${scenario}/meshgate`]!
    for (const name of Object.keys(contenders[scenario])) {
      const cells = results[`${scenario}/${name}`]!
      const ratios = cells.map((c, i) => (mg[i]!.rps / c.rps).toFixed(2)).join(' / ')
      console.log(
        `| ${scenario} | ${name} | ${Math.round(median(cells.map((c) => c.rps)))} | ${median(cells.map((c) => c.meanMs)).toFixed(3)} | ${cells.reduce((n, c) => n + c.failed, 0)} | ${name === 'meshgate' ? '' : ratios} |`,
      )
    }
  }
} finally {
  for (const p of started.reverse()) await stopProcess(p)
  rmSync(dir, { recursive: true, force: true })
}
