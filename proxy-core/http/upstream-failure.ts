// Upstream failures, classified once for every invoker: socket error codes before a connection exists
// are a connect failure (safe to retry anywhere); after, the peer went away mid-exchange (a reset);
// our own signal, or a client's timer, is a timeout.

import { type FailureKind, FailureKinds, UpstreamFailure } from '../engine/types.ts'

export const CONNECT_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EADDRNOTAVAIL',
  'ECONNABORTED',
  'UND_ERR_CONNECT_TIMEOUT',
  // TLS: the handshake never produced a connection to the app.
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
])

export const RESET_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
])

/** Errors that mean a timer of the client's fired, or the attempt was aborted (undici's, DOM's). */
const TIMEOUT_ERROR_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_ABORTED',
  'ABORT_ERR',
])

export interface FailureContext {
  /** The attempt's own signal fired: whatever error surfaced from it, the attempt timed out. */
  aborted: boolean
  /**
   * Whether the connection was established. false: a reset during the handshake is a connect
   * failure too (nothing reached the upstream); true: no code makes it one; undefined: the client
   * does not say, and the code decides.
   */
  connected?: boolean
  /** Where, for the message: the origin, `lambda endpoint`. */
  what?: string
}

/** The error's code and its cause's: undici and the AWS SDK wrap socket errors (ECONNREFUSED under UND_ERR_SOCKET). */
function errorCodes(err: unknown): string[] {
  const codes: string[] = []
  if (typeof err !== 'object' || err === null) return codes
  const e = err as { code?: unknown; cause?: { code?: unknown } | null }
  if (typeof e.code === 'string') codes.push(e.code)
  if (typeof e.cause?.code === 'string') codes.push(e.cause.code)
  return codes
}

/**
 * The kind of a network error, for every invoker (the one classifier of upstream failures): our
 * signal or a client timer → timeout; no connection made → connect-failure (safe to retry anywhere);
 * a connection that broke → reset. Undefined when nothing marks it as a network error (a caller with
 * its own API errors, such as Lambda's, decides those).
 */
export function networkFailureKind(err: unknown, ctx: FailureContext): FailureKind | undefined {
  const name = (err as { name?: unknown } | null)?.name
  if (ctx.aborted || name === 'AbortError') return FailureKinds.timeout
  const codes = errorCodes(err)
  if (codes.some((c) => TIMEOUT_ERROR_CODES.has(c))) return FailureKinds.timeout
  if (ctx.connected !== true) {
    if (codes.some((c) => CONNECT_ERROR_CODES.has(c))) return FailureKinds.connectFailure
    if (ctx.connected === false && codes.includes('ECONNRESET')) return FailureKinds.connectFailure
  }
  if (codes.some((c) => RESET_ERROR_CODES.has(c) || CONNECT_ERROR_CODES.has(c))) return FailureKinds.reset
  return undefined
}

/** `err` as the pipeline's UpstreamFailure (a reset unless the classifier says otherwise). */
export function upstreamFailure(
  err: unknown,
  ctx: FailureContext,
  fallback = 'upstream failed',
): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err
  const kind = networkFailureKind(err, ctx) ?? FailureKinds.reset
  const message = err instanceof Error ? err.message : err === undefined ? fallback : String(err)
  const code = errorCodes(err).at(-1)
  const text = code === undefined || message.includes(code) ? message : `${code}: ${message}`
  return new UpstreamFailure(
    kind,
    ctx.what === undefined ? text : `${ctx.what}: ${text}`,
    err === undefined ? undefined : { cause: err },
  )
}
