// A version name for sources that have none of their own (a file, inline JSON, an agent reply without
// Configuration-Version): the content's SHA-256, shortened. Equal bytes, equal version, on every host.
// node:crypto is taken with getBuiltinModule on first use: nothing to load at import on the Lambda path.

export function contentVersion(text: string): string {
  const { createHash } = process.getBuiltinModule('node:crypto')
  return `sha256:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`
}
