// The shapes shared by the engine and both runtimes. Config types describe the validated mesh file with
// defaults applied; Compiled* types are the frozen objects the hot path reads. Nothing here imports a
// runtime package: the engine must be embeddable anywhere.

import type { PathNormalizationConfig } from './path-normalize.ts'

/** Milliseconds since an arbitrary origin. Injected so policies can be tested without sleeping. */
export interface Clock {
  now(): number
}
/** A uniform float in [0, 1). Injected so weighted picks, faults and jitter are exact in tests. */
export type Random = () => number

/** One-shot timers, injected with the clock so timeouts and backoff run on a manual clock in tests. */
export interface Timers {
  set(fn: () => void, ms: number): unknown
  clear(handle: unknown): void
}

export const systemClock: Clock = { now: () => performance.now() }
export const systemRandom: Random = Math.random
export const systemTimers: Timers = {
  set: (fn, ms) => {
    const t = setTimeout(fn, ms)
    // A pending timeout must never keep a Lambda container or a draining sidecar alive.
    t.unref?.()
    return t
  },
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}

// ---------------------------------------------------------------------------------------------
// Validated config (what `loadConfig` returns). Durations are milliseconds, percents 0–100.

export interface StringMatch {
  exact?: string
  prefix?: string
  regex?: string
  /** true: the header/param must be present (any value); false: it must be absent. */
  present?: boolean
}
export interface PathMatch {
  exact?: string
  /** Segment-aware: `/api` matches `/api` and `/api/x`, not `/apix` (Gateway API). */
  prefix?: string
  regex?: string
}
/** Gateway API GRPCRoute's method match: exact names; either may be left out (any). */
export interface GrpcMethodMatch {
  /** Fully qualified service, e.g. `helloworld.Greeter`. */
  service?: string
  method?: string
}
export interface RouteMatchConfig {
  /**
   * gRPC calls only (content-type application/grpc); the loader also writes the equivalent `path`
   * condition (`/SERVICE/METHOD`) and the content-type header condition, which the route table reads.
   */
  grpc?: GrpcMethodMatch
  path?: PathMatch
  /** Upper-case method names; any of them matches. */
  methods?: string[]
  headers?: Record<string, StringMatch>
  query?: Record<string, StringMatch>
}
export interface RetryConfig {
  /** Retries after the first try (Istio's `attempts`): 2 means up to 3 tries in all. */
  attempts: number
  perTryTimeout: number
  /**
   * Conditions: 5xx, gateway-error, reset, connect-failure, retriable-4xx, status codes as strings, or
   * gRPC status names (unavailable, resource-exhausted, cancelled, deadline-exceeded, internal).
   */
  on: string[]
  backoff: { base: number; max: number }
  /** Methods that may be retried: idempotent ones unless the route lists others (e.g. POST). */
  methods: string[]
}
export interface RetryBudgetConfig {
  /** Retries may add at most this percent of the active requests... */
  percent: number
  /** ...but at least this many retries per second are always allowed. */
  minPerSecond: number
}
export interface FaultConfig {
  delay?: { percent: number; duration: number }
  abort?: { percent: number; status: number }
}
export interface HeaderOps {
  set: Record<string, string>
  add: Record<string, string>
  remove: string[]
}
export interface RewriteConfig {
  /** Replace the matched path prefix with this one. */
  prefix?: string
  /** Replace the whole path. */
  path?: string
  /** Replace the Host/authority sent upstream. */
  host?: string
}
export interface RouteConfig {
  name: string
  match: RouteMatchConfig
  /** target name → relative weight */
  to: Record<string, number>
  stickiness?: { header?: string; cookie?: string }
  timeout: number
  retries: RetryConfig
  fault?: FaultConfig
  mirror?: { target: string; percent: number }
  headers: { request: HeaderOps; response: HeaderOps }
  rewrite?: RewriteConfig
  /**
   * A tunnel this route carries (an upgraded connection, or a TCP service's connection) closes after
   * this long without a byte either way, ms (config/defaults.ts has the defaults and their sources).
   */
  idleTimeout: number
}
export const LoadBalancers = { roundRobin: 'round-robin', leastRequest: 'least-request' } as const
export type LoadBalancer = (typeof LoadBalancers)[keyof typeof LoadBalancers]

