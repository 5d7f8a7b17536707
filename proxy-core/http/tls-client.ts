// How the upstream client reaches an `https://` origin: with which context (the sidecar's certificate
// and trust bundle, or the system's roots), which server name, and which identity the peer must prove.
// One policy per target, made once per config version (targets are frozen), so nothing is worked out
// per request.

import type { PeerCertificate, SecureContext } from 'node:tls'
import { checkServerIdentity, createSecureContext } from 'node:tls'
import type { TargetConfig } from '../engine/types.ts'
import type { TlsMaterial } from '../tls/material.ts'
import { MIN_TLS_VERSION } from '../tls/material.ts'

/**
 * What the HTTP/1.1 client offers in ALPN. The HTTP/2 client (`protocol: http2 | grpc` targets) offers
 * `h2` alone (http2-client.ts): a target's protocol is configured, not negotiated.
 */
export const UPSTREAM_ALPN: readonly string[] = Object.freeze(['http/1.1'])

export interface TlsConnectPolicy {
  /** Separates pools of one origin reached in different ways ('' for the plain way). */
  readonly key: string
  secureContext(): SecureContext
  /** Connections made under an older generation are retired (a rotated client certificate). */
  generation(): number
  /** SNI, and the name the certificate must carry (unless subjectAltNames says otherwise). */
  readonly servername?: string
  readonly checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined
}

/** `DNS:a, IP Address:10.0.0.1, URI:spiffe://x` → `['a', '10.0.0.1', 'spiffe://x']`. */
function altNames(cert: PeerCertificate): string[] {
  const text = cert.subjectaltname ?? ''
  if (text === '') return []
  return text.split(', ').map((entry) => entry.slice(entry.indexOf(':') + 1))
}

/** Istio's `subjectAltNames`: the certificate must carry one of these, whatever host was dialled. */
function allowAltNames(names: readonly string[]) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    const have = altNames(cert)
    if (have.some((n) => names.includes(n))) return undefined
    return Object.assign(
      new Error(`peer certificate names ${have.join(', ') || 'nothing'}, none of ${names.join(', ')}`),
      { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    )
  }
}

/**
 * The policy maker for an invoker. `material`: the sidecar's files (`--tls-cert`, `--tls-key`,
 * `--tls-ca`); without them every https target is `simple` (the system's roots, no client certificate).
 */
export function createUpstreamTls(
  material: TlsMaterial | undefined,
): (target: TargetConfig) => TlsConnectPolicy {
  let system: SecureContext | undefined
  const systemContext = () => {
    system ??= createSecureContext({ minVersion: MIN_TLS_VERSION })
    return system
  }
  const policies = new WeakMap<TargetConfig, TlsConnectPolicy>()
  return (target) => {
    let policy = policies.get(target)
    if (policy !== undefined) return policy
    const tls = target.kind === 'http' ? target.tls : undefined
    const mutual = material !== undefined && tls?.mode !== 'simple'
    const names = tls?.subjectAltNames
    policy = Object.freeze({
      key: [mutual ? 'mutual' : 'simple', tls?.sni ?? '', ...(names ?? [])].join(' '),
      secureContext: mutual ? () => material.clientContext() : systemContext,
      generation: mutual ? () => material.generation() : () => 0,
      ...(tls?.sni === undefined ? {} : { servername: tls.sni }),
      checkServerIdentity:
        names === undefined || names.length === 0 ? checkServerIdentity : allowAltNames(names),
    })
    policies.set(target, policy)
    return policy
  }
}
