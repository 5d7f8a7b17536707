// A source turned into the config a runtime serves: the first version loads before anything serves
// (and a source that cannot be read then fails fast, naming its URL); each later version is built
// (parsed, validated, compiled) off to the side and swapped in whole, or refused with the reason while
// the last good one keeps serving. Checks never overlap; a request for one while one runs is folded
// into a single rerun.
//
// Two schedules:
//  timer      (sidecar, `meshgate dev`) a jittered timer, plus the source's own notifications.
//  on-demand  (Lambda) `checkIfDue()` starts a check in the background when the interval has passed
//             and returns at once: the invocation that triggers it never waits for the network; the
//             next one routes by what it found. A frozen container does not poll.
//
// Staleness: STALE_AFTER_MISSED_CHECKS checks in a row that could not reach the source make the config
// `stale` (shown on /config and as the config_stale metric). It keeps serving; the first check that
// reaches the source again clears it.

import type { Clock, Random, Timers } from '../engine/types.ts'
import { systemClock, systemRandom, systemTimers } from '../engine/types.ts'
import { DEFAULT_POLL_MS, jitteredDelay } from './poll-interval.ts'
import type { ConfigSource, ConfigVersion } from './types.ts'
import { SourceError } from './types.ts'

/** 3 missed checks (2¼ minutes at the 45 s default) before the config is reported stale. */
export const STALE_AFTER_MISSED_CHECKS = 3

export interface LiveConfigStatus {
  /** The source URL (a file's absolute path). */
  source: string
  kind: string
  /** The version serving now. */
  version: string
  /** When that version swapped in (ISO 8601). */
  loadedAt: string
  /** When the source was last asked, whatever the answer (ISO 8601). */
  lastCheck: string
  /** Why the last check failed, or why the newest version was refused; null when neither. */
  lastError: string | null
  /** The source could not be reached for STALE_AFTER_MISSED_CHECKS checks in a row. */
  stale: boolean
  missedChecks: number
  /** Versions swapped in after the first. */
  reloads: number
  /** Versions refused. */
  rejected: number
  /** The refused version, while it is the newest the source has. */
  rejectedVersion: string | null
}

export interface LiveConfigOptions<T> {
  source: ConfigSource
  /** Parse, validate and compile one version; throw to refuse it (the message says why). */
  build(version: ConfigVersion, previous: T | undefined): Promise<T>
  /** Called after each swap (not the first load), with what served before. */
  onSwap?(next: T, previous: T, version: ConfigVersion): void
  /** Notice lines (reloads, refusals, staleness). */
  log?(line: string): void
  schedule?: 'timer' | 'on-demand'
  /** The poll interval in ms; default 45 s (DEFAULT_POLL_MS). */
  pollMs?: number
  clock?: Clock
  timers?: Timers
  random?: Random
  /** Epoch ms for the ISO times in the status. */
  epochNow?: () => number
}

export interface LiveConfig<T> {
  /** What serves now. A request takes it once and finishes on it. */
  current(): T
  status(): LiveConfigStatus
  /** Ask the source now (SIGHUP, a file event); resolves true when a new version swapped in. */
  checkNow(): Promise<boolean>
  /** On-demand schedule: start a background check if the interval has passed. Never waits. */
  checkIfDue(): void
  /** Resolves when no check is running (tests, shutdown). */
  idle(): Promise<void>
  close(): void
}

function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n').join('; ')
}