/** How the sidecar speaks to an HTTP target's endpoints (DESIGN "Protocols"). */
export const UpstreamProtocols = { http1: 'http1', http2: 'http2', grpc: 'grpc' } as const
export type UpstreamProtocol = (typeof UpstreamProtocols)[keyof typeof UpstreamProtocols]

export type TargetConfig =
  | { kind: 'lambda'; name: string; functionName: string; qualifier?: string }
  | {
      kind: 'http'
      name: string
      /**
       * `http1` (the default), or HTTP/2 (`http2`, `grpc`: HTTP/2 with prior knowledge on cleartext
       * origins). Undefined is http1.
       */
      protocol?: UpstreamProtocol
      /** Static endpoints as `http(s)://host:port`; or DNS names re-resolved every `dnsRefresh` ms. */
      endpoints: string[]
      dns?: { host: string; port: number; protocol: 'http' | 'https' | 'tcp' }
      dnsRefresh: number
      /** `cloudmap://NAMESPACE/SERVICE`: endpoints from Cloud Map DiscoverInstances (sidecar only). */
      cloudMap?: CloudMapTargetConfig
      loadBalancer: LoadBalancer
      /** Active health checks against every endpoint (App Mesh's HealthCheckPolicy); sidecar only. */
      healthCheck?: HealthCheckConfig
      /** How the target's `https://` endpoints are reached (docs/tls.md); absent: the defaults. */
      tls?: TargetTlsConfig
    }
/** Istio's DestinationRule `tls` for one target (docs/tls.md). */
export interface TargetTlsConfig {
  /**
   * `mutual`: present the sidecar's certificate and verify the peer against its trust bundle (the
   * default when the sidecar has one); `simple`: verify against the system's roots, no client certificate.
   */
  mode?: 'mutual' | 'simple'
  /** The server name sent in SNI and checked in the certificate (default: the endpoint's host). */
  sni?: string
  /** The peer's certificate must carry one of these (DNS, IP or URI SAN), instead of the host name. */
  subjectAltNames?: string[]
}
/** Where a Cloud Map target's endpoints come from; see docs/config.md#cloud-map. */
export interface CloudMapTargetConfig {
  namespace: string
  service: string
  /** DiscoverInstances QueryParameters: every instance returned has all of these attributes. */
  queryParameters: Record<string, string>
  /** DiscoverInstances OptionalParameters: preferred when some instance has them, else ignored. */
  optionalParameters: Record<string, string>
  /** For instances registered without AWS_INSTANCE_PORT; undefined: such instances are skipped. */
  defaultPort?: number
  /** Milliseconds between DiscoverInstances calls (jittered). */
  refresh: number
  /** `https` when the target has a `tls` block: its instances are reached over TLS. */
  protocol?: 'http' | 'https'
}
/** App Mesh's HealthCheckPolicy for HTTP; durations in milliseconds. */
export interface HealthCheckConfig {
  protocol: 'http'
  path: string
  /** Probe this port instead of the endpoint's own (App Mesh `port`). */
  port?: number
  interval: number
  timeout: number
  healthyThreshold: number
  unhealthyThreshold: number
}
export interface OutlierConfig {
  consecutive5xx: number
  consecutiveGatewayErrors: number
  interval: number
  baseEjectionTime: number
  maxEjectionPercent: number
}
export interface CircuitBreakerConfig {
  maxConnections: number
  maxPendingRequests: number
  maxRequests: number
}
/** `listener: { protocol: tcp, port: N }`: the sidecar routes this service per TCP connection. */
export interface TcpListenerConfig {
  protocol: 'tcp'
  port: number
  /** Longest wait for one connect, ms. */
  connectTimeout: number
}
export interface ServiceConfig {
  name: string
  targets: Record<string, TargetConfig>
  routes: RouteConfig[]
  /** Set for a TCP service (its targets' endpoints are `tcp://host:port`); absent for HTTP. */
  listener?: TcpListenerConfig
  outlierDetection: OutlierConfig
  circuitBreaker: CircuitBreakerConfig
  retryBudget: RetryBudgetConfig
  /** Who is this service: role ARNs, Lambda function names or ARNs (DESIGN "Identity and authorization"). */
  principals?: string[]
  /** Allow rules, judged on the receiver before the app sees anything (proxy-core/identity/). */
  authorization?: AuthorizationConfig
  /** Token buckets per caller identity, on the receiver. */
  rateLimit?: RateLimitConfig
}
/** `enforce` refuses; `audit` lets the request pass and records what it would have refused (Linkerd). */
export type AuthorizationMode = 'enforce' | 'audit'
export interface AuthorizationRuleConfig {
  name: string
  /** Caller services or principals; `*` is any authenticated caller. */
  from: string[]
  match: RouteMatchConfig
}
export interface AuthorizationConfig {
  mode: AuthorizationMode
  default: 'deny' | 'allow'
  rules: AuthorizationRuleConfig[]
}
export interface RateBucketConfig {
  /** Tokens added per second. */
  rps: number
  /** Bucket size. */
  burst: number
}
export interface RateLimitConfig extends RateBucketConfig {
  /** Buckets of their own for named callers (a service or a principal). */
  perCaller: Record<string, RateBucketConfig>
}
export interface IdentityConfig {
  /** Trusted token issuers (`https://<id>.tokens.sts.global.api.aws`); JWKS at `/.well-known/jwks.json`. */
  issuers: string[]
  /** The mesh's audience; a token for service S carries `<audience>/<S>` (identity/audience). */
  audience: string
}
export interface GatewayRouteConfig {
  name: string
  match: RouteMatchConfig
  service: string
  rewrite?: RewriteConfig
}
export interface TracingConfig {
  /** X-Ray's default rule: the first `reservoirPerSecond` requests each second, then `rate` percent. */
  sampling: { reservoirPerSecond: number; rate: number }
}
export interface MeshConfig {
  version: 1
  mesh: string
  gateway: { routes: GatewayRouteConfig[] }
  services: Record<string, ServiceConfig>
  /** Callers prove who they are with STS web identity tokens; absent: no tokens minted or checked. */
  identity?: IdentityConfig
  /** The mesh-wide authorization default for services without their own (no rules). */
  authorization?: Omit<AuthorizationConfig, 'rules'>
  tracing: TracingConfig
  accessLog: boolean
  /** How request paths are normalized where they enter the mesh (engine/path-normalize.ts). */
  pathNormalization: PathNormalizationConfig
  /** Where it came from, for messages. */
  source: string
}

