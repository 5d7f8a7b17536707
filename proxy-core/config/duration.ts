// Durations in the mesh file are strings with a unit (`250ms`, `2s`, `1m`, `1h`), as in Istio and
// Gateway API. Bare numbers are refused: `timeout: 5` is ambiguous between seconds and milliseconds.

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/

/** Milliseconds, or undefined when `text` is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text)
  if (!m) return undefined
  const ms = Number(m[1]) * (UNIT_MS[m[2]!] ?? Number.NaN)
  return Number.isFinite(ms) ? ms : undefined
}

/** The shortest exact string for a duration, for `meshgate routes` and `/config`. */
export function formatDuration(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}
