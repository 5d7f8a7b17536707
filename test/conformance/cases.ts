// One routing suite, run against both runtimes (as Hono runs one router suite against every router):
// the sidecar as a child process and the Lambda middleware in the real middy engine. A case states
// what a caller sends to a mesh service and what must come back; the upstreams name themselves.

export interface ConformanceRequest {
  service: string
  method?: string
  path: string
  headers?: Record<string, string>
}

export interface ConformanceReply {
  status: number
  headers: Record<string, string | undefined>
  /** Parsed JSON from the test upstreams (`{upstream, url, headers}`) or the mesh's error body. */
  json: Record<string, unknown> | undefined
}

export type Runner = (req: ConformanceRequest) => Promise<ConformanceReply>

export interface ConformanceCase {
  name: string
  request: ConformanceRequest
  /** How many times to send it (sticky and weighted cases look at the spread). */
  repeat?: number
  expect(replies: ConformanceReply[]): void
}

/** The mesh the cases run on; `${v1}` etc. are replaced with the upstreams' origins. */
export function conformanceMesh(origins: { v1: string; v2: string; v3: string }) {
  return {
    version: 1,
    mesh: 'conformance',
    services: {
      reviews: {
        targets: { v1: { http: origins.v1 }, v2: { http: origins.v2 }, v3: { http: origins.v3 } },
        routes: [
          { name: 'jason', match: { headers: { 'end-user': 'jason' } }, to: 'v2' },
          { name: 'beta', match: { headers: { 'x-beta': { regex: 'on|yes' } } }, to: 'v3' },
          { name: 'debug', match: { query: { debug: '1' } }, to: 'v3' },
          { name: 'writes', match: { method: ['POST', 'PUT'], path: { prefix: '/reviews' } }, to: 'v2' },
          { name: 'exact', match: { path: { exact: '/reviews/special' } }, to: 'v3' },
          {
            name: 'admin',
            match: { path: { prefix: '/admin' } },
            to: 'v1',
            rewrite: { prefix: '/internal' },
            headers: {
              request: { set: { 'x-canary': '1' }, remove: ['x-secret'] },
              response: { remove: ['x-upstream-port'] },
            },
          },
          {
            name: 'teapot',
            match: { path: { prefix: '/fault' } },
            to: 'v1',
            fault: { abort: { percent: 100, status: 418 } },
          },
          {
            name: 'sticky',
            match: { path: { prefix: '/sticky' } },
            to: { v1: 1, v2: 1, v3: 1 },
            stickiness: { header: 'x-user' },
          },
          { name: 'default', match: { path: { prefix: '/reviews' } }, to: { v1: 100, v2: 0 } },
        ],
      },
    },
  }
}

function upstreamOf(r: ConformanceReply): unknown {
  return r.json?.upstream
}

function expectEqual(actual: unknown, expected: unknown, what: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
  }
}

function expectAll(replies: ConformanceReply[], upstream: string): void {
  for (const r of replies) {
    expectEqual(r.status, 200, 'status')
    expectEqual(upstreamOf(r), upstream, 'upstream')
  }
}

