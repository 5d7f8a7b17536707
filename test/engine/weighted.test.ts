import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Random } from '../../proxy-core/engine/types.ts'
import { createWeightedPicker } from '../../proxy-core/engine/weighted.ts'

/** mulberry32: a tiny seeded PRNG, so every draw sequence here can be replayed from its seed. */
function mulberry32(seed: number): Random {
  let s = seed | 0
  return () => {
    s = (s + 0x6d2b79f5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** 1–6 targets, weights 0–100, at least one above 0 (the validator rejects all-zero tables). */
const weightTable = fc
  .array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 6 })
  .filter((ws) => ws.some((w) => w > 0))
  .map((ws) => Object.fromEntries(ws.map((w, i) => [`t${i}`, w])) as Record<string, number>)

function shares(
  counts: Map<string, number>,
  total: number,
  names: readonly string[],
): Record<string, number> {
  return Object.fromEntries(names.map((name) => [name, (counts.get(name) ?? 0) / total]))
}

function expectedShares(weights: Record<string, number>): Record<string, number> {
  const sum = Object.values(weights).reduce((a, b) => a + b, 0)
  return Object.fromEntries(Object.entries(weights).map(([name, w]) => [name, w / sum]))
}

function randomKeys(seed: number, count: number): string[] {
  const random = mulberry32(seed)
  const keys: string[] = []
  for (let i = 0; i < count; i++) keys.push(`user-${Math.floor(random() * 2 ** 32).toString(36)}`)
  return keys
}

describe('createWeightedPicker', () => {
  it('lists the pickable targets in configured order, leaving out weight 0', () => {
    expect(createWeightedPicker({ v1: 97, v2: 0, v3: 3 }).targets).toEqual(['v1', 'v3'])
  })

  it('rejects tables where nothing can be picked, and weights that are not numbers >= 0', () => {
    expect(() => createWeightedPicker({})).toThrow(RangeError)
    expect(() => createWeightedPicker({ a: 0, b: 0 })).toThrow(RangeError)
    expect(() => createWeightedPicker({ a: -1, b: 2 })).toThrow(RangeError)
    expect(() => createWeightedPicker({ a: Number.NaN })).toThrow(RangeError)
    expect(() => createWeightedPicker({ a: Number.POSITIVE_INFINITY })).toThrow(RangeError)
  })

  it('splits on the cumulative weights: draw * total falls into a target by its range', () => {
    const picker = createWeightedPicker({ v1: 97, v3: 3 })
    expect(picker.pick(() => 0)).toBe('v1')
    expect(picker.pick(() => 0.9699)).toBe('v1')
    expect(picker.pick(() => 0.97)).toBe('v3')
    expect(picker.pick(() => 0.999999999)).toBe('v3')
    // A Random that breaks its contract by returning 1 still gets a real target, not undefined.
    expect(picker.pick(() => 1)).toBe('v3')
  })

  it('never picks a zero-weight target, even at the boundaries of its neighbours', () => {
    const picker = createWeightedPicker({ a: 1, z: 0, b: 1 })
    for (const r of [0, 0.5, 0.4999999999, 0.5000000001, 0.9999999999])
      expect(picker.pick(() => r)).not.toBe('z')
  })

  it('draws once per pick', () => {
    const picker = createWeightedPicker({ a: 1, b: 2, c: 3 })
    let draws = 0
    const random: Random = () => {
      draws++
      return 0.5
    }
    for (let i = 0; i < 10; i++) picker.pick(random)
    expect(draws).toBe(10)
  })

  it('converges: over 100 000 picks each share is within 1 point of its weight', () => {
    fc.assert(
      fc.property(weightTable, fc.integer(), (weights, seed) => {
        const picker = createWeightedPicker(weights)
        const random = mulberry32(seed)
        const picks = 100_000
        const counts = new Map<string, number>()
        for (let i = 0; i < picks; i++) {
          const t = picker.pick(random)
          counts.set(t, (counts.get(t) ?? 0) + 1)
        }
        const got = shares(counts, picks, Object.keys(weights))
        for (const [name, want] of Object.entries(expectedShares(weights))) {
          expect(Math.abs(got[name]! - want)).toBeLessThanOrEqual(0.01)
        }
      }),
      { numRuns: 20 },
    )
  })

  describe('pickSticky', () => {
    it('gives a key the same target on every call and from every picker built from the same table', () => {
      const a = createWeightedPicker({ v1: 50, v2: 30, v3: 20 })
      const b = createWeightedPicker({ v1: 50, v2: 30, v3: 20 })
      for (const key of randomKeys(7, 500)) {
        const first = a.pickSticky(key)
        expect(a.pickSticky(key)).toBe(first)
        expect(b.pickSticky(key)).toBe(first)
      }
    })

    it('handles the empty key and keys of any text', () => {
      const picker = createWeightedPicker({ a: 1, b: 1 })
      for (const key of ['', '\uffff', 'jason', 'ü🙂', 'x'.repeat(10_000)]) {
        expect(['a', 'b']).toContain(picker.pickSticky(key))
      }
    })

    it('converges: over 20 000 random keys each share is within 2 points of its weight', () => {
      fc.assert(
        fc.property(weightTable, fc.integer(), (weights, seed) => {
          const picker = createWeightedPicker(weights)
          const keys = randomKeys(seed, 20_000)
          const counts = new Map<string, number>()
          for (const key of keys) {
            const t = picker.pickSticky(key)
            counts.set(t, (counts.get(t) ?? 0) + 1)
          }
          const got = shares(counts, keys.length, Object.keys(weights))
          for (const [name, want] of Object.entries(expectedShares(weights))) {
            expect(Math.abs(got[name]! - want)).toBeLessThanOrEqual(0.02)
          }
        }),
        { numRuns: 20 },
      )
    })

    it('converges for sequential keys too (user-0, user-1, …), where a weak hash shows bias', () => {
      const weights = { v1: 97, v3: 3 }
      const picker = createWeightedPicker(weights)
      let v3 = 0
      for (let i = 0; i < 20_000; i++) if (picker.pickSticky(`user-${i}`) === 'v3') v3++
      expect(Math.abs(v3 / 20_000 - 0.03)).toBeLessThanOrEqual(0.01)
    })

    it('changing one weight moves keys only to or from that target', () => {
      fc.assert(
        fc.property(
          weightTable,
          fc.nat(),
          fc.integer({ min: 0, max: 100 }),
          fc.integer(),
          (weights, which, newWeight, seed) => {
            const names = Object.keys(weights)
            const changed = names[which % names.length]!
            const after = { ...weights, [changed]: newWeight }
            fc.pre(Object.values(after).some((w) => w > 0))
            const before = createWeightedPicker(weights)
            const next = createWeightedPicker(after)
            for (const key of randomKeys(seed, 2_000)) {
              const from = before.pickSticky(key)
              const to = next.pickSticky(key)
              if (from !== to) expect(from === changed || to === changed).toBe(true)
            }
          },
        ),
        { numRuns: 100 },
      )
    })
  })
})
