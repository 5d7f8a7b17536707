// TLS between sidecars: the certificate, key and trust bundle from files, checked and swapped in when
// they change (material.ts), and how the sidecar's flags name them (files.ts). The listener and the
// upstream client that use them are part of the HTTP edge: http/tls-listener.ts, http/tls-client.ts.

export { tlsFilesFromArgs } from './files.ts'
export type { TlsCertInfo, TlsFiles, TlsMaterial, TlsMaterialOptions, TlsStats } from './material.ts'
export { createTlsMaterial, MIN_TLS_VERSION } from './material.ts'
