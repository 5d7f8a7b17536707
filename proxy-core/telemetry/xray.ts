// X-Ray segment documents, built by hand (the daemon's format is small and stable; the X-Ray SDK costs
// 25–36 ms of Lambda init). Field names and units follow the "AWS X-Ray segment documents" reference:
// times are epoch SECONDS as floats, ids 16 hex digits, `type: 'subsegment'` only on a subsegment sent
// on its own, `namespace: 'remote'` for calls to HTTP services, error = 4xx, throttle = 429, fault = 5xx.

import type { AttemptEvent, RequestEvent } from '../engine/types.ts'

export interface XRayHttp {
  request: { method: string; url: string; client_ip?: string; user_agent?: string; x_forwarded_for?: boolean }
  response?: { status: number }
}

/** Annotation values are indexed for filter expressions: strings, numbers or booleans only. */
export type XRayAnnotations = Record<string, string | number | boolean>

interface XRayDocBase {
  name: string
  id: string
  start_time: number
  end_time: number
  http: XRayHttp
  error?: true
  fault?: true
  throttle?: true
  annotations: XRayAnnotations
  metadata?: Record<string, Record<string, unknown>>
}

/** An upstream attempt as a subsegment embedded in its segment's `subsegments`. */
export interface XRayRemoteCall extends XRayDocBase {
  namespace: 'remote'
}

/** An upstream attempt as a subsegment sent on its own: it names its trace and parent itself. */
export interface XRaySubsegment extends XRayRemoteCall {
  type: 'subsegment'
  trace_id: string
  parent_id: string
}

export interface XRaySegment extends XRayDocBase {
  trace_id: string
  parent_id?: string
  /** e.g. AWS::ECS::Container, AWS::EKS::Container, AWS::EC2::Instance. */
  origin?: string
  subsegments?: XRayRemoteCall[]
}

/** The header line every daemon datagram starts with. */
const DAEMON_HEADER = '{"format":"json","version":1}\n'
/** Segment names: at most 200 characters of letters, digits, spaces and `_.:/%&#=+\-@`. */
const NAME_FORBIDDEN = /[^\p{L}\p{N}\s_.:/%&#=+\\\-@]/gu
const MAX_NAME = 200
/** String annotation values: at most 1000 characters. */
const MAX_ANNOTATION = 1000

function xrayName(name: string): string {
  const clean = name.replace(NAME_FORBIDDEN, '_').slice(0, MAX_NAME)
  return clean.length > 0 ? clean : 'unknown'
}

function text(value: string): string {
  return value.length > MAX_ANNOTATION ? value.slice(0, MAX_ANNOTATION) : value
}

/** Clock.now() milliseconds + offset → epoch seconds with the fraction (microsecond precision). */
function epochSeconds(clockMs: number, epochOffsetMs: number): number {
  return Math.round((clockMs + epochOffsetMs) * 1000) / 1_000_000
}

/** Sets error/throttle/fault the way the X-Ray SDKs do: 429 is both an error and a throttle. */
function flag(doc: XRayDocBase, status: number | undefined, failure: string | undefined): void {
  if (failure === 'throttled' || status === 429) {
    doc.error = true
    doc.throttle = true
  } else if (failure !== undefined || (status !== undefined && status >= 500)) {
    doc.fault = true
  } else if (status !== undefined && status >= 400) {
    doc.error = true
  }
}

/**
 * One upstream attempt as a subsegment to embed in its segment. `epochOffsetMs` turns the event's
 * Clock.now() values into epoch milliseconds (Date.now() - performance.now()). A failure with no
 * response (connect failure, reset, timeout) is a fault, except throttling (a throttle and an error,
 * like a 429).
 */
export function remoteCallForAttempt(ev: AttemptEvent, epochOffsetMs: number): XRayRemoteCall {
  const http: XRayHttp = { request: { method: ev.method, url: ev.url } }
  if (ev.status !== undefined) http.response = { status: ev.status }
  const annotations: XRayAnnotations = {
    mesh: text(ev.mesh),
    service: text(ev.service),
    route: text(ev.route),
    target: text(ev.target),
    attempt: ev.attempt,
  }
  if (ev.failure !== undefined) annotations.failure = ev.failure
  const doc: XRayRemoteCall = {
    namespace: 'remote',
    // The name becomes the node of the called service on the trace map.
    name: xrayName(ev.service),
    id: ev.spanId,
    start_time: epochSeconds(ev.start, epochOffsetMs),
    end_time: epochSeconds(ev.end, epochOffsetMs),
    http,
    annotations,
    metadata: { meshgate: { endpoint: ev.endpoint } },
  }
  flag(doc, ev.status, ev.failure)
  return doc
}

/**
 * One upstream attempt as an independent subsegment. `parentId` is the segment (or, in Lambda, the
 * function's facade segment, `Parent` of `_X_AMZN_TRACE_ID`) the attempt belongs to.
 */
export function subsegmentForAttempt(
  ev: AttemptEvent,
  opts: { epochOffsetMs: number; parentId: string; traceId: string },
): XRaySubsegment {
  return {
    type: 'subsegment',
    trace_id: opts.traceId,
    parent_id: opts.parentId,
    ...remoteCallForAttempt(ev, opts.epochOffsetMs),
  }
}

export interface SegmentOptions {
  epochOffsetMs: number
  /** This segment's id (16 hex), the Parent the sidecar propagates to the app. */
  id: string
  traceId: string
  /** The caller's span, from the inbound trace header. */
  parentId?: string
  /** Default `AWS::ECS::Container`; `AWS::EKS::Container` in a pod. */
  origin?: string
  /** Default: the service. */
  name?: string
  /** Full URL of the request; default `http://<service><path>`. */
  url?: string
  clientIp?: string
  /** true when `clientIp` came from X-Forwarded-For rather than the socket. */
  forwarded?: boolean
  userAgent?: string
}

/** A complete segment for an inbound request the sidecar received and answered. */
export function segmentForRequest(ev: RequestEvent, opts: SegmentOptions): XRaySegment {
  const request: XRayHttp['request'] = {
    method: ev.method,
    url: opts.url ?? `http://${ev.service}${ev.path}`,
  }
  if (opts.clientIp !== undefined) request.client_ip = opts.clientIp
  if (opts.forwarded === true) request.x_forwarded_for = true
  if (opts.userAgent !== undefined) request.user_agent = text(opts.userAgent)
  const annotations: XRayAnnotations = { mesh: text(ev.mesh), service: text(ev.service) }
  if (ev.route !== undefined) annotations.route = text(ev.route)
  if (ev.target !== undefined) annotations.target = text(ev.target)
  if (ev.retries > 0) annotations.retries = ev.retries
  if (ev.fault !== undefined) annotations.fault_injected = ev.fault
  if (ev.errorCode !== undefined) annotations.mesh_error = ev.errorCode
  const doc: XRaySegment = {
    name: xrayName(opts.name ?? ev.service),
    id: opts.id,
    trace_id: opts.traceId,
    start_time: epochSeconds(ev.start, opts.epochOffsetMs),
    end_time: epochSeconds(ev.end, opts.epochOffsetMs),
    origin: opts.origin ?? 'AWS::ECS::Container',
    http: { request, response: { status: ev.status } },
    annotations,
  }
  if (opts.parentId !== undefined) doc.parent_id = opts.parentId
  flag(doc, ev.status, undefined)
  return doc
}

/** One daemon datagram: the format header line, a newline, then the document. */
export function encodeDaemonPacket(doc: object): string {
  return DAEMON_HEADER + JSON.stringify(doc)
}
