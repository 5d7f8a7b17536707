import { afterEach, expect, it, vi } from 'vitest'
import { createLineWriter } from '../../proxy-core/sidecar/line-writer.ts'

afterEach(() => {
  vi.useRealTimers()
})

it('batches lines into one write per interval, and flushes on demand', () => {
  vi.useFakeTimers()
  const writes: string[] = []
  const w = createLineWriter((chunk) => writes.push(chunk))
  w.line('a')
  w.line('b')
  expect(writes).toEqual([])
  vi.advanceTimersByTime(100)
  expect(writes).toEqual(['a\nb\n'])
  w.line('c')
  w.flush()
  expect(writes).toEqual(['a\nb\n', 'c\n'])
  vi.advanceTimersByTime(1000)
  expect(writes).toHaveLength(2)
})

it('writes at once when 64 KiB are waiting', () => {
  vi.useFakeTimers()
  const writes: string[] = []
  const w = createLineWriter((chunk) => writes.push(chunk))
  const line = 'x'.repeat(1023)
  for (let i = 0; i < 64; i++) w.line(line)
  expect(writes).toHaveLength(1)
  expect(writes[0]!.length).toBe(64 * 1024)
})
