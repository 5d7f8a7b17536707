// JSON the way people lay out task definitions by hand: an object or list that fits on its line stays
// on one line (`{ "name": "X", "value": "1" }`), anything longer opens up, two spaces per level.

const WIDTH = 110

function inline(v: unknown): string {
  if (Array.isArray(v)) return v.length === 0 ? '[]' : `[${v.map(inline).join(', ')}]`
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined)
    if (entries.length === 0) return '{}'
    return `{ ${entries.map(([k, x]) => `${JSON.stringify(k)}: ${inline(x)}`).join(', ')} }`
  }
  return JSON.stringify(v)
}

function format(v: unknown, indent: string, lead: number): string {
  const one = inline(v)
  if (lead + one.length <= WIDTH || v === null || typeof v !== 'object') return one
  const inner = `${indent}  `
  if (Array.isArray(v))
    return `[\n${v.map((x) => inner + format(x, inner, inner.length)).join(',\n')}\n${indent}]`
  const entries = Object.entries(v).filter(([, x]) => x !== undefined)
  const lines = entries.map(([k, x]) => {
    const key = `${JSON.stringify(k)}: `
    return inner + key + format(x, inner, inner.length + key.length + 1)
  })
  return `{\n${lines.join(',\n')}\n${indent}}`
}

export function formatJson(value: unknown): string {
  return `${format(value, '', 0)}\n`
}
