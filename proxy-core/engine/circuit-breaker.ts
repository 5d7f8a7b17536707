// Circuit breaking in Envoy's sense: not a tripping state machine but hard caps on concurrency towards
// one upstream (connections, requests waiting for a connection, requests in flight). A caller that is
// refused gets a 503 `circuit_open` at once instead of queueing behind a struggling upstream.

import type { CircuitBreakerConfig } from './types.ts'

/** Envoy's cluster circuit breaker defaults: 1024 of each. Counts, not rates. */
export const DEFAULT_CIRCUIT_BREAKER: Readonly<CircuitBreakerConfig> = Object.freeze({
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
})

export interface CircuitBreakerSnapshot {
  /** What is open or in flight right now. */
  requests: number
  pending: number
  connections: number
  /** How many times each limit refused, since creation (Envoy's `*_overflow` counters). */
  overflows: { requests: number; pending: number; connections: number }
  limits: CircuitBreakerConfig
}

export interface CircuitBreaker {
  /** Count one more request in flight, or refuse (false) when `maxRequests` are already in flight. */
  tryStartRequest(): boolean
  finishRequest(): void
  /** Count one more request waiting for a connection, or refuse when `maxPendingRequests` wait. */
  tryStartPending(): boolean
  finishPending(): void
  /** Count one more open upstream connection, or refuse when `maxConnections` are open. */
  tryOpenConnection(): boolean
  closeConnection(): void
  snapshot(): CircuitBreakerSnapshot
}

/**
 * One breaker per endpoint group (Envoy: per cluster and priority). Every successful `tryX` must be
 * paired with exactly one `finishX`/`closeConnection`; extra finishes are ignored rather than letting
 * a counter go negative and silently raise the limit.
 */
export function createCircuitBreaker(limits: CircuitBreakerConfig): CircuitBreaker {
  const frozen = Object.freeze({ ...limits })
  let requests = 0
  let pending = 0
  let connections = 0
  const overflows = { requests: 0, pending: 0, connections: 0 }

  return {
    tryStartRequest() {
      if (requests >= frozen.maxRequests) {
        overflows.requests++
        return false
      }
      requests++
      return true
    },
    finishRequest() {
      if (requests > 0) requests--
    },
    tryStartPending() {
      if (pending >= frozen.maxPendingRequests) {
        overflows.pending++
        return false
      }
      pending++
      return true
    },
    finishPending() {
      if (pending > 0) pending--
    },
    tryOpenConnection() {
      if (connections >= frozen.maxConnections) {
        overflows.connections++
        return false
      }
      connections++
      return true
    },
    closeConnection() {
      if (connections > 0) connections--
    },
    snapshot() {
      return { requests, pending, connections, overflows: { ...overflows }, limits: frozen }
    },
  }
}
