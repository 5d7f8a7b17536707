import { describe, expect, it } from 'vitest'
import {
  type AttemptOutcome,
  createRetryPolicy,
  isReplayableBody,
  isRetryCondition,
  mayRetryRequest,
} from '../../proxy-core/engine/retry-policy.ts'
import type { RetryConfig } from '../../proxy-core/engine/types.ts'

const IDEMPOTENT = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']

function policy(on: string[], extra: Partial<RetryConfig> = {}) {
  return createRetryPolicy({
    attempts: 2,
    perTryTimeout: 2000,
    on,
    backoff: { base: 25, max: 250 },
    methods: IDEMPOTENT,
    ...extra,
  })
}

const status = (s: number): AttemptOutcome => ({ status: s })
const connectFailure: AttemptOutcome = { failure: 'connect-failure' }
const reset: AttemptOutcome = { failure: 'reset' }
const timeout: AttemptOutcome = { failure: 'timeout' }
const functionError: AttemptOutcome = { failure: 'function-error' }
const throttled: AttemptOutcome = { failure: 'throttled' }

/** Which of these outcomes a policy retries, as labels, so each case reads as one line. */
function retried(on: string[]): string[] {
  const p = policy(on)
  const outcomes: [string, AttemptOutcome][] = [
    ['200', status(200)],
    ['404', status(404)],
    ['409', status(409)],
    ['429', status(429)],
    ['500', status(500)],
    ['502', status(502)],
    ['503', status(503)],
    ['504', status(504)],
    ['599', status(599)],
    ['connect-failure', connectFailure],
    ['reset', reset],
    ['timeout', timeout],
    ['function-error', functionError],
    ['throttled', throttled],
  ]
  return outcomes.filter(([, o]) => p.retriableOutcome(o)).map(([label]) => label)
}

describe('retry conditions', () => {
  it('5xx: every 5xx and every failure without a response, function errors included', () => {
    expect(retried(['5xx'])).toEqual([
      '500',
      '502',
      '503',
      '504',
      '599',
      'connect-failure',
      'reset',
      'timeout',
      'function-error',
    ])
  })

  it('gateway-error: 502/503/504 and the same failures', () => {
    expect(retried(['gateway-error'])).toEqual([
      '502',
      '503',
      '504',
      'connect-failure',
      'reset',
      'timeout',
      'function-error',
    ])
  })

  it('reset covers resets and per-try timeouts', () => {
    expect(retried(['reset'])).toEqual(['reset', 'timeout'])
  })

  it('connect-failure covers only connect failures', () => {
    expect(retried(['connect-failure'])).toEqual(['connect-failure'])
  })

  it('retriable-4xx is 409 only', () => {
    expect(retried(['retriable-4xx'])).toEqual(['409'])
  })

  it('throttled covers Lambda throttling and 429', () => {
    expect(retried(['throttled'])).toEqual(['429', 'throttled'])
    expect(retried(['429'])).toEqual(['429', 'throttled'])
  })

  it('explicit codes match those statuses only; 502 does not re-run a function that threw', () => {
    expect(retried(['503'])).toEqual(['503'])
    expect(retried(['409', '502'])).toEqual(['409', '502'])
  })

  it('the DESIGN default list', () => {
    expect(retried(['connect-failure', 'reset', '502', '503', '504'])).toEqual([
      '502',
      '503',
      '504',
      'connect-failure',
      'reset',
      'timeout',
    ])
  })

  it('never retries 4xx unless listed, nor anything with an empty list', () => {
    expect(retried(['5xx', 'gateway-error', 'reset', 'connect-failure'])).not.toContain('404')
    expect(retried([])).toEqual([])
  })

  it('rejects unknown conditions, and says which', () => {
    expect(() => policy(['5xx', 'bogus'])).toThrow(/bogus/)
    expect(() => policy(['600'])).toThrow(TypeError)
    expect(isRetryCondition('gateway-error')).toBe(true)
    expect(isRetryCondition('503')).toBe(true)
    expect(isRetryCondition('5033')).toBe(false)
    expect(isRetryCondition('function-error')).toBe(false)
  })
})

describe('retry policy', () => {
  it('carries the limits from config, frozen', () => {
    const p = policy(['5xx'], { attempts: 3, perTryTimeout: 1000, backoff: { base: 10, max: 100 } })
    expect(p.maxRetries).toBe(3)
    expect(p.perTryTimeout).toBe(1000)
    expect(p.backoff).toEqual({ base: 10, max: 100 })
    expect(Object.isFrozen(p)).toBe(true)
  })

  it('matches methods case-insensitively', () => {
    const p = policy(['5xx'])
    expect(p.allowsMethod('GET')).toBe(true)
    expect(p.allowsMethod('get')).toBe(true)
    expect(p.allowsMethod('POST')).toBe(false)
    expect(policy(['5xx'], { methods: ['post'] }).allowsMethod('POST')).toBe(true)
  })

  it('mayRetryRequest needs retries, a retriable method and a replayable body', () => {
    const p = policy(['5xx'])
    expect(mayRetryRequest(p, 'GET', true)).toBe(true)
    expect(mayRetryRequest(p, 'GET', false)).toBe(false)
    expect(mayRetryRequest(p, 'POST', true)).toBe(false)
    expect(mayRetryRequest(policy(['5xx'], { attempts: 0 }), 'GET', true)).toBe(false)
  })

  it('only bodies in memory are replayable', () => {
    async function* stream() {
      yield new Uint8Array([1])
    }
    expect(isReplayableBody(null)).toBe(true)
    expect(isReplayableBody('x')).toBe(true)
    expect(isReplayableBody(new Uint8Array(2))).toBe(true)
    expect(isReplayableBody(stream())).toBe(false)
  })
})
