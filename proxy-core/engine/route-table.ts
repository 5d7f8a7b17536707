// The route table: compiles an ordered list of route matches once, then answers "which route takes this
// request" without scanning every route. Order is the contract (the first route that matches wins, as in
// Istio and App Mesh), so the index only narrows the candidates; the winner is always the candidate with
// the lowest original position that fully matches.
//
// Index layout, built once per config:
// - a segment trie over the path split at `/`: a prefix route sits on the node of its prefix, and a regex
//   route whose source starts with a literal directory (`/users/[0-9]+`) sits on that directory's node;
// - every trie node carries `merged`, its own routes plus all its ancestors' in route order, so a lookup
//   walks the trie once and scans one array;
// - exact paths live in a Map whose lists already include the trie candidates for that same path;
// - routes the index cannot place (no path condition, or a regex without a literal directory) sit in one
//   fallback list that every lookup also scans, but only below the best index found so far.
//
// Decisions a reader might otherwise get wrong:
// - Prefix matching is per segment and ignores trailing slashes in the configured prefix (Gateway API):
//   `/api` and `/api/` both match `/api`, `/api/`, `/api/x`, never `/apix`; `/` matches every path.
// - Path conditions see the path before `?` as every entry normalized it (engine/path-normalize.ts: no
//   dot segments, unreserved escapes decoded, others kept), case-sensitive; query conditions see the
//   decoded parameters (`+` is a space, as in HTML forms).
// - A header sent several times (string[]) matches when ANY of its values matches; values are never
//   joined, so `exact: jason` holds for `['bob', 'jason']`. An empty array counts as absent.
// - A StringMatch with several fields needs all of them; one with no field at all means "present",
//   as in Envoy's header matcher. `present: false` means absent and ignores the other fields.
// - Regexes are full matches (anchored on both ends) and compiled once, without flags.

import type { HeaderMap, RouteMatchConfig, StringMatch } from './types.ts'

export interface RouteTable<T> {
  /** The first route, in configured order, whose match holds; undefined when none does. */
  match(method: string, path: string, headers: HeaderMap): T | undefined
  readonly routes: readonly T[]
}

/** A header or query condition, compiled. Null fields are not checked. */
interface CompiledCondition {
  /** Lower-case for headers; as written for query parameters. */
  readonly name: string
  /** false: the header/param must be absent, and nothing else is checked. */
  readonly present: boolean
  readonly exact: string | null
  readonly prefix: string | null
  readonly regex: RegExp | null
}

interface CompiledRoute<T> {
  /** Position in the configured list: lower wins. */
  readonly index: number
  readonly value: T
  /**
   * Only regex paths are checked at lookup: exact and prefix paths are settled by where the index put
   * the route, so re-checking them would be wasted work.
   */
  readonly pathRegex: RegExp | null
  readonly methods: readonly string[] | null
  readonly headers: readonly CompiledCondition[] | null
  readonly query: readonly CompiledCondition[] | null
}

/** Mutable while the table is built, frozen before it is returned. */
interface TrieNode<T> {
  readonly children: Map<string, TrieNode<T>>
  readonly own: CompiledRoute<T>[]
  merged: readonly CompiledRoute<T>[]
}

type QueryParams = ReadonlyMap<string, readonly string[]>

const emptyParams: QueryParams = new Map()
const noRoutes: readonly never[] = Object.freeze([])

export function createRouteTable<T extends { match: RouteMatchConfig }>(routes: readonly T[]): RouteTable<T> {
  const frozenRoutes = Object.freeze(routes.slice())
  const root = newNode<T>()
  const fallback: CompiledRoute<T>[] = []
  const exactOwn = new Map<string, CompiledRoute<T>[]>()

  for (let i = 0; i < frozenRoutes.length; i++) {
    const compiled = compileRoute(frozenRoutes[i]!, i)
    const path = frozenRoutes[i]!.match.path
    if (path?.exact !== undefined) {
      const list = exactOwn.get(path.exact)
      if (list === undefined) exactOwn.set(path.exact, [compiled])
      else list.push(compiled)
    } else if (path?.prefix !== undefined) {
      nodeFor(root, normalisePrefix(path.prefix)).own.push(compiled)
    } else if (path?.regex !== undefined) {
      const dir = regexLiteralDir(path.regex)
      if (dir === undefined) fallback.push(compiled)
      else nodeFor(root, dir).own.push(compiled)
    } else {
      fallback.push(compiled)
    }
  }

  mergeAncestors(root)
  // Exact lists are built after the trie is complete, so each one also holds every prefix and regex
  // candidate for that same path: a hit in this Map needs no trie walk.
  const exact = new Map<string, readonly CompiledRoute<T>[]>()
  for (const [path, own] of exactOwn) {
    exact.set(path, Object.freeze(mergeSorted(deepestNode(root, path).merged, own)))
  }
  const frozenFallback = Object.freeze(fallback)
  // Skips hashing the whole path on tables that have no exact routes.
  const hasExact = exact.size > 0

  function match(method: string, path: string, headers: HeaderMap): T | undefined {
    const q = path.indexOf('?')
    const p = q === -1 ? path : path.slice(0, q)
    const primary = (hasExact ? exact.get(p) : undefined) ?? deepestNode(root, p).merged
    let best: CompiledRoute<T> | undefined
    let params: QueryParams | undefined
    // Two passes: the index's candidates for this path, then the fallback list. Both are in route
    // order, so each pass stops at its first full match or once it passes the best index so far.
    for (let pass = 0; pass < 2; pass++) {
      const list = pass === 0 ? primary : frozenFallback
      const limit = best === undefined ? Number.POSITIVE_INFINITY : best.index
      for (let i = 0; i < list.length; i++) {
        const r = list[i]!
        if (r.index >= limit) break
        if (!matchesRequest(r, method, p, headers)) continue
        if (r.query !== null) {
          // Parsed lazily: most routes have no query condition, and most requests no query string.
          if (params === undefined) params = q === -1 ? emptyParams : parseQuery(path, q + 1)
          if (!matchesParams(r.query, params)) continue
        }
        best = r
        break
      }
    }
    return best?.value
  }

  return Object.freeze({ match, routes: frozenRoutes })
}

