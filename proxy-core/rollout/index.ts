// Progressive delivery (docs/rollout.md): a `rollout` block on a route, a pure analysis of metric
// samples, readers for CloudWatch and Prometheus, and a controller whose every step is a published
// config version. The CLI (`meshgate rollout`), the scheduled function (functions/rollout) and
// `meshgate dev` use it through this file.
export {
  type AnalysisPolicy,
  analysisPolicy,
  analyze,
  type CheckResult,
  summarize,
  type TargetSeries,
  type Verdict,
  type WindowSummary,
} from './analysis.ts'
export { createCloudWatchReader } from './cloudwatch-reader.ts'
export * as rolloutCommand from './command.ts'
export {
  type Clock,
  createRolloutController,
  type RolloutController,
  type RolloutReport,
  reportOf,
  type TickResult,
} from './controller.ts'
export { createDevRollouts, type DevRolloutView } from './dev-rollouts.ts'
export { createRolloutHandler, type RolloutHandlerOptions } from './lambda-handler.ts'
export { createLiveStore, LiveConflictError, type LiveStore } from './live-store.ts'
export { createMetricReader, type MetricReader, type SeriesKey } from './metric-reader.ts'
export { createPrometheusQueryReader, createScrapeReader, parsePrometheusText } from './prometheus-reader.ts'
export { type DecisionEntry, ROLLOUT_DEFAULTS, type RolloutPhase, RolloutPhases } from './rollout-schema.ts'
export {
  abortRollout,
  advance,
  findRollouts,
  pauseRollout,
  RolloutError,
  type RolloutRef,
  startRollout,
} from './state.ts'
