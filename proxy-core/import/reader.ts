// Reading the files `meshgate import` is given: YAML with several documents, JSON, and CloudFormation
// templates in either (YAML's `!Ref`, `!Sub`, `!GetAtt`… tags become the JSON forms `{Ref}`,
// `{"Fn::Sub"}`, `{"Fn::GetAtt"}`), into plain values that remember the line of every node, so every
// report line and every error can name FILE:LINE.
//
// Why not `doc.toJS()`: it drops positions and warns on CloudFormation's tags. The AST walk below is as
// cheap and keeps both.
import { isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from 'yaml'
import { ImportError } from './report.ts'

export type Value = string | number | boolean | null | Value[] | { [key: string]: Value }
export type Obj = { [key: string]: Value }

/** Where a value came from. Objects and arrays carry their own line and the line of each key/item. */
interface Position {
  line: number
  keys: Map<string | number, number>
}
const positions = new WeakMap<object, Position>()

export interface SourceDoc {
  file: string
  /** 1-based line of the document's first node. */
  line: number
  value: Value
}

/** The line of `obj` itself, or of `obj[key]` when given; the fallback when unknown. */
export function lineOf(obj: unknown, key?: string | number, fallback = 1): number {
  if (obj === null || typeof obj !== 'object') return fallback
  const p = positions.get(obj)
  if (p === undefined) return fallback
  if (key === undefined) return p.line
  return p.keys.get(key) ?? p.line
}

/** Gives `to` the positions of `from` (for values rebuilt from others, e.g. keys renamed). */
export function copyPosition(
  from: object,
  to: object,
  keyMap?: (k: string | number) => string | number,
): void {
  const p = positions.get(from)
  if (p === undefined) return
  if (keyMap === undefined) {
    positions.set(to, p)
    return
  }
  const keys = new Map<string | number, number>()
  for (const [k, l] of p.keys) keys.set(keyMap(k), l)
  positions.set(to, { line: p.line, keys })
}

/** CloudFormation's short forms and their JSON names. */
const CFN_TAGS: Record<string, string> = {
  '!Ref': 'Ref',
  '!Sub': 'Fn::Sub',
  '!GetAtt': 'Fn::GetAtt',
  '!Join': 'Fn::Join',
  '!Select': 'Fn::Select',
  '!Split': 'Fn::Split',
  '!If': 'Fn::If',
  '!Equals': 'Fn::Equals',
  '!Not': 'Fn::Not',
  '!And': 'Fn::And',
  '!Or': 'Fn::Or',
  '!FindInMap': 'Fn::FindInMap',
  '!ImportValue': 'Fn::ImportValue',
  '!Base64': 'Fn::Base64',
  '!Cidr': 'Fn::Cidr',
  '!GetAZs': 'Fn::GetAZs',
  '!Condition': 'Condition',
}

/** Bounds what one input may cost: a file of 10 000 routes is a few MB, far below these. */
const MAX_DEPTH = 200

export function readDocuments(file: string, text: string): SourceDoc[] {
  const lines = new LineCounter()
  // Duplicate keys are checked below: the parser's own check is quadratic in a map's size, and a
  // CloudFormation template's Resources map can hold tens of thousands of keys.
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false })
  const list = Array.isArray(docs) ? docs : []
  const out: SourceDoc[] = []
  for (const doc of list) {
    const err = doc.errors[0]
    if (err !== undefined) {
      const line = err.linePos?.[0].line ?? lines.linePos(err.pos[0]).line
      throw new ImportError(file, line, `not valid YAML or JSON: ${err.message.split('\n')[0]}`)
    }
    if (doc.contents === null) continue
    const lineAt = (offset: number) => lines.linePos(offset).line
    const convert = (node: Node | null, depth: number): Value => {
      if (node === null) return null
      if (depth > MAX_DEPTH) throw new ImportError(file, lineAt(node.range?.[0] ?? 0), 'nested too deeply')
      const line = lineAt(node.range?.[0] ?? 0)
      if (isAlias(node)) {
        // Anchors are legal YAML, but following them can blow up (billion laughs); no mesh file needs them.
        throw new ImportError(file, line, 'YAML aliases (*name) are not supported in imported files')
      }
      let value: Value
      if (isScalar(node)) {
        const v = node.value
        value =
          typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null
            ? v
            : typeof v === 'bigint'
              ? Number(v)
              : String(v)
      } else if (isMap(node)) {
        const obj: Obj = {}
        const keys = new Map<string | number, number>()
        for (const pair of node.items) {
          const k = pair.key
          const keyText = isScalar(k) ? String(k.value) : null
          if (keyText === null) throw new ImportError(file, line, 'a mapping key must be a plain value')
          if (Object.hasOwn(obj, keyText)) {
            throw new ImportError(
              file,
              lineAt((k as Node).range?.[0] ?? 0),
              `not valid YAML or JSON: the key ${keyText} appears twice`,
            )
          }
          obj[keyText] = convert(pair.value as Node | null, depth + 1)
          keys.set(keyText, lineAt((k as Node).range?.[0] ?? 0))
        }
        positions.set(obj, { line, keys })
        value = obj
      } else if (isSeq(node)) {
        const arr: Value[] = []
        const keys = new Map<string | number, number>()
        node.items.forEach((item, i) => {
          arr.push(convert(item as Node | null, depth + 1))
          keys.set(i, lineAt((item as Node | null)?.range?.[0] ?? node.range?.[0] ?? 0))
        })
        positions.set(arr, { line, keys })
        value = arr
      } else {
        throw new ImportError(file, line, 'unsupported YAML node')
      }
      const tag = node.tag
      if (tag?.startsWith('!') && !tag.startsWith('!!')) {
        const fn = CFN_TAGS[tag]
        if (fn === undefined) throw new ImportError(file, line, `unknown tag ${tag}`)
        // `!GetAtt Res.Attr` is the string form of `Fn::GetAtt: [Res, Attr]`.
        if (fn === 'Fn::GetAtt' && typeof value === 'string') {
          const dot = value.indexOf('.')
          value = dot < 0 ? [value] : [value.slice(0, dot), value.slice(dot + 1)]
          positions.set(value, { line, keys: new Map() })
        }
        const wrapped: Obj = { [fn]: value }
        positions.set(wrapped, { line, keys: new Map([[fn, line]]) })
        return wrapped
      }
      return value
    }
    const value = convert(doc.contents as Node, 0)
    // A document with nothing in it (a trailing `---`) is no resource.
    if (value === null) continue
    out.push({ file, line: lineAt(doc.contents.range?.[0] ?? 0), value })
  }
  return out
}

export function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
export function asObj(v: unknown): Obj | undefined {
  return isObj(v) ? v : undefined
}
export function asList(v: unknown): Value[] {
  return Array.isArray(v) ? v : []
}
export function asString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined
}
export function asNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
  return undefined
}
