// The AppConfig cost model: its counts, worked by hand for one client of each kind.
import { describe, expect, it } from 'vitest'
import { monthlyCost, SECONDS_PER_MONTH } from '../../bench/appconfig-cost.ts'

describe('bench/appconfig-cost', () => {
  it('counts one poll per interval, one session per start, one configuration per start and deployment', () => {
    expect(SECONDS_PER_MONTH).toBe(2_628_000)
    const c = monthlyCost({
      sidecars: 1,
      lambdas: 1,
      pollSeconds: 45,
      deployments: 3,
      lambdaLifetimeHours: 73,
      sidecarRestarts: 2,
    })
    // 2 628 000 s / 45 s = 58 400 polls, plus 2 sessions; received: 2 starts + 3 deployments.
    expect(c.sidecars.requests).toBe(58_402)
    expect(c.sidecars.received).toBe(5)
    // 730 h / 73 h = 10 environments: 10 sessions and 10 first configurations, plus 3 deployments.
    expect(c.lambdas.requests).toBe(58_410)
    expect(c.lambdas.received).toBe(13)
    expect(c.sidecars.total).toBeCloseTo(58_402 * 0.0000002 + 5 * 0.0008, 10)
    expect(c.total).toBeCloseTo(c.sidecars.total + c.lambdas.total, 10)
  })

  it('scales linearly with the fleet', () => {
    const one = monthlyCost({
      sidecars: 1,
      lambdas: 1,
      pollSeconds: 45,
      deployments: 60,
      lambdaLifetimeHours: 2,
      sidecarRestarts: 1,
    })
    const many = monthlyCost({
      sidecars: 1000,
      lambdas: 1000,
      pollSeconds: 45,
      deployments: 60,
      lambdaLifetimeHours: 2,
      sidecarRestarts: 1,
    })
    expect(many.total).toBeCloseTo(one.total * 1000, 6)
  })
})
