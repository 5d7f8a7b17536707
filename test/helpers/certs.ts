// Self-signed TLS material for the tests (the webhook, TLS upstreams), made with the machine's openssl (Debian's, checked in
// TOOLCHAIN.md's machine): a key and a certificate for `localhost`/127.0.0.1, written the way
// cert-manager writes a Secret volume (tls.crt, tls.key).

import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'

export interface CertFiles {
  cert: string
  key: string
  /** The certificate's SHA-256 fingerprint, as node's peer certificate reports it. */
  fingerprint: string
}

/** Writes `name.crt`/`name.key` in `dir`; with `into`, renames them over tls.crt/tls.key (atomic). */
export function makeCert(dir: string, name: string, into?: { cert: string; key: string }): CertFiles {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  )
  const fingerprint = new X509Certificate(readFileSync(cert)).fingerprint256
  if (into === undefined) return { cert, key, fingerprint }
  // Key first: for a moment the pair does not match, which the injector must refuse, not serve.
  renameSync(key, into.key)
  renameSync(cert, into.cert)
  return { cert: into.cert, key: into.key, fingerprint }
}
