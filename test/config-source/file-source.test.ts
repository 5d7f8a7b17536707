// The file source reads only complete files: atomic renames and ConfigMap `..data` swaps at once, an
// in-place write only once it has settled (issue 16 class 5). Settle waits run on a manual clock; the
// file system is real.

import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { createLiveConfig, openConfigSource, SourceError } from '../../proxy-core/config-source/index.ts'
import { createManualClock, type ManualClock } from '../helpers/manual-clock.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshgate-src-'))
  dirs.push(d)
  return d
}

const SETTLE = 1000

/** A YAML mesh with the given services, each with one HTTP target. */
function yamlWith(services: string[]): string {
  const lines = ['version: 1', 'mesh: files', 'services:']
  for (const s of services) lines.push(`  ${s}:`, `    targets: { v1: { http: http://${s}.local:80 } }`)
  return `${lines.join('\n')}\n`
}

/**
 * Where a check stands, without moving the manual clock: `done`, or `waiting` on a settle timer. The
 * file reads are real I/O, so this waits (in real time) until one of the two is true.
 */
async function stateOf(p: Promise<unknown>, clock: ManualClock): Promise<'done' | 'waiting'> {
  let done = false
  const mark = () => {
    done = true
  }
  void p.then(mark, mark)
  for (;;) {
    await new Promise((r) => setTimeout(r, 2))
    if (done) return 'done'
    if (clock.pending() > 0) return 'waiting'
  }
}

describe('file source', () => {
  it('reads an atomic rename at once, and reports nothing when the bytes did not change', async () => {
    const dir = tempDir()
    const file = join(dir, 'mesh.yaml')
    writeFileSync(file, yamlWith(['a']))
    const clock = createManualClock()
    const source = openConfigSource(file, { timers: clock, settleMs: SETTLE })
    const first = await source.check()
    expect(first?.text).toBe(yamlWith(['a']))
    expect(first?.version).toMatch(/^sha256:/)
    expect(first?.name).toBe(file)
    expect(await source.check()).toBeUndefined()

    writeFileSync(join(dir, '.mesh.yaml.tmp'), yamlWith(['a', 'b']))
    renameSync(join(dir, '.mesh.yaml.tmp'), file)
    const next = source.check()
    expect(await stateOf(next, clock)).toBe('done')
    expect((await next)?.text).toBe(yamlWith(['a', 'b']))
    expect(clock.pending()).toBe(0)
    source.close()
  })

  it('never returns the first piece of an in-place write in two pieces', async () => {
    const dir = tempDir()
    const file = join(dir, 'mesh.yaml')
    const full = yamlWith(['a', 'b', 'c'])
    writeFileSync(file, yamlWith(['a']))
    const clock = createManualClock()
    const source = openConfigSource(file, { timers: clock, settleMs: SETTLE })
    await source.check()

    // The first piece: valid YAML that lacks the last service, written over the same inode.
    const cut = full.indexOf('  c:')
    const firstPiece = full.slice(0, cut)
    await expect(loadConfigText(firstPiece, file)).resolves.toBeDefined()
    writeFileSync(file, firstPiece)
    const pending = source.check()
    expect(await stateOf(pending, clock)).toBe('waiting')
    await clock.advance(SETTLE / 2)
    expect(await stateOf(pending, clock)).toBe('waiting')
    // The rest arrives before the settle interval is over: the wait starts again from the new bytes.
    writeFileSync(file, full, { flag: 'w' })
    await clock.advance(SETTLE / 2)
    expect(await stateOf(pending, clock)).toBe('waiting')
    await clock.advance(SETTLE)
    expect(await stateOf(pending, clock)).toBe('done')
    expect((await pending)?.text).toBe(full)
    source.close()
  })

  it('reads a Kubernetes ConfigMap `..data` symlink swap at once', async () => {
    const dir = tempDir()
    // The kubelet's atomic writer: ..TIMESTAMP/ holds the files, ..data points at it, and each key is a
    // symlink through ..data.
    mkdirSync(join(dir, '..2026_12_04_01'))
    writeFileSync(join(dir, '..2026_12_04_01', 'mesh.yaml'), yamlWith(['a']))
    symlinkSync('..2026_12_04_01', join(dir, '..data'))
    symlinkSync('..data/mesh.yaml', join(dir, 'mesh.yaml'))
    const clock = createManualClock()
    const source = openConfigSource(join(dir, 'mesh.yaml'), { timers: clock, settleMs: SETTLE })
    expect((await source.check())?.text).toBe(yamlWith(['a']))

    let notified = 0
    const changed = new Promise<void>((resolve) => {
      const stop = source.watch!(() => {
        notified++
        stop()
        resolve()
      })
    })
    mkdirSync(join(dir, '..2026_12_04_02'))
    writeFileSync(join(dir, '..2026_12_04_02', 'mesh.yaml'), yamlWith(['a', 'b']))
    symlinkSync('..2026_12_04_02', join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
    // The watch's debounce runs on the manual clock: let the event arrive, then move past it.
    while (clock.pending() === 0) await new Promise((r) => setTimeout(r, 5))
    await clock.advance(100)
    await changed
    expect(notified).toBe(1)
    const next = source.check()
    expect(await stateOf(next, clock)).toBe('done')
    expect((await next)?.text).toBe(yamlWith(['a', 'b']))
    source.close()
  })

  it('fails fast at start when the file cannot be read, naming the path', async () => {
    const file = join(tempDir(), 'missing.yaml')
    const err = await createLiveConfig({
      source: openConfigSource(file),
      build: async (v) => v.text,
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SourceError)
    expect(String((err as Error).message)).toContain(file)
    expect(String((err as Error).message)).toContain('ENOENT')
  })

  it('keeps serving through a write in pieces and swaps only to the complete file', async () => {
    const dir = tempDir()
    const file = join(dir, 'mesh.yaml')
    writeFileSync(file, yamlWith(['a']))
    const clock = createManualClock()
    const served: string[][] = []
    const live = await createLiveConfig({
      source: openConfigSource(file, { timers: clock, settleMs: SETTLE }),
      build: async (v) => Object.keys((await loadConfigText(v.text, v.name)).services),
      onSwap: (next) => served.push(next),
      clock,
      timers: clock,
      // No poll timer and no watch: the only timers on the clock are the source's settle waits.
      schedule: 'on-demand',
    })
    const full = yamlWith(['a', 'b', 'c'])
    writeFileSync(file, full.slice(0, full.indexOf('  c:')))
    const check = live.checkNow()
    expect(await stateOf(check, clock)).toBe('waiting')
    await clock.advance(SETTLE / 2)
    expect(live.current()).toEqual(['a'])
    writeFileSync(file, full)
    await clock.advance(SETTLE / 2)
    expect(await stateOf(check, clock)).toBe('waiting')
    await clock.advance(SETTLE)
    expect(await stateOf(check, clock)).toBe('done')
    expect(await check).toBe(true)
    expect(served).toEqual([['a', 'b', 'c']])
    expect(live.status()).toMatchObject({ reloads: 1, rejected: 0, lastError: null })
    live.close()
  })
})
