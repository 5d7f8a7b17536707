// The mesh file's schema: the single source of the validator and of `mesh.schema.json`.
// Keys follow the user's vocabulary (Istio VirtualService / DestinationRule, Gateway API, App Mesh).

import { rolloutSchema } from '../rollout/rollout-schema.ts'
import {
  boolean,
  duration,
  either,
  list,
  literal,
  number,
  object,
  optional,
  percent,
  record,
  regex,
  type Schema,
  string,
} from './schema.ts'

/** DNS-label names for services, targets and routes, so they can appear in hosts and metric dimensions. */
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
const NAME_HINT = 'a lower-case name of letters, digits and dashes'
const name = (description?: string) => string({ pattern: NAME, hint: NAME_HINT, description })

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const headerName = string({ pattern: HEADER_NAME, hint: 'an HTTP header name' })
const METHOD = /^[A-Z]+$/
const method = string({ pattern: METHOD, hint: 'an upper-case HTTP method like GET' })
const absolutePath = (description?: string) =>
  string({ pattern: /^\/[^\s?#]*$/, hint: 'a path starting with /', description })

const stringMatch = object(
  {
    exact: optional(string()),
    prefix: optional(string()),
    regex: optional(regex('matched against the whole value')),
    present: optional(boolean('true: present with any value; false: absent')),
  },
  { exactlyOne: ['exact', 'prefix', 'regex', 'present'] },
)
/** `end-user: jason` is an exact match; the mapping form gives the other kinds. */
const valueMatch = either(
  string(),
  stringMatch,
  'a string (exact match) or one of exact, prefix, regex, present',
)

/** A protobuf full name (`helloworld.Greeter`) or a method name (`SayHello`). */
const GRPC_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/
const grpcName = (hint: string) => string({ pattern: GRPC_NAME, hint })

export const matchSchema = object({
  grpc: optional(
    object(
      {
        service: optional(grpcName('a gRPC service like helloworld.Greeter')),
        method: optional(grpcName('a gRPC method name like SayHello')),
      },
      {
        description:
          'gRPC calls only (Gateway API GRPCRoute method match); either may be left out. Not with path',
      },
    ),
  ),
  path: optional(
    object(
      {
        exact: optional(absolutePath()),
        prefix: optional(absolutePath('segment-aware: /api matches /api and /api/x, not /apix')),
        regex: optional(regex('matched against the whole path, without the query')),
      },
      { exactlyOne: ['exact', 'prefix', 'regex'] },
    ),
  ),
  method: optional(either(method, list(method, { minItems: 1 }), 'a method like GET, or a list of them')),
  headers: optional(record(valueMatch, { key: HEADER_NAME, keyHint: 'an HTTP header name' })),
  query: optional(record(valueMatch)),
})

const retryOn = string({
  pattern:
    /^(5xx|gateway-error|reset|connect-failure|retriable-4xx|throttled|[1-5]\d\d|unavailable|resource-exhausted|cancelled|deadline-exceeded|internal)$/,
  hint: 'one of 5xx, gateway-error, reset, connect-failure, retriable-4xx, throttled, a status code like 503, or a gRPC status: unavailable, resource-exhausted, cancelled, deadline-exceeded, internal',
})
const statusCode = number({ min: 100, max: 599, integer: true, hint: 'a status code like 503' })
export const retriesSchema = object({
  attempts: optional(number({ min: 0, max: 10, integer: true, description: 'retries after the first try' })),
  perTryTimeout: optional(duration()),
  on: optional(list(either(retryOn, statusCode))),
  backoff: optional(object({ base: optional(duration()), max: optional(duration()) })),
  methods: optional(
    list(method, { description: 'methods that may be retried (default: the idempotent ones)' }),
  ),
})
export const retryBudgetSchema = object({
  percent: optional(percent('retries as a percent of active requests')),
  minPerSecond: optional(number({ min: 0, description: 'retries per second always allowed' })),
})
export const outlierSchema = object({
  consecutive5xx: optional(number({ min: 0, integer: true })),
  consecutiveGatewayErrors: optional(number({ min: 0, integer: true })),
  interval: optional(duration()),
  baseEjectionTime: optional(duration()),
  maxEjectionPercent: optional(percent()),
})
export const circuitBreakerSchema = object({
  maxConnections: optional(number({ min: 1, integer: true })),
  maxPendingRequests: optional(number({ min: 1, integer: true })),
  maxRequests: optional(number({ min: 1, integer: true })),
})
const headerOps = object({
  set: optional(record(string(), { key: HEADER_NAME, keyHint: 'an HTTP header name' })),
  add: optional(record(string(), { key: HEADER_NAME, keyHint: 'an HTTP header name' })),
  remove: optional(list(headerName)),
})
const rewrite = object(
  {
    prefix: optional(absolutePath('replaces the matched path prefix')),
    path: optional(absolutePath('replaces the whole path')),
    host: optional(string({ hint: 'a host name' })),
  },
  { atMostOne: ['prefix', 'path'] },
)

const httpUrl = string({
  // cloudmap:// is matched loosely here and taken apart in normalize.ts, which names the bad part.
  pattern: /^(https?:\/\/[^/\s]+\/?|dns:\/\/[^/\s:]+:\d+|cloudmap:\/\/\S*)$/,
  hint: 'an origin like http://host:port, dns://host:port, or cloudmap://NAMESPACE/SERVICE',
})
/** A TCP service's endpoint: `host:port`, or `dns://host:port` (re-resolved as for http targets). */
const tcpAddress = string({
  pattern: /^(dns:\/\/)?[A-Za-z0-9.-]+:\d{1,5}$|^(dns:\/\/)?\[[0-9A-Fa-f:.]+\]:\d{1,5}$/,
  hint: 'host:port (or dns://host:port)',
})
/** App Mesh's HealthCheckPolicy (HTTP); ranges checked in normalize.ts, defaults in defaults.ts. */
const healthCheck = object(
  {
    protocol: optional(string({ enum: ['http'], description: 'http (the only one so far)' })),
    path: optional(string({ pattern: /^\/\S*$/, hint: 'a path starting with /', description: 'default /' })),
    port: optional(
      number({ min: 1, max: 65535, integer: true, description: "default: the endpoint's own port" }),
    ),
    interval: optional(duration('between checks of one endpoint, 5s to 300s (default 5s)')),
    timeout: optional(duration('a check not answered within it failed, 2s to 60s (default 2s)')),
    healthyThreshold: optional(
      number({ min: 2, max: 10, integer: true, description: 'passes in a row to return (default 2)' }),
    ),
    unhealthyThreshold: optional(
      number({ min: 2, max: 10, integer: true, description: 'failures in a row to leave (default 2)' }),
    ),
  },
  {
    description:
      'active HTTP health checks, run by the sidecar against every endpoint of an http target (not on Lambda targets)',
  },
)
/** Istio's DestinationRule `tls`, per target; see docs/tls.md. */
const targetTls = object(
  {
    mode: optional(
      string({
        enum: ['mutual', 'simple'],
        description:
          "mutual: the sidecar's certificate, verified against its trust bundle (default when it has one); simple: the system's roots, no client certificate",
      }),
    ),
    sni: optional(string({ pattern: /^[A-Za-z0-9.-]+$/, hint: 'a DNS name' })),
    subjectAltNames: optional(
      list(string({ pattern: /^\S+$/, hint: 'a DNS name, IP address or URI' }), { minItems: 1 }),
    ),
  },
  {
    description:
      'the target is reached over TLS (its URLs are https://; dns:// and cloudmap:// endpoints become https)',
  },
)
const target = object(
  {
    lambda: optional(string({ pattern: /^[A-Za-z0-9_:.-]+$/, hint: 'a function name, name:alias, or ARN' })),
    http: optional(
      either(
        httpUrl,
        list(httpUrl, { minItems: 1 }),
        'an origin like http://host:port, dns://host:port, cloudmap://NAMESPACE/SERVICE, or a list of origins',
      ),
    ),
    tcp: optional(
      either(
        tcpAddress,
        list(tcpAddress, { minItems: 1 }),
        'host:port, dns://host:port, or a list of host:port (targets of a tcp service)',
      ),
    ),
    protocol: optional(
      string({
        enum: ['http1', 'http2', 'grpc'],
        description: 'how the sidecar speaks to the endpoints: http1 (default), http2 or grpc (HTTP/2)',
      }),
    ),
    loadBalancer: optional(string({ enum: ['round-robin', 'least-request'] })),
    dnsRefresh: optional(duration('how often dns:// targets are re-resolved (default 5s)')),
    cloudMapRefresh: optional(
      duration('how often cloudmap:// targets call DiscoverInstances (default 30s, jittered); sidecar only'),
    ),
    healthCheck: optional(healthCheck),
    tls: optional(targetTls),
  },
  { exactlyOne: ['lambda', 'http', 'tcp'] },
)

export const routeSchema = object({
  name: optional(name()),
  match: optional(matchSchema),
  to: either(
    name(),
    record(number({ min: 0, hint: 'a weight of 0 or more' }), {
      key: NAME,
      keyHint: NAME_HINT,
      minProperties: 1,
    }),
    'a target, or target weights',
  ),
  stickiness: optional(
    object(
      { header: optional(headerName), cookie: optional(string()) },
      { exactlyOne: ['header', 'cookie'] },
    ),
  ),
  timeout: optional(duration('bounds all tries together')),
  retries: optional(retriesSchema),
  fault: optional(
    object({
      delay: optional(object({ percent: percent(), duration: duration() })),
      abort: optional(object({ percent: percent(), status: number({ min: 200, max: 599, integer: true }) })),
    }),
  ),
  mirror: optional(object({ target: name(), percent: optional(percent()) })),
  headers: optional(object({ request: optional(headerOps), response: optional(headerOps) })),
  rewrite: optional(rewrite),
  rollout: optional(rolloutSchema),
  idleTimeout: optional(
    duration('an upgraded (WebSocket) or TCP connection closes after this long without a byte either way'),
  ),
})

/** `listener: { protocol: tcp, port: N }`: routed per connection (docs/sidecar.md#tcp-services). */
const listener = object({
  protocol: string({ enum: ['tcp'], description: 'tcp (HTTP services need no listener)' }),
  port: number({ min: 1, max: 65535, integer: true, description: 'opened on the outbound address' }),
  connectTimeout: optional(duration('longest wait for one connect to a target (default 5s)')),
})

// Identity and authorization (DESIGN; proxy-core/identity/). A principal is a role ARN, a Lambda
// function ARN or a function name; `from` takes those, service names, or `*` (any authenticated caller).
const PRINCIPAL = /^(arn:aws[a-z-]*:(iam|lambda|sts):[a-z0-9-]*:[0-9]{12}:[!-~]+|[A-Za-z0-9_-]{1,64})$/
const principal = string({ pattern: PRINCIPAL, hint: 'a role ARN, a Lambda function ARN or a function name' })
const caller = string({
  pattern: /^(\*|arn:aws[a-z-]*:(iam|lambda|sts):[a-z0-9-]*:[0-9]{12}:[!-~]+|[A-Za-z0-9_-]{1,64})$/,
  hint: 'a service, a principal (role ARN, function ARN or name), or *',
})
const authorizationMode = string({
  enum: ['enforce', 'audit'],
  description: 'audit: log and count, never refuse',
})
const authorizationDefault = string({ enum: ['deny', 'allow'], description: 'when no rule allows' })
const authorization = object({
  mode: optional(authorizationMode),
  default: optional(authorizationDefault),
  rules: optional(
    list(
      object({
        name: optional(name()),
        from: optional(list(caller, { minItems: 1 })),
        match: optional(
          object({
            path: optional(
              object(
                {
                  exact: optional(absolutePath()),
                  prefix: optional(absolutePath()),
                  regex: optional(regex()),
                },
                { exactlyOne: ['exact', 'prefix', 'regex'] },
              ),
            ),
            method: optional(either(method, list(method, { minItems: 1 }), 'a method, or a list of them')),
            headers: optional(record(valueMatch, { key: HEADER_NAME, keyHint: 'an HTTP header name' })),
          }),
        ),
      }),
    ),
  ),
})
const bucket = {
  rps: number({ min: 0.001, hint: 'requests per second, more than 0' }),
  burst: optional(number({ min: 1, integer: true, description: 'bucket size (default: rps, at least 1)' })),
}
const rateLimit = object({
  ...bucket,
  perCaller: optional(record(object(bucket), { keyHint: 'a service or a principal' })),
})

const service = object({
  listener: optional(listener),
  targets: record(target, { key: NAME, keyHint: NAME_HINT, minProperties: 1 }),
  principals: optional(list(principal, { description: 'who is this service' })),
  authorization: optional(authorization),
  rateLimit: optional(rateLimit),
  routes: optional(list(routeSchema)),
  outlierDetection: optional(outlierSchema),
  circuitBreaker: optional(circuitBreakerSchema),
  retryBudget: optional(retryBudgetSchema),
})

export const meshSchema = object(
  {
    version: literal(1),
    mesh: name('the mesh name, a dimension of every metric'),
    defaults: optional(
      object({
        timeout: optional(duration()),
        idleTimeout: optional(duration()),
        retries: optional(retriesSchema),
        retryBudget: optional(retryBudgetSchema),
        outlierDetection: optional(outlierSchema),
        circuitBreaker: optional(circuitBreakerSchema),
      }),
    ),
    gateway: optional(
      object({
        routes: list(
          object({
            name: optional(name()),
            match: optional(matchSchema),
            service: name(),
            rewrite: optional(rewrite),
          }),
        ),
      }),
    ),
    services: record(service, { key: NAME, keyHint: NAME_HINT, minProperties: 1 }),
    identity: optional(
      object({
        issuers: list(string({ pattern: /^https:\/\/[^/\s?#]+$/, hint: 'an https:// issuer URL' }), {
          minItems: 1,
        }),
        audience: string({ pattern: /^\S{1,900}$/, hint: 'an audience string' }),
      }),
    ),
    authorization: optional(
      object({ mode: optional(authorizationMode), default: optional(authorizationDefault) }),
    ),
    tracing: optional(
      object({
        sampling: optional(
          object({
            reservoirPerSecond: optional(number({ min: 0 })),
            rate: optional(percent()),
          }),
        ),
      }),
    ),
    accessLog: optional(boolean('one JSON line per request (default true)')),
    // Descriptions kept short: this schema is in every Lambda bundle (docs/config.md has the rest).
    pathNormalization: optional(
      object({
        mergeSlashes: optional(boolean('merge // into / (default true)')),
        escapedSlashes: optional(
          string({ enum: ['keep', 'reject', 'decode'], description: '%2F and %5C (default reject)' }),
        ),
      }),
    ),
  },
  { description: 'A meshgate mesh: services, their targets and routes' },
)

export type RawMesh = NonNullable<ReturnType<typeof meshSchema.check>>
export type RawRoute = NonNullable<ReturnType<typeof routeSchema.check>>
export type RawRetries = NonNullable<ReturnType<typeof retriesSchema.check>>

export function meshJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://meshgate.dev/mesh.schema.json',
    title: 'meshgate mesh config',
    ...meshSchema.jsonSchema(),
  }
}

export type { Schema }
