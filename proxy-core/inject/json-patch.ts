// The difference between two JSON documents as RFC 6902 operations, for the webhook's response and for
// `meshgate inject`'s edit of a manifest. Objects are compared member by member; arrays of the same
// length element by element; anything else that differs (a longer array, a new value) is written
// whole. So every operation is `add` (a new member) or `replace` (an existing one, or an index
// that exists): applying the patch a second time gives the same document again.

export type PatchOp = { op: 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string }

/** One reference token of a JSON Pointer (RFC 6901): `~` as `~0`, then `/` as `~1`. */
export function escapePointerToken(token: string | number): string {
  return String(token).replaceAll('~', '~0').replaceAll('/', '~1')
}

export function pointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => `/${escapePointerToken(s)}`).join('')
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]))
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]))
  }
  return false
}

/** The operations that turn `before` into `after`, each with its path as segments too. */
export function diffSegments(
  before: unknown,
  after: unknown,
  at: (string | number)[] = [],
): { op: PatchOp['op']; segments: (string | number)[]; value?: unknown }[] {
  if (equal(before, after)) return []
  if (isObject(before) && isObject(after)) {
    const ops: ReturnType<typeof diffSegments> = []
    for (const key of Object.keys(before))
      if (!Object.hasOwn(after, key)) ops.push({ op: 'remove', segments: [...at, key] })
    for (const [key, value] of Object.entries(after)) {
      if (!Object.hasOwn(before, key)) ops.push({ op: 'add', segments: [...at, key], value })
      else ops.push(...diffSegments(before[key], value, [...at, key]))
    }
    return ops
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length)
    return before.flatMap((x, i) => diffSegments(x, after[i], [...at, i]))
  // The root itself cannot be "replaced" member-wise; a whole new document is one replace at "".
  return [{ op: 'replace', segments: at, value: after }]
}

export function diff(before: unknown, after: unknown): PatchOp[] {
  return diffSegments(before, after).map((o) =>
    o.op === 'remove'
      ? { op: 'remove', path: pointer(o.segments) }
      : { op: o.op, path: pointer(o.segments), value: o.value },
  )
}
