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

export const EscapedSlashActions = {
  /** Forward `%2F` and `%5C` encoded (Istio's default; Envoy's KEEP_UNCHANGED). */
  keep: 'keep',
  /** Answer 400 (Envoy's REJECT_REQUEST): the safe choice when an upstream may decode them. */
  reject: 'reject',
  /** Decode to `/` before dot segments and slashes are handled (Envoy's UNESCAPE_AND_FORWARD). */
  decode: 'decode',
} as const
export type EscapedSlashAction = (typeof EscapedSlashActions)[keyof typeof EscapedSlashActions]

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
  escapedSlashes: EscapedSlashActions.reject,
})

/** Why a path was refused; each is answered 400 `invalid_path` with this as `reason`. */
export const PathProblems = {
  notAbsolute: 'path_not_absolute',
  control: 'control_character',
  backslash: 'backslash',
  fragment: 'fragment',
  badEncoding: 'bad_percent_encoding',
  nul: 'encoded_nul',
  escapedSlash: 'escaped_slash',
} as const
export type PathProblem = (typeof PathProblems)[keyof typeof PathProblems]

export type NormalizedPath = { ok: true; path: string } | { ok: false; problem: PathProblem }

const messages: Readonly<Record<PathProblem, string>> = {
  path_not_absolute: 'the path must start with /',
  control_character: 'the path holds a control character or a space',
  backslash: 'the path holds a backslash',
  fragment: 'the path holds a #',
  bad_percent_encoding: 'a % in the path is not followed by two hex digits',
  encoded_nul: 'the path holds %00',
  escaped_slash: 'the path holds an encoded slash (%2F or %5C)',
}

/** A sentence for a refusal, for the error body and logs. */
export function pathProblemMessage(problem: PathProblem): string {
  return messages[problem]
}

/** The mesh's answer to a refused path: 400 `{"error":"invalid_path","reason":...}`. */
export function pathError(problem: PathProblem): MeshError {
  return new MeshError(ErrorCodes.invalidPath, messages[problem], { details: { reason: problem } })
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

const SLASH = 0x2f
const DOT = 0x2e
const PERCENT = 0x25
const BACKSLASH = 0x5c
const HASH = 0x23

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x41 && c <= 0x46) return c - 0x37
  if (c >= 0x61 && c <= 0x66) return c - 0x57
  return -1
}

function isUnreserved(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x2d ||
    b === DOT ||
    b === 0x5f ||
    b === 0x7e
  )
}

const HEX = '0123456789ABCDEF'

/**
 * Normalizes a request path with its query (`/a/../b?x` → `/b?x`). The common path, already in normal
 * form, is checked in one scan and returned as the same string.
 */
export function normalizePath(target: string, config: PathNormalizationConfig): NormalizedPath {
  const q = target.indexOf('?')
  const end = q < 0 ? target.length : q
  if (end === 0 || target.charCodeAt(0) !== SLASH) return { ok: false, problem: PathProblems.notAbsolute }
  // One scan: refuse the impossible, and find out whether anything needs rewriting.
  let dirty = false
  for (let i = 0; i < end; i++) {
    const c = target.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) return { ok: false, problem: PathProblems.control }
    if (c === BACKSLASH) return { ok: false, problem: PathProblems.backslash }
    if (c === HASH) return { ok: false, problem: PathProblems.fragment }
    if (c === PERCENT) dirty = true
    else if (c === SLASH && !dirty) {
      const n = i + 1 < end ? target.charCodeAt(i + 1) : -1
      if (n === SLASH && config.mergeSlashes) dirty = true
      else if (n === DOT) {
        // `/.` or `/..` followed by `/` or the end is a dot segment.
        const n2 = i + 2 < end ? target.charCodeAt(i + 2) : SLASH
        const n3 = i + 3 < end ? target.charCodeAt(i + 3) : SLASH
        if (n2 === SLASH || (n2 === DOT && n3 === SLASH)) dirty = true
      }
    }
  }
  if (!dirty) return { ok: true, path: target }

  const decoded = decodePercents(target, end, config.escapedSlashes)
  if (typeof decoded !== 'string') return { ok: false, problem: decoded.problem }
  // Merged first: with merging on, `//` means `/`, so `..` after it climbs a real segment (as nginx
  // resolves it). Dot removal never makes a new `//` out of a merged path.
  const path = removeDotSegments(config.mergeSlashes ? mergeSlashes(decoded) : decoded)
  return { ok: true, path: q < 0 ? path : path + target.slice(q) }
}

/** Step 2 over `target[0, end)`: the decoded path, or the problem that refuses it. */
function decodePercents(
  target: string,
  end: number,
  escapedSlashes: EscapedSlashAction,
): string | { problem: PathProblem } {
  let out = ''
  let from = 0
  for (let i = target.indexOf('%'); i >= 0 && i < end; i = target.indexOf('%', i)) {
    const hi = i + 1 < end ? hexValue(target.charCodeAt(i + 1)) : -1
    const lo = i + 2 < end ? hexValue(target.charCodeAt(i + 2)) : -1
    if (hi < 0 || lo < 0) return { problem: PathProblems.badEncoding }
    const b = hi * 16 + lo
    let replacement: string
    if (b === 0) return { problem: PathProblems.nul }
    if (isUnreserved(b)) replacement = String.fromCharCode(b)
    else if (b === SLASH || b === BACKSLASH) {
      if (escapedSlashes === EscapedSlashActions.reject) return { problem: PathProblems.escapedSlash }
      replacement = escapedSlashes === EscapedSlashActions.decode ? '/' : b === SLASH ? '%2F' : '%5C'
    } else replacement = `%${HEX[hi]}${HEX[lo]}`
    out += target.slice(from, i) + replacement
    i += 3
    from = i
  }
  return out + target.slice(from, end)
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
    const last = i === segments.length - 1
    if (s === '.' || s === '..') {
      if (s === '..') out.pop()
      if (last) out.push('')
      continue
    }
    out.push(s)
  }
  return `/${out.join('/')}`
}

/** `//a///b` → `/a/b`; a single trailing `/` stays. */
export function mergeSlashes(path: string): string {
  return path.replace(/\/{2,}/g, '/')
}
