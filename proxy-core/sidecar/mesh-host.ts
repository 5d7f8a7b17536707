// Which mesh service an outbound request is for. Apps address a service by name: `Host: reviews`,
// `reviews:9080` or `reviews.mesh`, or, with HTTP_PROXY set, an absolute-form request line
// (`GET http://reviews/x HTTP/1.1`). Anything else is refused: the sidecar is never an open proxy.

/** The suffix apps may add to make mesh names stand out in URLs (`http://reviews.mesh/`). */
const MESH_SUFFIX = '.mesh'

export type OutboundTarget =
  | { kind: 'service'; service: string; path: string; authority: string }
  | { kind: 'unknown'; service: string; path: string }
  | { kind: 'bad'; reason: string }

/**
 * The service name in a Host value: lower case, without port, trailing dot or `.mesh`. IPv6 literals
 * keep their brackets off (`[::1]:80` → `::1`), which never names a service.
 */
export function serviceName(authority: string): string {
  let host = authority.trim().toLowerCase()
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    host = end < 0 ? host.slice(1) : host.slice(1, end)
  } else {
    const colon = host.lastIndexOf(':')
    if (colon >= 0) host = host.slice(0, colon)
  }
  if (host.endsWith('.')) host = host.slice(0, -1)
  if (host.endsWith(MESH_SUFFIX)) host = host.slice(0, -MESH_SUFFIX.length)
  return host
}

const ABSOLUTE = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^#]*)/

/**
 * Resolve the request target (`req.url`) and Host header against the mesh. In absolute form the
 * authority of the URL wins over Host (RFC 9112 §3.2.2). The path is returned as sent, not yet
 * normalized: the caller does that once (`edgePath`), whichever form the target came in.
 */
export function resolveOutbound(
  url: string,
  host: string | undefined,
  isService: (name: string) => boolean,
): OutboundTarget {
  let authority: string
  let path: string
  if (url.startsWith('/')) {
    if (host === undefined || host === '') return { kind: 'bad', reason: 'missing Host header' }
    authority = host
    path = url
  } else {
    const m = ABSOLUTE.exec(url)
    if (m === null) return { kind: 'bad', reason: 'unsupported request target' }
    if (m[1]!.toLowerCase() !== 'http') return { kind: 'bad', reason: 'only http:// URLs can be proxied' }
    // userinfo (`http://user@host/`) is not allowed in http URLs (RFC 9110 §4.2.4).
    if (m[2]!.includes('@')) return { kind: 'bad', reason: 'userinfo in the request target' }
    authority = m[2]!
    path = absolutePath(m[3])
  }
  const service = serviceName(authority)
  if (service === '' || !isService(service)) return { kind: 'unknown', service, path }
  return { kind: 'service', service, path, authority }
}

/** The path part of an absolute-form target, in origin form: `` → `/`, `?q` → `/?q`. */
function absolutePath(path: string | undefined): string {
  if (path === undefined || path === '') return '/'
  return path.startsWith('?') ? `/${path}` : path
}

/**
 * The path (with its query) of a request target, as sent: origin form unchanged, absolute form
 * (`http://host/a?b`) its path. Not WHATWG's URL parser, which would resolve dot segments on its own
 * terms before the normalizer (`edgePath`) could judge the path. Any other form: undefined.
 */
export function originFormPath(url: string): string | undefined {
  if (url.startsWith('/')) return url
  const m = ABSOLUTE.exec(url)
  return m === null ? undefined : absolutePath(m[3])
}
