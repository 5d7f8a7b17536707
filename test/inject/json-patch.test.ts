// The webhook's JSONPatch: pointers escaped as RFC 6901 says, and for any two documents the patch
// applied (by the test's own RFC 6902 applier) gives the second, once or twice.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { diff, escapePointerToken, pointer } from '../../proxy-core/inject/index.ts'
import { applyPatch } from './apply-patch.ts'

describe('JSON Pointer tokens', () => {
  it('escapes ~ before /', () => {
    expect(escapePointerToken('meshgate.io/inject')).toBe('meshgate.io~1inject')
    expect(escapePointerToken('a~/b')).toBe('a~0~1b')
    expect(escapePointerToken('~1')).toBe('~01')
    expect(pointer(['metadata', 'annotations', 'meshgate.io/x~y', 0])).toBe(
      '/metadata/annotations/meshgate.io~1x~0y/0',
    )
  })

  it('patches keys with / and ~ in them', () => {
    const before = { metadata: { annotations: { 'a/b': '1', '~': 'x' } } }
    const after = { metadata: { annotations: { 'a/b': '2', '~': 'x', 'c~/d': 'new' } } }
    const ops = diff(before, after)
    expect(ops).toEqual([
      { op: 'replace', path: '/metadata/annotations/a~1b', value: '2' },
      { op: 'add', path: '/metadata/annotations/c~0~1d', value: 'new' },
    ])
    expect(applyPatch(before, ops)).toEqual(after)
  })
})

describe('diff', () => {
  const json = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.string(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      tie('array'),
      tie('object'),
    ),
    array: fc.array(tie('value'), { maxLength: 4 }),
    object: fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 5 }),
  }))

  it('turns any document into any other, and the patch applied twice gives the same', () => {
    const additive = fc.tuple(json.object, json.object).map(([a, b]) => [a, { ...a, ...b }] as const)
    fc.assert(
      fc.property(fc.oneof(fc.tuple(json.value, json.value), additive), ([before, after]) => {
        const ops = diff(before, after)
        const once = applyPatch(before, ops)
        expect(once).toEqual(after)
        // Twice is the same when nothing is removed (the injector only adds and replaces).
        if (ops.every((o) => o.op !== 'remove')) expect(applyPatch(once, ops)).toEqual(after)
      }),
      { numRuns: 300 },
    )
  })
})
