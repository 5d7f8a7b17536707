// TLS material for the tests, made with the machine's openssl (Debian's): a self-signed key and
// certificate for `localhost`/127.0.0.1 (the webhook, TLS upstreams); a private CA and the leaf
// certificates it issues (TLS between sidecars); each written the way cert-manager writes a Secret
// volume (tls.crt, tls.key, ca.crt).

import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

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

/** A private certificate authority: what cert-manager's CA issuer or an AWS Private CA holds. */
export interface TestCa {
  readonly name: string
  /** PEM files of the CA. */
  readonly cert: string
  readonly key: string
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

/** A self-signed CA (`CN=<name>`, CA:TRUE, keyCertSign), valid for two days. */
export function makeCa(dir: string, name: string): TestCa {
  const cert = join(dir, `${name}-ca.crt`)
  const key = join(dir, `${name}-ca.key`)
  openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ])
  return { name, cert, key }
}

export interface LeafCert extends CertFiles {
  /** Upper-case hex, as node's X509Certificate.serialNumber reports it. */
  serial: string
}

let serials = 0

/**
 * A leaf certificate issued by `ca` for `sans` (`DNS:reviews`, `IP:10.0.0.2`), usable as server and
 * client certificate (what a mesh workload certificate is). Written as `<name>.crt`/`<name>.key`; with
 * `into`, the pair then replaces the files there by rename, key first (for a moment the two do not
 * match, as in a real rotation that is not one atomic swap).
 */
export function makeLeaf(
  dir: string,
  ca: TestCa,
  name: string,
  sans: readonly string[],
  into?: { cert: string; key: string },
): LeafCert {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  writeFileSync(
    ext,
    `subjectAltName=${sans.join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`,
  )
  openssl(['req', '-new', ...EC_KEY, '-keyout', key, '-out', csr, '-subj', `/CN=${name}`])
  // A serial of our own, distinct per certificate: the tests tell rotated certificates apart by it.
  const serial = `${(process.pid % 0xffff).toString(16)}${Date.now().toString(16)}${(++serials).toString(16).padStart(4, '0')}`
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-set_serial',
    `0x${serial}`,
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    cert,
  ])
  const x509 = new X509Certificate(readFileSync(cert))
  const made = { fingerprint: x509.fingerprint256, serial: x509.serialNumber }
  if (into === undefined) return { cert, key, ...made }
  renameSync(key, into.key)
  renameSync(cert, into.cert)
  return { cert: into.cert, key: into.key, ...made }
}

/**
 * A cert-manager Secret volume in `dir`: tls.crt, tls.key and ca.crt, the leaf issued by `ca`.
 * Returns the file paths and the leaf.
 */
export function makeTlsDir(
  dir: string,
  ca: TestCa,
  name: string,
  sans: readonly string[],
): { dir: string; cert: string; key: string; ca: string; leaf: LeafCert } {
  mkdirSync(dir, { recursive: true })
  const files = { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), ca: join(dir, 'ca.crt') }
  copyFileSync(ca.cert, files.ca)
  const leaf = makeLeaf(dirname(dir), ca, `${name}-${++serials}`, sans, files)
  return { dir, ...files, leaf }
}
