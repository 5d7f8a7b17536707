// The structure the CloudWatch Embedded Metric Format specification requires of a document, as
// vitest assertions: shared by the formatter's unit tests and the end-to-end Lambda tests.
import { expect } from 'vitest'

const UNITS = new Set([
  'Seconds',
  'Microseconds',
  'Milliseconds',
  'Bytes',
  'Kilobytes',
  'Megabytes',
  'Gigabytes',
  'Terabytes',
  'Bits',
  'Kilobits',
  'Megabits',
  'Gigabits',
  'Terabits',
  'Percent',
  'Count',
  'Bytes/Second',
  'Kilobytes/Second',
  'Megabytes/Second',
  'Gigabytes/Second',
  'Terabytes/Second',
  'Bits/Second',
  'Kilobits/Second',
  'Megabits/Second',
  'Gigabits/Second',
  'Terabits/Second',
  'Count/Second',
  'None',
])

/**
 * The checks the EMF specification puts on a document: root `_aws` {Timestamp: number,
 * CloudWatchMetrics: MetricDirective[]}; a directive {Namespace: string, Dimensions: string[][],
 * Metrics: [{Name, Unit?, StorageResolution?}]}; at most 100 metrics per directive and 30 keys per
 * dimension set; every dimension key a string member of the root, every metric a number member or an
 * array of at most 100 numbers.
 */
export function validateEmf(line: string): Record<string, unknown> {
  expect(line).not.toContain('\n')
  const doc = JSON.parse(line) as Record<string, unknown>
  expect(typeof doc).toBe('object')
  const aws = doc._aws as Record<string, unknown>
  expect(aws).toBeTypeOf('object')
  expect(aws.Timestamp).toBeTypeOf('number')
  expect(Number.isInteger(aws.Timestamp)).toBe(true)
  expect(Array.isArray(aws.CloudWatchMetrics)).toBe(true)
  for (const d of aws.CloudWatchMetrics as Record<string, unknown>[]) {
    expect(Object.keys(d).sort()).toEqual(['Dimensions', 'Metrics', 'Namespace'])
    expect(d.Namespace).toBeTypeOf('string')
    expect((d.Namespace as string).length).toBeGreaterThan(0)
    expect(Array.isArray(d.Dimensions)).toBe(true)
    for (const set of d.Dimensions as unknown[]) {
      expect(Array.isArray(set)).toBe(true)
      expect((set as unknown[]).length).toBeLessThanOrEqual(30)
      for (const key of set as unknown[]) {
        expect(key).toBeTypeOf('string')
        expect(doc[key as string], `dimension ${key}`).toBeTypeOf('string')
        expect((doc[key as string] as string).length).toBeGreaterThan(0)
      }
    }
    const metrics = d.Metrics as Record<string, unknown>[]
    expect(Array.isArray(metrics)).toBe(true)
    expect(metrics.length).toBeLessThanOrEqual(100)
    for (const m of metrics) {
      expect(m.Name).toBeTypeOf('string')
      if (m.Unit !== undefined) expect(UNITS.has(m.Unit as string), `unit ${m.Unit}`).toBe(true)
      if (m.StorageResolution !== undefined) expect([1, 60]).toContain(m.StorageResolution)
      const v = doc[m.Name as string]
      if (Array.isArray(v)) {
        expect(v.length).toBeGreaterThan(0)
        expect(v.length).toBeLessThanOrEqual(100)
        for (const x of v) expect(x).toBeTypeOf('number')
      } else {
        expect(v, `metric ${m.Name}`).toBeTypeOf('number')
      }
    }
  }
  return doc
}
