// X-Ray in the sidecar. Outbound: the app's trace header names its own segment, so each upstream
// attempt becomes a subsegment under it, sent as it ends; when the app sent no trace, the sidecar
// starts one and writes the segment for the whole call itself, with its attempts embedded: one
// datagram per sampled call instead of one per attempt plus one for the segment. Inbound: one
// segment per request for this service, whose id goes to the app as the Parent of its own work.

import type { Clock, HeaderMap, Random, RequestEvent, TelemetrySink, TraceContext } from '../engine/types.ts'
import type { Sampler, SamplerConfig } from '../telemetry/sampler.ts'
import { createSampler } from '../telemetry/sampler.ts'
import { newSpanId, newTraceId, parseTraceHeaders, writeTraceHeaders } from '../telemetry/trace-context.ts'
import {
  remoteCallForAttempt,
  segmentForRequest,
  subsegmentForAttempt,
  type XRayRemoteCall,
} from '../telemetry/xray.ts'
import type { XRayEmitter } from '../telemetry/xray-emitter.ts'

/**
 * Attempts are embedded in their segment while the URLs so far total at most this many characters;
 * later ones go on their own. A segment document may be 64 KB; a URL may be nearly 16 KiB (the
 * request head's limit) and a route may try 11 times.
 */
const EMBEDDED_URL_CHARS = 24 * 1024

/** The attempts of a sampled call whose segment the sidecar writes, gathered until the call ends. */
interface OwnedCall {
  calls: XRayRemoteCall[]
  urlChars: number
  /**
   * One epoch offset for the segment and everything in it: Date.now() moves in whole milliseconds,
   * and offsets taken at each attempt and at the end could place an attempt past its segment's end.
   */
  epochOffsetMs: number
}

export interface SidecarTracingOptions {
  /** This sidecar's service: the name of the segments it writes. */
  service: string
  emitter: XRayEmitter | undefined
  clock: Clock
  random: Random
  /** `AWS::ECS::Container` or `AWS::EKS::Container`. */
  origin: string
}

export interface InboundTrace {
  trace: TraceContext
  /** The segment the sidecar writes for this request. */
  segmentId: string
}

export interface SidecarTracing {
  /** New sampling rule (the mesh config's `tracing.sampling`), applied from the next request. */
  configure(sampling: SamplerConfig): void
  /** The trace for an outbound call: the app's, or a new one the sidecar owns. Undefined: let the runtime decide. */
  outbound(headers: HeaderMap): TraceContext | undefined
  /** Starts an inbound request's trace and writes the headers the app will see. */
  inbound(headers: HeaderMap): InboundTrace
  /** Sends the inbound segment once the response is done. */
  finishInbound(ev: RequestEvent, t: InboundTrace, extra: { clientIp?: string; userAgent?: string }): void
  /** Attempt subsegments, and the segments of outbound calls the sidecar started. */
  readonly sink: TelemetrySink
}

export function createSidecarTracing(opts: SidecarTracingOptions): SidecarTracing {
  const { emitter, clock, random } = opts
  let sampler: Sampler = createSampler({ reservoirPerSecond: 1, rate: 5 }, clock, random)
  // Sampled outbound traces whose segment is ours to write (the app sent no trace header), with the
  // attempts made so far, embedded in the segment when the call ends.
  const owned = new WeakMap<TraceContext, OwnedCall>()
  // Clock values are performance.now(); X-Ray wants epoch time.
  const epochOffset = (): number => Date.now() - clock.now()

  return {
    configure(sampling) {
      sampler = createSampler(sampling, clock, random)
    },
    outbound(headers) {
      // The app's own trace context, parsed once here and handed to the runtime as it is.
      const caller = parseTraceHeaders(headers)
      if (caller !== undefined || emitter === undefined) return caller
      const trace: TraceContext = {
        traceId: newTraceId(Date.now(), random),
        parentId: newSpanId(random),
        sampled: sampler.sample(),
      }
      if (trace.sampled) owned.set(trace, { calls: [], urlChars: 0, epochOffsetMs: epochOffset() })
      return trace
    },
    inbound(headers) {
      const caller = parseTraceHeaders(headers)
      const trace: TraceContext = caller ?? { traceId: newTraceId(Date.now(), random) }
      if (trace.sampled === undefined) trace.sampled = sampler.sample()
      const segmentId = newSpanId(random)
      writeTraceHeaders(headers, trace, segmentId)
      return { trace, segmentId }
    },
    finishInbound(ev, t, extra) {
      if (emitter === undefined || t.trace.sampled !== true) return
      const doc = segmentForRequest(ev, {
        epochOffsetMs: epochOffset(),
        id: t.segmentId,
        traceId: t.trace.traceId,
        origin: opts.origin,
        ...(t.trace.parentId === undefined ? {} : { parentId: t.trace.parentId }),
        ...(extra.clientIp === undefined ? {} : { clientIp: extra.clientIp }),
        ...(extra.userAgent === undefined ? {} : { userAgent: extra.userAgent }),
      })
      emitter.send(doc)
    },
    sink: {
      attempt(ev) {
        if (emitter === undefined || ev.trace.sampled !== true || ev.trace.parentId === undefined) return
        const own = owned.get(ev.trace)
        if (own !== undefined) {
          own.urlChars += ev.url.length
          if (own.urlChars <= EMBEDDED_URL_CHARS) {
            own.calls.push(remoteCallForAttempt(ev, own.epochOffsetMs))
            return
          }
        }
        emitter.send(
          subsegmentForAttempt(ev, {
            epochOffsetMs: own?.epochOffsetMs ?? epochOffset(),
            parentId: ev.trace.parentId,
            traceId: ev.trace.traceId,
          }),
        )
      },
      request(ev) {
        const trace = ev.trace
        // Only sampled traces are ever owned: unsampled requests skip the lookup.
        if (emitter === undefined || trace?.sampled !== true || trace.parentId === undefined) return
        const own = owned.get(trace)
        if (own === undefined) return
        const segment = segmentForRequest(ev, {
          epochOffsetMs: own.epochOffsetMs,
          id: trace.parentId,
          traceId: trace.traceId,
          origin: opts.origin,
          name: opts.service,
        })
        if (own.calls.length > 0) segment.subsegments = own.calls
        emitter.send(segment)
      },
    },
  }
}
