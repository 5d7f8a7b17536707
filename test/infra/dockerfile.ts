// A Dockerfile reader for tests: enough of the Dockerfile grammar to check what an image would be
// (stages, instructions, flags, exec-form arguments, ENV and EXPOSE) without a Docker engine.

export interface Instruction {
  /** Upper case: FROM, RUN, COPY, ENV, … */
  keyword: string
  /** `--from=build` → { from: 'build' }: the leading `--name=value` options. */
  flags: Record<string, string>
  /** The rest of the line after the flags, continuation lines joined. */
  rest: string
  /** The exec form (`["node", "x.mjs"]`) parsed, when `rest` (after a HEALTHCHECK's `CMD`) is one. */
  exec: string[] | undefined
  /** 1-based line where the instruction starts. */
  line: number
}

export interface Stage {
  image: string
  name: string | undefined
  instructions: Instruction[]
}

function parseExec(text: string): string[] | undefined {
  const t = text.trim()
  if (!t.startsWith('[')) return undefined
  try {
    const value: unknown = JSON.parse(t)
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[]
  } catch {
    // The shell form that happens to start with `[`: Docker runs it through /bin/sh -c.
  }
  return undefined
}

/** The instructions of a Dockerfile, continuation lines joined, comments and blank lines dropped. */
export function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = []
  const lines = text.split('\n')
  let i = 0
  while (i < lines.length) {
    const start = i
    let line = lines[i]!.trim()
    i++
    if (line === '' || line.startsWith('#')) continue
    // A trailing backslash continues the instruction; comment lines inside it are skipped (Docker's rule).
    while (line.endsWith('\\') && i < lines.length) {
      line = line.slice(0, -1)
      const next = lines[i]!.trim()
      i++
      if (next.startsWith('#')) {
        line += '\\'
        continue
      }
      line += ` ${next}`
    }
    const m = /^(\S+)\s*(.*)$/.exec(line)!
    const keyword = m[1]!.toUpperCase()
    let rest = m[2]!
    const flags: Record<string, string> = {}
    for (;;) {
      const f = /^--([\w-]+)=(\S*)\s*/.exec(rest)
      if (f === null) break
      flags[f[1]!] = f[2]!
      rest = rest.slice(f[0].length)
    }
    const cmd = keyword === 'HEALTHCHECK' ? /^CMD\s+(.*)$/.exec(rest)?.[1] : rest
    out.push({ keyword, flags, rest, exec: cmd === undefined ? undefined : parseExec(cmd), line: start + 1 })
  }
  return out
}

/** The build stages, in order: each FROM starts one. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = []
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.rest.trim())
      if (m === null) throw new Error(`line ${ins.line}: cannot read FROM ${ins.rest}`)
      stages.push({ image: m[1]!, name: m[2], instructions: [] })
      continue
    }
    const stage = stages.at(-1)
    if (stage === undefined) {
      if (ins.keyword === 'ARG') continue
      throw new Error(`line ${ins.line}: ${ins.keyword} before the first FROM`)
    }
    stage.instructions.push(ins)
  }
  return stages
}

/** Splits on blanks outside double or single quotes, removing the quotes. */
function words(text: string): string[] {
  const out: string[] = []
  let cur = ''
  let quote: string | undefined
  let inWord = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
      else if (c === '\\' && quote === '"' && i + 1 < text.length) cur += text[++i]
      else cur += c
    } else if (c === '"' || c === "'") {
      quote = c
      inWord = true
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur)
      cur = ''
      inWord = false
    } else {
      cur += c
      inWord = true
    }
  }
  if (inWord) out.push(cur)
  return out
}

/** The environment a stage's ENV instructions set, in order (both `K=V …` and the old `K V`). */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const ins of stage.instructions) {
    if (ins.keyword !== 'ENV') continue
    const ws = words(ins.rest)
    if (ws.length > 0 && !ws[0]!.includes('=')) {
      env[ws[0]!] = ins.rest
        .trim()
        .slice(ins.rest.trim().indexOf(' ') + 1)
        .trim()
      continue
    }
    for (const w of ws) {
      const eq = w.indexOf('=')
      env[w.slice(0, eq)] = w.slice(eq + 1)
    }
  }
  return env
}

/** The last instruction of a kind in a stage (the one Docker keeps for ENTRYPOINT, USER, …). */
export function last(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1)
}

/** EXPOSE's ports as `{ port, protocol }`. */
export function exposed(stage: Stage): { port: number; protocol: string }[] {
  return stage.instructions
    .filter((i) => i.keyword === 'EXPOSE')
    .flatMap((i) => words(i.rest))
    .map((w) => {
      const [port, protocol = 'tcp'] = w.split('/')
      return { port: Number(port), protocol }
    })
}
