import { describe, expect, it } from 'vitest'
import type { AttemptEvent, RequestEvent } from '../../proxy-core/engine/types.ts'
import {
  encodeDaemonPacket,
  segmentForRequest,
  subsegmentForAttempt,
} from '../../proxy-core/telemetry/xray.ts'

const TRACE = '1-5759e988-bd862e3fe1be46a994272793'

function attempt(over: Partial<AttemptEvent> = {}): AttemptEvent {
  return {
    mesh: 'bookinfo',
    service: 'reviews',
    route: 'default',
    target: 'v2',
    endpoint: 'http://10.0.1.7:9080',
    attempt: 2,
    method: 'GET',
    url: 'http://reviews/reviews/0',
    status: 200,
    start: 1000.25,
    end: 1012.75,
    spanId: '70de5b6f19ff9a0a',
    trace: { traceId: TRACE, parentId: '53995c3f42cd8ad8', sampled: true },
    ...over,
  }
}

const opts = { epochOffsetMs: 1_480_615_200_000, parentId: '53995c3f42cd8ad8', traceId: TRACE }

describe('subsegmentForAttempt', () => {
  it('has the fields of an independently sent remote subsegment', () => {
    const doc = subsegmentForAttempt(attempt(), opts)
    expect(doc).toMatchObject({
      type: 'subsegment',
      namespace: 'remote',
      name: 'reviews',
      id: '70de5b6f19ff9a0a',
      parent_id: '53995c3f42cd8ad8',
      trace_id: TRACE,
      http: { request: { method: 'GET', url: 'http://reviews/reviews/0' }, response: { status: 200 } },
      annotations: { mesh: 'bookinfo', service: 'reviews', route: 'default', target: 'v2', attempt: 2 },
    })
    expect(doc).not.toHaveProperty('error')
    expect(doc).not.toHaveProperty('fault')
    expect(doc).not.toHaveProperty('throttle')
    expect(doc).not.toHaveProperty('in_progress')
  })

  it('writes times as epoch seconds with the fraction', () => {
    const doc = subsegmentForAttempt(attempt(), opts)
    expect(doc.start_time).toBeCloseTo(1_480_615_201.00025, 6)
    expect(doc.end_time).toBeCloseTo(1_480_615_201.01275, 6)
    expect(doc.end_time - doc.start_time).toBeCloseTo(0.0125, 6)
  })

  it('flags 4xx as error, 429 as throttle, 5xx and failures as fault', () => {
    const flags = (over: Partial<AttemptEvent>) => {
      const d = subsegmentForAttempt(attempt(over), opts)
      return { error: d.error ?? false, throttle: d.throttle ?? false, fault: d.fault ?? false }
    }
    expect(flags({ status: 404 })).toEqual({ error: true, throttle: false, fault: false })
    expect(flags({ status: 429 })).toEqual({ error: true, throttle: true, fault: false })
    expect(flags({ status: 503 })).toEqual({ error: false, throttle: false, fault: true })
    expect(flags({ status: undefined, failure: 'reset' })).toEqual({
      error: false,
      throttle: false,
      fault: true,
    })
    expect(flags({ status: undefined, failure: 'throttled' })).toEqual({
      error: true,
      throttle: true,
      fault: false,
    })
  })

  it('leaves out the response when there was none', () => {
    const doc = subsegmentForAttempt(attempt({ status: undefined, failure: 'timeout' }), opts)
    expect(doc.http.response).toBeUndefined()
    expect(doc.annotations.failure).toBe('timeout')
  })

  it('keeps names within the allowed characters', () => {
    const doc = subsegmentForAttempt(attempt({ service: 'rev<i>ews!' }), opts)
    expect(doc.name).toBe('rev_i_ews_')
  })
})

describe('segmentForRequest', () => {
  const req: RequestEvent = {
    mesh: 'bookinfo',
    service: 'ratings',
    route: 'default',
    target: 'v1',
    method: 'POST',
    path: '/ratings/0?x=1',
    status: 502,
    start: 50,
    end: 80,
    retries: 1,
    errorCode: 'upstream_unavailable',
  }

  it('is a top-level segment (no type field) with origin, http and annotations', () => {
    const doc = segmentForRequest(req, {
      epochOffsetMs: 1_480_615_200_000,
      id: '1234567890abcdef',
      traceId: TRACE,
      parentId: '53995c3f42cd8ad8',
      clientIp: '10.0.0.9',
    })
    expect(doc).not.toHaveProperty('type')
    expect(doc).not.toHaveProperty('namespace')
    expect(doc).toMatchObject({
      name: 'ratings',
      id: '1234567890abcdef',
      trace_id: TRACE,
      parent_id: '53995c3f42cd8ad8',
      origin: 'AWS::ECS::Container',
      fault: true,
      http: {
        request: { method: 'POST', url: 'http://ratings/ratings/0?x=1', client_ip: '10.0.0.9' },
        response: { status: 502 },
      },
      annotations: {
        mesh: 'bookinfo',
        service: 'ratings',
        route: 'default',
        target: 'v1',
        retries: 1,
        mesh_error: 'upstream_unavailable',
      },
    })
    expect(doc.start_time).toBeCloseTo(1_480_615_200.05, 6)
    expect(doc.end_time).toBeCloseTo(1_480_615_200.08, 6)
  })

  it('annotation keys are alphanumeric or underscore (filter expressions need that)', () => {
    const doc = segmentForRequest(
      { ...req, fault: 'abort' },
      { epochOffsetMs: 0, id: 'a'.repeat(16), traceId: TRACE },
    )
    for (const k of Object.keys(doc.annotations)) expect(k).toMatch(/^[A-Za-z0-9_]+$/)
    expect(doc).not.toHaveProperty('parent_id')
  })
})

describe('encodeDaemonPacket', () => {
  it('is the header line, a newline, then the JSON document', () => {
    const doc = subsegmentForAttempt(attempt(), opts)
    const packet = encodeDaemonPacket(doc)
    const nl = packet.indexOf('\n')
    expect(JSON.parse(packet.slice(0, nl))).toEqual({ format: 'json', version: 1 })
    expect(packet.slice(0, nl)).toBe('{"format":"json","version":1}')
    expect(JSON.parse(packet.slice(nl + 1))).toEqual(doc)
  })
})
