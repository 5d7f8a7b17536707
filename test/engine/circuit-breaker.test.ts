import { describe, expect, it } from 'vitest'
import { createCircuitBreaker, DEFAULT_CIRCUIT_BREAKER } from '../../proxy-core/engine/circuit-breaker.ts'

describe('circuit breaker', () => {
  it('defaults to Envoy: 1024 of each', () => {
    expect(DEFAULT_CIRCUIT_BREAKER).toEqual({
      maxConnections: 1024,
      maxPendingRequests: 1024,
      maxRequests: 1024,
    })
  })

  it('caps requests in flight and frees a slot on finish', () => {
    const breaker = createCircuitBreaker({ maxConnections: 10, maxPendingRequests: 10, maxRequests: 2 })
    expect(breaker.tryStartRequest()).toBe(true)
    expect(breaker.tryStartRequest()).toBe(true)
    expect(breaker.tryStartRequest()).toBe(false)
    breaker.finishRequest()
    expect(breaker.tryStartRequest()).toBe(true)
    expect(breaker.snapshot()).toMatchObject({
      requests: 2,
      overflows: { requests: 1, pending: 0, connections: 0 },
    })
  })

  it('caps pending requests and connections independently', () => {
    const breaker = createCircuitBreaker({ maxConnections: 1, maxPendingRequests: 3, maxRequests: 100 })
    expect(breaker.tryOpenConnection()).toBe(true)
    expect(breaker.tryOpenConnection()).toBe(false)
    for (let i = 0; i < 3; i++) expect(breaker.tryStartPending()).toBe(true)
    expect(breaker.tryStartPending()).toBe(false)
    // A full pending queue does not touch the request limit.
    expect(breaker.tryStartRequest()).toBe(true)
    breaker.finishPending()
    breaker.closeConnection()
    expect(breaker.tryStartPending()).toBe(true)
    expect(breaker.tryOpenConnection()).toBe(true)
    expect(breaker.snapshot()).toMatchObject({
      requests: 1,
      pending: 3,
      connections: 1,
      overflows: { requests: 0, pending: 1, connections: 1 },
    })
  })

  it('a limit of 0 refuses everything', () => {
    const breaker = createCircuitBreaker({ maxConnections: 0, maxPendingRequests: 0, maxRequests: 0 })
    expect(breaker.tryStartRequest()).toBe(false)
    expect(breaker.tryStartPending()).toBe(false)
    expect(breaker.tryOpenConnection()).toBe(false)
  })

  it('extra finishes do not push counters below zero', () => {
    const breaker = createCircuitBreaker({ maxConnections: 1, maxPendingRequests: 1, maxRequests: 1 })
    breaker.finishRequest()
    breaker.finishPending()
    breaker.closeConnection()
    expect(breaker.tryStartRequest()).toBe(true)
    expect(breaker.tryStartRequest()).toBe(false)
    expect(breaker.snapshot()).toMatchObject({ requests: 1, pending: 0, connections: 0 })
  })

  it('snapshots are copies and limits are frozen', () => {
    const limits = { maxConnections: 5, maxPendingRequests: 5, maxRequests: 5 }
    const breaker = createCircuitBreaker(limits)
    limits.maxRequests = 0
    expect(breaker.tryStartRequest()).toBe(true)
    const snap = breaker.snapshot()
    snap.overflows.requests = 99
    expect(breaker.snapshot().overflows.requests).toBe(0)
    expect(Object.isFrozen(snap.limits)).toBe(true)
  })
})
