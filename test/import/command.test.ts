// `meshgate import` and `meshgate export` as a user runs them: a child process, exit codes, stderr,
// and the output file written whole or not at all.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { fixture, lineOfText } from './translated-mesh.ts'

function meshgate(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/meshgate.js', ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const dir = mkdtempSync(join(tmpdir(), 'meshgate-import-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('meshgate import', () => {
  it('writes a config that meshgate validate accepts, and the report on stderr', () => {
    const out = join(dir, 'bookinfo.yaml')
    const r = meshgate('import', 'istio', fixture('istio', 'bookinfo.yaml'), '--out', out)
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('')
    const report = r.stderr.split('\n').filter((l) => /^\S+:\d+: /.test(l))
    expect(report.length).toBeGreaterThan(0)
    for (const l of report) expect(l).toMatch(/^\S+bookinfo\.yaml:\d+: \S+\/\S+: \S+: .+; instead: .+$/)
    const v = meshgate('validate', out)
    expect(v.code).toBe(0)
    expect(v.stdout).toContain('3 services')
  })

  it('--strict exits 1 and writes nothing when the report is not empty', () => {
    const out = join(dir, 'strict.yaml')
    const r = meshgate('import', 'istio', fixture('istio', 'bookinfo.yaml'), '--out', out, '--strict')
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('--strict')
    expect(existsSync(out)).toBe(false)
  })

  it('--strict exits 0 when everything translated', () => {
    const out = join(dir, 'clean.yaml')
    const r = meshgate(
      'import',
      'appmesh',
      fixture('appmesh', 'api', 'virtual-service.json'),
      fixture('appmesh', 'api', 'virtual-router.json'),
      fixture('appmesh', 'api', 'route-weighted.json'),
      '--out',
      out,
      '--strict',
      '--mesh',
      'colors',
    )
    // route-weighted.json names colorteller-white and -black, whose nodes are not given: reported.
    expect(r.code).toBe(1)
    const ok = meshgate('import', 'gateway-api', writeClean(), '--out', out, '--strict')
    expect(ok.stderr).toBe(`${out}: 1 services, 1 routes; 0 report line(s)\n`)
    expect(ok.code).toBe(0)
    expect(readFileSync(out, 'utf8')).toContain('reviews-v2')
  })

  const malformed: [string, string, string, string][] = [
    ['bad YAML', 'istio', 'bad-yaml.yaml', 'name: ratings'],
    ['an unknown kind', 'istio', 'unknown-kind.yaml', 'kind: VirtualServise'],
    ['a !Ref that cannot be resolved', 'appmesh', 'unresolved-ref.yaml', '!Ref MeshName'],
  ]
  for (const [what, source, name, text] of malformed) {
    it(`${what}: an error naming the file and line, exit 1, the old output file untouched`, () => {
      const file = fixture('malformed', name)
      const out = join(dir, `kept-${name}`)
      writeFileSync(out, 'the previous config\n')
      const r = meshgate('import', source, file, '--out', out)
      expect(r.code).toBe(1)
      expect(r.stderr.split('\n')[0]).toMatch(
        new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${lineOfText(file, text)}: .+`),
      )
      expect(readFileSync(out, 'utf8')).toBe('the previous config\n')
      // No temp file left behind either.
      expect(readdirSync(dir).filter((f) => f.includes('meshgate-tmp'))).toEqual([])
    })
  }

  it('--param gives a CloudFormation parameter the value its template leaves open', () => {
    const out = join(dir, 'param.yaml')
    const r = meshgate(
      'import',
      'appmesh',
      fixture('malformed', 'unresolved-ref.yaml'),
      '--param',
      'MeshName=colors',
      '--out',
      out,
    )
    // The template has a node and no virtual service: the error says so, and that it got past the !Ref.
    expect(r.stderr).not.toContain('cannot resolve')
    expect(r.stderr).toContain('no appmesh service found')
    expect(meshgate('import', 'appmesh', 'x.yaml', '--param', 'novalue').code).toBe(2)
  })

  it('usage errors exit 2', () => {
    expect(meshgate('import', 'linkerd', 'x.yaml').code).toBe(2)
    expect(meshgate('import', 'istio').code).toBe(2)
  })
})

describe('meshgate export gateway-api', () => {
  it('writes the Bookinfo example as HTTPRoutes, one per service and one for the gateway', () => {
    const out = join(dir, 'routes.yaml')
    const r = meshgate('export', 'gateway-api', 'infra/examples/bookinfo.yaml', '--out', out)
    expect(r.code).toBe(0)
    const text = readFileSync(out, 'utf8')
    expect(text.match(/^kind: HTTPRoute$/gm)?.length).toBeGreaterThanOrEqual(5)
    // What Gateway API cannot say is reported at the config's own line.
    for (const l of r.stderr.split('\n').filter(Boolean))
      expect(l).toMatch(/^infra\/examples\/bookinfo\.yaml:\d+: \S+: \S+: .+; instead: .+$/)
  })
})

/** A Gateway API file with nothing meshgate cannot carry. */
function writeClean(): string {
  const file = join(dir, 'clean-route.yaml')
  writeFileSync(
    file,
    [
      'apiVersion: gateway.networking.k8s.io/v1',
      'kind: HTTPRoute',
      'metadata: { name: reviews }',
      'spec:',
      '  parentRefs: [{ group: "", kind: Service, name: reviews }]',
      '  rules:',
      '  - backendRefs: [{ name: reviews-v2, port: 9080 }]',
      '',
    ].join('\n'),
  )
  return file
}