function compileRoute<T extends { match: RouteMatchConfig }>(route: T, index: number): CompiledRoute<T> {
  const m = route.match
  const path = m.path
  const pathRegex =
    path?.exact === undefined && path?.prefix === undefined && path?.regex !== undefined
      ? anchored(path.regex, `route ${index}: path.regex`)
      : null
  const methods =
    m.methods !== undefined && m.methods.length > 0
      ? Object.freeze(m.methods.map((x) => x.toUpperCase()))
      : null
  return Object.freeze({
    index,
    value: route,
    pathRegex,
    methods,
    headers: compileConditions(m.headers, true, `route ${index}: headers`),
    query: compileConditions(m.query, false, `route ${index}: query`),
  })
}

function compileConditions(
  conditions: Record<string, StringMatch> | undefined,
  lowerCaseNames: boolean,
  where: string,
): readonly CompiledCondition[] | null {
  if (conditions === undefined) return null
  const out: CompiledCondition[] = []
  for (const [name, sm] of Object.entries(conditions)) {
    out.push(
      Object.freeze({
        // Request headers arrive lower-case (node:http, undici); config may say `End-User`.
        name: lowerCaseNames ? name.toLowerCase() : name,
        present: sm.present !== false,
        exact: sm.exact ?? null,
        prefix: sm.prefix ?? null,
        regex: sm.regex === undefined ? null : anchored(sm.regex, `${where}.${name}.regex`),
      }),
    )
  }
  return out.length === 0 ? null : Object.freeze(out)
}

/** Full-match semantics: `^(?:…)$`, so `a|b` stays a whole-string alternation. */
function anchored(source: string, where: string): RegExp {
  try {
    return new RegExp(`^(?:${source})$`)
  } catch (err) {
    // The config validator rejects bad regexes first; reaching here means a caller skipped it.
    throw new SyntaxError(`${where}: invalid regex ${JSON.stringify(source)}`, { cause: err })
  }
}

/** Trailing slashes in a prefix are ignored (Gateway API), so `/` becomes `` and matches every path. */
function normalisePrefix(prefix: string): string {
  let end = prefix.length
  while (end > 0 && prefix.charCodeAt(end - 1) === 47) end--
  return prefix.slice(0, end)
}

const regexMeta = '\\^$.|?*+()[]{}'
const quantifierStart = '?*+{'

/**
 * The longest directory `D` such that every full match of `source` starts with `D/`, or undefined.
 * Conservative on purpose: any alternation gives up (a branch could start anywhere), and a literal
 * character followed by a quantifier is dropped (`/ab?` only promises `/a`).
 */
function regexLiteralDir(source: string): string | undefined {
  if (source.includes('|')) return undefined
  let i = source.charCodeAt(0) === 94 ? 1 : 0 // a leading `^` is redundant with our own anchor
  const start = i
  while (i < source.length && !regexMeta.includes(source[i]!)) i++
  let end = i
  if (i < source.length && quantifierStart.includes(source[i]!)) end--
  // Guard before lastIndexOf: a negative fromIndex is clamped to 0 and would find a dropped `/`.
  if (end <= start) return undefined
  const slash = source.lastIndexOf('/', end - 1)
  if (slash < start) return undefined
  return source.slice(start, slash)
}

function newNode<T>(): TrieNode<T> {
  return { children: new Map(), own: [], merged: noRoutes }
}

