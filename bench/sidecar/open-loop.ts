// An open-loop HTTP/1.1 load generator: requests are due at fixed intervals whatever the server does,
// and each latency is measured from the moment its request was due, not from when it could be sent.
// A slow response therefore delays the requests queued behind it and they count the wait, so
// coordinated omission (a closed-loop client pausing while the server stalls) cannot hide the tail.
//
//   node bench/sidecar/open-loop.ts --url http://127.0.0.1:8080/ --rate 1000 --seconds 10 \
//     [--warmup 1] [--connections 16] [--header 'host: echo']… [--timeline 100]
//
// Prints one JSON line (OpenLoopResult) and exits. Timing is process.hrtime.bigint (ns); the event loop
// spins on setImmediate so requests leave within microseconds of their due time, which is why this
// process should have a core of its own (taskset). Bounded: it stops by itself at the end of the
// schedule plus `--drain` ms, counting what is still unanswered as timeouts.

import { connect, type Socket } from 'node:net'
import { parseArgs } from 'node:util'

export interface Percentiles {
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
  mean: number
}

export interface OpenLoopResult {
  rate: number
  seconds: number
  connections: number
  /** Requests in the measured part of the schedule (warm-up excluded). */
  scheduled: number
  /** Measured requests answered with 2xx (their latencies are the percentiles). */
  ok: number
  non2xx: number
  /** Connection errors or resets while a measured request was out. */
  errors: number
  /** Measured requests not answered when the generator stopped. */
  timeouts: number
  /** Every response, warm-up included (for CPU per request). */
  responses: number
  /** Measured responses per second actually completed. */
  achievedRate: number
  /** From the due time to the last byte of the response, µs. */
  latencyUs: Percentiles
  /** From the actual write to the last byte, µs (what a closed-loop client would report). */
  serviceUs: Percentiles
  /** From the due time to the actual write, µs: queueing behind busy connections and generator jitter. */
  sendLagUs: Percentiles
  /**
   * The generator's own hiccups: gaps between two turns of its spinning loop longer than 100 µs. On a
   * VM the vCPU is taken away now and then even when it is busy; a response landing in such a gap is
   * timed late by up to its length, whatever the server did. This is the floor under the tail here.
   */
  stalls: { over100us: number; perSecond: number; maxUs: number }
  /** With --timeline MS: the worst latency (µs) of the requests due in each MS-long slice. */
  timelineMaxUs?: number[]
}

interface Conn {
  socket: Socket
  /** Index of the request in flight, or -1. */
  index: number
  sentNs: number
  chunks: Buffer[]
  size: number
  open: boolean
}

function percentiles(values: Float64Array, n: number): Percentiles {
  if (n === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 }
  const s = values.slice(0, n).sort()
  // Nearest rank: the smallest value with at least p of the samples at or below it.
  const at = (p: number) => s[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!
  let sum = 0
  for (let i = 0; i < n; i++) sum += s[i]!
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: s[n - 1]!, mean: sum / n }
}

type Parsed = { status: number; end: number; close: boolean } | null

const CRLF2 = Buffer.from('\r\n\r\n')
const STALL_NS = 100_000

