// A version name for sources that have none of their own (a file, inline JSON, an agent reply without
// Configuration-Version): the content's SHA-256, shortened. Equal bytes, equal version, on every host.

import { createHash } from 'node:crypto'

export function contentVersion(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`
}
