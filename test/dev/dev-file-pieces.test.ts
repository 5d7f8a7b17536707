// `meshgate dev` watches the user's mesh file: a file written in place in two pieces, the first of
// them a valid config without the last service (issue 16, class 5), is published once, whole, after
// it has settled; the half that lacks `ratings` is never a version. The real CLI as a child process.
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { appendFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { type DevProcess, eventually, startDev } from './dev-process.ts'

const dir = mkdtempSync(join(tmpdir(), 'meshgate-dev-pieces-'))
const file = join(dir, 'mesh.yaml')
let dev: DevProcess

interface State {
  config: { version: string }
  services: { name: string }[]
}

async function state(): Promise<State> {
  return (await (await fetch(`${dev.dashboard}/api/state`)).json()) as State
}

/** The dev process's own lines for versions published because the user's file changed. */
function publishedForFile(): string[] {
  return dev
    .output()
    .split('\n')
    .filter((l) => l.includes('published version') && l.includes('mesh.yaml changed'))
}

beforeAll(async () => {
  copyFileSync('infra/examples/bookinfo.yaml', file)
  dev = await startDev([file, '--port', '0', '--dashboard', '0', '--no-traffic'])
}, 40_000)

afterAll(async () => {
  await dev?.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('meshgate dev: the user file written in pieces', () => {
  it('publishes the whole file once, never the valid first piece without the last service', async () => {
    const text = readFileSync(file, 'utf8').replace('to: { v1: 97, v3: 3 }', 'to: { v1: 50, v3: 50 }')
    const cut = text.indexOf('\n  ratings:\n') + 1
    const first = text.slice(0, cut)
    // The precondition that makes this case dangerous: the first piece alone is a valid mesh.
    const partial = await loadConfigText(first, 'first-piece.yaml')
    expect(Object.keys(partial.services)).not.toContain('ratings')
    const before = (await state()).config.version

    await writeFile(file, first) // in place: same inode, truncated and rewritten
    await new Promise((r) => setTimeout(r, 300)) // the writer's pause between its two pieces
    await appendFile(file, text.slice(cut))

    await eventually(
      async () => ((await state()).config.version !== before ? true : undefined),
      20_000,
      'a new version from the changed file',
    )
    // Give a second version (if any) time to appear: past the settle interval and a poll.
    await new Promise((r) => setTimeout(r, 2500))
    expect(publishedForFile()).toHaveLength(1)
    expect((await state()).services.map((s) => s.name)).toContain('ratings')
  }, 60_000)
})
