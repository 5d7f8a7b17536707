import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { HeaderMap, Random } from '../../proxy-core/engine/types.ts'
import {
  newSpanId,
  newTraceId,
  parseTraceHeaders,
  parseXRayTraceId,
  writeTraceHeaders,
} from '../../proxy-core/telemetry/trace-context.ts'

/** A deterministic Random from a fixed list of draws, cycling. */
function seq(...draws: number[]): Random {
  let i = 0
  return () => draws[i++ % draws.length]!
}

const ROOT = '1-5759e988-bd862e3fe1be46a994272793'

describe('parseXRayTraceId', () => {
  it('reads Root, Parent and Sampled', () => {
    expect(parseXRayTraceId(`Root=${ROOT};Parent=53995c3f42cd8ad8;Sampled=1`)).toEqual({
      traceId: ROOT,
      parentId: '53995c3f42cd8ad8',
      sampled: true,
    })
    expect(parseXRayTraceId(`Root=${ROOT};Parent=53995c3f42cd8ad8;Sampled=0`)?.sampled).toBe(false)
  })

  it('leaves sampled undefined for Sampled=? and when absent', () => {
    expect(parseXRayTraceId(`Root=${ROOT};Sampled=?`)).toEqual({ traceId: ROOT })
    expect(parseXRayTraceId(`Root=${ROOT}`)).toEqual({ traceId: ROOT })
  })

  it('accepts the Lambda env form with Lineage, spaces and any key order', () => {
    const v = `Parent=53995c3f42cd8ad8; Root=${ROOT} ;Sampled=1;Lineage=a87bd80c:1|68fd508a:5`
    expect(parseXRayTraceId(v)).toEqual({ traceId: ROOT, parentId: '53995c3f42cd8ad8', sampled: true })
  })

  it('rejects malformed roots and drops malformed parents', () => {
    expect(parseXRayTraceId('Root=1-5759e988-bd862e3f')).toBeUndefined()
    expect(parseXRayTraceId('Root=2-5759e988-bd862e3fe1be46a994272793')).toBeUndefined()
    expect(parseXRayTraceId('Parent=53995c3f42cd8ad8;Sampled=1')).toBeUndefined()
    expect(parseXRayTraceId('')).toBeUndefined()
    expect(parseXRayTraceId(`Root=${ROOT};Parent=xyz`)).toEqual({ traceId: ROOT })
    expect(parseXRayTraceId(`Root=${ROOT};Parent=0000000000000000`)).toEqual({ traceId: ROOT })
  })
})

describe('parseTraceHeaders', () => {
  it('prefers x-amzn-trace-id over traceparent', () => {
    const h: HeaderMap = {
      'x-amzn-trace-id': `Root=${ROOT};Parent=53995c3f42cd8ad8;Sampled=1`,
      traceparent: '00-11111111222222223333333344444444-5555555566666666-00',
    }
    expect(parseTraceHeaders(h)?.traceId).toBe(ROOT)
  })

  it('falls back to traceparent and maps the id to X-Ray form', () => {
    const h: HeaderMap = { traceparent: '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01' }
    expect(parseTraceHeaders(h)).toEqual({ traceId: ROOT, parentId: '53995c3f42cd8ad8', sampled: true })
    h.traceparent = '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00'
    expect(parseTraceHeaders(h)?.sampled).toBe(false)
  })

  it('falls back to traceparent when x-amzn-trace-id is malformed', () => {
    const h: HeaderMap = {
      'x-amzn-trace-id': 'garbage',
      traceparent: '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01',
    }
    expect(parseTraceHeaders(h)?.traceId).toBe(ROOT)
  })

  it('rejects invalid traceparent values', () => {
    const bad = [
      'ff-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01', // version ff
      '00-00000000000000000000000000000000-53995c3f42cd8ad8-01', // zero trace id
      '00-5759e988bd862e3fe1be46a994272793-0000000000000000-01', // zero parent
      '00-5759E988BD862E3FE1BE46A994272793-53995c3f42cd8ad8-01', // upper case
      '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01-extra', // v00 has 4 fields
      '00-5759e988bd862e3fe1be46a99427279-53995c3f42cd8ad8-01', // short
      '',
    ]
    for (const traceparent of bad) expect(parseTraceHeaders({ traceparent }), traceparent).toBeUndefined()
    // A future version may append fields.
    expect(
      parseTraceHeaders({ traceparent: '01-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01-xyz' })
        ?.traceId,
    ).toBe(ROOT)
  })

  it('takes the first of repeated headers and ignores absent ones', () => {
    expect(parseTraceHeaders({ 'x-amzn-trace-id': [`Root=${ROOT}`, 'Root=junk'] })?.traceId).toBe(ROOT)
    expect(parseTraceHeaders({})).toBeUndefined()
    expect(parseTraceHeaders({ 'x-amzn-trace-id': undefined })).toBeUndefined()
  })

  it('never throws on arbitrary input', () => {
    const value = fc.oneof(
      fc.string(),
      fc.constant(undefined),
      fc.array(fc.string(), { maxLength: 3 }),
      fc
        .tuple(fc.stringMatching(/^[0-9a-fA-F-]{0,40}$/), fc.stringMatching(/^[0-9a-f?]{0,18}$/))
        .map(([r, p]) => `Root=${r};Parent=${p};Sampled=${p.slice(0, 1)}`),
      fc
        .tuple(fc.stringMatching(/^[0-9a-f]{0,34}$/), fc.stringMatching(/^[0-9a-f]{0,17}$/))
        .map(([t, p]) => `00-${t}-${p}-01`),
    )
    fc.assert(
      fc.property(value, value, (amzn, tp) => {
        const ctx = parseTraceHeaders({ 'x-amzn-trace-id': amzn, traceparent: tp })
        if (ctx !== undefined) {
          expect(ctx.traceId).toMatch(/^1-[0-9a-f]{8}-[0-9a-f]{24}$/)
          if (ctx.parentId !== undefined) expect(ctx.parentId).toMatch(/^[0-9a-f]{16}$/)
        }
      }),
      { numRuns: 2000 },
    )
  })
})