// ---------------------------------------------------------------------------------------------
// The abstract request and response both runtimes hand the pipeline.

/** Lower-case header names, as node:http and undici deliver them. */
export type HeaderMap = Record<string, string | string[] | undefined>

/** A body already in memory can be replayed for a retry or a mirror; a stream cannot. */
export type MeshBody = Uint8Array | string | AsyncIterable<Uint8Array> | null

/**
 * Trailer fields (HTTP/2; gRPC carries its status there). Known at once (a plain map), or only when
 * the body has ended (a promise, settled with undefined when the message had none or broke off).
 */
export type Trailers = HeaderMap | Promise<HeaderMap | undefined>

/**
 * A streamed request body that keeps what has passed through it, up to a bound (the HTTP/2 edge's
 * bodies of unknown length, gRPC's among them), so a retry can send it again once it has ended.
 */
export interface RecordedBody extends AsyncIterable<Uint8Array> {
  /** The whole body, if it has ended within the bound; undefined otherwise. */
  recorded(): Uint8Array | undefined
}

export interface MeshRequest {
  method: string
  /** Path with query string, e.g. `/reviews/0?x=1`. */
  path: string
  headers: HeaderMap
  body: MeshBody
  /** The peer's address, for x-forwarded-for. */
  remoteAddress?: string
  /** Request trailers (HTTP/2 only). */
  trailers?: Trailers
  /**
   * An HTTP/1.1 upgrade the client asked for (`Upgrade` with `Connection: upgrade`): the protocols as
   * it listed them, e.g. `websocket`. Routed like any request; the upstream's 101 comes back with
   * `MeshResponse.upgrade`.
   */
  upgrade?: string
}

/**
 * The upstream side of a connection that switched protocols (a 101 to an upgrade request). The
 * invoker that made it fills in `protocol` and the endpoint; the pipeline adds the route, target and
 * idle timeout; the runtime adapter tunnels it (sidecar/tunnel.ts) or, if it never does, destroys it.
 */
export interface Upgraded {
  /** The protocol the upstream switched to (its `Upgrade` field). */
  readonly protocol: string
  readonly endpoint: string
  route?: string
  target?: string
  /** ms without a byte either way before the tunnel closes; undefined: the adapter's default. */
  idleTimeout?: number
  destroy(): void
}

