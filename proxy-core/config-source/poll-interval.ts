// How often a runtime asks its source for a new version, and the jitter that keeps a fleet from asking
// in lockstep.

import { parseDuration } from '../config/duration.ts'
import type { Random } from '../engine/types.ts'

/** 45 s: AWS AppConfig's own default poll interval (the agent's and the Lambda extension's). */
export const DEFAULT_POLL_MS = 45_000
/**
 * ±10%: each wait is the interval times a uniform factor in [0.9, 1.1). A fleet started together
 * spreads out within a few polls instead of hitting the source in one burst every interval.
 */
export const POLL_JITTER = 0.1

/** `MESHGATE_CONFIG_POLL`: a duration (`45s`, `500ms`, `1m`) or bare seconds; undefined → default. */
export function parsePollInterval(text: string | undefined): number {
  if (text === undefined || text.trim() === '') return DEFAULT_POLL_MS
  const t = text.trim()
  const ms = /^\d+(\.\d+)?$/.test(t) ? Number(t) * 1000 : parseDuration(t)
  if (ms === undefined || !(ms > 0)) {
    throw new TypeError(`MESHGATE_CONFIG_POLL: not a positive duration: ${JSON.stringify(text)} (e.g. 45s)`)
  }
  return ms
}

/** The wait before the next check: the interval jittered, and never below what the source asks for. */
export function jitteredDelay(intervalMs: number, random: Random, minMs = 0): number {
  const jittered = intervalMs * (1 - POLL_JITTER + 2 * POLL_JITTER * random())
  return Math.max(minMs, Math.round(jittered))
}
