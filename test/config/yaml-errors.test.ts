// YAML syntax errors and duplicate keys, reported where they are: FILE:LINE:COL of the offending
// character (a duplicate key under its config path), through the loader and through `meshgate validate`.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfigText } from '../../proxy-core/config/load.ts'

async function problemsOf(text: string, source = 'mesh.yaml'): Promise<string[]> {
  const err = await loadConfigText(text, source).then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!(err instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(err)}`)
  return err.message.split('\n')
}

const DUPLICATE = [
  'version: 1',
  'mesh: m',
  'services:',
  '  a:',
  '    targets: { v1: { http: http://a:80 } }',
  '  b:',
  '    targets: { v1: { http: http://b:80 } }',
  '    targets: { v2: { http: http://b:81 } }',
  '',
].join('\n')

describe('YAML errors at their line and column', () => {
  it('a duplicate key: the second occurrence, with its path', async () => {
    expect(await problemsOf(DUPLICATE, 'dup.yaml')).toEqual([
      'dup.yaml:8:5: services.b.targets: duplicate key "targets": each key may appear once in a mapping',
    ])
  })

  it('a duplicate key at the top level and inside a flow mapping', async () => {
    expect(await problemsOf('version: 1\nmesh: m\nmesh: n\n')).toEqual([
      'mesh.yaml:3:1: mesh: duplicate key "mesh": each key may appear once in a mapping',
    ])
    expect(await problemsOf('version: 1\nmesh: m\nservices:\n  a: { targets: {}, targets: {} }\n')).toEqual([
      'mesh.yaml:4:21: services.a.targets: duplicate key "targets": each key may appear once in a mapping',
    ])
  })

  it('an unclosed quote: where the string runs out', async () => {
    expect(
      await problemsOf('version: 1\nmesh: m\nservices:\n  a:\n    targets: { v1: { http: "http://a:80 } }\n'),
    ).toEqual([
      'mesh.yaml:6:1: (root): syntax: Missing closing "quote',
      'mesh.yaml:6:1: (root): syntax: Flow map in block collection must be sufficiently indented and end with a }',
    ])
  })

  it('a flow sequence left open: at the line that should have closed it', async () => {
    const text =
      'version: 1\nmesh: m\nservices:\n  a:\n    targets: { v1: { http: [http://a:80 } }\n  b: {}\n'
    const [first] = await problemsOf(text)
    // Column 41: the `}` that came where the `]` was due.
    expect(first).toBe(
      'mesh.yaml:5:41: (root): syntax: Flow sequence in block collection must be sufficiently indented and end with a ]',
    )
  })

  it('a key indented under a scalar: at the value it would nest in', async () => {
    expect(await problemsOf('version: 1\nmesh: m\n  services: {}\n')).toEqual([
      'mesh.yaml:2:7: (root): syntax: Nested mappings are not allowed in compact mappings',
      'mesh.yaml:2:7: (root): syntax: Implicit keys need to be on a single line',
    ])
  })

  it('a .json file that is not JSON: the YAML parser reports where it breaks', async () => {
    const text =
      '{\n  "version": 1,\n  "mesh": "m",\n  "services": { "a": { "targets": { "v1": { "http": "x" } }\n'
    const [first] = await problemsOf(text, 'mesh.json')
    expect(first).toBe(
      'mesh.json:5:1: (root): syntax: Flow map in block collection must be sufficiently indented and end with a }',
    )
  })
})

describe('meshgate validate on a file with a duplicate key', () => {
  it('prints the problem at its line and column and exits 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshgate-yaml-'))
    const file = join(dir, 'dup.yaml')
    writeFileSync(file, DUPLICATE)
    const r = spawnSync(process.execPath, ['bin/meshgate.js', 'validate', file], {
      cwd: resolve(import.meta.dirname, '../..'),
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    })
    expect(r.status).toBe(1)
    expect(r.stderr.split('\n')[0]).toBe(
      `${file}:8:5: services.b.targets: duplicate key "targets": each key may appear once in a mapping`,
    )
  })
})
