// `meshgate import`: an existing mesh's files (App Mesh, Istio, Gateway API) → one meshgate mesh file,
// plus the report of everything that did not translate. The translated file is checked with the same
// loader as `meshgate validate` before anyone sees it.
import { readFile } from 'node:fs/promises'
import { ConfigError, loadConfigText } from '../config/load.ts'
import type { MeshConfig } from '../engine/types.ts'
import { translateAppMesh } from './appmesh.ts'
import { type Draft, draftToRaw, draftToYaml } from './draft.ts'
import { translateGatewayApi } from './gateway-api.ts'
import { translateIstio } from './istio.ts'
import { readDocuments, type SourceDoc } from './reader.ts'
import { ImportError, Report } from './report.ts'

export { exportGatewayApi } from './export-gateway-api.ts'
export { formatReportLine, ImportError, Report, type ReportLine } from './report.ts'

export const SOURCES = ['appmesh', 'istio', 'gateway-api'] as const
export type ImportSource = (typeof SOURCES)[number]

export interface ImportResult {
  /** The mesh file, YAML with a comment above each service naming its source resources. */
  yaml: string
  /** The same, as the loader reads it (so callers can compile or compare it). */
  config: MeshConfig
  report: Report
}

export interface ImportOptions {
  /** The mesh name; default the source's own (App Mesh's mesh name) or `imported`. */
  mesh?: string
  /** CloudFormation parameter values, over the templates' Defaults. */
  params?: Record<string, string>
}

/** Reads and translates; throws ImportError for input that cannot be read (nothing partial comes back). */
export async function importFiles(
  source: ImportSource,
  files: readonly string[],
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const docs: SourceDoc[] = []
  for (const file of files) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (e) {
      throw new ImportError(file, 1, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    docs.push(...readDocuments(file, text))
  }
  return importDocuments(source, docs, files, opts)
}

export async function importDocuments(
  source: ImportSource,
  docs: SourceDoc[],
  files: readonly string[],
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const report = new Report()
  let draft: Draft
  if (source === 'appmesh') draft = translateAppMesh(docs, report, opts.mesh, opts.params)
  else if (source === 'istio') draft = translateIstio(docs, report, opts.mesh)
  else draft = translateGatewayApi(docs, report, opts.mesh)
  pruneEmptyServices(draft, report)
  if (draft.services.size === 0) {
    // The report says why (routes without parents, kinds meshgate does not route): it goes with the error.
    const why = report.empty ? '' : `\n${report.format()}`
    throw new ImportError(files[0] ?? '-', 1, `no ${source} service found in ${files.join(', ')}${why}`)
  }
  const header =
    ` Translated by \`meshgate import ${source}\` from ${files.join(', ')}.\n` +
    ` ${report.lines.length} report line${report.lines.length === 1 ? '' : 's'}: see docs/migrate.md for what each means.`
  const raw = draftToRaw(draft)
  const yaml = draftToYaml(draft, raw, header)
  let config: MeshConfig
  try {
    // The same value the YAML was written from, through the loader's JSON path: `meshgate validate`'s
    // checks, without parsing the YAML back (a second YAML parse doubled the time of a large import).
    config = await loadConfigText(JSON.stringify(raw), 'mesh.yaml')
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e
    // A value the translators passed through that meshgate refuses (a host with a space, an empty
    // method): the input is at fault, but its line is not known here, so the error names the field.
    const first = e.problems[0]!
    throw new ImportError(
      files[0] ?? '-',
      1,
      `the translated config would not load: ${first.path}: ${first.message}` +
        (e.problems.length > 1 ? ` (and ${e.problems.length - 1} more)` : '') +
        '; fix that value in the input',
    )
  }
  return { yaml, config, report }
}

/**
 * A service left without targets (its router or nodes were not in the input, or all its routes were
 * gRPC) cannot be written: it goes, with a report line, and so do gateway routes to it.
 */
function pruneEmptyServices(draft: Draft, report: Report): void {
  for (const svc of [...draft.services.values()]) {
    if (Object.keys(svc.targets).length > 0) continue
    draft.services.delete(svc.name)
    const m = /^(\S+) \((.*):(\d+)\)$/.exec(svc.sources[0] ?? '')
    report.add({
      file: m?.[2] ?? '-',
      line: Number(m?.[3] ?? 1),
      resource: m?.[1] ?? svc.name,
      field: '(service)',
      why: `service ${svc.name} has no target that translated, so it was left out`,
      instead: 'add the files of its router and nodes, or see the lines above',
    })
    draft.gateway = draft.gateway.filter((g) => g.service !== svc.name)
  }
}
