// What gets published: the user's mesh document as JSON (YAML parsed, comments dropped, keys in the
// user's order, no defaults filled in), so what a runtime reads back is exactly what `meshgate
// validate` accepts and what a person wrote. The compiled MeshConfig (milliseconds, expanded
// defaults) never leaves the process: it is an engine detail, not a format.
import { ConfigError, loadConfigText, readConfigFile } from '../config/load.ts'
import { lazyModule } from '../lazy-module.ts'

export type MeshDocument = Record<string, unknown>

/** Reads and validates FILE with the project's loader; throws ConfigError with FILE:LINE:COL problems. */
export async function readMeshFile(file: string): Promise<MeshDocument> {
  const text = await readConfigFile(file)
  await loadConfigText(text, file)
  const doc = await parseDocument(text, file)
  // The JSON form must load too (a YAML-only key would not survive the trip).
  await loadConfigText(renderDocument(doc), file)
  return doc
}

/** Validates a document read back from a live source. */
export async function checkDocument(doc: MeshDocument, source: string): Promise<void> {
  await loadConfigText(renderDocument(doc), source)
}

/** The published bytes: pretty JSON, so the AppConfig console and `aws s3 cp -` show it readably. */
export function renderDocument(doc: MeshDocument): string {
  return `${JSON.stringify(doc, null, 2)}\n`
}

export async function parseDocument(text: string, source: string): Promise<MeshDocument> {
  let value: unknown
  if (text.trimStart().startsWith('{')) value = JSON.parse(text)
  else {
    const yaml = lazyModule(await import('yaml'), 'parse')
    value = yaml.parse(text, { maxAliasCount: 100 })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError([
      { file: source, line: 1, column: 1, path: '(root)', message: 'expected a mapping' },
    ])
  return value as MeshDocument
}
