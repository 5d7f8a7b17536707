// The edge's limits on what a client may send, in one place so the README and the tests agree.
import { parseDuration } from '../config/duration.ts'

/**
 * Request line plus headers, in bytes: 16 KiB, node's own default and the size most proxies accept
 * (nginx's large_client_header_buffers is 4 × 8 KiB, Envoy's default is 60 KiB). Past it: 431.
 */
export const MAX_HEADER_BYTES = 16 * 1024

/** Header lines per request: 100, Envoy's `max_headers_count` default. Past it: 431. */
export const MAX_HEADER_COUNT = 100

/**
 * Request bodies with a Content-Length up to this many bytes are read into memory first, so the
 * pipeline can retry or mirror them: 64 KiB. Larger or chunked bodies stream through in constant
 * memory and are sent once (a failed attempt is not retried, the same as Envoy past its buffer limit).
 */
export const MAX_BUFFERED_BODY = 64 * 1024

/**
 * Idle keep-alive connections from the app stay open this long, in ms: 60 s, longer than the idle
 * timeouts of common HTTP clients (node's agent: 5 s, undici: 4 s), so the client, not the sidecar,
 * closes an idle connection and never races a request against our close.
 */
export const KEEP_ALIVE_TIMEOUT = 60_000

/**
 * The timeouts of a listener's connections, in ms (bytes per second for the rate). Each is checked
 * by a sweep of the connections, not a timer per request, so it fires up to a sweep interval late
 * (a quarter of the shortest timeout, at most 1 s).
 */
export interface EdgeTimeouts {
  /** A head still incomplete after this long is answered 408: 60 s, node's headersTimeout. */
  headersTimeout: number
  /** Idle keep-alive connections close after this (see KEEP_ALIVE_TIMEOUT). */
  keepAliveTimeout: number
  /**
   * A request body that sends nothing for this long is answered 408 and its connection closed:
   * 30 s, between the idle timeouts of nginx (`client_body_timeout` 60 s between two reads) and
   * HAProxy's usual `timeout http-request`/`client` settings of 10–30 s; Envoy's
   * `stream_idle_timeout` is 5 min but covers a whole stream. Time the sidecar itself holds the body
   * back (its upstream reads slowly: backpressure) does not count.
   */
  bodyIdleTimeout: number
  /**
   * A request body slower than this on average, once it has been arriving for bodyIdleTimeout, is
   * answered 408: 500 bytes/s, Apache mod_reqtimeout's `MinRate` default. It stops a client that
   * trickles one byte just often enough to beat the idle timeout. 0 turns the guard off.
   */
  bodyMinRate: number
}

export const DEFAULT_EDGE_TIMEOUTS: Readonly<EdgeTimeouts> = Object.freeze({
  headersTimeout: 60_000,
  keepAliveTimeout: KEEP_ALIVE_TIMEOUT,
  bodyIdleTimeout: 30_000,
  bodyMinRate: 500,
})

/**
 * The timeouts a container spec sets through the environment: `MESHGATE_HEADERS_TIMEOUT`,
 * `MESHGATE_BODY_IDLE_TIMEOUT` (durations: `30s`, `500ms`) and `MESHGATE_BODY_MIN_RATE` (bytes per
 * second, 0 for none). Throws on a value that is not one, naming the variable.
 */
export function edgeTimeoutsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): Partial<EdgeTimeouts> {
  const out: Partial<EdgeTimeouts> = {}
  const duration = (name: string): number | undefined => {
    const text = env[name]
    if (text === undefined || text === '') return undefined
    const ms = parseDuration(text)
    if (ms === undefined || ms <= 0)
      throw new Error(`${name}: not a duration: ${JSON.stringify(text)} (e.g. 30s)`)
    return ms
  }
  const headers = duration('MESHGATE_HEADERS_TIMEOUT')
  if (headers !== undefined) out.headersTimeout = headers
  const body = duration('MESHGATE_BODY_IDLE_TIMEOUT')
  if (body !== undefined) out.bodyIdleTimeout = body
  const rate = env.MESHGATE_BODY_MIN_RATE
  if (rate !== undefined && rate !== '') {
    if (!/^\d+$/.test(rate))
      throw new Error(`MESHGATE_BODY_MIN_RATE: not bytes per second: ${JSON.stringify(rate)}`)
    out.bodyMinRate = Number(rate)
  }
  return out
}