/** A complete response at the start of `buf`, or null while more bytes are needed. */
function parseResponse(buf: Buffer, head: boolean): Parsed {
  const headerEnd = buf.indexOf(CRLF2)
  if (headerEnd < 0) return null
  const text = buf.toString('latin1', 0, headerEnd)
  const status = Number(text.slice(9, 12))
  let length = -1
  let chunked = false
  let close = false
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line
      .slice(colon + 1)
      .trim()
      .toLowerCase()
    if (name === 'content-length') length = Number(value)
    else if (name === 'transfer-encoding') chunked = value.includes('chunked')
    else if (name === 'connection') close = value.includes('close')
  }
  const bodyStart = headerEnd + 4
  if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { status, end: bodyStart, close }
  }
  if (chunked) {
    let at = bodyStart
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at, 'latin1')
      if (lineEnd < 0) return null
      const size = Number.parseInt(buf.toString('latin1', at, lineEnd), 16)
      if (!Number.isFinite(size)) throw new Error('bad chunk size')
      if (size === 0) {
        // No trailers expected: the last chunk is followed by one CRLF.
        const end = buf.indexOf(CRLF2, lineEnd, 'latin1')
        if (end >= 0) return { status, end: end + 4, close }
        return buf.length >= lineEnd + 4 ? { status, end: lineEnd + 4, close } : null
      }
      at = lineEnd + 2 + size + 2
      if (at > buf.length) return null
    }
  }
  if (length >= 0) return buf.length >= bodyStart + length ? { status, end: bodyStart + length, close } : null
  // No length and not chunked: the body runs to the end of the connection (not expected from these servers).
  return close ? null : { status, end: bodyStart, close }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      rate: { type: 'string', default: '1000' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '1' },
      connections: { type: 'string', default: '16' },
      header: { type: 'string', multiple: true, default: [] },
      method: { type: 'string', default: 'GET' },
      drain: { type: 'string', default: '2000' },
      timeline: { type: 'string', default: '0' },
    },
  })
  if (values.url === undefined) throw new Error('--url is required')
  const url = new URL(values.url)
  const rate = Number(values.rate)
  const seconds = Number(values.seconds)
  const warmup = Number(values.warmup)
  const connections = Number(values.connections)
  const drainNs = Number(values.drain) * 1e6
  // --timeline MS: also report the worst latency of each MS-long slice of the measured schedule (by
  // due time), to see whether a tail is spread out or comes in bursts (GC, timers, the VM).
  const sliceNs = Number(values.timeline) * 1e6
  const method = values.method.toUpperCase()
  const head = method === 'HEAD'

  const headerLines: string[] = []
  let hasHost = false
  for (const h of values.header) {
    const colon = h.indexOf(':')
    if (colon <= 0) throw new Error(`--header: want "name: value", got ${JSON.stringify(h)}`)
    if (h.slice(0, colon).trim().toLowerCase() === 'host') hasHost = true
    headerLines.push(`${h.slice(0, colon).trim()}: ${h.slice(colon + 1).trim()}`)
  }
  if (!hasHost) headerLines.unshift(`Host: ${url.host}`)
  const request = Buffer.from(
    `${method} ${url.pathname}${url.search} HTTP/1.1\r\n${headerLines.join('\r\n')}\r\n\r\n`,
  )

  const intervalNs = 1e9 / rate
  const warmN = Math.round(warmup * rate)
  const measuredN = Math.round(seconds * rate)
  const total = warmN + measuredN
  const latency = new Float64Array(measuredN)
  const service = new Float64Array(measuredN)
  const lag = new Float64Array(measuredN)
  const timeline = sliceNs > 0 ? new Float64Array(Math.ceil((seconds * 1e9) / sliceNs)) : undefined
  let okCount = 0
  let lagCount = 0
  let non2xx = 0
  let errors = 0
  let responses = 0
  let answered = 0
  let lastResponseNs = 0
  let stalls = 0
  let maxStallNs = 0

  const port = Number(url.port || 80)
  const host = url.hostname
  const conns: Conn[] = []
  const idle: Conn[] = []
  let t0 = process.hrtime.bigint()
  const now = () => Number(process.hrtime.bigint() - t0)
  let finished = false

  function open(): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, noDelay: true })
      const c: Conn = { socket, index: -1, sentNs: 0, chunks: [], size: 0, open: false }
      socket.once('connect', () => {
        c.open = true
        resolve(c)
      })
      socket.on('data', (chunk: Buffer) => onData(c, chunk))
      socket.on('error', (err) => {
        if (!c.open) reject(err)
      })
      socket.on('close', () => onClose(c))
    })
  }

  function fail(c: Conn): void {
    if (c.index < 0) return
    if (c.index >= warmN) errors++
    answered++
    c.index = -1
  }

  function onClose(c: Conn): void {
    const wasOpen = c.open
    c.open = false
    fail(c)
    const at = idle.indexOf(c)
    if (at >= 0) idle.splice(at, 1)
    if (finished || !wasOpen) return
    // Keep the pool at its size: reopen, and the replacement joins the idle list once connected.
    open().then(
      (fresh) => {
        conns[conns.indexOf(c)] = fresh
        if (finished) fresh.socket.destroy()
        else idle.push(fresh)
      },
      () => {},
    )
  }

  function onData(c: Conn, chunk: Buffer): void {
    const t = now()
    if (c.index < 0) return
    c.chunks.push(chunk)
    c.size += chunk.length
    const buf = c.chunks.length === 1 ? chunk : Buffer.concat(c.chunks, c.size)
    let parsed: Parsed
    try {
      parsed = parseResponse(buf, head)
    } catch {
      c.socket.destroy()
      return
    }
    if (parsed === null) {
      if (c.chunks.length > 1) c.chunks = [buf]
      return
    }
    const i = c.index
    c.index = -1
    c.chunks = []
    c.size = 0
    responses++
    answered++
    lastResponseNs = t
    if (i >= warmN) {
      if (parsed.status >= 200 && parsed.status < 300) {
        const due = i * intervalNs
        latency[okCount] = (t - due) / 1000
        if (timeline !== undefined) {
          const slice = Math.floor((due - warmN * intervalNs) / sliceNs)
          if (latency[okCount]! > timeline[slice]!) timeline[slice] = latency[okCount]!
        }
        service[okCount] = (t - c.sentNs) / 1000
        okCount++
      } else non2xx++
    }
    if (parsed.close) {
      c.socket.destroy()
      return
    }
    idle.push(c)
    dispatch(t)
  }

  let due = 0
  let sent = 0
  function dispatch(t: number): void {
    while (due < total && due * intervalNs <= t) due++
    while (sent < due) {
      const c = idle.pop()
      if (c === undefined) return
      const i = sent++
      c.index = i
      c.sentNs = now()
      if (i >= warmN) lag[lagCount++] = (c.sentNs - i * intervalNs) / 1000
      c.socket.write(request)
    }
  }

  for (let i = 0; i < connections; i++) conns.push(await open())
  idle.push(...conns)

  await new Promise<void>((resolve) => {
    // Start the clock only now: connection setup is not part of any request's latency.
    t0 = process.hrtime.bigint()
    const end = total * intervalNs + drainNs
    let previous = now()
    const tick = () => {
      const t = now()
      const gap = t - previous
      previous = t
      if (gap > STALL_NS) {
        stalls++
        if (gap > maxStallNs) maxStallNs = gap
      }
      dispatch(t)
      if (answered >= total || t > end) {
        resolve()
        return
      }
      setImmediate(tick)
    }
    setImmediate(tick)
  })
  finished = true
  for (const c of conns) c.socket.destroy()

  const measuredAnswered = okCount + non2xx + errors
  const result: OpenLoopResult = {
    rate,
    seconds,
    connections,
    scheduled: measuredN,
    ok: okCount,
    non2xx,
    errors,
    timeouts: measuredN - measuredAnswered,
    responses,
    achievedRate: okCount / Math.max(1e-9, (lastResponseNs - warmN * intervalNs) / 1e9),
    latencyUs: percentiles(latency, okCount),
    serviceUs: percentiles(service, okCount),
    sendLagUs: percentiles(lag, lagCount),
    stalls: { over100us: stalls, perSecond: stalls / (now() / 1e9), maxUs: maxStallNs / 1000 },
  }
  if (timeline !== undefined) result.timelineMaxUs = Array.from(timeline, Math.round)
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

if (import.meta.main) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`open-loop: ${err instanceof Error ? err.message : String(err)}\n`)
      process.exit(1)
    },
  )
}
