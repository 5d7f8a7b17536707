import { describe, expect, it } from 'vitest'
import type { RequestEvent } from '../../proxy-core/engine/types.ts'
import { formatAccessLog } from '../../proxy-core/telemetry/access-log.ts'

const ev: RequestEvent = {
  mesh: 'bookinfo',
  service: 'reviews',
  route: 'jason',
  target: 'v2',
  method: 'GET',
  path: '/reviews/0?x="1"',
  status: 504,
  start: 1000,
  end: 1250.1234567,
  retries: 2,
  errorCode: 'timeout',
  trace: { traceId: '1-5759e988-bd862e3fe1be46a994272793', sampled: true },
}

describe('formatAccessLog', () => {
  it('is one JSON line with the request fields', () => {
    const line = formatAccessLog(ev, Date.UTC(2026, 0, 2, 3, 4, 5, 678))
    expect(line).not.toContain('\n')
    expect(JSON.parse(line)).toEqual({
      time: '2026-01-02T03:04:05.678Z',
      type: 'access',
      traceId: '1-5759e988-bd862e3fe1be46a994272793',
      mesh: 'bookinfo',
      service: 'reviews',
      route: 'jason',
      target: 'v2',
      method: 'GET',
      path: '/reviews/0?x="1"',
      status: 504,
      durationMs: 250.123,
      retries: 2,
      errorCode: 'timeout',
    })
  })

  it('carries the gRPC status of a gRPC call', () => {
    const doc = JSON.parse(
      formatAccessLog({ ...ev, status: 200, errorCode: undefined, grpc: true, grpcStatus: 14 }, 0),
    )
    expect(doc.status).toBe(200)
    expect(doc.grpcStatus).toBe(14)
    expect(Object.keys(JSON.parse(formatAccessLog(ev, 0)))).not.toContain('grpcStatus')
  })

  it('leaves out what is unknown and survives a bad clock', () => {
    const doc = JSON.parse(
      formatAccessLog(
        { ...ev, route: undefined, target: undefined, trace: undefined, errorCode: undefined },
        Number.NaN,
      ),
    )
    expect(Object.keys(doc)).not.toContain('route')
    expect(Object.keys(doc)).not.toContain('traceId')
    expect(Object.keys(doc)).not.toContain('time')
    expect(doc.path).toBe('/reviews/0?x="1"')
  })

  it('is the same document JSON.stringify would write, whatever the strings hold', () => {
    const odd = ['plain', 'quote " and \\ backslash', 'tab\tnew\nline\u0000nul', 'é ü 漢字 🚀', '\ud800 lone']
    for (const text of odd) {
      const line = formatAccessLog({ ...ev, path: text, route: text, fault: 'delay' }, 0)
      expect(JSON.parse(line)).toEqual({
        time: '1970-01-01T00:00:00.000Z',
        type: 'access',
        traceId: ev.trace!.traceId,
        mesh: 'bookinfo',
        service: 'reviews',
        route: JSON.parse(JSON.stringify(text)),
        target: 'v2',
        method: 'GET',
        path: JSON.parse(JSON.stringify(text)),
        status: 504,
        durationMs: 250.123,
        retries: 2,
        fault: 'delay',
        errorCode: 'timeout',
      })
    }
  })
})
