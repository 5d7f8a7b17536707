// The CLI as a user runs it: a child process on the project's Node, exit codes and output.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

function meshgate(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/meshgate.js', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('meshgate CLI', () => {
  it('validate exits 0 on the Bookinfo example', () => {
    const r = meshgate('validate', 'infra/examples/bookinfo.yaml')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('mesh bookinfo, 4 services')
  })

  it('validate prints each problem as FILE:LINE:COL: path: message and exits 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshgate-cli-'))
    const file = join(dir, 'bad.yaml')
    writeFileSync(
      file,
      'version: 1\nmesh: m\nservices:\n  a:\n    targets: { v1: { http: "nope" } }\n    routes:\n      - to: v2\n        timeout: 3\n',
    )
    const r = meshgate('validate', file)
    expect(r.code).toBe(1)
    const lines = r.stderr.trim().split('\n')
    expect(lines).toEqual([
      `${file}:5:28: services.a.targets.v1.http: expected an origin like http://host:port, dns://host:port, or cloudmap://NAMESPACE/SERVICE, got "nope"`,
      `${file}:7:13: services.a.routes[0].to: unknown target "v2" (service a has v1)`,
      `${file}:8:18: services.a.routes[0].timeout: expected a duration like 250ms, 2s or 1m, got 3`,
      `3 problems in ${file}`,
    ])
  })

  it('validate reports a missing file with exit 1, usage errors with exit 2', () => {
    expect(meshgate('validate', '/nonexistent/mesh.yaml')).toMatchObject({ code: 1 })
    expect(meshgate('validate', 'a.yaml', 'b.yaml').code).toBe(2)
    expect(meshgate('frobnicate').code).toBe(2)
    expect(meshgate().code).toBe(2)
  })

  it('routes prints the compiled table, plain when piped', () => {
    const r = meshgate('routes', 'infra/examples/bookinfo.yaml', '--service', 'reviews')
    expect(r.code).toBe(0)
    expect(r.stdout).not.toContain('\x1b[')
    expect(r.stdout).toMatch(/1 +jason +end-user=jason +v2/)
    expect(r.stdout).toMatch(/2 +canary +path \/\* +v1 97%, v3 3%/)
    expect(meshgate('routes', 'infra/examples/bookinfo.yaml', '--service', 'nope').code).toBe(1)
    expect(meshgate('routes', 'infra/examples/bookinfo.yaml', '--bogus', 'x').code).toBe(2)
  })

  it('--help works on every command, and --version prints the package version', () => {
    const overview = meshgate('--help')
    expect(overview.code).toBe(0)
    const commands = [...overview.stdout.matchAll(/^ {2}([a-z-]+) /gm)].map((m) => m[1])
    expect(commands).toEqual(expect.arrayContaining(['validate', 'routes', 'sidecar', 'dev']))
    for (const command of commands) {
      const r = meshgate(command!, '--help')
      expect(r.code, command).toBe(0)
      expect(r.stdout, command).toMatch(new RegExp(`^usage: meshgate ${command}`))
    }
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }
    expect(meshgate('--version')).toMatchObject({ code: 0, stdout: `meshgate ${pkg.version}\n` })
  })
})
