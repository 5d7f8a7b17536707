import { describe, expect, it } from 'vitest'
import {
  describeChanges,
  parseAssignments,
  ShiftError,
  shiftWeights,
} from '../../proxy-core/control/weights.ts'

// The part of a mesh document these tests read (a cast, not a check: the assertions are the check).
type Doc = { services: { reviews: { routes: [{ to: unknown }, { to: unknown }] } } }

const doc = {
  version: 1,
  mesh: 'm',
  services: {
    reviews: {
      targets: { v1: {}, v2: {}, v3: {} },
      routes: [{ name: 'jason', to: 'v2' }, { to: { v1: 90, v2: 10 } }],
    },
  },
}

describe('shiftWeights', () => {
  it('changes only the named targets and leaves the input alone', () => {
    const { doc: next, changes } = shiftWeights(doc, 'reviews', 'route-1', [['v3', 5]])
    expect((next as Doc).services.reviews.routes[1].to).toEqual({ v1: 90, v2: 10, v3: 5 })
    expect(changes).toEqual([{ target: 'v3', before: 0, after: 5 }])
    expect(doc.services.reviews.routes[1]!.to).toEqual({ v1: 90, v2: 10 })
    expect(describeChanges('reviews', 'route-1', changes)).toBe('reviews/route-1: v3 0 → 5')
  })

  it('reads a single target as all of the traffic', () => {
    const { doc: next, changes } = shiftWeights(doc, 'reviews', 'jason', [
      ['v2', 97],
      ['v3', 3],
    ])
    expect((next as Doc).services.reviews.routes[0].to).toEqual({ v2: 97, v3: 3 })
    expect(changes).toEqual([
      { target: 'v2', before: 100, after: 97 },
      { target: 'v3', before: 0, after: 3 },
    ])
  })

  it('refuses unknown services, routes and targets, and malformed assignments', () => {
    expect(() => shiftWeights(doc, 'ratings', 'default', [['v1', 1]])).toThrow(ShiftError)
    expect(() => shiftWeights(doc, 'reviews', 'default', [['v1', 1]])).toThrow(/its routes: jason, route-1/)
    expect(() => shiftWeights(doc, 'reviews', 'jason', [['v4', 1]])).toThrow(/no target "v4"/)
    expect(() => parseAssignments(['v1=-1'])).toThrow(ShiftError)
    expect(() => parseAssignments(['v1'])).toThrow(ShiftError)
    expect(() => parseAssignments([])).toThrow(ShiftError)
    expect(parseAssignments(['v1=97', 'v3=2.5'])).toEqual([
      ['v1', 97],
      ['v3', 2.5],
    ])
  })
})
