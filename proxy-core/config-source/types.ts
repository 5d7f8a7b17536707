// The shapes of a config source: where the mesh config comes from (a file, AWS AppConfig, S3) and what
// one read of it yields. A source only fetches bytes and says whether they changed; parsing, validation
// and the swap belong to live-config.ts, so every kind is refused or accepted by the same rules.

import type { Clock, Random, Timers } from '../engine/types.ts'

export const SourceKinds = {
  file: 'file',
  inline: 'inline',
  appconfig: 'appconfig',
  s3: 's3',
} as const
export type SourceKind = (typeof SourceKinds)[keyof typeof SourceKinds]

/** One version of the config, as the source holds it. */
export interface ConfigVersion {
  /** The document (YAML or JSON). */
  readonly text: string
  /**
   * The source's own name for this version: a file's content hash (`sha256:…`), AppConfig's version
   * label or Configuration-Version, S3's ETag.
   */
  readonly version: string
  /** What problems in this text are reported against (`FILE:LINE:COL`): a path or the source URL. */
  readonly name: string
}

export interface ConfigSource {
  readonly kind: SourceKind
  /** The source as the user wrote it (a path is made absolute), for logs and `/config`. */
  readonly url: string
  /**
   * Ask the source now: a version that differs from the last one this source returned, or undefined
   * when nothing changed. Rejects (SourceError) when the source cannot be reached or read.
   */
  check(): Promise<ConfigVersion | undefined>
  /**
   * Push notifications, for sources that have them (a file's directory watch): `onChange` is called
   * when a check is worth making now. Returns the unsubscribe function.
   */
  watch?(onChange: () => void): () => void
  /** The least delay before the next check that the source asks for (AppConfigData's poll interval). */
  minNextCheckMs?(): number | undefined
  close(): void
}

/** A source that could not be reached or read (not a bad document: that is a ConfigError). */
export class SourceError extends Error {
  readonly url: string
  /** The message without the URL in front. */
  readonly reason: string
  constructor(url: string, reason: string, options?: { cause?: unknown }) {
    super(`${url}: ${reason}`, options)
    this.name = 'SourceError'
    this.url = url
    this.reason = reason
  }
}

export interface SourceOptions {
  clock?: Clock
  timers?: Timers
  random?: Random
  /** Environment to read endpoints and overrides from; default `process.env`. */
  env?: Record<string, string | undefined>
  /** The poll interval in ms (AppConfigData's RequiredMinimumPollIntervalInSeconds follows it). */
  pollMs?: number
  /** File sources: how long an in-place write must stay unchanged before it is read, in ms. */
  settleMs?: number
  /** AppConfig: `agent` (the agent/extension only), `sdk` (AppConfigData only), or `auto` (default). */
  appConfigVia?: 'auto' | 'agent' | 'sdk'
  /** Log line sink for notices a source makes itself (which AppConfig path it took). */
  log?: (line: string) => void
}
