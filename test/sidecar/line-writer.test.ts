import { afterEach, expect, it, vi } from 'vitest'
import { createLineWriter } from '../../proxy-core/sidecar/line-writer.ts'

afterEach(() => {
  vi.useRealTimers()
})

function collect() {
  const writes: string[] = []
  const w = createLineWriter((chunk) => writes.push(Buffer.from(chunk).toString('utf8')))
  return { w, writes }
}

it('batches lines into one write per interval, and flushes on demand', () => {
  vi.useFakeTimers()
  const { w, writes } = collect()
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
  w.flush()
  expect(writes).toHaveLength(2)
})

it('writes a batch before it would pass 64 KiB, and keeps every line whole', () => {
  vi.useFakeTimers()
  const { w, writes } = collect()
  const line = 'x'.repeat(1023)
  for (let i = 0; i < 64; i++) w.line(line)
  w.flush()
  expect(writes.length).toBeGreaterThan(1)
  for (const chunk of writes) {
    expect(Buffer.byteLength(chunk)).toBeLessThanOrEqual(64 * 1024)
    expect(chunk.endsWith('\n')).toBe(true)
  }
  expect(writes.join('')).toBe(`${line}\n`.repeat(64))
})

it('writes multi-byte text as UTF-8, and a line longer than a batch on its own', () => {
  vi.useFakeTimers()
  const { w, writes } = collect()
  w.line('{"path":"/café/€/😀"}')
  const long = 'é'.repeat(40_000)
  w.line(long)
  w.line('after')
  w.flush()
  expect(writes.join('')).toBe(`{"path":"/café/€/😀"}\n${long}\nafter\n`)
})

it('a buffer handed to the writer is never written into again', () => {
  const held: Uint8Array[] = []
  const w = createLineWriter((chunk) => held.push(chunk))
  w.line('first')
  w.flush()
  w.line('second')
  w.flush()
  expect(held.map((c) => Buffer.from(c).toString())).toEqual(['first\n', 'second\n'])
})
