// The sidecar's TLS material as a library: what it refuses at start (the sidecar then does not start)
// and on reload (the pair in use keeps serving), with the clock injected for the validity checks.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTlsMaterial, tlsFilesFromArgs } from '../../proxy-core/tls/index.ts'
import { makeCa, makeLeaf, makeTlsDir, type TestCa } from '../helpers/certs.ts'

let dir: string
let ca: TestCa
let files: ReturnType<typeof makeTlsDir>
const DAY = 86_400_000

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'meshgate-material-'))
  ca = makeCa(dir, 'mesh')
  files = makeTlsDir(join(dir, 'tls'), ca, 'svc', ['DNS:svc'])
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('TLS material', () => {
  it('loads a complete pair and says which certificate it serves', () => {
    const m = createTlsMaterial(files, { watch: false })
    expect(m.info().serial).toBe(files.leaf.serial)
    expect(m.verifiesPeers).toBe(true)
    expect(m.generation()).toBe(1)
    // Nothing changed: nothing swapped, nothing refused.
    expect(m.reload()).toBe(false)
    expect(m.stats()).toMatchObject({ reloads: 0, rejected: 0, lastError: null })
  })

  it('refuses at start a certificate outside its validity, by the injected clock', () => {
    expect(() => createTlsMaterial(files, { watch: false, now: () => Date.now() + 3 * DAY })).toThrow(
      /certificate expired at/,
    )
    expect(() => createTlsMaterial(files, { watch: false, now: () => Date.now() - DAY })).toThrow(
      /not valid before/,
    )
  })

  it('refuses a bundle that is not certificates, and a key file that is not a key', () => {
    const bad = join(dir, 'bad-ca.pem')
    writeFileSync(bad, readFileSync(files.key))
    expect(() => createTlsMaterial({ ...files, ca: bad }, { watch: false })).toThrow(
      /is a .*PRIVATE KEY, not a CERTIFICATE/,
    )
    expect(() => createTlsMaterial({ ...files, key: files.ca }, { watch: false })).toThrow(
      /not a usable private key/,
    )
  })

  it('on reload, refuses what does not load and swaps in what does', () => {
    const notices: string[] = []
    const m = createTlsMaterial(files, { watch: false, notice: (type) => notices.push(type) })
    let swaps = 0
    m.onSwap(() => swaps++)
    const good = readFileSync(files.cert, 'latin1')
    writeFileSync(files.cert, good.slice(0, good.length - 40))
    expect(m.reload()).toBe(false)
    expect(m.stats().lastError).toMatch(/not terminated/)
    writeFileSync(files.cert, good)
    const next = makeLeaf(dir, ca, 'svc-next', ['DNS:svc'], files)
    expect(m.reload()).toBe(true)
    expect(m.info().serial).toBe(next.serial)
    expect(m.generation()).toBe(2)
    expect(swaps).toBe(1)
    expect(notices).toEqual(['tls_rejected', 'tls_reloaded'])
    expect(m.stats()).toMatchObject({ reloads: 1, rejected: 1, lastError: null })
    files.leaf = next
  })
})

describe('TLS files from flags', () => {
  it('reads a directory as cert-manager writes it, lets single files override it, and wants pairs', () => {
    expect(tlsFilesFromArgs({})).toBeUndefined()
    expect(tlsFilesFromArgs({ dir: '/s' })).toEqual({
      cert: '/s/tls.crt',
      key: '/s/tls.key',
      ca: '/s/ca.crt',
    })
    expect(tlsFilesFromArgs({ dir: '/s', ca: '/bundle.pem' })).toMatchObject({ ca: '/bundle.pem' })
    expect(tlsFilesFromArgs({ cert: '/c', key: '/k' })).toEqual({ cert: '/c', key: '/k' })
    expect(() => tlsFilesFromArgs({ cert: '/c' })).toThrow(/go together/)
    expect(() => tlsFilesFromArgs({ ca: '/c' })).toThrow(/go together/)
  })
})
