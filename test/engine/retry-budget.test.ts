import { describe, expect, it } from 'vitest'
import { createRetryBudget, DEFAULT_RETRY_BUDGET } from '../../proxy-core/engine/retry-budget.ts'

/** A clock that moves only when the test says so. */
function manualClock(start = 0) {
  let now = start
  return {
    now: () => now,
    advance(ms: number) {
      now += ms
    },
  }
}

describe('retry budget', () => {
  it('defaults to Linkerd: 20% plus 10 per second', () => {
    expect(DEFAULT_RETRY_BUDGET).toEqual({ percent: 20, minPerSecond: 10 })
  })

  it('runs out when every request fails, and recovers as the clock moves on', () => {
    const clock = manualClock()
    const budget = createRetryBudget({ percent: 20, minPerSecond: 10 }, clock)
    // One request at a time, each failing and asking to retry: 20% of one request is no retry, so
    // only the floor of 10 per second admits any.
    const oneSecondOfFailures = () => {
      let granted = 0
      for (let i = 0; i < 100; i++) {
        budget.requestStarted()
        if (budget.tryAcquireRetry()) {
          granted++
          budget.retryFinished()
        }
        budget.requestFinished()
      }
      return granted
    }
    expect(oneSecondOfFailures()).toBe(10)
    expect(budget.snapshot().exhausted).toBe(90)

    clock.advance(999)
    expect(oneSecondOfFailures()).toBe(0)
    clock.advance(1)
    expect(oneSecondOfFailures()).toBe(10)
  })

  it('the floor is a sliding window, not a fixed second', () => {
    const clock = manualClock()
    const budget = createRetryBudget({ percent: 0, minPerSecond: 2 }, clock)
    expect(budget.tryAcquireRetry()).toBe(true) // t=0
    clock.advance(600)
    expect(budget.tryAcquireRetry()).toBe(true) // t=600
    clock.advance(399)
    expect(budget.tryAcquireRetry()).toBe(false) // t=999: two in the last second
    clock.advance(1)
    expect(budget.tryAcquireRetry()).toBe(true) // t=1000: the t=0 one left the window
    expect(budget.tryAcquireRetry()).toBe(false)
  })

  it('a fractional rate stretches the window instead of rounding to never', () => {
    const clock = manualClock()
    const budget = createRetryBudget({ percent: 0, minPerSecond: 0.5 }, clock)
    expect(budget.tryAcquireRetry()).toBe(true)
    clock.advance(1999)
    expect(budget.tryAcquireRetry()).toBe(false)
    clock.advance(1)
    expect(budget.tryAcquireRetry()).toBe(true)
  })

  it('allows percent of the active requests as concurrent retries', () => {
    const clock = manualClock()
    const budget = createRetryBudget({ percent: 20, minPerSecond: 0 }, clock)
    for (let i = 0; i < 50; i++) budget.requestStarted()
    let granted = 0
    while (budget.tryAcquireRetry()) granted++
    expect(granted).toBe(10)
    // Concurrency recovers as soon as a retry ends, without the clock moving.
    budget.retryFinished()
    expect(budget.tryAcquireRetry()).toBe(true)
    expect(budget.tryAcquireRetry()).toBe(false)
    // Fewer active requests, smaller share: 45 × 20% = 9 < 10 in flight.
    for (let i = 0; i < 5; i++) budget.requestFinished()
    budget.retryFinished()
    expect(budget.tryAcquireRetry()).toBe(false)
    expect(budget.snapshot()).toMatchObject({ activeRequests: 45, activeRetries: 9 })
  })

  it('compares percents exactly (29% of 100 is 29)', () => {
    const budget = createRetryBudget({ percent: 29, minPerSecond: 0 }, manualClock())
    for (let i = 0; i < 100; i++) budget.requestStarted()
    let granted = 0
    while (budget.tryAcquireRetry()) granted++
    expect(granted).toBe(29)
  })

  it('the floor and the share are alternatives, not a sum', () => {
    const clock = manualClock()
    const budget = createRetryBudget({ percent: 20, minPerSecond: 10 }, clock)
    for (let i = 0; i < 100; i++) budget.requestStarted()
    let granted = 0
    while (budget.tryAcquireRetry()) granted++
    // 20 by the share; by then 20 started in the last second, so the floor adds nothing.
    expect(granted).toBe(20)
  })

  it('zero percent and zero floor never retry', () => {
    const budget = createRetryBudget({ percent: 0, minPerSecond: 0 }, manualClock())
    budget.requestStarted()
    expect(budget.tryAcquireRetry()).toBe(false)
  })

  it('unpaired finishes do not raise the limit', () => {
    const budget = createRetryBudget({ percent: 100, minPerSecond: 0 }, manualClock())
    budget.requestFinished()
    budget.retryFinished()
    budget.requestStarted()
    expect(budget.tryAcquireRetry()).toBe(true)
    expect(budget.tryAcquireRetry()).toBe(false)
    expect(budget.snapshot()).toEqual({ activeRequests: 1, activeRetries: 1, exhausted: 1 })
  })
})
