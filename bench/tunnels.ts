// Tunnels through the sidecar against HAProxy, in one run (issue 19): WebSocket echo round trips and
// TCP echo throughput, meshgate's sidecar (the image's bundle) against HAProxy (HTTP mode for the
// WebSocket, TCP mode for the stream) and against no proxy at all.
//
//   npm run bench:tunnels [-- --rounds 3 --messages 5000 --megabytes 256]
//
// The upstream (bench/tunnel-peers.ts) and the proxies run on one core, this process (the client) on
// the other. Cells are interleaved with the contender order rotated each round, and ratios to HAProxy
// are taken within a round, then the median (the machine drifts; see BENCHMARKS.md "Noise").
// - ws rtt: one WebSocket, `messages` sequential 64-byte round trips: p50/p99 round trip, messages/s.
// - ws 16: 16 WebSockets, each `messages / 4` round trips at once: messages/s.
// - tcp: one connection, `megabytes` written and read back at once (echo): MB/s of payload.
// Everything started is stopped by PID.

import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { imageSidecar } from './sidecar/contenders.ts'
import {
  allProcessCpu,
  freePorts,
  hasCommand,
  holdShallowIdle,
  onlineCpus,
  pinSelf,
  raiseOwnPriority,
  type Started,
  spawnPinned,
  stopProcess,
} from './sidecar/proc.ts'

const ROOT = resolve(import.meta.dirname, '..')
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    messages: { type: 'string', default: '5000' },
    megabytes: { type: 'string', default: '256' },
  },
})
const rounds = Number(values.rounds)
const messages = Number(values.messages)
const megabytes = Number(values.megabytes)

if (!hasCommand('haproxy')) {
  console.error('needs HAProxy: apt-get install -y haproxy')
  process.exit(2)
}

interface Contender {
  name: string
  ws: string
  host: string
  tcpPort: number
  proc?: Started
}

function waitLine(p: Started, re: RegExp, ms = 20_000): Promise<void> {
  return new Promise((res, rej) => {
    let text = ''
    const t = setTimeout(() => rej(new Error(`${p.name}: no ${re} in ${ms} ms: ${p.tail()}`)), ms)
    const on = (d: Buffer) => {
      text += d.toString()
      if (re.test(text)) {
        clearTimeout(t)
        p.child.stdout?.off('data', on)
        res()
      }
    }
    p.child.stdout?.on('data', on)
  })
}

async function wsRoundTrips(c: Contender, count: number): Promise<number[]> {
  const ws = new WebSocket(`${c.ws}/echo`, { headers: { host: c.host }, perMessageDeflate: false })
  await once(ws, 'open')
  const payload = Buffer.alloc(64, 97)
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    ws.send(payload)
    await once(ws, 'message')
    times.push(performance.now() - t0)
  }
  ws.close()
  return times
}

async function wsParallel(c: Contender, sockets: number, each: number): Promise<number> {
  const t0 = performance.now()
  await Promise.all(Array.from({ length: sockets }, () => wsRoundTrips(c, each)))
  return (sockets * each) / ((performance.now() - t0) / 1000)
}

async function tcpThroughput(c: Contender, mb: number): Promise<number> {
  const socket = connect({ port: c.tcpPort, host: '127.0.0.1', noDelay: true })
  await once(socket, 'connect')
  const total = mb << 20
  const chunk = Buffer.alloc(64 << 10, 98)
  let back = 0
  const t0 = performance.now()
  const done = new Promise<void>((res) =>
    socket.on('data', (d: Buffer) => {
      back += d.length
      if (back >= total) res()
    }),
  )
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!socket.write(chunk)) await once(socket, 'drain')
  }
  await done
  const seconds = (performance.now() - t0) / 1000
  socket.destroy()
  return mb / seconds
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}
const median = (xs: number[]) => pct(xs, 50)