describe('ids', () => {
  it('puts the epoch seconds in the first 8 hex digits', () => {
    const id = newTraceId(1_465_510_280_123, seq(0.5, 0.25, 0))
    expect(id).toBe('1-5759e988-800000004000000000000000')
  })

  it('makes 16-hex span ids, never all zeros', () => {
    expect(newSpanId(seq(0.999999999, 0.5))).toMatch(/^[0-9a-f]{16}$/)
    expect(newSpanId(seq(0))).toBe('0000000000000001')
  })

  it('generates well-formed ids for any random draw', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4_102_444_800_000 }),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1 }),
        (ms, draws) => {
          expect(newTraceId(ms, seq(...draws))).toMatch(/^1-[0-9a-f]{8}-[0-9a-f]{24}$/)
          expect(newSpanId(seq(...draws))).toMatch(/^[0-9a-f]{16}$/)
        },
      ),
    )
  })
})

describe('writeTraceHeaders', () => {
  it('writes both headers with the span as parent', () => {
    const h: HeaderMap = {}
    writeTraceHeaders(h, { traceId: ROOT, parentId: 'aaaaaaaaaaaaaaaa', sampled: true }, '53995c3f42cd8ad8')
    expect(h['x-amzn-trace-id']).toBe(`Root=${ROOT};Parent=53995c3f42cd8ad8;Sampled=1`)
    expect(h.traceparent).toBe('00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01')
  })

  it('writes undecided and unsampled traces as not sampled', () => {
    const h: HeaderMap = {}
    writeTraceHeaders(h, { traceId: ROOT }, '53995c3f42cd8ad8')
    expect(h['x-amzn-trace-id']).toBe(`Root=${ROOT};Parent=53995c3f42cd8ad8;Sampled=0`)
    expect(h.traceparent).toMatch(/-00$/)
  })

  it('round-trips X-Ray → W3C → X-Ray and W3C → X-Ray → W3C', () => {
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`))
    fc.assert(
      fc.property(hex(8), hex(24), hex(16), fc.boolean(), (secs, rand, span, sampled) => {
        fc.pre(!/^0+$/.test(span))
        const traceId = `1-${secs}-${rand}`
        const out: HeaderMap = {}
        writeTraceHeaders(out, { traceId, sampled }, span)
        const viaW3c = parseTraceHeaders({ traceparent: out.traceparent })
        const viaXray = parseTraceHeaders({ 'x-amzn-trace-id': out['x-amzn-trace-id'] })
        expect(viaW3c).toEqual({ traceId, parentId: span, sampled })
        expect(viaXray).toEqual(viaW3c)
        const again: HeaderMap = {}
        writeTraceHeaders(again, viaXray!, span)
        expect(again.traceparent).toBe(out.traceparent)
      }),
    )
  })
})