/** The node for `path`'s segments (split at every `/`, so `/a` is `['', 'a']`), created as needed. */
function nodeFor<T>(root: TrieNode<T>, path: string): TrieNode<T> {
  let node = root
  for (const segment of path.split('/')) {
    let child = node.children.get(segment)
    if (child === undefined) {
      child = newNode<T>()
      node.children.set(segment, child)
    }
    node = child
  }
  return node
}

/**
 * The deepest existing node along `path`'s segments. Its `merged` list holds every route whose
 * prefix (or regex directory) is a leading run of those segments. Walks with indexOf instead of
 * split so a lookup allocates no array.
 */
function deepestNode<T>(root: TrieNode<T>, path: string): TrieNode<T> {
  let node = root
  let start = 0
  while (true) {
    const slash = path.indexOf('/', start)
    const child = node.children.get(slash === -1 ? path.slice(start) : path.slice(start, slash))
    if (child === undefined) return node
    node = child
    if (slash === -1) return node
    start = slash + 1
  }
}

/** Fills `merged` top-down, then freezes the trie. Iterative so a very deep config cannot overflow. */
function mergeAncestors<T>(root: TrieNode<T>): void {
  // The root's own list is always empty: every path has at least one segment, even ``.
  const stack: TrieNode<T>[] = [root]
  while (stack.length > 0) {
    const node = stack.pop()!
    for (const child of node.children.values()) {
      // Nodes without routes share the parent's array rather than copying it.
      child.merged = child.own.length === 0 ? node.merged : Object.freeze(mergeSorted(node.merged, child.own))
      stack.push(child)
    }
    Object.freeze(node.own)
    Object.freeze(node)
  }
}

function mergeSorted<T>(a: readonly CompiledRoute<T>[], b: readonly CompiledRoute<T>[]): CompiledRoute<T>[] {
  const out: CompiledRoute<T>[] = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) out.push(a[i]!.index < b[j]!.index ? a[i++]! : b[j++]!)
  while (i < a.length) out.push(a[i++]!)
  while (j < b.length) out.push(b[j++]!)
  return out
}

/** Everything except the query: regex path, methods, headers. */
function matchesRequest<T>(r: CompiledRoute<T>, method: string, path: string, headers: HeaderMap): boolean {
  if (r.pathRegex !== null && !r.pathRegex.test(path)) return false
  if (r.methods !== null && !r.methods.includes(method)) return false
  if (r.headers !== null) {
    for (let i = 0; i < r.headers.length; i++) {
      const c = r.headers[i]!
      const v = headers[c.name]
      // typeof/isArray rather than `!== undefined`: a plain object's prototype answers `constructor`.
      if (typeof v === 'string') {
        if (!(c.present && matchesValue(c, v))) return false
      } else if (Array.isArray(v) && v.length > 0) {
        if (!(c.present && matchesAny(c, v))) return false
      } else if (c.present) {
        return false
      }
    }
  }
  return true
}

function matchesParams(conditions: readonly CompiledCondition[], params: QueryParams): boolean {
  for (let i = 0; i < conditions.length; i++) {
    const c = conditions[i]!
    const values = params.get(c.name)
    if (values === undefined) {
      if (c.present) return false
    } else if (!(c.present && matchesAny(c, values))) {
      return false
    }
  }
  return true
}

function matchesAny(c: CompiledCondition, values: readonly string[]): boolean {
  for (let i = 0; i < values.length; i++) if (matchesValue(c, values[i]!)) return true
  return false
}

function matchesValue(c: CompiledCondition, v: string): boolean {
  return (
    (c.exact === null || v === c.exact) &&
    (c.prefix === null || v.startsWith(c.prefix)) &&
    (c.regex === null || c.regex.test(v))
  )
}

/** `a=1&b=x+y&a=%32&flag` → a: [1, 2], b: ['x y'], flag: ['']. Malformed escapes stay as sent. */
function parseQuery(path: string, from: number): QueryParams {
  const params = new Map<string, string[]>()
  let start = from
  while (start <= path.length) {
    let end = path.indexOf('&', start)
    if (end === -1) end = path.length
    if (end > start) {
      const eq = path.indexOf('=', start)
      const hasValue = eq !== -1 && eq < end
      const name = decodeQueryPart(path.slice(start, hasValue ? eq : end))
      const value = hasValue ? decodeQueryPart(path.slice(eq + 1, end)) : ''
      const values = params.get(name)
      if (values === undefined) params.set(name, [value])
      else values.push(value)
    }
    start = end + 1
  }
  return params
}

function decodeQueryPart(raw: string): string {
  const spaced = raw.includes('+') ? raw.replaceAll('+', ' ') : raw
  if (!spaced.includes('%')) return spaced
  try {
    return decodeURIComponent(spaced)
  } catch {
    return spaced
  }
}
