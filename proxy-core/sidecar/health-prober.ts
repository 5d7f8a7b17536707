// The sidecar's half of active health checks: the probe (an HTTP GET of the target's health path on
// each endpoint) and the set of running checkers, one per target that configures `healthCheck`. The
// decisions (thresholds, interval, timeout) are engine/health-check.ts; this file only moves bytes and
// keeps checkers alive across config reloads, so a reload neither forgets that an endpoint is down
// nor probes it twice.

import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import {
  createHealthChecker,
  type EndpointHealth,
  type HealthChecker,
  type HealthProbe,
  type HealthTransition,
} from '../engine/health-check.ts'
import type { CancelSignal, Clock, HealthCheckConfig, MeshConfig, Timers } from '../engine/types.ts'

/** Probes send this, so an app's access log can tell them from traffic (Envoy: `Envoy/HC`). */
const USER_AGENT = 'meshgate-health-check'

/** 2xx passes: Envoy expects 200 by default; 204 and friends are what health endpoints often answer. */
function passes(status: number): boolean {
  return status >= 200 && status <= 299
}

/**
 * `GET {path}` against the endpoint (or the check's own port), with `Host` set to the endpoint's
 * authority. The body is read and dropped as it arrives, never held. Each probe opens its own
 * connection and asks the server to close it: a kept-alive connection reused every 5 s would race
 * servers that close idle connections after 5 s (node's default `keepAliveTimeout`), and a lost race
 * reads as a failed check of a healthy endpoint.
 */
export function createHttpHealthProbe(): HealthProbe & { close(): void } {
  const inFlight = new Set<{ destroy(err?: Error): void }>()
  const probe = (endpointId: string, check: HealthCheckConfig, signal: CancelSignal) =>
    new Promise<{ passed: boolean; detail: string }>((resolve, reject) => {
      let url: URL
      try {
        url = new URL(check.path, endpointId)
      } catch {
        reject(new Error(`cannot probe ${endpointId}${check.path}`))
        return
      }
      if (check.port !== undefined) url.port = String(check.port)
      const secure = url.protocol === 'https:'
      const req = (secure ? httpsRequest : httpRequest)(
        {
          protocol: url.protocol,
          hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
          port: url.port,
          path: `${url.pathname}${url.search}`,
          method: 'GET',
          headers: { host: url.host, 'user-agent': USER_AGENT, accept: '*/*', connection: 'close' },
          agent: false,
        },
        (res) => {
          const status = res.statusCode ?? 0
          res.on('error', () => {})
          // Answered once the status line is in: the verdict does not wait for the body.
          res.resume()
          resolve({ passed: passes(status), detail: String(status) })
        },
      )
      const onAbort = () => req.destroy(new Error('health check cancelled'))
      signal.addEventListener('abort', onAbort)
      inFlight.add(req)
      req.on('close', () => {
        inFlight.delete(req)
        signal.removeEventListener('abort', onAbort)
      })
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === undefined ? err.message : `${err.code} ${err.message}`)),
      )
      req.end()
    })
  return Object.assign(probe, {
    /** Ends the probes still in flight (the checkers are stopped first). */
    close() {
      for (const req of inFlight) req.destroy(new Error('health checks stopped'))
    },
  })
}

export interface HealthChecksOptions {
  clock: Clock
  timers: Timers
  /** Default: `createHttpHealthProbe()`, closed by `stop()`. */
  probe?: HealthProbe
  onTransition?: (
    t: { service: string; target: string },
    endpointId: string,
    to: HealthTransition,
    state: Readonly<EndpointHealth>,
  ) => void
}

export interface HealthCheckView {
  service: string
  target: string
  path: string
  interval: number
  endpoints: ({ endpoint: string } & Readonly<EndpointHealth>)[]
}

export interface HealthChecks {
  /**
   * Makes the checkers `config` needs (keeping those of an earlier config whose target and check did
   * not change) and stops the rest. Static endpoints are set here; discovered ones come through the
   * runtime's `setEndpoints`.
   */
  configure(config: MeshConfig): void
  /** The checker of a target, for the runtime's `health` option (which also gives it discovered endpoints). */
  lookup(service: string, target: string): HealthChecker | undefined
  snapshot(): HealthCheckView[]
  stop(): void
}

export function createHealthChecks(opts: HealthChecksOptions): HealthChecks {
  // service/target → the checker and what it was made for.
  const running = new Map<string, { checker: HealthChecker; key: string }>()
  const own = opts.probe === undefined ? createHttpHealthProbe() : undefined
  const probe = opts.probe ?? own!
  const id = (service: string, target: string) => `${service}/${target}`

  return {
    configure(config) {
      const wanted = new Set<string>()
      for (const svc of Object.values(config.services)) {
        for (const t of Object.values(svc.targets)) {
          if (t.kind !== 'http' || t.healthCheck === undefined) continue
          const name = id(svc.name, t.name)
          // A changed check, or endpoints now from another source, start over.
          const source = t.dns !== undefined ? 'dns' : t.cloudMap !== undefined ? 'cloudmap' : 'static'
          const key = JSON.stringify([t.healthCheck, source])
          wanted.add(name)
          let entry = running.get(name)
          if (entry !== undefined && entry.key !== key) {
            entry.checker.stop()
            entry = undefined
          }
          if (entry === undefined) {
            const labels = { service: svc.name, target: t.name }
            const checker = createHealthChecker(t.healthCheck, {
              clock: opts.clock,
              timers: opts.timers,
              probe,
              onTransition: (endpoint, to, state) => opts.onTransition?.(labels, endpoint, to, state),
            })
            entry = { checker, key }
            running.set(name, entry)
          }
          if (t.dns === undefined && t.cloudMap === undefined) entry.checker.setEndpoints(t.endpoints)
        }
      }
      for (const [name, entry] of running) {
        if (wanted.has(name)) continue
        entry.checker.stop()
        running.delete(name)
      }
    },
    lookup: (service, target) => running.get(id(service, target))?.checker,
    snapshot() {
      return [...running].map(([name, { checker }]) => {
        const slash = name.indexOf('/')
        return {
          service: name.slice(0, slash),
          target: name.slice(slash + 1),
          path: checker.config.path,
          interval: checker.config.interval,
          endpoints: checker.snapshot(),
        }
      })
    },
    stop() {
      for (const { checker } of running.values()) checker.stop()
      running.clear()
      own?.close()
    },
  }
}
