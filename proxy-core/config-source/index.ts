// Config sources: one URL names where a runtime reads its mesh config, and the same rules apply to
// every kind (DESIGN "Live config"):
//
//   a path or inline JSON          file-source.ts       watched; only complete files are read
//   appconfig://APP/ENV/PROFILE    appconfig-source.ts  the AppConfig agent/extension, else AppConfigData
//   s3://BUCKET/KEY                s3-source.ts         GetObject with If-None-Match
//
// `createLiveConfig` (live-config.ts) turns a source into a current, validated config: first load
// fails fast, later versions are built before an atomic swap, a bad one is refused and counted.
// The AWS SDK clients load lazily, only for the kind that needs them.

import { createAppConfigSource, parseAppConfigUrl } from './appconfig-source.ts'
import { createFileSource, createInlineSource } from './file-source.ts'
import { createS3Source, parseS3Url } from './s3-source.ts'
import type { ConfigSource, SourceOptions } from './types.ts'

export type { LiveConfig, LiveConfigOptions, LiveConfigStatus } from './live-config.ts'
export { createLiveConfig, STALE_AFTER_MISSED_CHECKS } from './live-config.ts'
export { DEFAULT_POLL_MS, jitteredDelay, parsePollInterval } from './poll-interval.ts'
export type { ConfigSource, ConfigVersion, SourceKind, SourceOptions } from './types.ts'
export { SourceError, SourceKinds } from './types.ts'

/** True when `text` names a remote source (not a path or inline JSON). */
export function isSourceUrl(text: string): boolean {
  return /^(appconfig|s3):\/\//i.test(text.trim())
}

/**
 * The source a `--config` / `MESHGATE_CONFIG` value names: `appconfig://…`, `s3://…`, inline JSON
 * (starts with `{`), else a file path (relative to the working directory). Throws a SourceError for a
 * malformed URL; reaching the source happens on its first check.
 */
export function openConfigSource(text: string, opts: SourceOptions = {}): ConfigSource {
  const value = text.trim()
  if (/^appconfig:\/\//i.test(value)) return createAppConfigSource(parseAppConfigUrl(value), opts)
  if (/^s3:\/\//i.test(value)) return createS3Source(parseS3Url(value), opts)
  if (value.startsWith('{')) return createInlineSource(value)
  return createFileSource(value, opts)
}