export interface MeshResponse {
  status: number
  headers: HeaderMap
  body: MeshBody
  /** Set only with status 101: the switched connection. */
  upgrade?: Upgraded
  trailers?: Trailers
}

// ---------------------------------------------------------------------------------------------
// Invokers: one per target kind, supplied by the runtime adapter. The pipeline picks the target and
// the endpoint; the invoker only moves bytes.

/** One concrete place to send an attempt: an HTTP origin (`http://10.0.1.7:9080`) or a Lambda function. */
export interface Endpoint {
  /** Stable id, used by load balancing and outlier detection: the origin URL or the function name. */
  readonly id: string
  readonly target: TargetConfig
}

export interface AttemptRequest extends MeshRequest {
  /** The mesh service being called, e.g. `reviews`. */
  service: string
  /** 1 for the first try. */
  attempt: number
  /**
   * The pipeline may retry this gRPC call on its status: an invoker that can should resolve only once
   * the status is known (trailers-only, or trailers before any message) or a message has begun, and
   * then give the trailers as a plain map.
   */
  awaitGrpcStatus?: boolean
}

/** Failures an invoker reports by throwing an `UpstreamFailure` with one of these kinds. */
export const FailureKinds = {
  connectFailure: 'connect-failure',
  reset: 'reset',
  timeout: 'timeout',
  /** Lambda: the function ran and threw (Invoke returned FunctionError). Maps to 502. */
  functionError: 'function-error',
  /** Lambda: TooManyRequestsException and friends; retryable. */
  throttled: 'throttled',
} as const
export type FailureKind = (typeof FailureKinds)[keyof typeof FailureKinds]

export class UpstreamFailure extends Error {
  readonly kind: FailureKind
  constructor(kind: FailureKind, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.kind = kind
    this.name = 'UpstreamFailure'
  }
}

/**
 * What stops a request or an attempt: the part of AbortSignal the engine uses. An AbortSignal is one;
 * the request path uses the lighter `Cancellation` (engine/cancel.ts), and invokers built on libraries
 * that want a real AbortSignal convert with `toAbortSignal`.
 */
export interface CancelSignal {
  readonly aborted: boolean
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void
  removeEventListener(type: 'abort', listener: () => void): void
}

export interface Invoker {
  /**
   * Send one attempt to `endpoint`. Resolve with the upstream's response (any status), or throw an
   * `UpstreamFailure`. Must stop work and reject promptly when `signal` aborts (per-try timeout).
   */
  invoke(req: AttemptRequest, endpoint: Endpoint, signal: CancelSignal): Promise<MeshResponse>
}
export interface Invokers {
  http: Invoker
  lambda: Invoker
}

// ---------------------------------------------------------------------------------------------
// Telemetry: the pipeline reports what happened; runtimes plug in sinks (metrics, X-Ray, access log).

export interface TraceContext {
  /** X-Ray form: `1-5759e988-bd862e3fe1be46a994272793` (W3C trace ids map to it both ways). */
  traceId: string
  /** The span/segment id of the caller (16 hex digits), if any. */
  parentId?: string
  /** undefined: no decision yet (the receiver samples locally). */
  sampled?: boolean
}

export interface AttemptEvent {
  mesh: string
  service: string
  route: string
  target: string
  endpoint: string
  attempt: number
  method: string
  /** URL as the mesh sees it: `http://reviews/reviews/0`. */
  url: string
  status?: number
  failure?: FailureKind
  /** Clock.now() values. */
  start: number
  end: number
  /** The subsegment id this attempt used as Parent in its outgoing trace headers. */
  spanId: string
  trace: TraceContext
}

export interface RequestEvent {
  mesh: string
  service: string
  route?: string
  target?: string
  method: string
  path: string
  status: number
  start: number
  end: number
  retries: number
  fault?: 'delay' | 'abort'
  /** Set when the mesh made the response itself (x-meshgate-error). */
  errorCode?: string
  /** A gRPC call (set even when it ended without a status). */
  grpc?: boolean
  /** gRPC calls: the status code from the headers (trailers-only) or the trailers. */
  grpcStatus?: number
  trace?: TraceContext
  /** Receivers with identity: the caller (its service, else its principal), and the rule that decided. */
  caller?: string
  rule?: string
}

