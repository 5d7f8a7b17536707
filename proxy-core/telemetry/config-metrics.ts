// The live config's counters as metric values (DESIGN "Live config": config_reloads, config_rejected,
// config_stale), for the outputs that want deltas: Lambda's EMF line and the sidecar's PutMetricData.
// Prometheus reads the totals straight from the config status (sidecar/admin.ts).
//
//   meaning                                          CloudWatch / EMF   Prometheus
//   versions swapped in after the first               ConfigReloads      meshgate_config_reloads_total
//   versions refused, the last good one kept          ConfigRejected     meshgate_config_rejected_total
//   1 while the source has missed several checks      ConfigStale        meshgate_config_stale

export const ConfigMetricNames = {
  reloads: 'ConfigReloads',
  rejected: 'ConfigRejected',
  stale: 'ConfigStale',
} as const

/** The part of a live config's status the counters come from (LiveConfigStatus has it). */
export interface ConfigCounts {
  reloads: number
  rejected: number
  stale: boolean
}

/**
 * A reader of the counters since its previous report. `writing` says whether the caller sends a
 * report anyway (it had other metrics): then the counters always come along. Otherwise they come only
 * when there is news: a version swapped in or refused, the config is stale, or it just stopped being
 * stale (one report of 0). Undefined means nothing to report.
 */
export function createConfigMetrics(
  status: () => ConfigCounts,
): (writing: boolean) => Record<string, number> | undefined {
  let reported: ConfigCounts = { reloads: 0, rejected: 0, stale: false }
  return (writing) => {
    const now = status()
    const reloads = now.reloads - reported.reloads
    const rejected = now.rejected - reported.rejected
    if (!writing && reloads === 0 && rejected === 0 && !now.stale && !reported.stale) return undefined
    reported = { reloads: now.reloads, rejected: now.rejected, stale: now.stale }
    return {
      [ConfigMetricNames.reloads]: reloads,
      [ConfigMetricNames.rejected]: rejected,
      [ConfigMetricNames.stale]: now.stale ? 1 : 0,
    }
  }
}
