// A small, strict parser for the Prometheus text exposition format (0.0.4), for tests: it throws on
// anything the format does not allow instead of guessing.
//
//   line     = comment | sample | empty
//   comment  = "# HELP " name " " escaped-text | "# TYPE " name " " type | "#" anything-else
//   sample   = name [ "{" label { "," label } [ "," ] "}" ] " " value [ " " timestamp ]
//   label    = label-name "=" '"' (escaped: \\ \" \n) '"'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}
export interface Family {
  name: string
  type: string
  help?: string
  samples: Sample[]
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

function parseValue(text: string, line: number): number {
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  if (text === 'NaN') return Number.NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text))
    throw new Error(`line ${line}: bad value ${text}`)
  return Number(text)
}

function unescapeHelp(text: string, line: number): string {
  return text.replace(/\\(.)/g, (_, c: string) => {
    if (c === '\\') return '\\'
    if (c === 'n') return '\n'
    throw new Error(`line ${line}: bad escape \\${c} in HELP`)
  })
}

/** The family a sample belongs to: histogram samples carry _bucket, _sum, _count suffixes. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name)
  if (direct) return direct
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const f = families.get(name.slice(0, -suffix.length))
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f
    }
  }
  return undefined
}

function parseLabels(
  text: string,
  at: number,
  line: number,
): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {}
  let i = at + 1
  while (text[i] !== '}') {
    const m = LABEL_NAME.exec(text.slice(i))
    if (!m) throw new Error(`line ${line}: bad label name at ${i}`)
    const name = m[0]
    i += name.length
    if (text[i] !== '=' || text[i + 1] !== '"') throw new Error(`line ${line}: expected =" after ${name}`)
    i += 2
    let value = ''
    for (;;) {
      const c = text[i]
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`)
      if (c === '"') break
      if (c === '\\') {
        const e = text[i + 1]
        if (e === '\\') value += '\\'
        else if (e === '"') value += '"'
        else if (e === 'n') value += '\n'
        else throw new Error(`line ${line}: bad escape \\${e}`)
        i += 2
      } else {
        value += c
        i++
      }
    }
    i++
    if (name in labels) throw new Error(`line ${line}: duplicate label ${name}`)
    labels[name] = value
    if (text[i] === ',') i++
    else if (text[i] !== '}') throw new Error(`line ${line}: expected , or } at ${i}`)
  }
  return { labels, end: i + 1 }
}

export function parsePrometheus(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition must end with a line feed')
  const families = new Map<string, Family>()
  const finished = new Set<string>()
  let current: Family | undefined
  const lines = text.split('\n')
  lines.pop()
  lines.forEach((raw, idx) => {
    const line = idx + 1
    if (raw.trim() === '') return
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw)
      if (!m) return // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string]
      if (!METRIC_NAME.test(name) || METRIC_NAME.exec(name)![0] !== name)
        throw new Error(`line ${line}: bad name`)
      let f = families.get(name)
      if (f === undefined) {
        if (finished.has(name)) throw new Error(`line ${line}: family ${name} split`)
        f = { name, type: 'untyped', samples: [] }
        families.set(name, f)
      }
      if (f.samples.length > 0) throw new Error(`line ${line}: ${kind} for ${name} after its samples`)
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`line ${line}: bad type ${rest}`)
        if (f.type !== 'untyped') throw new Error(`line ${line}: second TYPE for ${name}`)
        f.type = rest
      } else {
        if (f.help !== undefined) throw new Error(`line ${line}: second HELP for ${name}`)
        f.help = unescapeHelp(rest, line)
      }
      if (current && current !== f) finished.add(current.name)
      current = f
      return
    }
    const nm = METRIC_NAME.exec(raw)
    if (!nm) throw new Error(`line ${line}: bad metric name`)
    const name = nm[0]
    let i = name.length
    let labels: Record<string, string> = {}
    if (raw[i] === '{') ({ labels, end: i } = parseLabels(raw, i, line))
    if (raw[i] !== ' ') throw new Error(`line ${line}: expected a space before the value`)
    const parts = raw.slice(i + 1).split(' ')
    if (parts.length < 1 || parts.length > 2) throw new Error(`line ${line}: bad value part`)
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1]!)) throw new Error(`line ${line}: bad timestamp`)
    const value = parseValue(parts[0]!, line)
    let f = familyOf(name, families)
    if (f === undefined) {
      f = { name, type: 'untyped', samples: [] }
      families.set(name, f)
    }
    if (finished.has(f.name)) throw new Error(`line ${line}: samples of ${f.name} are not contiguous`)
    if (current && current !== f) finished.add(current.name)
    current = f
    if (f.type === 'histogram' && name.endsWith('_bucket') && !('le' in labels)) {
      throw new Error(`line ${line}: bucket without le`)
    }
    f.samples.push({ name, labels, value })
  })
  return families
}
