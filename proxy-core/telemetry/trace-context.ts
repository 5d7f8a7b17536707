// Trace context in and out: AWS X-Ray's `X-Amzn-Trace-Id` and W3C `traceparent`. Pure string work, no
// runtime package: this runs on every request in Lambda and the sidecar.
//
// X-Ray:  Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1
// W3C:    00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01
// The 32 hex digits of a W3C trace id are the X-Ray id without its version and dashes: the first 8 are
// the epoch seconds, the other 24 the random part. Both directions are lossless.

import type { HeaderMap, Random, TraceContext } from '../engine/types.ts'

const XRAY_ROOT = /^1-[0-9a-f]{8}-[0-9a-f]{24}$/
const HEX16 = /^[0-9a-f]{16}$/
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZERO16 = '0000000000000000'
const ZERO32 = '00000000000000000000000000000000'
/** Longer headers are refused outright: a bound on the work an attacker can ask for. */
const MAX_HEADER = 2048

function headerValue(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name]
  if (typeof v === 'string') return v
  // Repeated header: the first one wins (a proxy in front may have appended its own).
  if (Array.isArray(v)) return v[0]
  return undefined
}

/**
 * Parse the value of `X-Amzn-Trace-Id` (or `_X_AMZN_TRACE_ID` in Lambda). Keys are case-insensitive and
 * may carry spaces around `;` and `=`; unknown keys (`Self`, `Lineage`) are ignored. No valid Root:
 * undefined. `Sampled=?` (the caller asks the receiver to decide) and a missing Sampled leave
 * `sampled` undefined.
 */
export function parseXRayTraceId(envValue: string): TraceContext | undefined {
  if (typeof envValue !== 'string' || envValue.length === 0 || envValue.length > MAX_HEADER) return undefined
  let traceId: string | undefined
  let parentId: string | undefined
  let sampled: boolean | undefined
  for (const part of envValue.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const key = part.slice(0, eq).trim().toLowerCase()
    const value = part.slice(eq + 1).trim()
    if (key === 'root') {
      const root = value.toLowerCase()
      if (!XRAY_ROOT.test(root)) return undefined
      traceId = root
    } else if (key === 'parent') {
      const parent = value.toLowerCase()
      // A malformed Parent does not void the trace: keep the Root, drop the parent.
      if (HEX16.test(parent) && parent !== ZERO16) parentId = parent
    } else if (key === 'sampled') {
      if (value === '1') sampled = true
      else if (value === '0') sampled = false
    }
  }
  if (traceId === undefined) return undefined
  const ctx: TraceContext = { traceId }
  if (parentId !== undefined) ctx.parentId = parentId
  if (sampled !== undefined) ctx.sampled = sampled
  return ctx
}

/** W3C trace-context level 1 `traceparent`; version ff and all-zero ids are invalid (spec §3.2). */
function parseTraceparent(value: string): TraceContext | undefined {
  if (value.length > MAX_HEADER) return undefined
  const m = TRACEPARENT.exec(value.trim())
  if (m === null) return undefined
  const [, version, trace, parent, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ]
  if (version === 'ff') return undefined
  // Version 00 has exactly four fields; later versions may append more after a dash.
  if (version === '00' && rest !== undefined) return undefined
  if (trace === ZERO32 || parent === ZERO16) return undefined
  return {
    traceId: `1-${trace.slice(0, 8)}-${trace.slice(8)}`,
    parentId: parent,
    sampled: (Number.parseInt(flags, 16) & 1) === 1,
  }
}

/**
 * The caller's trace context from request headers (lower-case names): `x-amzn-trace-id` first, then
 * W3C `traceparent`. Malformed values give undefined; this never throws.
 */
export function parseTraceHeaders(headers: HeaderMap): TraceContext | undefined {
  try {
    const amzn = headerValue(headers, 'x-amzn-trace-id')
    if (amzn !== undefined) {
      const ctx = parseXRayTraceId(amzn)
      if (ctx !== undefined) return ctx
    }
    const tp = headerValue(headers, 'traceparent')
    if (tp !== undefined) return parseTraceparent(tp)
    return undefined
  } catch {
    return undefined
  }
}

/** Two hex digits for every byte value: four lookups make an id's 8 digits without number formatting. */
const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** 8 hex digits from one draw of `random` (32 of its 53 bits). */
function hex8(random: Random): string {
  const n = (random() * 0x1_0000_0000) >>> 0
  return HEX[n >>> 24]! + HEX[(n >>> 16) & 0xff]! + HEX[(n >>> 8) & 0xff]! + HEX[n & 0xff]!
}

/** A new X-Ray trace id: `1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>`. */
export function newTraceId(epochMs: number, random: Random): string {
  const seconds = (Math.floor(epochMs / 1000) >>> 0).toString(16).padStart(8, '0')
  return `1-${seconds}-${hex8(random)}${hex8(random)}${hex8(random)}`
}

/** A new 64-bit span / segment id, 16 hex digits, never all zeros (W3C forbids it). */
export function newSpanId(random: Random): string {
  const id = hex8(random) + hex8(random)
  return id === ZERO16 ? '0000000000000001' : id
}

/**
 * Propagate `trace` to the next hop with `spanId` (the subsegment of this attempt) as the parent, in both
 * formats. An undecided trace (`sampled` undefined) goes out as not sampled: by now the sampler has run.
 */
export function writeTraceHeaders(headers: HeaderMap, trace: TraceContext, spanId: string): void {
  const sampled = trace.sampled === true
  headers['x-amzn-trace-id'] = `Root=${trace.traceId};Parent=${spanId};Sampled=${sampled ? '1' : '0'}`
  // X-Ray ids are 1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy: strip the version and the dashes.
  const w3c = trace.traceId.slice(2, 10) + trace.traceId.slice(11)
  headers.traceparent = `00-${w3c}-${spanId}-${sampled ? '01' : '00'}`
}
