// Path normalization: the one form of a request path that the router matches, the rewrite edits, the
// upstream receives (and authorization will judge). Done once, where a request enters the mesh, so no
// two parts of the request path can disagree about what was asked for: a router that matches
// `/public/../admin` against `/public` while the upstream serves `/admin` is a way around every policy.
//
// The steps (Envoy's path_with_escaped_slashes_action, merge_slashes and normalize_path):
// 1. Refuse what no well-formed request-target holds: a path not starting with `/`, raw control bytes
//    or spaces, backslashes (Windows-style servers read them as `/`), `#`, a `%` not followed by two hex
//    digits, and `%00` (a NUL that a decoding upstream would cut a file name at).
// 2. Percent-encodings: unreserved characters (RFC 3986 §2.3: letters, digits, `-._~`) are decoded,
//    since they mean the same encoded or not (§6.2.2.2), so `%2e%2e` becomes the dot segment it is.
//    Everything else stays encoded with upper-case hex (§6.2.2.1). `%2F` and `%5C` follow the
//    configured action: keep them encoded, refuse the request, or decode them to `/`.
// 3. With mergeSlashes, runs of `/` become one (Envoy's merge_slashes, on in Istio by default).
// 4. Dot segments are removed (RFC 3986 §5.2.4); `..` never climbs above the root.
// The query string is left exactly as sent.
//
// The result is a fixed point: normalizing it again changes nothing.

import { ErrorCodes, errorResponse, MeshError } from './errors.ts'
import type { MeshResponse } from './types.ts'

/**
 * `%2F` and `%5C`: `keep` forwards them encoded (Istio's default; Envoy's KEEP_UNCHANGED), `reject`
 * answers 400 (Envoy's REJECT_REQUEST), `decode` turns them into `/` before slashes and dot segments
 * are handled (Envoy's UNESCAPE_AND_FORWARD).
 */
export type EscapedSlashAction = 'keep' | 'reject' | 'decode'

export interface PathNormalizationConfig {
  mergeSlashes: boolean
  escapedSlashes: EscapedSlashAction
}

/**
 * Defaults: merge slashes (Istio turns Envoy's merge_slashes on), and refuse escaped slashes. Istio
 * keeps them, but Envoy recommends refusing them when authorization is based on the path and an
 * upstream may decode them, which is this mesh's case once authorization rules match paths.
 */
export const DEFAULT_PATH_NORMALIZATION: Readonly<PathNormalizationConfig> = Object.freeze({
  mergeSlashes: true,
  escapedSlashes: 'reject',
})

/**
 * Why a path was refused; each is answered 400 `invalid_path` with this as `reason`. A union, not a
 * const object: the names would cost bytes in every Lambda bundle and nothing reads them.
 */
export type PathProblem =
  | 'path_not_absolute'
  | 'control_character'
  | 'backslash'
  | 'fragment'
  | 'bad_percent_encoding'
  | 'encoded_nul'
  | 'escaped_slash'

export type NormalizedPath = { ok: true; path: string } | { ok: false; problem: PathProblem }

/** The mesh's answer to a refused path: 400 `{"error":"invalid_path","reason":...}`. */
export function pathError(problem: PathProblem): MeshError {
  return new MeshError(ErrorCodes.invalidPath, `invalid path: ${problem}`, { details: { reason: problem } })
}

/** The normalized path, or the 400 that refuses the request. */
export type EdgePath = { ok: true; path: string } | { ok: false; refusal: MeshResponse; code: string }

/**
 * Normalizes a request path where it enters the mesh. Every entry (both sidecar listeners, the Lambda
 * gateway, `context.mesh.fetch`, the dev gateway) calls this once, and the path it returns is the one
 * routed, rewritten, forwarded and logged, so no part of the request path sees another.
 */
export function edgePath(path: string, config: PathNormalizationConfig): EdgePath {
  const r = normalizePath(path, config)
  if (r.ok) return r
  const err = pathError(r.problem)
  return { ok: false, refusal: errorResponse(err), code: err.code }
}

// Small on purpose: this file is in every Lambda bundle. Regexes keep it short and are quick in V8.
/** Anything that may need work: a refusal, an escape, a dot segment (`//` is checked apart). */
const SUSPECT = /[\0- \x7f\\#%]|\/\.\.?(?:\/|$)/
const REFUSED = /[\0- \x7f\\#]/
const ESCAPE = /%([0-9a-fA-F]{2})?/g
const UNRESERVED = /^[\w.~-]$/

/**
 * Normalizes a request path with its query (`/a/../b?x` → `/b?x`). A path already in normal form (the
 * common case) is found so by one regex test and returned as the same string.
 */
export function normalizePath(target: string, config: PathNormalizationConfig): NormalizedPath {
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  if (path.charCodeAt(0) !== 0x2f) return { ok: false, problem: 'path_not_absolute' }
  if (!SUSPECT.test(path) && !(config.mergeSlashes && path.includes('//'))) return { ok: true, path: target }
  const bad = REFUSED.exec(path)?.[0]
  if (bad !== undefined) {
    const problem = bad === '\\' ? 'backslash' : bad === '#' ? 'fragment' : 'control_character'
    return { ok: false, problem }
  }
  let problem: PathProblem | undefined
  const decoded = path.replace(ESCAPE, (_, hex: string | undefined) => {
    if (hex === undefined) {
      problem ??= 'bad_percent_encoding'
      return ''
    }
    const b = Number.parseInt(hex, 16)
    const c = String.fromCharCode(b)
    if (b === 0) problem ??= 'encoded_nul'
    else if (c === '/' || c === '\\') {
      if (config.escapedSlashes === 'reject') problem ??= 'escaped_slash'
      else if (config.escapedSlashes === 'decode') return '/'
    } else if (UNRESERVED.test(c)) return c
    return `%${hex.toUpperCase()}`
  })
  if (problem !== undefined) return { ok: false, problem }
  // Merged first: with merging on, `//` means `/`, so `..` after it climbs a real segment (as nginx
  // resolves it). Dot removal never makes a new `//` out of a merged path.
  const normal = removeDotSegments(config.mergeSlashes ? mergeSlashes(decoded) : decoded)
  return { ok: true, path: q < 0 ? normal : normal + target.slice(q) }
}

/**
 * RFC 3986 §5.2.4 for an absolute path: `.` segments vanish, `..` drops the segment before it (none
 * above the root), and a dot segment at the end leaves the trailing `/` it stood behind.
 */
export function removeDotSegments(path: string): string {
  const segments = path.split('/')
  const out: string[] = []
  // segments[0] is the empty string before the leading `/`.
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!
    if (s === '.' || s === '..') {
      if (s === '..') out.pop()
      if (i === segments.length - 1) out.push('')
    } else out.push(s)
  }
  return `/${out.join('/')}`
}

/** `//a///b` → `/a/b`; a single trailing `/` stays. */
export function mergeSlashes(path: string): string {
  return path.replace(/\/{2,}/g, '/')
}