export const cases: ConformanceCase[] = [
  {
    name: 'an exact header match wins over later routes',
    request: { service: 'reviews', path: '/reviews/1', headers: { 'end-user': 'jason' } },
    expect: (r) => expectAll(r, 'v2'),
  },
  {
    name: 'header names are case-insensitive, values are not',
    request: { service: 'reviews', path: '/reviews/1', headers: { 'End-User': 'Jason' } },
    expect: (r) => expectAll(r, 'v1'),
  },
  {
    name: 'a header regex must match the whole value',
    request: { service: 'reviews', path: '/reviews/1', headers: { 'x-beta': 'yes' } },
    expect: (r) => expectAll(r, 'v3'),
  },
  {
    name: 'a partial regex match does not count',
    request: { service: 'reviews', path: '/reviews/1', headers: { 'x-beta': 'yesterday' } },
    expect: (r) => expectAll(r, 'v1'),
  },
  {
    name: 'query parameters match',
    request: { service: 'reviews', path: '/reviews/1?debug=1&x=2' },
    expect: (r) => expectAll(r, 'v3'),
  },
  {
    name: 'methods match',
    request: { service: 'reviews', method: 'PUT', path: '/reviews/1' },
    expect: (r) => expectAll(r, 'v2'),
  },
  {
    name: 'an exact path match',
    request: { service: 'reviews', path: '/reviews/special' },
    expect: (r) => expectAll(r, 'v3'),
  },
  {
    name: 'prefix matching is segment-aware',
    request: { service: 'reviews', path: '/reviewsx' },
    expect: (r) => {
      expectEqual(r[0]!.status, 404, 'status')
      expectEqual(r[0]!.headers['x-meshgate-error'], 'no_route', 'x-meshgate-error')
      expectEqual(r[0]!.json, { error: 'no_route' }, 'body')
    },
  },
  {
    name: 'a weight of 0 never gets traffic',
    request: { service: 'reviews', path: '/reviews/2' },
    repeat: 20,
    expect: (r) => expectAll(r, 'v1'),
  },
  {
    name: 'rewrites and header operations',
    request: { service: 'reviews', path: '/admin/users?page=2', headers: { 'x-secret': 's3cret' } },
    expect: ([r]) => {
      expectEqual(r!.status, 200, 'status')
      expectEqual(r!.json?.url, '/internal/users?page=2', 'upstream path')
      const seen = r!.json?.headers as Record<string, string>
      expectEqual(seen['x-canary'], '1', 'x-canary sent')
      expectEqual(seen['x-secret'], undefined, 'x-secret removed')
      expectEqual(r!.headers['x-upstream-port'], undefined, 'response header removed')
    },
  },
  {
    name: 'an injected abort answers with its status and the error header',
    request: { service: 'reviews', path: '/fault' },
    expect: ([r]) => {
      expectEqual(r!.status, 418, 'status')
      expectEqual(r!.headers['x-meshgate-error'], 'fault_abort', 'x-meshgate-error')
    },
  },
  {
    name: 'a sticky user stays on one target',
    request: { service: 'reviews', path: '/sticky', headers: { 'x-user': 'user-42' } },
    repeat: 12,
    expect: (r) => {
      const seen = new Set(r.map(upstreamOf))
      expectEqual(seen.size, 1, 'distinct targets for one user')
    },
  },
  // Path normalization (engine/path-normalize.ts): the path routed is the path forwarded.
  ...[
    '/reviews/../admin/users',
    '/reviews/%2e%2e/admin/users',
    '/reviews/.%2e/admin/users',
    '/reviews/./../admin/users',
    '//admin//users',
    '/%61dmin/u%73ers',
  ].map(
    (path): ConformanceCase => ({
      name: `${path} is routed and rewritten as /admin/users`,
      request: { service: 'reviews', path },
      expect: ([r]) => {
        expectEqual(r!.status, 200, 'status')
        expectEqual(upstreamOf(r!), 'v1', 'upstream')
        expectEqual(r!.json?.url, '/internal/users', 'upstream path')
      },
    }),
  ),
  ...[
    ['/reviews/..%2Fadmin', 'escaped_slash'],
    ['/reviews/%zz', 'bad_percent_encoding'],
  ].map(
    ([path, reason]): ConformanceCase => ({
      name: `${path} is refused: ${reason}`,
      request: { service: 'reviews', path: path! },
      expect: ([r]) => {
        expectEqual(r!.status, 400, 'status')
        expectEqual(r!.headers['x-meshgate-error'], 'invalid_path', 'x-meshgate-error')
        expectEqual(r!.json?.reason, reason, 'reason')
      },
    }),
  ),
  {
    name: 'a host outside the mesh is refused',
    request: { service: 'example-com', path: '/' },
    expect: ([r]) => {
      expectEqual(r!.status, 404, 'status')
      expectEqual(r!.headers['x-meshgate-error'], 'unknown_service', 'x-meshgate-error')
      expectEqual(r!.json, { error: 'unknown_service', service: 'example-com' }, 'body')
    },
  },
]

/** The sticky target a user gets must be the same in both runtimes: the hash is part of the contract. */
export const stickyUsers = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi']

export function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text)
    return typeof v === 'object' && v !== null ? v : undefined
  } catch {
    return undefined
  }
}
