import { describe, expect, it } from 'vitest'
import { type ConfigCounts, createConfigMetrics } from '../../proxy-core/telemetry/config-metrics.ts'

describe('createConfigMetrics', () => {
  it('reports deltas, rides along when asked, and alone only on news', () => {
    const status: ConfigCounts = { reloads: 0, rejected: 0, stale: false }
    const next = createConfigMetrics(() => status)
    // Nothing happened: nothing of its own; along with other metrics, zeros.
    expect(next(false)).toBeUndefined()
    expect(next(true)).toEqual({ ConfigReloads: 0, ConfigRejected: 0, ConfigStale: 0 })
    status.reloads = 2
    status.rejected = 1
    expect(next(false)).toEqual({ ConfigReloads: 2, ConfigRejected: 1, ConfigStale: 0 })
    expect(next(false)).toBeUndefined()
    // Stale: every report says so; the first one after it clears says 0, once.
    status.stale = true
    expect(next(false)).toEqual({ ConfigReloads: 0, ConfigRejected: 0, ConfigStale: 1 })
    expect(next(false)).toEqual({ ConfigReloads: 0, ConfigRejected: 0, ConfigStale: 1 })
    status.stale = false
    expect(next(false)).toEqual({ ConfigReloads: 0, ConfigRejected: 0, ConfigStale: 0 })
    expect(next(false)).toBeUndefined()
  })
})
