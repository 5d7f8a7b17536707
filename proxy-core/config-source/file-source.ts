// The file source: a mesh file on disk (YAML or JSON), and inline JSON.
//
// A file is only ever read whole. Writers change a file in three ways, and each is told apart here:
//  - atomic rename (editors, `meshDir().write`, most deploy tools): a new inode appears under the name
//    in one step, and its bytes were complete before it did. Read at once.
//  - the Kubernetes ConfigMap swap: the kubelet writes a new `..TIMESTAMP` directory, then renames the
//    `..data` symlink over to it; `mesh.yaml` is a symlink through `..data`. The resolved path changes
//    in one step: read at once.
//  - in place (`>`, `echo >>`, a program writing in pieces): the same inode, modified while we look.
//    The bytes are read only once they have settled: the same size, mtime and content hash across
//    `settleMs`, with no change event in between (issue 16 class 5: a first piece that is valid YAML
//    without the last service must never be served).
// A document that has settled is still parsed and validated before it swaps in (live-config.ts).
//
// The directory is watched, not the file: a rename replaces the inode a file watch would hold.

import { type FSWatcher, watch } from 'node:fs'
import { readFile, realpath, stat } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { systemTimers, type Timers } from '../engine/types.ts'
import { contentVersion } from './content-hash.ts'
import type { ConfigSource, ConfigVersion, SourceOptions } from './types.ts'
import { SourceError, SourceKinds } from './types.ts'

/**
 * 1 s: an in-place write must stay unchanged this long before it is read. Long enough for a program
 * writing a config in a few pieces (the probe of issue 16 left 0.36 s between them), short beside the
 * 45 s poll interval; atomic renames and ConfigMap swaps skip it.
 */
export const DEFAULT_SETTLE_MS = 1000
/** Change events come in bursts (write, chmod, rename): one check per burst, this long after the last. */
const WATCH_DEBOUNCE_MS = 50
/** A file still changing after this many settle intervals is left for the next event or poll. */
const MAX_SETTLE_ROUNDS = 30

interface Reading {
  real: string
  ino: number
  size: number
  mtimeMs: number
  text: string
  version: string
}

function sameReading(a: Reading, b: Reading): boolean {
  return (
    a.real === b.real &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeMs === b.mtimeMs &&
    a.version === b.version
  )
}

function wait(timers: Timers, ms: number): Promise<void> {
  return new Promise((r) => timers.set(r, ms))
}

export function createFileSource(path: string, opts: SourceOptions = {}): ConfigSource {
  const file = resolve(path)
  const dir = dirname(file)
  const name = basename(file)
  const timers = opts.timers ?? systemTimers
  const settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS
  let last: Reading | undefined
  // Set by the watcher when the file itself was modified in place since the last check began.
  let modifiedInPlace = false
  let watcher: FSWatcher | undefined

  async function read(): Promise<Reading> {
    try {
      // realpath first: a ConfigMap swap between the two calls then reads the newer file, never a mix.
      const real = await realpath(file)
      const [st, text] = await Promise.all([stat(real), readFile(real, 'utf8')])
      return { real, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, text, version: contentVersion(text) }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error'
      throw new SourceError(file, `cannot read the file (${code})`, { cause: err })
    }
  }

  async function settle(first: Reading): Promise<Reading | undefined> {
    let reading = first
    for (let round = 0; round < MAX_SETTLE_ROUNDS; round++) {
      modifiedInPlace = false
      await wait(timers, settleMs)
      const again = await read()
      if (sameReading(reading, again) && !modifiedInPlace) return again
      reading = again
    }
    return undefined
  }

  return {
    kind: SourceKinds.file,
    url: file,
    async check(): Promise<ConfigVersion | undefined> {
      const inPlace = modifiedInPlace
      modifiedInPlace = false
      let reading = await read()
      if (last !== undefined && reading.version === last.version) {
        last = reading
        return undefined
      }
      // The first read at start has nothing to protect: the file was there before the process.
      const replaced = last !== undefined && (reading.real !== last.real || reading.ino !== last.ino)
      if (last !== undefined && (inPlace || !replaced)) {
        const settled = await settle(reading)
        if (settled === undefined || settled.version === last.version) return undefined
        reading = settled
      }
      last = reading
      return { text: reading.text, version: reading.version, name: file }
    },
    watch(onChange) {
      let debounce: unknown
      try {
        watcher = watch(dir, (event, changed) => {
          // A ConfigMap's `..data` and `..TIMESTAMP` entries, or the file itself; nothing else.
          if (changed !== null && changed !== name && !changed.startsWith('..')) return
          if (changed === name && event === 'change') modifiedInPlace = true
          timers.clear(debounce)
          debounce = timers.set(onChange, WATCH_DEBOUNCE_MS)
        })
        watcher.on('error', (err) => opts.log?.(`config watch stopped (polling still runs): ${err.message}`))
      } catch (err) {
        opts.log?.(`cannot watch ${dir} (polling still runs): ${(err as Error).message}`)
      }
      return () => {
        timers.clear(debounce)
        watcher?.close()
        watcher = undefined
      }
    },
    close() {
      watcher?.close()
      watcher = undefined
    },
  }
}

/** Inline JSON (`MESHGATE_CONFIG='{…}'`): one version, for ever. */
export function createInlineSource(text: string): ConfigSource {
  let given = false
  return {
    kind: SourceKinds.inline,
    url: 'MESHGATE_CONFIG',
    async check() {
      if (given) return undefined
      given = true
      return { text, version: contentVersion(text), name: 'MESHGATE_CONFIG' }
    },
    close() {},
  }
}
