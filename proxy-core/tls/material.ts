// The sidecar's TLS material: a certificate chain, its key and a trust bundle, read from PEM files (what
// cert-manager writes into a Secret volume as tls.crt, tls.key, ca.crt; what an AWS Private CA export or
// an ECS init container writes), checked as a whole, and swapped in when the files change.
//
// A pair is taken only when it is complete and consistent: every PEM block closed and parsed, the key
// the certificate's own, the certificate within its validity, the bundle parsed. Anything else (a file
// caught half-written, a key renamed before its certificate) is refused: logged, counted, and the
// material already in use keeps serving. Listeners and pools ask for the current contexts on each new
// connection, so a swap reaches new connections without a restart and cuts no open one.

import { createPrivateKey, X509Certificate } from 'node:crypto'
import type { FSWatcher } from 'node:fs'
import { readFileSync, watch } from 'node:fs'
import { dirname } from 'node:path'
import type { SecureContext } from 'node:tls'
import { createSecureContext } from 'node:tls'

export interface TlsFiles {
  /** The certificate chain, leaf first (PEM). */
  cert: string
  /** The leaf's private key (PEM). */
  key: string
  /**
   * The trust bundle peers are verified against (PEM, one or more CA certificates). Without it the
   * inbound listener asks no client certificate, and upstreams are verified against the system's roots.
   */
  ca?: string
}

/** The leaf certificate in use, as the admin endpoint and the logs show it. */
export interface TlsCertInfo {
  serial: string
  subject: string
  notBefore: string
  notAfter: string
  fingerprint256: string
}

export interface TlsStats {
  files: TlsFiles
  /** Material swapped in after the first load. */
  reloads: number
  /** Versions of the files refused (the material in use kept serving). */
  rejected: number
  lastError: string | null
  loadedAt: string
  cert: TlsCertInfo
}

/** One accepted version of the files, with the contexts made from it. */
interface Loaded {
  cert: Buffer
  key: Buffer
  ca: Buffer | undefined
  info: TlsCertInfo
  server: SecureContext
  client: SecureContext
  loadedAt: string
}

export interface TlsMaterial {
  readonly files: TlsFiles
  /** Whether peers are verified against a configured bundle (mutual TLS on the inbound listener). */
  readonly verifiesPeers: boolean
  /** Bumped by every swap: a pooled connection made under an older generation is retired. */
  generation(): number
  /** The listener's context: our chain and key, and the bundle client certificates must chain to. */
  serverContext(): SecureContext
  /** The upstream side's: our chain and key as the client certificate, and the bundle to verify against. */
  clientContext(): SecureContext
  /** What `tls.Server.setSecureContext` takes for the current version. */
  serverOptions(): { cert: Buffer; key: Buffer; ca?: Buffer; minVersion: 'TLSv1.2' }
  info(): TlsCertInfo
  stats(): TlsStats
  /** Told after each swap. */
  onSwap(listener: () => void): void
  /** Reads the files now; true when a new version was swapped in, false when refused or unchanged. */
  reload(): boolean
  close(): void
}

export interface TlsMaterialOptions {
  /** One JSON-ready notice per event (`tls_reloaded`, `tls_rejected`, `tls_watch_stopped`). */
  notice?: (type: string, fields: Record<string, unknown>) => void
  /** Watch the files' directories; default true. */
  watch?: boolean
  /** Wall-clock time for the validity check, ms since the epoch. */
  now?: () => number
}

/**
 * 100 ms: a rotation is several file events (cert-manager swaps a `..data` symlink; a script renames
 * two files), read once when they stop; a slower writer is refused once and read again on its last event.
 */
const DEBOUNCE_MS = 100
/** TLS 1.2 and up: 1.0 and 1.1 are deprecated (RFC 8996); Envoy's default minimum is 1.2 too. */
export const MIN_TLS_VERSION = 'TLSv1.2'

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n-----END \1-----/g

/** The certificates of a PEM file; throws when a block is unterminated or not a certificate. */
function pemCertificates(text: string, what: string): X509Certificate[] {
  const begins = text.match(/-----BEGIN /g)?.length ?? 0
  const blocks = [...text.matchAll(PEM_BLOCK)]
  if (begins === 0) throw new Error(`${what}: no PEM certificate in the file`)
  if (blocks.length !== begins) throw new Error(`${what}: a PEM block is not terminated (file incomplete?)`)
  return blocks.map((b, i) => {
    if (b[1] !== 'CERTIFICATE') throw new Error(`${what}: block ${i + 1} is a ${b[1]}, not a CERTIFICATE`)
    try {
      return new X509Certificate(b[0])
    } catch (err) {
      throw new Error(`${what}: certificate ${i + 1} does not parse: ${(err as Error).message}`)
    }
  })
}

