// What an import could not carry over, line by line: `FILE:LINE: KIND/NAME: field: why; instead: …`.
// Nothing is dropped silently: every field without a meshgate equivalent, every ambiguity, and every
// source default that meshgate spells differently becomes one of these lines.

export interface ReportLine {
  file: string
  line: number
  /** `VirtualService/reviews`, `AWS::AppMesh::Route/ColorRouteBlue`. */
  resource: string
  /** The field as the source calls it: `spec.http[0].corsPolicy`. */
  field: string
  why: string
  instead: string
}

export class Report {
  readonly lines: ReportLine[] = []
  add(line: ReportLine): void {
    this.lines.push(line)
  }
  get empty(): boolean {
    return this.lines.length === 0
  }
  /** Sorted by file and line, so the report reads top to bottom with the input. */
  format(): string {
    const sorted = [...this.lines].sort((a, b) =>
      a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line,
    )
    return sorted.map(formatReportLine).join('\n')
  }
}

export function formatReportLine(l: ReportLine): string {
  return `${l.file}:${l.line}: ${l.resource}: ${l.field}: ${l.why}; instead: ${l.instead}`
}

/** Input that cannot be read at all (bad YAML, unknown kind, an unresolvable `!Ref`): nothing is written. */
export class ImportError extends Error {
  readonly file: string
  readonly line: number
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`)
    this.name = 'ImportError'
    this.file = file
    this.line = line
  }
}
