import { describe, expect, it } from 'vitest'
import { Cancellation, toAbortSignal } from '../../proxy-core/engine/cancel.ts'

describe('Cancellation', () => {
  it('calls every listener once, in order, and only the ones still registered', () => {
    const c = new Cancellation()
    const calls: string[] = []
    const a = () => calls.push('a')
    const b = () => calls.push('b')
    const d = () => calls.push('d')
    c.addEventListener('abort', a)
    c.addEventListener('abort', b)
    c.addEventListener('abort', d)
    c.removeEventListener('abort', b)
    expect(c.aborted).toBe(false)
    c.abort()
    c.abort()
    expect(c.aborted).toBe(true)
    expect(calls).toEqual(['a', 'd'])
  })

  it('removing the first listener leaves the others in place', () => {
    const c = new Cancellation()
    const calls: string[] = []
    const a = () => calls.push('a')
    c.addEventListener('abort', a)
    c.addEventListener('abort', () => calls.push('b'))
    c.removeEventListener('abort', a)
    c.abort()
    expect(calls).toEqual(['b'])
  })

  it('ignores listeners added after it aborted (the caller checks `aborted` first)', () => {
    const c = new Cancellation()
    c.abort()
    let called = false
    c.addEventListener('abort', () => {
      called = true
    })
    c.abort()
    expect(called).toBe(false)
  })
})

describe('toAbortSignal', () => {
  it('returns an AbortSignal as it is', () => {
    const signal = new AbortController().signal
    expect(toAbortSignal(signal)).toBe(signal)
  })

  it('follows a Cancellation: aborted already, or later', () => {
    const early = new Cancellation()
    early.abort()
    expect(toAbortSignal(early).aborted).toBe(true)
    const late = new Cancellation()
    const signal = toAbortSignal(late)
    expect(signal.aborted).toBe(false)
    late.abort()
    expect(signal.aborted).toBe(true)
  })
})
