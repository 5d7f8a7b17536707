// The rollout's transitions on a mesh document, on an injected time: every document they produce
// passes the loader (it is what gets published), and the status in it is all a controller needs.
import { describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { renderDocument } from '../../proxy-core/control/mesh-document.ts'
import { analysisPolicy, analyze, type TargetSeries } from '../../proxy-core/rollout/analysis.ts'
import {
  abortRollout,
  advance,
  findRollouts,
  pauseRollout,
  RolloutError,
  startRollout,
} from '../../proxy-core/rollout/state.ts'

const T0 = Date.UTC(2026, 11, 7, 12, 0, 0)
const doc = () => ({
  version: 1,
  mesh: 'shop',
  services: {
    reviews: {
      targets: { v1: { lambda: 'reviews-v1' }, v2: { http: 'http://127.0.0.1:9' } },
      routes: [{ name: 'default', to: 'v1', timeout: '3s' }],
    },
  },
})
const healthy: TargetSeries = { requests: [500], errors: [0], p99Ms: [20] }
const failing: TargetSeries = { requests: [500], errors: [100], p99Ms: [20] }
const route = (d: Record<string, unknown>) =>
  (d.services as { reviews: { routes: Record<string, unknown>[] } }).reviews.routes[0]!

async function valid(d: Record<string, unknown>) {
  await loadConfigText(renderDocument(d), 'published')
}

function verdictFor(d: Record<string, unknown>, canary: TargetSeries) {
  const ref = findRollouts(d)[0]!
  return { ref, verdict: analyze(analysisPolicy(ref.rollout), canary, healthy) }
}

describe('rollout state', () => {
  it('starts at the first step, promotes each step after its duration, completes at 100%', async () => {
    const settings = { steps: [10, 50, 100], stepDuration: '30s' }
    const start = startRollout(doc(), 'reviews', 'default', { canary: 'v2', settings }, T0)!
    await valid(start.doc)
    expect(route(start.doc).to).toEqual({ v1: 90, v2: 10 })
    expect(start.summary).toBe('reviews/default: start at 10%: v1 → v2, steps 10, 50, 100%')
    let d = start.doc
    // Before the step's duration nothing moves, however good the numbers.
    let { ref, verdict } = verdictFor(d, healthy)
    expect(advance(d, ref, verdict, T0 + 29_999)).toBeUndefined()
    const step2 = advance(d, ref, verdict, T0 + 30_000)!
    await valid(step2.doc)
    expect(route(step2.doc).to).toEqual({ v1: 50, v2: 50 })
    expect(step2.entry).toMatchObject({ decision: 'promote', step: 1, weight: 50 })
    d = step2.doc
    ;({ ref, verdict } = verdictFor(d, healthy))
    expect(ref.rollout.status).toMatchObject({ step: 1, stepStartedAt: new Date(T0 + 30_000).toISOString() })
    const done = advance(d, ref, verdict, T0 + 60_000)!
    await valid(done.doc)
    expect(route(done.doc).to).toEqual({ v1: 0, v2: 100 })
    expect(findRollouts(done.doc)[0]!.rollout.status).toMatchObject({ phase: 'promoted' })
    expect((findRollouts(done.doc)[0]!.rollout.status!.log ?? []).map((e) => e.decision)).toEqual([
      'start',
      'promote',
      'complete',
    ])
    // The user's own keys stay as written.
    expect((route(done.doc).rollout as Record<string, unknown>).stepDuration).toBe('30s')
  })

  it('rolls back at once on a failed check, with the check and its numbers in the log', async () => {
    const d = startRollout(doc(), 'reviews', 'default', { canary: 'v2' }, T0)!.doc
    const { ref, verdict } = verdictFor(d, failing)
    const back = advance(d, ref, verdict, T0 + 1)!
    await valid(back.doc)
    expect(route(back.doc).to).toEqual({ v1: 100, v2: 0 })
    expect(back.entry).toMatchObject({
      decision: 'rollback',
      weight: 0,
      canary: { requests: 500, errorRate: 20 },
      stable: { requests: 500, errorRate: 0 },
    })
    expect(back.entry.detail).toBe(
      'step 1 (1%) failed error-rate: canary 20% (100/500) > max 1%; all traffic to v1',
    )
  })

  it('pause holds the weights, start resumes with a new window, abort sends all to stable', async () => {
    const d = startRollout(doc(), 'reviews', 'default', { canary: 'v2' }, T0)!.doc
    const paused = pauseRollout(d, 'reviews', 'default', T0 + 5)
    await valid(paused.doc)
    const { ref, verdict } = verdictFor(paused.doc, healthy)
    expect(advance(paused.doc, ref, verdict, T0 + 600_000)).toBeUndefined()
    const resumed = startRollout(paused.doc, 'reviews', 'default', { canary: 'v2' }, T0 + 10)!
    expect(resumed.entry.decision).toBe('resume')
    expect(findRollouts(resumed.doc)[0]!.rollout.status!.stepStartedAt).toBe(new Date(T0 + 10).toISOString())
    // Started again while progressing: nothing to publish, the controller continues.
    expect(startRollout(resumed.doc, 'reviews', 'default', { canary: 'v2' }, T0 + 20)).toBeUndefined()
    const aborted = abortRollout(resumed.doc, 'reviews', 'default', T0 + 30)
    await valid(aborted.doc)
    expect(route(aborted.doc).to).toEqual({ v1: 100, v2: 0 })
    expect(() => pauseRollout(aborted.doc, 'reviews', 'default', T0)).toThrow(/aborted, not running/)
  })

  it('refuses a bad rollout with a clear error, and the loader refuses bad cross-references', async () => {
    expect(() =>
      startRollout(doc(), 'reviews', 'default', { canary: 'v2', settings: { steps: 'x' } }, T0),
    ).toThrow(RolloutError)
    expect(() => startRollout(doc(), 'reviews', 'nope', { canary: 'v2' }, T0)).toThrow(/no route "nope"/)
    const bad = doc()
    ;(bad.services.reviews.routes[0] as Record<string, unknown>).rollout = {
      stable: 'v1',
      canary: 'v3',
      steps: [10, 5],
    }
    await expect(valid(bad)).rejects.toThrow(/unknown target "v3"[\s\S]*steps must rise/)
  })
})
