// bin/meshgate.js on a Node older than 24 (the machine's own, outside node_modules): one line that
// names the Node version needed and how to get it, exit 1, and nothing of meshgate loaded.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '../..')

/** A `node` on PATH (or /usr/bin) that is not the project's, with its major version below 24. */
function oldNode(): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin']
  for (const dir of dirs) {
    if (dir === '' || dir.includes('node_modules')) continue
    const bin = join(dir, 'node')
    if (!existsSync(bin)) continue
    const v = spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim()
    if (Number(v.split('.')[0]) < 24) return bin
  }
  throw new Error('this test needs a Node older than 24 outside node_modules (Debian 12 carries Node 20)')
}

describe('bin/meshgate.js on an old Node', () => {
  const node = oldNode()
  for (const args of [['--help'], ['validate', 'infra/examples/bookinfo.yaml'], []]) {
    it(`meshgate ${args.join(' ') || '(no arguments)'}: one line naming Node 24 and how to get it, exit 1`, () => {
      const r = spawnSync(node, [join(ROOT, 'bin', 'meshgate.js'), ...args], { cwd: ROOT, encoding: 'utf8' })
      expect(r.status).toBe(1)
      expect(r.stdout).toBe('')
      const lines = r.stderr.split('\n')
      expect(lines).toHaveLength(2) // one line and its newline
      expect(lines[1]).toBe('')
      expect(lines[0]).toMatch(
        /^meshgate needs Node\.js 24 or newer, this is v\d+\.\d+\.\d+: install it from https:\/\/nodejs\.org\//,
      )
    })
  }
})
