import { describe, expect, it } from 'vitest'
import { checkTargets, type SummaryRow, targetLines } from '../../bench/sidecar/report.ts'

function row(contender: SummaryRow['contender'], over: Partial<SummaryRow> = {}): SummaryRow {
  return {
    contender,
    rounds: 3,
    rps16: 10_000,
    rps64: 10_000,
    p50: 0.1,
    p90: 0.2,
    p99: 0.5,
    addedP50: 0.05,
    addedP99: 0.2,
    cpuPer1k: 0.05,
    cpuPer1kAt16: 0.04,
    upstreamCpuPer1k: 0.01,
    rssAtRateMb: 50,
    rssAnonAtRateMb: 20,
    rssPeakMb: 50,
    errors: 0,
    vsHaproxy: { rps16: 0.6, rps64: 0.6, cpuPer1k: 1, addedP99: 1 },
    ...over,
  }
}

const p99Target = (haproxyAddedP99: number, meshgateAddedP99: number) =>
  checkTargets([
    row('haproxy', { addedP99: haproxyAddedP99 }),
    row('meshgate', { addedP99: meshgateAddedP99 }),
  ]).find((t) => t.what.startsWith('added p99'))!

describe("bench:sidecar's issue-6 targets", () => {
  it('holds the added p99 to 1.5 × HAProxy’s', () => {
    expect(p99Target(0.2, 0.3)).toMatchObject({ met: true, limit: "≤ 1.5 × HAProxy's (0.300 ms)" })
    expect(p99Target(0.2, 0.31)).toMatchObject({ met: false })
  })

  it('cannot judge the added p99 when HAProxy’s came out at or below direct’s', () => {
    for (const hap of [0, -0.098]) {
      const t = p99Target(hap, 0.691)
      expect(t.met).toBeNull()
      expect(targetLines([t])[0]).toMatch(/^n\/a {6}added p99 .*: its p99 was not above direct's\)$/)
    }
  })
})
