// The sidecar's TLS flags and environment, as parseSidecarArgs reads them.

import { describe, expect, it } from 'vitest'
import { parseSidecarArgs } from '../../proxy-core/sidecar/command.ts'

const base = ['--config', '/m.yaml', '--service', 'reviews']

describe('sidecar TLS flags', () => {
  it('takes the directory from the environment and flags over it', () => {
    const opts = parseSidecarArgs(base, { MESHGATE_TLS_DIR: '/etc/meshgate/tls' })
    expect(opts !== 'help' && opts.tls).toEqual({
      cert: '/etc/meshgate/tls/tls.crt',
      key: '/etc/meshgate/tls/tls.key',
      ca: '/etc/meshgate/tls/ca.crt',
    })
    const over = parseSidecarArgs([...base, '--tls-ca', '/trust/bundle.pem'], {
      MESHGATE_TLS_DIR: '/etc/meshgate/tls',
      MESHGATE_TLS_HANDSHAKE_TIMEOUT: '2s',
    })
    expect(over !== 'help' && over.tls).toMatchObject({ ca: '/trust/bundle.pem', handshakeTimeoutMs: 2000 })
    const none = parseSidecarArgs(base, {})
    expect(none !== 'help' && none.tls).toBeUndefined()
  })

  it('reads the inbound mode, and refuses half a pair, an unknown mode and a timeout that is not a duration', () => {
    const permissive = parseSidecarArgs([...base, '--tls-dir', '/d', '--tls-mode', 'permissive'], {})
    expect(permissive !== 'help' && permissive.tls?.mode).toBe('permissive')
    expect(() => parseSidecarArgs([...base, '--tls-dir', '/d', '--tls-mode', 'open'], {})).toThrow(
      /--tls-mode: want strict or permissive/,
    )
    expect(() => parseSidecarArgs([...base, '--tls-cert', '/c.pem'], {})).toThrow(/go together/)
    expect(() =>
      parseSidecarArgs([...base, '--tls-dir', '/d'], { MESHGATE_TLS_HANDSHAKE_TIMEOUT: 'soon' }),
    ).toThrow(/MESHGATE_TLS_HANDSHAKE_TIMEOUT: not a duration/)
  })
})
