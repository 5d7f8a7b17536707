// Weighted target selection for a route's `to: { v1: 97, v3: 3 }`.
//
// Weights are relative (Gateway API): `{a: 1, b: 1}` and `{a: 50, b: 50}` are the same split, and a
// weight of 0 keeps a target configured but idle. Two ways to pick:
// - `pick(random)`: one uniform draw against the cumulative weights, binary-searched (O(log n)).
// - `pickSticky(key)`: weighted rendezvous hashing. Each target scores the key with its own hash and the
//   lowest `-ln(u) / weight` wins. Those scores are exponential variables with rate `weight`, so a
//   target wins a share of keys equal to its share of the weight; and since a target's score does not
//   depend on the other targets, changing one weight only moves keys to or from that target.

import type { Random } from './types.ts'

export interface WeightedPicker {
  /** A target drawn in proportion to its weight; uses at most one call of `random`. */
  pick(random: Random): string
  /** The same key always gets the same target for a given weight table. */
  pickSticky(key: string): string
  /** The targets that can be picked (weight > 0), in configured order. */
  readonly targets: readonly string[]
}

export function createWeightedPicker(weights: Readonly<Record<string, number>>): WeightedPicker {
  const names: string[] = []
  const positive: number[] = []
  for (const [name, weight] of Object.entries(weights)) {
    if (!Number.isFinite(weight) || weight < 0) {
      throw new RangeError(`weight of ${JSON.stringify(name)} must be a finite number >= 0, got ${weight}`)
    }
    // Zero-weight targets are left out entirely, so no rounding at a boundary can ever pick them.
    if (weight > 0) {
      names.push(name)
      positive.push(weight)
    }
  }
  if (names.length === 0) throw new RangeError('at least one target needs a weight above 0')

  const targets = Object.freeze(names)
  const n = targets.length
  const cumulative = new Float64Array(n)
  let total = 0
  for (let i = 0; i < n; i++) {
    total += positive[i]!
    cumulative[i] = total
  }
  const weightOf = Float64Array.from(positive)
  // Each target's hash state after its own name: sticky picks then hash only the key, once per target.
  const seedsA = new Int32Array(n)
  const seedsB = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    seedsA[i] = absorb(seedA, targets[i]!, primeA1, primeA2)
    seedsB[i] = absorb(seedB, targets[i]!, primeB1, primeB2)
  }
  const only = n === 1 ? targets[0]! : undefined

  function pick(random: Random): string {
    if (only !== undefined) return only
    const r = random() * total
    // The first target whose cumulative weight exceeds r. Starting hi at n - 1 also clamps the case
    // where rounding makes r land on `total` itself.
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cumulative[mid]! > r) hi = mid
      else lo = mid + 1
    }
    return targets[lo]!
  }

  function pickSticky(key: string): string {
    if (only !== undefined) return only
    let best = 0
    let bestScore = Number.POSITIVE_INFINITY
    for (let i = 0; i < n; i++) {
      const score = -Math.log(unitHash(seedsA[i]!, seedsB[i]!, key)) / weightOf[i]!
      // Strictly lower: on an exact tie the earlier target wins, the same on every call.
      if (score < bestScore) {
        bestScore = score
        best = i
      }
    }
    return targets[best]!
  }

  return Object.freeze({ pick, pickSticky, targets })
}

// A murmur3-style hash in two independent 32-bit lanes (different seeds and multipliers), so one key and
// target give 64 well-mixed bits, of which 53 become the uniform draw. Each UTF-16 code unit is one block.

const seedA = 0x2f6b_9c31 | 0
const seedB = 0x6a09_e667 | 0
const primeA1 = 0xcc9e_2d51 | 0
const primeA2 = 0x1b87_3593 | 0
const primeB1 = 0x85eb_ca77 | 0
const primeB2 = 0xc2b2_ae3d | 0
/** Ends the target name, so target `ab` with key `c` and target `a` with key `bc` hash apart. */
const separator = 0xffff

function absorb(h: number, s: string, m1: number, m2: number): number {
  for (let i = 0; i < s.length; i++) h = step(h, s.charCodeAt(i), m1, m2)
  return step(h, separator, m1, m2)
}

function step(h: number, block: number, m1: number, m2: number): number {
  let k = Math.imul(block, m1)
  k = (k << 15) | (k >>> 17)
  k = Math.imul(k, m2)
  h ^= k
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe654_6b64) | 0
}

/** Murmur3's finaliser: every input bit flips each output bit with probability about 1/2. */
function fmix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85eb_ca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2_ae35)
  return h ^ (h >>> 16)
}

/** A deterministic draw in the open interval (0, 1) for (target state, key); never 0, so ln is finite. */
function unitHash(stateA: number, stateB: number, key: string): number {
  let a = stateA
  let b = stateB
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    a = step(a, c, primeA1, primeA2)
    b = step(b, c, primeB1, primeB2)
  }
  a ^= key.length
  b ^= key.length
  // Cross the lanes before and after finalising, as murmur3's 128-bit variant does.
  a = (a + b) | 0
  b = (b + a) | 0
  a = fmix(a)
  b = fmix(b)
  a = (a + b) | 0
  b = (b + a) | 0
  // 32 high bits from a, 21 from b: 53 bits, then centred in its cell so the result is never 0 or 1.
  return ((a >>> 0) * 2_097_152 + (b >>> 11) + 0.5) / 9_007_199_254_740_992
}
