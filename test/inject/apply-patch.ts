// A small RFC 6902 applier for the tests (add, remove, replace, test; move and copy are never sent),
// written from the RFC, so the webhook's patch is checked by something other than the code that made it.

type Json = unknown

function parsePointer(path: string): string[] {
  if (path === '') return []
  if (!path.startsWith('/')) throw new Error(`not a JSON pointer: ${path}`)
  return path
    .slice(1)
    .split('/')
    .map((t) => {
      if (/~[^01]|~$/.test(t)) throw new Error(`bad escape in ${path}`)
      return t.replaceAll('~1', '/').replaceAll('~0', '~')
    })
}

function arrayIndex(arr: Json[], token: string, forAdd: boolean): number {
  if (forAdd && token === '-') return arr.length
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new Error(`not an array index: ${token}`)
  const i = Number(token)
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error(`index ${i} out of range`)
  return i
}

export interface PatchOperation {
  op: string
  path: string
  value?: Json
}

/** The document after `ops`; the input is not modified. Throws on any operation RFC 6902 refuses. */
export function applyPatch(doc: Json, ops: readonly PatchOperation[]): Json {
  let root = structuredClone(doc)
  for (const o of ops) {
    const tokens = parsePointer(o.path)
    if (tokens.length === 0) {
      if (o.op === 'add' || o.op === 'replace') root = structuredClone(o.value)
      else throw new Error(`${o.op} at the root`)
      continue
    }
    let parent = root as Record<string, Json> | Json[]
    for (const t of tokens.slice(0, -1)) {
      const next = Array.isArray(parent)
        ? parent[arrayIndex(parent, t, false)]
        : (parent as Record<string, Json>)[t]
      if (next === null || typeof next !== 'object')
        throw new Error(`path ${o.path}: ${t} is not a container`)
      parent = next as Record<string, Json>
    }
    const last = tokens.at(-1)!
    const value = structuredClone(o.value)
    if (Array.isArray(parent)) {
      if (o.op === 'add') parent.splice(arrayIndex(parent, last, true), 0, value)
      else if (o.op === 'replace') parent[arrayIndex(parent, last, false)] = value
      else if (o.op === 'remove') parent.splice(arrayIndex(parent, last, false), 1)
      else throw new Error(`unsupported op ${o.op}`)
    } else {
      const has = Object.hasOwn(parent, last)
      if (o.op === 'add') parent[last] = value
      else if (o.op === 'replace') {
        if (!has) throw new Error(`replace of missing ${o.path}`)
        parent[last] = value
      } else if (o.op === 'remove') {
        if (!has) throw new Error(`remove of missing ${o.path}`)
        delete parent[last]
      } else throw new Error(`unsupported op ${o.op}`)
    }
  }
  return root
}
