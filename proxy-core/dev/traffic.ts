// The built-in traffic generator: a steady rate of requests to the gateway, so the dashboard moves. A
// mix like Istio's Bookinfo load: mostly anonymous product pages (these take the weighted split), some
// as `end-user: jason` (the user-based route), and some straight API calls.
import { Agent, request } from 'node:http'

export interface TrafficRequest {
  path: string
  headers: Record<string, string>
}

/** Relative weights of the generated requests. */
export const TRAFFIC_MIX: readonly { weight: number; req: TrafficRequest }[] = [
  { weight: 60, req: { path: '/productpage', headers: {} } },
  { weight: 15, req: { path: '/productpage', headers: { 'end-user': 'jason' } } },
  { weight: 15, req: { path: '/api/reviews/0', headers: {} } },
  { weight: 10, req: { path: '/api/details/0', headers: {} } },
]

/** At most this many generated requests in flight: a slow mesh is not buried under a backlog. */
const MAX_IN_FLIGHT = 64

export interface TrafficStats {
  running: boolean
  rate: number
  sent: number
  ok: number
  errors: number
  /** Skipped because MAX_IN_FLIGHT requests were still waiting. */
  skipped: number
}

export interface TrafficGenerator {
  setRate(perSecond: number): void
  start(): void
  stop(): void
  stats(): TrafficStats
  close(): void
}

export function pickRequest(random: number): TrafficRequest {
  const total = TRAFFIC_MIX.reduce((n, m) => n + m.weight, 0)
  let x = random * total
  for (const m of TRAFFIC_MIX) {
    x -= m.weight
    if (x < 0) return m.req
  }
  return TRAFFIC_MIX[0]!.req
}

export function createTrafficGenerator(
  gatewayUrl: string,
  rate: number,
  random: () => number = Math.random,
): TrafficGenerator {
  const url = new URL(gatewayUrl)
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT })
  const stats: TrafficStats = { running: false, rate, sent: 0, ok: 0, errors: 0, skipped: 0 }
  let inFlight = 0
  let timer: NodeJS.Timeout | undefined
  let due = 0
  let last = 0

  function send(): void {
    if (inFlight >= MAX_IN_FLIGHT) {
      stats.skipped++
      return
    }
    const r = pickRequest(random())
    inFlight++
    stats.sent++
    const done = (ok: boolean) => {
      inFlight--
      if (ok) stats.ok++
      else stats.errors++
    }
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: r.path,
        headers: { 'user-agent': 'meshgate-dev-traffic', ...r.headers },
        agent,
      },
      (res) => {
        res.resume()
        res.on('end', () => done((res.statusCode ?? 500) < 500))
        res.on('error', () => done(false))
      },
    )
    req.on('error', () => done(false))
    req.end()
  }

  // A 50 ms tick sends what is due since the last one: fractional rates and high rates both come out right.
  function tick(): void {
    const t = performance.now()
    due += ((t - last) / 1000) * stats.rate
    last = t
    while (due >= 1) {
      due -= 1
      send()
    }
  }

  function stop(): void {
    stats.running = false
    clearInterval(timer)
    timer = undefined
  }

  return {
    setRate(perSecond) {
      stats.rate = Math.max(0, perSecond)
    },
    start() {
      if (timer) return
      stats.running = true
      last = performance.now()
      due = 1
      timer = setInterval(tick, 50)
    },
    stop,
    stats: () => ({ ...stats }),
    close() {
      stop()
      agent.destroy()
    },
  }
}