/** Reads and checks one version of the files; throws with the reason it cannot be used. */
function load(files: TlsFiles, now: number): Loaded {
  const cert = readFileSync(files.cert)
  const key = readFileSync(files.key)
  const ca = files.ca === undefined ? undefined : readFileSync(files.ca)
  const chain = pemCertificates(cert.toString('latin1'), files.cert)
  const leaf = chain[0]!
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch (err) {
    throw new Error(`${files.key}: not a usable private key (file incomplete?): ${(err as Error).message}`)
  }
  if (!leaf.checkPrivateKey(privateKey))
    throw new Error(`${files.key} is not the key of the certificate in ${files.cert}`)
  if (Date.parse(leaf.validTo) <= now)
    throw new Error(`${files.cert}: certificate expired at ${leaf.validTo}`)
  if (Date.parse(leaf.validFrom) > now)
    throw new Error(`${files.cert}: certificate not valid before ${leaf.validFrom}`)
  if (ca !== undefined) pemCertificates(ca.toString('latin1'), files.ca!)
  const options = { cert, key, minVersion: MIN_TLS_VERSION, ...(ca === undefined ? {} : { ca }) } as const
  return {
    cert,
    key,
    ca,
    info: {
      serial: leaf.serialNumber,
      subject: leaf.subject.replaceAll('\n', ', '),
      notBefore: new Date(leaf.validFrom).toISOString(),
      notAfter: new Date(leaf.validTo).toISOString(),
      fingerprint256: leaf.fingerprint256,
    },
    server: createSecureContext(options),
    client: createSecureContext(options),
    loadedAt: new Date(now).toISOString(),
  }
}

/** Loads the files (throws when the first version is unusable: a sidecar does not start without it). */
export function createTlsMaterial(files: TlsFiles, opts: TlsMaterialOptions = {}): TlsMaterial {
  const notice = opts.notice ?? (() => {})
  const now = opts.now ?? Date.now
  let current = load(files, now())
  let generation = 1
  let reloads = 0
  let rejected = 0
  let lastError: string | null = null
  const listeners: (() => void)[] = []

  function same(a: Loaded, b: Loaded): boolean {
    return a.cert.equals(b.cert) && a.key.equals(b.key) && (a.ca?.equals(b.ca ?? Buffer.alloc(0)) ?? !b.ca)
  }

  function reload(): boolean {
    let next: Loaded
    try {
      next = load(files, now())
    } catch (err) {
      rejected++
      lastError = (err as Error).message
      notice('tls_rejected', { error: lastError, serving: current.info.serial })
      return false
    }
    // An event that changed nothing (a touch, the directory's own metadata) swaps nothing.
    if (same(current, next)) {
      lastError = null
      return false
    }
    const previous = current.info.serial
    current = next
    generation++
    reloads++
    lastError = null
    notice('tls_reloaded', { serial: next.info.serial, previous, notAfter: next.info.notAfter })
    for (const l of listeners) l()
    return true
  }

  // The directories, not the files: a Secret volume swaps a `..data` symlink, and a watch on the old
  // inode would go quiet after the first rotation.
  const watchers: FSWatcher[] = []
  let debounce: NodeJS.Timeout | undefined
  if (opts.watch !== false) {
    const dirs = new Set([files.cert, files.key, ...(files.ca === undefined ? [] : [files.ca])].map(dirname))
    for (const dir of dirs) {
      const w = watch(dir, () => {
        clearTimeout(debounce)
        debounce = setTimeout(reload, DEBOUNCE_MS)
      })
      w.on('error', (err) => notice('tls_watch_stopped', { dir, error: err.message }))
      w.unref()
      watchers.push(w)
    }
  }

  return {
    files,
    verifiesPeers: files.ca !== undefined,
    generation: () => generation,
    serverContext: () => current.server,
    clientContext: () => current.client,
    serverOptions: () => ({
      cert: current.cert,
      key: current.key,
      minVersion: MIN_TLS_VERSION,
      ...(current.ca === undefined ? {} : { ca: current.ca }),
    }),
    info: () => current.info,
    stats: () => ({
      files,
      reloads,
      rejected,
      lastError,
      loadedAt: current.loadedAt,
      cert: current.info,
    }),
    onSwap: (l) => {
      listeners.push(l)
    },
    reload,
    close() {
      clearTimeout(debounce)
      for (const w of watchers) w.close()
    },
  }
}
