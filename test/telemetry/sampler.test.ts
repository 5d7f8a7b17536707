import { describe, expect, it } from 'vitest'
import type { Clock } from '../../proxy-core/engine/types.ts'
import { createSampler, defaultSampling } from '../../proxy-core/telemetry/sampler.ts'

function manualClock(start = 0): Clock & { set(ms: number): void } {
  let t = start
  return { now: () => t, set: (ms) => (t = ms) }
}

describe('createSampler', () => {
  it('takes the first N of each second, then rate percent', () => {
    const clock = manualClock(10_000)
    let draw = 0.5
    const s = createSampler({ reservoirPerSecond: 2, rate: 10 }, clock, () => draw)
    expect(s.sample()).toBe(true)
    clock.set(10_400)
    expect(s.sample()).toBe(true)
    // Reservoir spent: 0.5 * 100 is not under 10.
    expect(s.sample()).toBe(false)
    draw = 0.0999
    expect(s.sample()).toBe(true)
    draw = 0.1
    expect(s.sample()).toBe(false)
    // A new second refills the reservoir.
    clock.set(11_000)
    draw = 0.99
    expect(s.sample()).toBe(true)
    expect(s.sample()).toBe(true)
    expect(s.sample()).toBe(false)
  })

  it('samples rate percent past the reservoir, exactly for an even spread of draws', () => {
    const clock = manualClock()
    let i = 0
    const s = createSampler(defaultSampling, clock, () => (i++ % 1000) / 1000)
    let sampled = 0
    for (let k = 0; k < 1001; k++) if (s.sample()) sampled++
    // 1 from the reservoir, then 5% of 1000 draws 0.000..0.999.
    expect(sampled).toBe(1 + 50)
  })

  it('handles 0% and 100% and an empty reservoir', () => {
    const clock = manualClock()
    const never = createSampler({ reservoirPerSecond: 0, rate: 0 }, clock, () => 0)
    const always = createSampler({ reservoirPerSecond: 0, rate: 100 }, clock, () => 0.999999)
    for (let k = 0; k < 10; k++) {
      expect(never.sample()).toBe(false)
      expect(always.sample()).toBe(true)
    }
  })
})
