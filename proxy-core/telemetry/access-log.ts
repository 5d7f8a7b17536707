// One JSON access-log line per request (Envoy's access log, as JSON so CloudWatch Logs Insights can
// query the fields). Keys are stable; absent values are left out rather than written as null.

import type { RequestEvent } from '../engine/types.ts'

/**
 * `epochMs` is the wall-clock time the request ended (Date.now()); the event's own times are Clock
 * values and only give the duration. Returns the line without a trailing newline.
 */
export function formatAccessLog(ev: RequestEvent, epochMs: number): string {
  const when = new Date(epochMs)
  return JSON.stringify({
    // An invalid time must not cost the request its log line (toISOString throws on it).
    time: Number.isNaN(when.getTime()) ? undefined : when.toISOString(),
    type: 'access',
    traceId: ev.trace?.traceId,
    mesh: ev.mesh,
    service: ev.service,
    route: ev.route,
    target: ev.target,
    method: ev.method,
    path: ev.path,
    status: ev.status,
    // Microsecond resolution is plenty and keeps the line short.
    durationMs: Math.round((ev.end - ev.start) * 1000) / 1000,
    retries: ev.retries,
    fault: ev.fault,
    errorCode: ev.errorCode,
  })
}
