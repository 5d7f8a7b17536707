// Defaults, each with its unit and its anchor. DESIGN: "Defaults follow the anchors".
import type { CircuitBreakerConfig, OutlierConfig, RetryBudgetConfig, RetryConfig } from '../engine/types.ts'

/** 15 s: Envoy's route timeout default. */
export const DEFAULT_TIMEOUT_MS = 15_000

/**
 * An upgraded connection (WebSocket) with no byte either way for this long closes, ms: 5 min, Envoy's
 * `stream_idle_timeout`, which is what bounds its upgraded streams; nginx's `proxy_read_timeout` is
 * 60 s, which WebSocket guides routinely raise. Set per route with `idleTimeout`.
 */
export const DEFAULT_UPGRADE_IDLE_TIMEOUT_MS = 300_000

/**
 * A TCP service's connection with no byte either way for this long closes, ms: 1 h, Envoy's
 * `tcp_proxy` `idle_timeout` default (and Istio's `connectionPool.tcp.idleTimeout`).
 */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000

/** Longest wait for one TCP connect to a target of a tcp service, ms: 5 s, Envoy's cluster `connect_timeout`. */
export const DEFAULT_TCP_CONNECT_TIMEOUT_MS = 5_000

/**
 * Ports a tcp service may not take: the sidecar's own (DESIGN: outbound 15001, inbound 15006, admin
 * 15000), and the privileged range below 1024, which the sidecar (uid 1000 in the image) cannot bind.
 */
export const RESERVED_TCP_PORTS: readonly number[] = [15000, 15001, 15006]

/** Methods RFC 9110 calls idempotent; others are retried only when a route lists them. */
export const IDEMPOTENT_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'] as const

export const DEFAULT_RETRIES: RetryConfig = {
  // 2 retries: Istio's default `attempts`.
  attempts: 2,
  // 0 = no per-try limit beyond the route timeout (Envoy's default).
  perTryTimeout: 0,
  // Throttling is retryable (DESIGN: Lambda targets); the rest are Envoy's gateway errors.
  on: ['connect-failure', 'reset', 'throttled', '502', '503', '504'],
  // 25 ms base, 10× base cap: Envoy's fully jittered exponential backoff.
  backoff: { base: 25, max: 250 },
  methods: [...IDEMPOTENT_METHODS],
}

/** 20% of active requests plus 10 retries/s: Linkerd's budget. */
export const DEFAULT_RETRY_BUDGET: RetryBudgetConfig = { percent: 20, minPerSecond: 10 }

/** Istio's outlier detection: 5 consecutive 5xx, 10 s sweep, 30 s base ejection, 10% max. */
export const DEFAULT_OUTLIER: OutlierConfig = {
  consecutive5xx: 5,
  consecutiveGatewayErrors: 0,
  interval: 10_000,
  baseEjectionTime: 30_000,
  maxEjectionPercent: 10,
}

/** 1024 each: Envoy's circuit-breaker defaults. */
export const DEFAULT_CIRCUIT_BREAKER: CircuitBreakerConfig = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
}

/** X-Ray's default sampling rule: 1 request per second, then 5%. */
export const DEFAULT_SAMPLING = { reservoirPerSecond: 1, rate: 5 }

/** How often dns:// targets are re-resolved, in ms. */
export const DEFAULT_DNS_REFRESH_MS = 5_000

/**
 * How often cloudmap:// targets call DiscoverInstances, in ms (±10% jitter). 30 s is half the 60 s
 * DNS TTL that ECS gives the records of services it registers in Cloud Map (CDK `CloudMapOptions.dnsTtl`
 * default), so a sidecar sees a change no later than a DNS client would; Cloud Map's own health
 * status moves in 30 s steps anyway (`FailureThreshold` counts 30-second intervals).
 */
export const DEFAULT_CLOUDMAP_REFRESH_MS = 30_000

/**
 * Active health checks: the App Mesh API makes every field required; these are the defaults of the
 * AWS CDK's `HealthCheck.http()` for App Mesh (path /, every 5 s, 2 s timeout, 2 and 2).
 */
export const DEFAULT_HEALTH_CHECK = {
  protocol: 'http',
  path: '/',
  interval: 5_000,
  timeout: 2_000,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
} as const

/** App Mesh HealthCheckPolicy's valid ranges (API reference), durations in ms. */
export const HEALTH_CHECK_LIMITS = {
  interval: { min: 5_000, max: 300_000 },
  timeout: { min: 2_000, max: 60_000 },
  threshold: { min: 2, max: 10 },
} as const