export async function createLiveConfig<T>(opts: LiveConfigOptions<T>): Promise<LiveConfig<T>> {
  const { source } = opts
  const clock = opts.clock ?? systemClock
  const timers = opts.timers ?? systemTimers
  const random = opts.random ?? systemRandom
  const epochNow = opts.epochNow ?? Date.now
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS
  const log = opts.log ?? (() => {})
  const iso = () => new Date(epochNow()).toISOString()

  // First load: no fallback exists yet, so every failure is the caller's.
  let first: ConfigVersion | undefined
  try {
    first = await source.check()
  } catch (err) {
    source.close()
    if (err instanceof SourceError)
      throw new SourceError(source.url, `cannot read the mesh config: ${err.reason}`, { cause: err })
    throw err
  }
  if (first === undefined) {
    source.close()
    throw new SourceError(source.url, 'the source returned no config')
  }
  let value: T
  try {
    value = await opts.build(first, undefined)
  } catch (err) {
    source.close()
    throw err
  }
  let version = first.version
  let loadedAt = iso()
  let lastCheck = loadedAt
  let sourceError: string | null = null
  let rejection: { version: string; error: string } | null = null
  let missed = 0
  let reloads = 0
  let rejected = 0
  let closed = false

  async function checkOnce(): Promise<boolean> {
    lastCheck = iso()
    let next: ConfigVersion | undefined
    try {
      next = await source.check()
    } catch (err) {
      missed++
      sourceError = message(err)
      if (missed === 1) log(`config source unreachable, still serving version ${version}: ${sourceError}`)
      if (missed === STALE_AFTER_MISSED_CHECKS)
        log(
          `config is stale: ${missed} checks in a row could not reach ${source.url}; still serving version ${version}`,
        )
      return false
    }
    if (missed > 0) log(`config source reachable again after ${missed} missed checks: ${source.url}`)
    missed = 0
    sourceError = null
    if (next === undefined || closed) return false
    let built: T
    try {
      built = await opts.build(next, value)
    } catch (err) {
      rejected++
      rejection = { version: next.version, error: message(err) }
      log(
        `config reload refused (version ${next.version} from ${source.url}), still serving version ${version}: ${rejection.error}`,
      )
      return false
    }
    if (closed) return false
    const previous = value
    value = built
    version = next.version
    loadedAt = iso()
    rejection = null
    reloads++
    log(`config reloaded: version ${version} from ${source.url}`)
    opts.onSwap?.(built, previous, next)
    return true
  }

  // One check at a time; asks during a check fold into one rerun after it.
  let running: Promise<boolean> | undefined
  let again = false
  function checkNow(): Promise<boolean> {
    if (running !== undefined) {
      again = true
      return running
    }
    running = (async () => {
      let swapped = false
      do {
        again = false
        if (await checkOnce()) swapped = true
      } while (again && !closed)
      running = undefined
      afterCheck()
      return swapped
    })()
    return running
  }

  const schedule = opts.schedule ?? 'timer'
  let timer: unknown
  let dueAt = clock.now() + jitteredDelay(pollMs, random)
  function nextDelay(): number {
    return jitteredDelay(pollMs, random, source.minNextCheckMs?.() ?? 0)
  }
  function afterCheck(): void {
    if (closed) return
    if (schedule === 'on-demand') {
      dueAt = clock.now() + nextDelay()
      return
    }
    timers.clear(timer)
    timer = timers.set(() => void checkNow(), nextDelay())
  }

  let unwatch: (() => void) | undefined
  if (schedule === 'timer') {
    timer = timers.set(() => void checkNow(), nextDelay())
    unwatch = source.watch?.(() => void checkNow())
  }

  return {
    current: () => value,
    status: () => ({
      source: source.url,
      kind: source.kind,
      version,
      loadedAt,
      lastCheck,
      lastError: sourceError ?? rejection?.error ?? null,
      stale: missed >= STALE_AFTER_MISSED_CHECKS,
      missedChecks: missed,
      reloads,
      rejected,
      rejectedVersion: rejection?.version ?? null,
    }),
    checkNow,
    checkIfDue() {
      if (closed || running !== undefined || clock.now() < dueAt) return
      void checkNow()
    },
    async idle() {
      while (running !== undefined) await running
    },
    close() {
      closed = true
      timers.clear(timer)
      unwatch?.()
      source.close()
    },
  }
}
