// `meshgate import` and `meshgate export`: the CLI around proxy-core/import. The output file is written
// whole or not at all (a temp file renamed over it), so a failed import never leaves half a mesh behind.
import { randomBytes } from 'node:crypto'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { parseCommandArgs, stringOpt, UsageError } from '../cli/args.ts'
import { ConfigError, formatProblem, loadConfigFile } from '../config/load.ts'
import { exportGatewayApi } from './export-gateway-api.ts'
import { ImportError, type ImportSource, importFiles, SOURCES } from './index.ts'
import { lineOf, readDocuments } from './reader.ts'

export const IMPORT_USAGE = `usage: meshgate import appmesh|istio|gateway-api FILE... [--out mesh.yaml] [--strict] [--mesh NAME]
       [--param NAME=VALUE]...

Translates an existing mesh's files into one meshgate config: App Mesh (API JSON from
\`aws appmesh describe-*\`/\`create-*\`, CloudFormation templates in YAML or JSON, or the App Mesh
controller's Kubernetes resources), Istio (VirtualService, DestinationRule, Gateway) or Gateway API
(HTTPRoute, Gateway). Files may hold several YAML documents.

--param gives a CloudFormation parameter's value (over its Default).

Writes the config to --out (atomically) or stdout. Every field that did not translate is a line on
stderr: FILE:LINE: KIND/NAME: field: why; instead: what to do. --strict exits 1 (and writes nothing)
when there is any such line. Unreadable input exits 1 and writes nothing. See docs/migrate.md.`

export const EXPORT_USAGE = `usage: meshgate export gateway-api [FILE] [--out routes.yaml] [--namespace NS]

Writes the mesh config FILE (default mesh.yaml) as Gateway API HTTPRoutes: one per service, bound to
its Service (GAMMA), and one for the gateway's routes. What Gateway API cannot say (a route order that
its precedence rules would change, retry conditions other than status codes, faults) is reported on
stderr as FILE:LINE: services.S.routes[i]: field: why; instead: …`

/** The line of a path in the config file, for export's report (the loader keeps no lines). */
async function configLines(file: string): Promise<(path: (string | number)[]) => number> {
  const doc = readDocuments(file, await readFile(file, 'utf8'))[0]
  return (path) => {
    let node: unknown = doc?.value
    let line = doc?.line ?? 1
    for (const seg of path) {
      if (node === null || typeof node !== 'object') break
      line = lineOf(node, seg, line)
      node = (node as Record<string | number, unknown>)[seg]
    }
    return line
  }
}

/** Writes `text` to `file` through a temp file in the same directory and a rename. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = join(dirname(file), `.${randomBytes(6).toString('hex')}.meshgate-tmp`)
  try {
    await writeFile(tmp, text)
    await rename(tmp, file)
  } catch (e) {
    await rm(tmp, { force: true })
    throw e
  }
}

export async function runImportCommand(args: string[]): Promise<number> {
  const p = parseCommandArgs(args, {
    out: { type: 'string', short: 'o' },
    strict: { type: 'boolean' },
    mesh: { type: 'string' },
    param: { type: 'string', multiple: true },
  })
  const [source, ...files] = p.positionals
  if (source === undefined) throw new UsageError('which source: appmesh, istio or gateway-api?')
  if (!(SOURCES as readonly string[]).includes(source)) {
    throw new UsageError(`unknown source "${source}" (expected ${SOURCES.join(', ')})`)
  }
  if (files.length === 0) throw new UsageError('no input files')
  const out = stringOpt(p, 'out')
  const mesh = stringOpt(p, 'mesh')
  const params: Record<string, string> = {}
  for (const kv of (p.values.param as string[] | undefined) ?? []) {
    const eq = kv.indexOf('=')
    if (eq <= 0) throw new UsageError(`--param takes NAME=VALUE, not ${kv}`)
    params[kv.slice(0, eq)] = kv.slice(eq + 1)
  }
  let result: Awaited<ReturnType<typeof importFiles>>
  try {
    result = await importFiles(
      source as ImportSource,
      files,
      mesh === undefined ? { params } : { mesh, params },
    )
  } catch (e) {
    if (!(e instanceof ImportError)) throw e
    process.stderr.write(`${e.message}\n`)
    return 1
  }
  const { report } = result
  if (!report.empty) process.stderr.write(`${report.format()}\n`)
  const services = Object.keys(result.config.services).length
  const routes = Object.values(result.config.services).reduce((n, s) => n + s.routes.length, 0)
  if (p.values.strict === true && !report.empty) {
    process.stderr.write(`--strict: ${report.lines.length} report line(s); nothing written\n`)
    return 1
  }
  if (out === undefined) process.stdout.write(result.yaml)
  else await writeAtomically(out, result.yaml)
  process.stderr.write(
    `${out ?? 'stdout'}: ${services} services, ${routes} routes; ${report.lines.length} report line(s)\n`,
  )
  return 0
}

export async function runExportCommand(args: string[]): Promise<number> {
  const p = parseCommandArgs(args, { out: { type: 'string', short: 'o' }, namespace: { type: 'string' } })
  const [target, file = 'mesh.yaml', ...rest] = p.positionals
  if (target !== 'gateway-api') throw new UsageError('the one export format is gateway-api')
  if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`)
  let config: Awaited<ReturnType<typeof loadConfigFile>>
  try {
    config = await loadConfigFile(file)
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    for (const problem of e.problems) process.stderr.write(`${formatProblem(problem)}\n`)
    return 1
  }
  const namespace = stringOpt(p, 'namespace') ?? 'default'
  const { yaml, report } = exportGatewayApi(config, { namespace, lineOf: await configLines(file) })
  if (!report.empty) process.stderr.write(`${report.format()}\n`)
  const out = stringOpt(p, 'out')
  if (out === undefined) process.stdout.write(yaml)
  else await writeAtomically(out, yaml)
  return 0
}
