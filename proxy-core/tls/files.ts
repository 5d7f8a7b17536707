// Which files the sidecar's TLS comes from, as its flags and environment name them (docs/tls.md):
// `--tls-dir DIR` is a cert-manager Secret volume (tls.crt, tls.key, ca.crt); `--tls-cert`, `--tls-key`
// and `--tls-ca` name files one by one and override the directory's.

import { join } from 'node:path'
import type { TlsFiles } from './material.ts'

export interface TlsFileArgs {
  dir?: string | undefined
  cert?: string | undefined
  key?: string | undefined
  ca?: string | undefined
}

/** The files, or undefined when no TLS flag is set; throws a usage message for an incomplete set. */
export function tlsFilesFromArgs(args: TlsFileArgs): TlsFiles | undefined {
  const { dir } = args
  const cert = args.cert ?? (dir === undefined ? undefined : join(dir, 'tls.crt'))
  const key = args.key ?? (dir === undefined ? undefined : join(dir, 'tls.key'))
  // A directory is a mesh identity: its ca.crt is the trust bundle, so peers are always verified.
  const ca = args.ca ?? (dir === undefined ? undefined : join(dir, 'ca.crt'))
  if (cert === undefined && key === undefined && ca === undefined) return undefined
  if (cert === undefined || key === undefined)
    throw new Error('--tls-cert and --tls-key go together (or --tls-dir with tls.crt and tls.key)')
  return { cert, key, ...(ca === undefined ? {} : { ca }) }
}