export const MeshEventKinds = {
  ejection: 'ejection',
  circuitOpen: 'circuit-open',
  retryBudgetExhausted: 'retry-budget-exhausted',
  mirror: 'mirror',
  // Receiver decisions (proxy-core/identity/): one count per request that met a policy.
  authzAllow: 'authz-allow',
  authzDeny: 'authz-deny',
  authzAudit: 'authz-audit',
  unauthenticated: 'unauthenticated',
  rateLimited: 'rate-limited',
} as const
export type MeshEventKind = (typeof MeshEventKinds)[keyof typeof MeshEventKinds]

export interface TelemetrySink {
  attempt?(ev: AttemptEvent): void
  request?(ev: RequestEvent): void
  event?(
    kind: MeshEventKind,
    labels: { mesh: string; service: string; route?: string; target?: string },
  ): void
}

// ---------------------------------------------------------------------------------------------
// The runtime: a compiled mesh plus the per-endpoint state (budgets, ejections, breakers). Built by
// `createMeshRuntime(compileMesh(loadConfig(...)), options)` in proxy-core/engine/runtime.ts.

export interface MeshRuntimeOptions {
  invokers: Invokers
  clock?: Clock
  random?: Random
  timers?: Timers
  telemetry?: TelemetrySink
  /** Epoch milliseconds, for new trace ids (X-Ray ids carry the epoch second). */
  epochNow?: () => number
  /**
   * Active health checks of a target (the sidecar runs them, see engine/health-check.ts): an endpoint
   * it calls unhealthy is skipped by the balancer, as an ejected one is. Asked once per target.
   */
  health?: (service: string, target: string) => EndpointHealthView | undefined
  /**
   * The caller side of mesh identity: the token that goes out in `x-meshgate-identity` on every call
   * to `service`. A cached token comes back as a string (no promise on the request path); undefined
   * sends the call without one (the receiver decides).
   */
  identity?: CallerIdentity
}

/** Tokens for outgoing mesh calls, one per destination service (proxy-core/identity/). */
export interface CallerIdentity {
  tokenFor(service: string): string | undefined | Promise<string | undefined>
}

/** What the runtime asks of a target's health checks, and tells them when discovery moves endpoints. */
export interface EndpointHealthView {
  isHealthy(endpointId: string): boolean
  setEndpoints?(endpointIds: readonly string[]): void
}

/** One target's endpoints as the balancer sees them now, for /stats. */
export interface TargetEndpointsView {
  service: string
  target: string
  endpoints: { id: string; ejected: boolean; healthy: boolean }[]
}

/** One connection of a TCP service, as the runtime chose it (MeshRuntime.pickStream). */
export interface StreamPick {
  readonly route: string
  readonly target: string
  /** `tcp://host:port`. */
  readonly endpoint: string
  readonly idleTimeout: number
  /** The connect's outcome, for outlier detection (a failed connect is a gateway error). */
  connected(ok: boolean): void
  /** The connection ended: the balancer's count of open connections drops. Idempotent. */
  closed(): void
}

export interface RequestContext {
  trace?: TraceContext
  /** Aborts when the downstream client goes away. */
  signal?: CancelSignal
  /** The request's header map is the pipeline's to change: it is not copied again. */
  ownsHeaders?: boolean
}

export interface MeshRuntime {
  readonly config: MeshConfig
  /**
   * Route `req` to mesh service `service` (the Host of an outbound call). Never rejects: errors the
   * mesh makes itself come back as responses carrying `x-meshgate-error`.
   */
  handle(service: string, req: MeshRequest, ctx?: RequestContext): Promise<MeshResponse>
  /** Route by the gateway routes (the edge), then into the chosen service. */
  handleGateway(req: MeshRequest, ctx?: RequestContext): Promise<MeshResponse>
  /** A TCP service's next connection: its target and endpoint; undefined when none is left to try. */
  pickStream(service: string, exclude: ReadonlySet<string>): StreamPick | undefined
  /** Replace the endpoints of an HTTP target (DNS and Cloud Map discovery). */
  setEndpoints(service: string, target: string, urls: string[]): void
  /** Every HTTP target's endpoints with their outlier and health-check state. */
  endpoints(): TargetEndpointsView[]
  /** Requests the pipeline is working on right now (for drain). */
  inFlight(): number
}
