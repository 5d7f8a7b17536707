// TLS on the edge's listeners: what http1-server.ts needs to run its HTTP/1.1 server inside a TLS
// server (the handshake, then the same parser on the decrypted stream, or the HTTP/2 edge when ALPN
// chose h2), and the one ALPN list.

import type { TlsMaterial } from '../tls/material.ts'

/**
 * The protocols the listeners offer in ALPN, in order of preference (the server's wins, RFC 7301 §3.2):
 * HTTP/2, whose connections go to http2-server.ts, then HTTP/1.1. A client that offers neither, or no
 * ALPN at all, gets HTTP/1.1 (or HTTP/2 by its preface, as in cleartext).
 */
export const LISTENER_ALPN: readonly string[] = Object.freeze(['h2', 'http/1.1'])

/** What a listener with HTTP/2 turned off offers. */
export const LISTENER_ALPN_HTTP1: readonly string[] = Object.freeze(['http/1.1'])

/**
 * A handshake not finished within this long is cut off, in ms: 10 s, the same as the upstream client's
 * connect timeout (http1-client.ts) and ample for a handshake on any network a mesh spans; node's own
 * default (120 s) lets a silent client hold a socket and a TLS state for two minutes.
 */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000

export interface TlsListenerOptions {
  material: TlsMaterial
  /** ms; DEFAULT_HANDSHAKE_TIMEOUT unless given. */
  handshakeTimeout: number
  /**
   * Istio's PERMISSIVE: cleartext HTTP is served too, told apart by its first byte, for the time it
   * takes to move every caller to https:// targets. Default (false): STRICT, TLS only.
   */
  permissive?: boolean
}

/** The first byte of a TLS connection: a handshake record (RFC 8446 §5.1, ContentType 22). */
export const TLS_HANDSHAKE_RECORD = 0x16

/** Why handshakes fail, as a closed set (a Prometheus label): never the peer's own words. */
export const HandshakeFailures = {
  timeout: 'timeout',
  /** The listener wants a client certificate (a trust bundle is set) and none came. */
  noClientCert: 'no_client_certificate',
  /** A client certificate that does not chain to the trust bundle, expired, or malformed. */
  badClientCert: 'bad_client_certificate',
  /** The client refused our certificate (it trusts another CA, or wants another name). */
  certificateRefused: 'certificate_refused_by_client',
  /** Not TLS at all (cleartext HTTP, garbage), or TLS we do not speak. */
  protocol: 'protocol',
} as const
export type HandshakeFailure = (typeof HandshakeFailures)[keyof typeof HandshakeFailures]

/** `authorizationError`: the socket's, set when a client certificate came and did not verify. */
export function handshakeFailureReason(
  err: Error & { code?: string },
  authorizationError?: Error | string | null,
): HandshakeFailure {
  if (authorizationError) return HandshakeFailures.badClientCert
  const code = err.code ?? ''
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return HandshakeFailures.timeout
  if (code.includes('PEER_DID_NOT_RETURN_A_CERTIFICATE') || code.includes('CERTIFICATE_REQUIRED'))
    return HandshakeFailures.noClientCert
  // An alert the client sent about our certificate.
  if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_|UNSUPPORTED_CERTIFICATE)/.test(code))
    return HandshakeFailures.certificateRefused
  if (/CERT|ISSUER|SIGNATURE|UNABLE_TO_VERIFY/.test(code)) return HandshakeFailures.badClientCert
  return HandshakeFailures.protocol
}

/** The field the app learns its caller's verified certificate from (Envoy's and Istio's XFCC). */
export const CLIENT_CERT_HEADER = 'x-forwarded-client-cert'

/**
 * A verified client certificate as Envoy writes `x-forwarded-client-cert`: `Hash=<SHA-256 of the DER,
 * hex>;Subject="<DN>";URI=<uri SAN>;DNS=<dns SAN>`. The transport's identity, for logs and the app's
 * curiosity; the caller's mesh identity is its token (docs/security.md).
 */
export function clientCertValue(cert: {
  fingerprint256: string
  subject?: Readonly<Record<string, string | string[] | undefined>> | undefined
  subjectaltname?: string | undefined
}): string {
  const hash = cert.fingerprint256.replaceAll(':', '').toLowerCase()
  const dn = Object.entries(cert.subject ?? {})
    .filter((e): e is [string, string | string[]] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(',')
  let out = `Hash=${hash};Subject="${dn.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`
  for (const entry of (cert.subjectaltname ?? '').split(', ')) {
    if (entry.startsWith('URI:')) out += `;URI=${entry.slice(4)}`
    else if (entry.startsWith('DNS:')) out += `;DNS=${entry.slice(4)}`
  }
  // The value goes into a header: nothing that could end or fold the field line.
  return out.replace(/[\r\n\0]/g, '')
}
