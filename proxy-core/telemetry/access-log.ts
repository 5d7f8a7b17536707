// One JSON access-log line per request (Envoy's access log, as JSON so CloudWatch Logs Insights can
// query the fields). Keys are stable; absent values are left out rather than written as null.
//
// Written out by hand rather than through JSON.stringify of an object: the sidecar writes one line per
// request, and building the object, its ISO time and the generic serialisation cost several times
// what appending the few fields does. Strings that need escaping still go through JSON.stringify.

import type { RequestEvent } from '../engine/types.ts'

/** Characters a JSON string cannot hold as they are (RFC 8259 §7), plus lone surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

function str(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`
}

/**
 * Bounds, in UTF-16 units, of the values a client chooses (metrics put them in one `unknown` bucket;
 * the log keeps them, but a 60 KB Host or path must not make every line that long). 253: the longest
 * DNS name, so a real host is never cut; 2048: a path as long as browsers and CDNs commonly allow; 32:
 * longer than any registered method.
 */
export const ACCESS_LOG_BOUNDS = { service: 253, path: 2048, method: 32 } as const
/** What a cut value ends with, so nobody mistakes it for the whole. */
const CUT = '…'

function bounded(value: string, max: number): string {
  return value.length <= max ? value : value.slice(0, max) + CUT
}

// The ISO time of the last millisecond formatted: at thousands of lines a second many share it.
let lastMs = Number.NaN
let lastIso = ''

function isoTime(epochMs: number): string | undefined {
  if (epochMs !== lastMs) {
    const when = new Date(epochMs)
    // An invalid time must not cost the request its log line (toISOString throws on it).
    if (Number.isNaN(when.getTime())) return undefined
    lastMs = epochMs
    lastIso = when.toISOString()
  }
  return lastIso
}

/**
 * `epochMs` is the wall-clock time the request ended (Date.now()); the event's own times are Clock
 * values and only give the duration. Returns the line without a trailing newline.
 */
export function formatAccessLog(ev: RequestEvent, epochMs: number): string {
  const time = isoTime(epochMs)
  let line = time === undefined ? '{"type":"access"' : `{"time":"${time}","type":"access"`
  if (ev.trace !== undefined) line += `,"traceId":${str(ev.trace.traceId)}`
  line += `,"mesh":${str(ev.mesh)},"service":${str(bounded(ev.service, ACCESS_LOG_BOUNDS.service))}`
  if (ev.route !== undefined) line += `,"route":${str(ev.route)}`
  if (ev.target !== undefined) line += `,"target":${str(ev.target)}`
  // Microsecond resolution is plenty and keeps the line short.
  const duration = Math.round((ev.end - ev.start) * 1000) / 1000
  line += `,"method":${str(bounded(ev.method, ACCESS_LOG_BOUNDS.method))}`
  line += `,"path":${str(bounded(ev.path, ACCESS_LOG_BOUNDS.path))},"status":${ev.status}`
  line += `,"durationMs":${Number.isFinite(duration) ? duration : null},"retries":${ev.retries}`
  if (ev.fault !== undefined) line += `,"fault":${str(ev.fault)}`
  if (ev.errorCode !== undefined) line += `,"errorCode":${str(ev.errorCode)}`
  if (ev.grpcStatus !== undefined) line += `,"grpcStatus":${ev.grpcStatus}`
  // The caller comes from a verified token (or is `anonymous`); bounded like a path all the same.
  if (ev.caller !== undefined) line += `,"caller":${str(bounded(ev.caller, ACCESS_LOG_BOUNDS.path))}`
  if (ev.rule !== undefined) line += `,"rule":${str(bounded(ev.rule, ACCESS_LOG_BOUNDS.service))}`
  return `${line}}`
}
