// Gateway API's HTTPRoute precedence (gateway-api spec, HTTPRouteRule): when several matches hold, the
// winner is, in order: an Exact path; then the longest PathPrefix (RegularExpression is
// implementation-specific: meshgate ranks it after Exact and before every prefix, as Envoy Gateway
// does); then a method match; then more header matches; then more query matches; ties go to the
// oldest route, then to {namespace}/{name} alphabetically, then to rule order within the route.
// meshgate routes are first-match, so imports sort by this and exports check against it.

export interface PrecedenceKey {
  pathType: 'Exact' | 'RegularExpression' | 'PathPrefix'
  pathLength: number
  method: boolean
  headers: number
  query: number
  /** Tie-breaks: creation time (ms; Infinity when unknown), `namespace/name`, rule index, match index. */
  created: number
  route: string
  rule: number
  match: number
}

const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const

/** Negative when `a` takes precedence over `b`. */
export function comparePrecedence(a: PrecedenceKey, b: PrecedenceKey): number {
  return (
    PATH_RANK[a.pathType] - PATH_RANK[b.pathType] ||
    (a.pathType === 'PathPrefix' ? b.pathLength - a.pathLength : 0) ||
    Number(b.method) - Number(a.method) ||
    b.headers - a.headers ||
    b.query - a.query ||
    (a.created === b.created ? 0 : a.created < b.created ? -1 : 1) ||
    (a.route < b.route ? -1 : a.route > b.route ? 1 : 0) ||
    a.rule - b.rule ||
    a.match - b.match
  )
}
