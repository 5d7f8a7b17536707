// Loading a mesh file: parse (JSON or YAML), validate against the schema, apply defaults, check the
// cross-references, and report every problem at once as `FILE:LINE:COL: path.in.config: message`.
// Invalid config never half-loads: either a whole MeshConfig comes back or ConfigError is thrown.
//
// JSON goes through JSON.parse and never loads the YAML parser (the Lambda path ships JSON); the
// YAML parser is imported lazily, for YAML files and to find the line of a problem in JSON.
import { readFile } from 'node:fs/promises'
import type { MeshConfig } from '../engine/types.ts'
import { lazyModule } from '../lazy-module.ts'
import { meshSchema } from './mesh-schema.ts'
import { normalizeMesh } from './normalize.ts'
import type { ConfigPath, Problem } from './schema.ts'

export interface ConfigProblem {
  file: string
  line: number
  column: number
  /** `services.reviews.routes[0].to`, or `(root)`. */
  path: string
  message: string
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[]
  constructor(problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.path}: ${p.message}`
}

export function formatPath(path: ConfigPath): string {
  if (path.length === 0) return '(root)'
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out ? `.${seg}` : seg
    else out += `[${JSON.stringify(seg)}]`
  }
  return out
}

/** `MESHGATE_CONFIG` semantics: inline JSON when it starts with `{`, else a file path. */
export function loadConfig(pathOrInlineJson: string): Promise<MeshConfig> {
  return pathOrInlineJson.trimStart().startsWith('{')
    ? loadConfigText(pathOrInlineJson, 'MESHGATE_CONFIG')
    : loadConfigFile(pathOrInlineJson)
}

/** A config file's text; a file that cannot be read is a ConfigError naming it, like any problem. */
export async function readConfigFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error'
    throw new ConfigError([
      { file, line: 1, column: 1, path: '(root)', message: `cannot read the file (${code})` },
    ])
  }
}

export async function loadConfigFile(file: string): Promise<MeshConfig> {
  return loadConfigText(await readConfigFile(file), file)
}

type YamlModule = typeof import('yaml')
interface ParsedYaml {
  doc: import('yaml').Document.Parsed
  lines: import('yaml').LineCounter
  yaml: YamlModule
}

async function parseYaml(text: string): Promise<ParsedYaml> {
  const yaml: YamlModule = lazyModule(await import('yaml'), 'LineCounter')
  const lines = new yaml.LineCounter()
  const doc = yaml.parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  return { doc, lines, yaml }
}

export async function loadConfigText(text: string, source: string): Promise<MeshConfig> {
  let value: unknown
  let parsed: ParsedYaml | undefined
  const looksJson = source.endsWith('.json') || text.trimStart().startsWith('{')
  let jsonOk = false
  if (looksJson) {
    try {
      value = JSON.parse(text)
      jsonOk = true
    } catch {
      // Fall through: the YAML parser reports the syntax error with its line and column.
    }
  }
  if (!jsonOk) {
    parsed = await parseYaml(text)
    if (parsed.doc.errors.length > 0) {
      const seen = new Set<string>()
      const problems = parsed.doc.errors
        .map((err) => syntaxProblem(parsed!, source, err))
        .filter((p) => !seen.has(formatProblem(p)) && seen.add(formatProblem(p)))
      throw new ConfigError(problems)
    }
    try {
      value = parsed.doc.toJS({ maxAliasCount: 100 })
    } catch (e) {
      throw new ConfigError([
        { file: source, line: 1, column: 1, path: '(root)', message: (e as Error).message },
      ])
    }
  }
  if (value === null || value === undefined) {
    throw new ConfigError([
      { file: source, line: 1, column: 1, path: '(root)', message: 'the file is empty' },
    ])
  }

  const problems: Problem[] = []
  const raw = meshSchema.check(value, [], problems)
  let config: MeshConfig | undefined
  try {
    config = raw ? normalizeMesh(raw, source, problems) : undefined
  } catch (e) {
    // normalizeMesh reads a partial document when the schema found problems; those are the report.
    if (problems.length === 0) throw e
  }
  if (problems.length > 0 || !config) {
    if (!parsed) {
      try {
        parsed = await parseYaml(text)
      } catch {
        // The Lambda bundles leave the YAML parser out: report the problems without their lines.
        throw new ConfigError(
          problems.map((p) => ({
            file: source,
            line: 1,
            column: 1,
            path: formatPath(p.path),
            message: p.message,
          })),
        )
      }
    }
    const located = problems.map((p) => locate(parsed!, source, p))
    located.sort((a, b) => a.line - b.line || a.column - b.column)
    throw new ConfigError(located)
  }
  return config
}

/**
 * A YAML parse error at its own line and column (`err.pos` is an offset into the text; `linePos` is
 * only filled in with `prettyErrors`, which also makes the message several lines). A duplicate key
 * comes in a well-formed document, so it gets the path of the second occurrence (`services.a`); a
 * syntax error gets `(root)`, since the structure around it is only the parser's guess.
 */
function syntaxProblem(parsed: ParsedYaml, file: string, err: import('yaml').YAMLError): ConfigProblem {
  const offset = err.pos[0]
  const { line, col } = parsed.lines.linePos(offset)
  if (err.code === 'DUPLICATE_KEY') {
    const path = pathAt(parsed, offset)
    const key = JSON.stringify(String(path.at(-1)))
    const message = `duplicate key ${key}: each key may appear once in a mapping`
    return { file, line, column: col, path: formatPath(path), message }
  }
  return { file, line, column: col, path: '(root)', message: `syntax: ${err.message.split('\n')[0]}` }
}

/** The config path of the deepest map key or sequence item whose source range holds `offset`. */
function pathAt({ doc, yaml }: ParsedYaml, offset: number): ConfigPath {
  const path: (string | number)[] = []
  const holds = (n: unknown) => {
    const r = (n as { range?: [number, number, number] } | null)?.range
    return r !== undefined && r[0] <= offset && offset < r[2]
  }
  let node: unknown = doc.contents
  for (;;) {
    if (yaml.isMap(node)) {
      const pair = node.items.find((it) => holds(it.key) || holds(it.value))
      if (pair === undefined || !yaml.isScalar(pair.key)) break
      path.push(String(pair.key.value))
      if (holds(pair.key)) break
      node = pair.value
    } else if (yaml.isSeq(node)) {
      const i = node.items.findIndex(holds)
      if (i < 0) break
      path.push(i)
      node = node.items[i]
    } else break
  }
  return path
}

/** The line and column of the node at `path`, or of its nearest existing ancestor. */
function locate({ doc, lines, yaml }: ParsedYaml, file: string, problem: Problem): ConfigProblem {
  let node: unknown = doc.contents
  let offset = (node as { range?: [number] } | null)?.range?.[0] ?? 0
  for (let i = 0; i < problem.path.length; i++) {
    const seg = problem.path[i]!
    if (yaml.isMap(node)) {
      const pair = node.items.find((it) => yaml.isScalar(it.key) && String(it.key.value) === String(seg))
      if (!pair) break
      const keyOffset = (pair.key as { range?: [number] }).range?.[0] ?? offset
      if (i === problem.path.length - 1 && problem.atKey) {
        offset = keyOffset
        break
      }
      node = pair.value
      offset = (node as { range?: [number] } | null)?.range?.[0] ?? keyOffset
    } else if (yaml.isSeq(node) && typeof seg === 'number') {
      node = node.items[seg]
      if (node === undefined) break
      offset = (node as { range?: [number] }).range?.[0] ?? offset
    } else {
      break
    }
  }
  const pos = lines.linePos(offset)
  return { file, line: pos.line, column: pos.col, path: formatPath(problem.path), message: problem.message }
}