async function main() {
  const cpus = onlineCpus()
  const serverCpu = cpus.length > 1 ? cpus[0]! : null
  if (cpus.length > 1) pinSelf(cpus[1]!)
  raiseOwnPriority()
  // Idle cores woken through the hypervisor cost more than the proxies (bench/sidecar/proc.ts).
  const idleHold = holdShallowIdle()
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-tunnels-'))
  const started: Started[] = []
  const stopAll = () => Promise.all(started.map((p) => stopProcess(p)))
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)))
  try {
    const [wsUp, tcpUp, hWs, hTcp, mOut, mAdmin, mTcp] = await freePorts(7)
    const peers = spawnPinned('upstream', serverCpu, process.execPath, [
      join(ROOT, 'bench', 'tunnel-peers.ts'),
      String(wsUp),
      String(tcpUp),
    ])
    started.push(peers)
    await waitLine(peers, /^ready/m)

    writeFileSync(
      join(dir, 'haproxy.cfg'),
      `global
  nbthread 1
  maxconn 4096
defaults
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout tunnel 1h
frontend ws
  mode http
  bind 127.0.0.1:${hWs}
  default_backend ws
backend ws
  mode http
  server up 127.0.0.1:${wsUp}
frontend tcp
  mode tcp
  bind 127.0.0.1:${hTcp}
  default_backend tcp
backend tcp
  mode tcp
  server up 127.0.0.1:${tcpUp}
`,
    )
    const haproxy = spawnPinned('haproxy', serverCpu, 'haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')])
    started.push(haproxy)

    writeFileSync(
      join(dir, 'mesh.json'),
      JSON.stringify({
        version: 1,
        mesh: 'bench',
        accessLog: true,
        services: {
          echo: { targets: { v1: { http: `http://127.0.0.1:${wsUp}` } } },
          stream: {
            listener: { protocol: 'tcp', port: mTcp },
            targets: { v1: { tcp: `127.0.0.1:${tcpUp}` } },
          },
        },
      }),
    )
    const image = await imageSidecar(ROOT, dir)
    const sidecar = spawnPinned(
      'meshgate',
      serverCpu,
      process.execPath,
      [
        image.entry,
        '--config',
        join(dir, 'mesh.json'),
        '--service',
        'client',
        '--outbound',
        `127.0.0.1:${mOut}`,
        '--admin',
        `127.0.0.1:${mAdmin}`,
      ],
      {
        env: { ...process.env, ...image.env, MESHGATE_XRAY: 'off', MESHGATE_CLOUDWATCH: 'off' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    started.push(sidecar)
    await waitLine(sidecar, /"event":"listening"/)
    // The access log goes nowhere, as in a container whose log driver reads it: drain the pipe.
    sidecar.child.stdout?.resume()

    const contenders: Contender[] = [
      { name: 'direct', ws: `ws://127.0.0.1:${wsUp}`, host: `127.0.0.1:${wsUp}`, tcpPort: tcpUp },
      { name: 'haproxy', ws: `ws://127.0.0.1:${hWs}`, host: 'echo', tcpPort: hTcp },
      { name: 'meshgate', ws: `ws://127.0.0.1:${mOut}`, host: 'echo', tcpPort: mTcp },
    ]
    // Warm-up: every path once.
    for (const c of contenders) {
      await wsRoundTrips(c, 200)
      await tcpThroughput(c, 16)
    }
    const results = new Map<
      string,
      { p50: number[]; p99: number[]; rtt: number[]; par: number[]; tcp: number[] }
    >()
    for (const c of contenders) results.set(c.name, { p50: [], p99: [], rtt: [], par: [], tcp: [] })
    const ours = new Set([process.pid, ...started.map((p) => p.pid)])
    const othersCpu = () => {
      let sum = 0
      for (const [pid, cpu] of allProcessCpu()) if (!ours.has(pid)) sum += cpu
      return sum
    }
    const runStart = performance.now()
    const othersBefore = othersCpu()
    for (let r = 0; r < rounds; r++) {
      const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]!)
      for (const c of order) {
        const times = await wsRoundTrips(c, messages)
        const into = results.get(c.name)!
        into.p50.push(pct(times, 50))
        into.p99.push(pct(times, 99))
        into.rtt.push(messages / (times.reduce((a, b) => a + b, 0) / 1000))
      }
      for (const c of order) results.get(c.name)!.par.push(await wsParallel(c, 16, Math.max(1, messages / 4)))
      for (const c of order) results.get(c.name)!.tcp.push(await tcpThroughput(c, megabytes))
      console.error(`round ${r + 1}/${rounds} done`)
    }
    const othersShare = (othersCpu() - othersBefore) / ((performance.now() - runStart) / 1000)
    const h = results.get('haproxy')!
    const ratio = (xs: number[], base: number[]) => median(xs.map((x, i) => x / base[i]!))
    console.log(
      `npm run bench:tunnels -- --rounds ${rounds} --messages ${messages} --megabytes ${megabytes}: medians of ${rounds} interleaved rounds; idle hold ${idleHold === undefined ? 'not available' : 'on'}; other processes on the machine used ${(othersShare * 100).toFixed(0)}% of a core on average (long-lived ones only); load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}\n`,
    )
    console.log(
      '| | ws round trip p50 ms | p99 ms | ws msgs/s, 1 socket | × HAProxy | ws msgs/s, 16 sockets | × HAProxy | tcp echo MB/s | × HAProxy |',
    )
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (const c of contenders) {
      const x = results.get(c.name)!
      console.log(
        `| ${c.name} | ${median(x.p50).toFixed(3)} | ${median(x.p99).toFixed(3)} | ${Math.round(median(x.rtt))} | ${ratio(x.rtt, h.rtt).toFixed(2)}× | ${Math.round(median(x.par))} | ${ratio(x.par, h.par).toFixed(2)}× | ${Math.round(median(x.tcp))} | ${ratio(x.tcp, h.tcp).toFixed(2)}× |`,
      )
    }
  } finally {
    idleHold?.release()
    await stopAll()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
