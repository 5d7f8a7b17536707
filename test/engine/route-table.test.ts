import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createRouteTable } from '../../proxy-core/engine/route-table.ts'
import type { HeaderMap, RouteMatchConfig, StringMatch } from '../../proxy-core/engine/types.ts'

interface Route {
  name: string
  match: RouteMatchConfig
}

function table(...matches: RouteMatchConfig[]) {
  return createRouteTable(matches.map((match, i) => ({ name: `r${i}`, match })))
}

/** The name of the winning route, or undefined. */
function hit(
  t: ReturnType<typeof table>,
  path: string,
  opts: { method?: string; headers?: HeaderMap } = {},
): string | undefined {
  return t.match(opts.method ?? 'GET', path, opts.headers ?? {})?.name
}

describe('createRouteTable', () => {
  it('an empty match takes everything; an empty table matches nothing', () => {
    expect(hit(table({}), '/anything?x=1', { method: 'DELETE' })).toBe('r0')
    expect(hit(table(), '/')).toBeUndefined()
  })

  it('exposes the routes it was built from, frozen', () => {
    const routes = [{ name: 'a', match: {} }]
    const t = createRouteTable(routes)
    expect(t.routes).toEqual(routes)
    expect(Object.isFrozen(t)).toBe(true)
    expect(Object.isFrozen(t.routes)).toBe(true)
    routes.push({ name: 'b', match: {} })
    expect(t.routes).toHaveLength(1)
  })

  describe('path', () => {
    it('exact matches the whole path before the query, case-sensitively', () => {
      const t = table({ path: { exact: '/reviews/0' } })
      expect(hit(t, '/reviews/0')).toBe('r0')
      expect(hit(t, '/reviews/0?x=1')).toBe('r0')
      expect(hit(t, '/reviews/0/')).toBeUndefined()
      expect(hit(t, '/reviews/01')).toBeUndefined()
      expect(hit(t, '/Reviews/0')).toBeUndefined()
      expect(hit(t, '/reviews')).toBeUndefined()
    })

    it('prefix is segment-aware', () => {
      const t = table({ path: { prefix: '/api' } })
      expect(hit(t, '/api')).toBe('r0')
      expect(hit(t, '/api/')).toBe('r0')
      expect(hit(t, '/api/x/y')).toBe('r0')
      expect(hit(t, '/api?x=1')).toBe('r0')
      expect(hit(t, '/apix')).toBeUndefined()
      expect(hit(t, '/ap')).toBeUndefined()
      expect(hit(t, '/')).toBeUndefined()
      expect(hit(t, '/v1/api')).toBeUndefined()
    })

    it('prefix ignores a trailing slash in the config (Gateway API)', () => {
      const t = table({ path: { prefix: '/api/' } })
      expect(hit(t, '/api')).toBe('r0')
      expect(hit(t, '/api/x')).toBe('r0')
      expect(hit(t, '/apix')).toBeUndefined()
    })

    it('prefix with several segments matches only whole segments', () => {
      const t = table({ path: { prefix: '/a/b' } })
      expect(hit(t, '/a/b')).toBe('r0')
      expect(hit(t, '/a/b/c')).toBe('r0')
      expect(hit(t, '/a/bc')).toBeUndefined()
      expect(hit(t, '/a')).toBeUndefined()
      expect(hit(t, '/a//b')).toBeUndefined()
    })

    it('prefix / matches every path', () => {
      const t = table({ path: { prefix: '/' } })
      for (const p of ['/', '/a', '/a/b/c', '/?q=1', '//x']) expect(hit(t, p)).toBe('r0')
    })

    it('regex is a full match, anchored at both ends', () => {
      const t = table({ path: { regex: '/users/[0-9]+' } })
      expect(hit(t, '/users/42')).toBe('r0')
      expect(hit(t, '/users/42?x=y')).toBe('r0')
      expect(hit(t, '/users/42/x')).toBeUndefined()
      expect(hit(t, '/x/users/42')).toBeUndefined()
      expect(hit(t, '/users/')).toBeUndefined()
    })

    it('regex alternation stays whole-path, and a leading ^ is harmless', () => {
      const t = table({ path: { regex: '/a|/b/.*' } }, { path: { regex: '^/c/d?$' } })
      expect(hit(t, '/a')).toBe('r0')
      expect(hit(t, '/b/x')).toBe('r0')
      expect(hit(t, '/a/x')).toBeUndefined()
      expect(hit(t, '/c/')).toBe('r1')
      expect(hit(t, '/c/d')).toBe('r1')
    })

    it('regexes whose literal start is optional are still found', () => {
      const t = table({ path: { regex: '/?x' } }, { path: { regex: '/a/*' } }, { path: { regex: '/ab?/c' } })
      expect(hit(t, 'x')).toBe('r0')
      expect(hit(t, '/x')).toBe('r0')
      expect(hit(t, '/a')).toBe('r1')
      expect(hit(t, '/a//')).toBe('r1')
      expect(hit(t, '/a/c')).toBe('r2')
      expect(hit(t, '/ab/c')).toBe('r2')
    })

    it('rejects an invalid regex at build time', () => {
      expect(() => table({ path: { regex: '/a(' } })).toThrow(SyntaxError)
      expect(() => table({ headers: { x: { regex: '[' } } })).toThrow(SyntaxError)
    })
  })

  describe('methods', () => {
    it('matches any of the listed methods; an empty list means any', () => {
      const t = table({ methods: ['GET', 'HEAD'] }, { methods: ['post'] }, { methods: [] })
      expect(hit(t, '/', { method: 'GET' })).toBe('r0')
      expect(hit(t, '/', { method: 'HEAD' })).toBe('r0')
      expect(hit(t, '/', { method: 'POST' })).toBe('r1')
      expect(hit(t, '/', { method: 'PUT' })).toBe('r2')
    })
  })

  describe('headers', () => {
    const by = (m: StringMatch) => table({ headers: { 'X-User': m } })

    it('normalises config names to lower case', () => {
      expect(hit(by({ exact: 'jason' }), '/', { headers: { 'x-user': 'jason' } })).toBe('r0')
    })

    it('exact, prefix and regex (full match) compare values case-sensitively', () => {
      expect(hit(by({ exact: 'jason' }), '/', { headers: { 'x-user': 'Jason' } })).toBeUndefined()
      expect(hit(by({ prefix: 'ja' }), '/', { headers: { 'x-user': 'jason' } })).toBe('r0')
      expect(hit(by({ prefix: 'ja' }), '/', { headers: { 'x-user': 'bja' } })).toBeUndefined()
      expect(hit(by({ regex: 'j.*n' }), '/', { headers: { 'x-user': 'jason' } })).toBe('r0')
      expect(hit(by({ regex: 'j.*n' }), '/', { headers: { 'x-user': 'jasons' } })).toBeUndefined()
      expect(hit(by({ regex: 'a|b' }), '/', { headers: { 'x-user': 'ab' } })).toBeUndefined()
    })

    it('present: true needs the header with any value, false needs it absent', () => {
      expect(hit(by({ present: true }), '/', { headers: { 'x-user': '' } })).toBe('r0')
      expect(hit(by({ present: true }), '/', { headers: {} })).toBeUndefined()
      expect(hit(by({ present: false }), '/', { headers: {} })).toBe('r0')
      expect(hit(by({ present: false }), '/', { headers: { 'x-user': 'x' } })).toBeUndefined()
      expect(hit(by({ present: false }), '/', { headers: { 'x-user': undefined } })).toBe('r0')
    })

    it('an empty StringMatch means present', () => {
      expect(hit(by({}), '/', { headers: { 'x-user': 'a' } })).toBe('r0')
      expect(hit(by({}), '/', { headers: {} })).toBeUndefined()
    })

    it('a repeated header matches when any of its values does; an empty list is absent', () => {
      expect(hit(by({ exact: 'jason' }), '/', { headers: { 'x-user': ['bob', 'jason'] } })).toBe('r0')
      expect(hit(by({ exact: 'jason' }), '/', { headers: { 'x-user': ['bob', 'eve'] } })).toBeUndefined()
      expect(hit(by({ present: true }), '/', { headers: { 'x-user': [] } })).toBeUndefined()
      expect(hit(by({ present: false }), '/', { headers: { 'x-user': [] } })).toBe('r0')
    })

    it('every listed header must match', () => {
      const t = table({ headers: { a: { exact: '1' }, b: { exact: '2' } } })
      expect(hit(t, '/', { headers: { a: '1', b: '2' } })).toBe('r0')
      expect(hit(t, '/', { headers: { a: '1' } })).toBeUndefined()
    })

    it('is not fooled by names that exist on Object.prototype', () => {
      const t = table({ headers: { constructor: { present: true } } }, {})
      expect(hit(t, '/', { headers: {} })).toBe('r1')
    })
  })

  describe('query', () => {
    it('matches decoded parameters', () => {
      const t = table({ query: { q: { exact: 'a b' }, 'n/m': { exact: 'é' } } })
      expect(hit(t, '/x?q=a+b&n%2Fm=%C3%A9')).toBe('r0')
      expect(hit(t, '/x?q=a%20b&n/m=%C3%A9')).toBe('r0')
      expect(hit(t, '/x?q=a+b')).toBeUndefined()
    })

    it('handles repeated, valueless, empty and malformed parameters', () => {
      const t = table(
        { query: { v: { exact: '2' } } },
        { query: { flag: { present: true } } },
        { query: { bad: { exact: '%zz' } } },
        { query: { none: { present: false } } },
      )
      expect(hit(t, '/?v=1&v=2')).toBe('r0')
      expect(hit(t, '/?flag')).toBe('r1')
      expect(hit(t, '/?&&flag=&')).toBe('r1')
      expect(hit(t, '/?bad=%zz')).toBe('r2')
      expect(hit(t, '/')).toBe('r3')
      expect(hit(t, '/?none=1')).toBeUndefined()
    })

    it('prefix and regex work on parameter values', () => {
      const t = table({ query: { v: { prefix: 'ab' } } }, { query: { v: { regex: '[0-9]+' } } })
      expect(hit(t, '/?v=abc')).toBe('r0')
      expect(hit(t, '/?v=123')).toBe('r1')
      expect(hit(t, '/?v=12a')).toBeUndefined()
    })
  })

  describe('order', () => {
    it('the first matching route wins, whatever kind of match the others use', () => {
      const t = table(
        { path: { prefix: '/api' }, headers: { 'end-user': { exact: 'jason' } } },
        { path: { regex: '/api/v[0-9]' } },
        { path: { exact: '/api/v1' } },
        { path: { prefix: '/api/v1' } },
        { path: { prefix: '/' } },
      )
      expect(hit(t, '/api/v1', { headers: { 'end-user': 'jason' } })).toBe('r0')
      expect(hit(t, '/api/v1')).toBe('r1')
      expect(hit(t, '/api/v1/x')).toBe('r3')
      expect(hit(t, '/api')).toBe('r4')
      expect(hit(t, '/other')).toBe('r4')
    })

    it('a later, more specific route never beats an earlier catch-all', () => {
      const t = table({}, { path: { exact: '/a' } }, { path: { prefix: '/a' } })
      expect(hit(t, '/a')).toBe('r0')
      expect(hit(t, '/a/b')).toBe('r0')
    })

    it('two routes on the same exact path keep their order', () => {
      const t = table({ path: { exact: '/a' }, methods: ['POST'] }, { path: { exact: '/a' } })
      expect(hit(t, '/a', { method: 'POST' })).toBe('r0')
      expect(hit(t, '/a', { method: 'GET' })).toBe('r1')
    })

    it('checks conditions beyond the path before taking a candidate', () => {
      const t = table(
        { path: { prefix: '/a' }, methods: ['POST'] },
        { path: { prefix: '/a' }, query: { x: { present: true } } },
        { path: { prefix: '/a' } },
      )
      expect(hit(t, '/a/b?x')).toBe('r1')
      expect(hit(t, '/a/b?y')).toBe('r2')
      expect(hit(t, '/a/b', { method: 'POST' })).toBe('r0')
    })
  })

  it('stays correct with 10 000 routes', () => {
    const matches: RouteMatchConfig[] = []
    for (let i = 0; i < 10_000; i++) {
      if (i % 100 === 0) matches.push({ path: { exact: `/svc${i}/health` } })
      else if (i % 50 === 0) matches.push({ path: { regex: `/svc${i}/items/[0-9]+` } })
      else matches.push({ path: { prefix: `/svc${i}/items` } })
    }
    const t = table(...matches)
    expect(hit(t, '/svc9999/items/1')).toBe('r9999')
    expect(hit(t, '/svc100/health')).toBe('r100')
    expect(hit(t, '/svc150/items/7')).toBe('r150')
    expect(hit(t, '/svc150/items/x')).toBeUndefined()
    expect(hit(t, '/svc1/itemsx')).toBeUndefined()
  })

  // ---------------------------------------------------------------------------------------------
  // The indexed table against the definition: a plain scan in order, written from the semantics alone.

  describe('indexed lookup equals a linear scan', () => {
    function fullMatch(source: string, value: string): boolean {
      return new RegExp(`^(?:${source})$`).test(value)
    }

    function valueMatches(m: StringMatch, values: string[]): boolean {
      if (m.present === false) return values.length === 0
      if (values.length === 0) return false
      return values.some(
        (v) =>
          (m.exact === undefined || v === m.exact) &&
          (m.prefix === undefined || v.startsWith(m.prefix)) &&
          (m.regex === undefined || fullMatch(m.regex, v)),
      )
    }

    function headerValues(headers: HeaderMap, name: string): string[] {
      const v = Object.hasOwn(headers, name.toLowerCase()) ? headers[name.toLowerCase()] : undefined
      if (v === undefined) return []
      return typeof v === 'string' ? [v] : v
    }

    function queryValues(query: string, name: string): string[] {
      const out: string[] = []
      for (const part of query.split('&')) {
        if (part === '') continue
        const i = part.indexOf('=')
        const decode = (s: string) => {
          try {
            return decodeURIComponent(s.replaceAll('+', ' '))
          } catch {
            return s.replaceAll('+', ' ')
          }
        }
        const key = decode(i === -1 ? part : part.slice(0, i))
        if (key === name) out.push(i === -1 ? '' : decode(part.slice(i + 1)))
      }
      return out
    }

    function linearMatch(
      routes: Route[],
      method: string,
      url: string,
      headers: HeaderMap,
    ): Route | undefined {
      const q = url.indexOf('?')
      const path = q === -1 ? url : url.slice(0, q)
      const query = q === -1 ? '' : url.slice(q + 1)
      return routes.find(({ match: m }) => {
        if (m.path?.exact !== undefined) {
          if (path !== m.path.exact) return false
        } else if (m.path?.prefix !== undefined) {
          const prefix = m.path.prefix.replace(/\/+$/, '')
          if (path !== prefix && !path.startsWith(`${prefix}/`)) return false
        } else if (m.path?.regex !== undefined) {
          if (!fullMatch(m.path.regex, path)) return false
        }
        if (m.methods !== undefined && m.methods.length > 0 && !m.methods.includes(method)) return false
        for (const [name, sm] of Object.entries(m.headers ?? {})) {
          if (!valueMatches(sm, headerValues(headers, name))) return false
        }
        for (const [name, sm] of Object.entries(m.query ?? {})) {
          if (!valueMatches(sm, queryValues(query, name))) return false
        }
        return true
      })
    }

    // Small alphabets so that routes and requests collide often.
    const segment = fc.constantFrom('a', 'b', 'ab', 'c1', '')
    const pathOf = (min: number) =>
      fc.array(segment, { minLength: min, maxLength: 4 }).map((segs) => `/${segs.join('/')}`)
    const regexToken = fc.constantFrom(
      'a',
      'b',
      '/',
      '[0-9]',
      '.*',
      '[^/]+',
      '(a|b)',
      'a?',
      '/?',
      '\\/',
      'x*',
      '1',
    )
    // Mostly `/`-led literals with metacharacters mixed in, to probe which directory a regex is filed under.
    const regexSource = fc
      .tuple(
        fc.constantFrom('', '^'),
        fc.constantFrom('/', '/', ''),
        fc.array(fc.oneof(segment, regexToken), { maxLength: 6 }),
        fc.constantFrom('', '', '', '|/c1', '|.*b'),
      )
      .map(([caret, lead, tokens, alt]) => caret + lead + tokens.join('') + alt)
    const pathMatch = fc.oneof(
      fc.constant(undefined),
      pathOf(0).map((exact) => ({ exact })),
      fc.tuple(pathOf(0), fc.constantFrom('', '/', '//')).map(([p, tail]) => ({ prefix: p + tail })),
      fc.constant({ prefix: '/' }),
      regexSource.map((regex) => ({ regex })),
      fc.constantFrom({ regex: '.*' }, { regex: 'x' }, { regex: '/?a.*' }),
    )
    const value = fc.constantFrom('a', 'ab', 'b c', 'é', '')
    const stringMatch: fc.Arbitrary<StringMatch> = fc.oneof(
      value.map((exact) => ({ exact })),
      value.map((prefix) => ({ prefix })),
      fc.constantFrom({ regex: 'a.*' }, { regex: 'b c|é' }, { regex: '' }),
      fc.constantFrom({ present: true }, { present: false }, {}),
    )
    const conditions = (names: string[]) =>
      fc.option(fc.dictionary(fc.constantFrom(...names), stringMatch, { maxKeys: 2 }), { nil: undefined })
    const routeMatch: fc.Arbitrary<RouteMatchConfig> = fc.record(
      {
        path: pathMatch,
        methods: fc.option(fc.subarray(['GET', 'POST']), { nil: undefined }),
        headers: conditions(['x-a', 'X-B', 'x-b']),
        query: conditions(['q', 'r', 'q r']),
      },
      { requiredKeys: [] },
    )
    const routeList = fc
      .array(routeMatch, { maxLength: 30 })
      .map((ms) => ms.map((match, i): Route => ({ name: `r${i}`, match })))

    const encoded = fc.constantFrom('a', 'ab', 'b+c', 'b%20c', '%C3%A9', '', '%zz', 'a%62')
    const queryString = fc
      .array(
        fc.oneof(
          fc.tuple(fc.constantFrom('q', 'r', 'q+r', '%71'), encoded).map(([k, v]) => `${k}=${v}`),
          fc.constantFrom('q', 'r', ''),
        ),
        { maxLength: 4 },
      )
      .map((parts) => parts.join('&'))
    const headerValue = fc.oneof(
      fc.constantFrom('a', 'ab', 'b c', 'é', ''),
      fc.array(fc.constantFrom('a', 'ab', 'b c', 'é', ''), { maxLength: 2 }),
    )
    const request = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT'),
      path: fc.oneof(
        pathOf(0),
        pathOf(0).map((p) => `${p}/`),
        fc.constantFrom('x', '', 'a/b', '/c1x'),
      ),
      query: fc.option(queryString, { nil: undefined }),
      headers: fc.dictionary(fc.constantFrom('x-a', 'x-b', 'x-c'), headerValue, { maxKeys: 3 }),
    })

    it('returns the same route as a scan in order, for random tables and requests', () => {
      fc.assert(
        fc.property(routeList, fc.array(request, { minLength: 1, maxLength: 20 }), (routes, requests) => {
          const t = createRouteTable(routes)
          for (const r of requests) {
            const url = r.query === undefined ? r.path : `${r.path}?${r.query}`
            const want = linearMatch(routes, r.method, url, r.headers)
            expect(t.match(r.method, url, r.headers)?.name).toBe(want?.name)
          }
        }),
        { numRuns: 1000 },
      )
    })
  })
})
