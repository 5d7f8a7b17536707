import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_PATH_NORMALIZATION,
  type EscapedSlashAction,
  normalizePath,
  type PathNormalizationConfig,
  pathError,
} from '../../proxy-core/engine/path-normalize.ts'

const keep: PathNormalizationConfig = { mergeSlashes: true, escapedSlashes: 'keep' }

function norm(path: string, config: PathNormalizationConfig = keep): string {
  const r = normalizePath(path, config)
  if (!r.ok) throw new Error(`refused ${JSON.stringify(path)}: ${r.problem}`)
  return r.path
}

function problem(path: string, config: PathNormalizationConfig = keep): string | undefined {
  const r = normalizePath(path, config)
  return r.ok ? undefined : r.problem
}

describe('normalizePath', () => {
  it('removes dot segments, raw and encoded, never above the root', () => {
    expect(norm('/public/../admin')).toBe('/admin')
    expect(norm('/public/%2e%2e/admin')).toBe('/admin')
    expect(norm('/public/%2E%2E/admin')).toBe('/admin')
    expect(norm('/public/.%2e/admin')).toBe('/admin')
    expect(norm('/public/./../admin')).toBe('/admin')
    expect(norm('/../../etc/passwd')).toBe('/etc/passwd')
    expect(norm('/a/b/..')).toBe('/a/')
    expect(norm('/a/.')).toBe('/a/')
    expect(norm('/a/..')).toBe('/')
    expect(norm('/..')).toBe('/')
    expect(norm('/.')).toBe('/')
  })

  it('keeps segments that only look like dots', () => {
    expect(norm('/a/.b/..c/...')).toBe('/a/.b/..c/...')
    expect(norm('/a/b.')).toBe('/a/b.')
  })

  it('decodes unreserved characters and upper-cases the hex of the rest', () => {
    expect(norm('/%41%7a%30%2D%5f%7E')).toBe('/Az0-_~')
    expect(norm('/caf%c3%a9?q=%2e')).toBe('/caf%C3%A9?q=%2e')
    expect(norm('/a%20b')).toBe('/a%20b')
    // %25 is `%` itself: decoding it would make a new escape, so it stays (no double decoding).
    expect(norm('/%252e%252e/x')).toBe('/%252e%252e/x')
  })

  it('merges slashes when asked, and keeps them otherwise', () => {
    expect(norm('//a///b//')).toBe('/a/b/')
    expect(norm('//a///b//', { mergeSlashes: false, escapedSlashes: 'keep' })).toBe('//a///b//')
    // Merging first: `//` is `/`, so `..` climbs over `a`; without merging the empty segment is one.
    expect(norm('/a//../b')).toBe('/b')
    expect(norm('/a//../b', { mergeSlashes: false, escapedSlashes: 'keep' })).toBe('/a/b')
  })

  it('leaves the query exactly as sent', () => {
    expect(norm('/a/../b?x=/../&y=%2e%2F#')).toBe('/b?x=/../&y=%2e%2F#')
    expect(norm('/?')).toBe('/?')
  })

  it('returns the same string when nothing needs doing', () => {
    const p = '/reviews/0?x=1'
    expect(normalizePath(p, DEFAULT_PATH_NORMALIZATION)).toEqual({ ok: true, path: p })
  })

  it('refuses what no well-formed request path holds', () => {
    expect(problem('public')).toBe('path_not_absolute')
    expect(problem('')).toBe('path_not_absolute')
    expect(problem('?x')).toBe('path_not_absolute')
    expect(problem('/a\x00b')).toBe('control_character')
    expect(problem('/a\tb')).toBe('control_character')
    expect(problem('/a b')).toBe('control_character')
    expect(problem('/a\x7f')).toBe('control_character')
    expect(problem('/a\\..\\admin')).toBe('backslash')
    expect(problem('/a#b')).toBe('fragment')
    expect(problem('/a%2')).toBe('bad_percent_encoding')
    expect(problem('/a%zz')).toBe('bad_percent_encoding')
    expect(problem('/a%')).toBe('bad_percent_encoding')
    expect(problem('/a%00.png')).toBe('encoded_nul')
    // The query is not the path: a control byte there is the HTTP parser's business, not this one's.
    expect(problem('/a?%zz')).toBeUndefined()
  })

  it('follows the escaped-slash action', () => {
    const with_ = (escapedSlashes: EscapedSlashAction) => ({ mergeSlashes: true, escapedSlashes })
    expect(norm('/a%2fb%5cc', with_('keep'))).toBe('/a%2Fb%5Cc')
    expect(problem('/a%2Fb', with_('reject'))).toBe('escaped_slash')
    expect(problem('/a%5Cb', with_('reject'))).toBe('escaped_slash')
    expect(norm('/public%2F..%2Fadmin', with_('decode'))).toBe('/admin')
    expect(norm('/a%2F%2Fb%5C', with_('decode'))).toBe('/a/b/')
    expect(DEFAULT_PATH_NORMALIZATION.escapedSlashes).toBe('reject')
  })

  it('gives a 400 with the reason', () => {
    const err = pathError('backslash')
    expect(err.status).toBe(400)
    expect(err.code).toBe('invalid_path')
    expect(err.details).toEqual({ reason: 'backslash' })
  })
})

// Paths built from the pieces that matter: separators, dots raw and encoded, escapes of every kind.
const piece = fc.oneof(
  fc.constantFrom('/', '//', '.', '..', '%2e', '%2E', '.%2e', '%2f', '%2F', '%5c', '%5C', '%25', '%41'),
  fc.constantFrom(
    'a',
    'b',
    'admin',
    '~',
    '-',
    '_',
    ':',
    '@',
    '!',
    '$',
    '&',
    "'",
    '(',
    ')',
    '*',
    '+',
    ',',
    ';',
    '=',
  ),
  fc.constantFrom('%20', '%c3%a9', '%7e', '%3F', '%23', 'é'),
)
const pathArb = fc.array(piece, { maxLength: 24 }).map((parts) => `/${parts.join('')}`)
const configArb = fc.record({
  mergeSlashes: fc.boolean(),
  escapedSlashes: fc.constantFrom<EscapedSlashAction>('keep', 'reject', 'decode'),
})

describe('normalizePath properties', () => {
  it('is idempotent', () => {
    fc.assert(
      fc.property(pathArb, configArb, (path, config) => {
        const once = normalizePath(path, config)
        if (!once.ok) return
        expect(normalizePath(once.path, config)).toEqual(once)
      }),
      { numRuns: 2000 },
    )
  })

  it('leaves no dot segment, no empty segment when merging, and nothing above the root', () => {
    fc.assert(
      fc.property(pathArb, configArb, (path, config) => {
        const r = normalizePath(path, config)
        if (!r.ok) return
        const p = r.path
        expect(p.startsWith('/')).toBe(true)
        const segments = p.split('/').slice(1)
        for (const s of segments) expect(s === '.' || s === '..').toBe(false)
        expect(p.includes('/./')).toBe(false)
        expect(p.includes('/../')).toBe(false)
        if (config.mergeSlashes) expect(p.includes('//')).toBe(false)
        // Decoded dots are dots: no encoded unreserved character survives.
        expect(/%(2[dDeE]|5[fF]|7[eE]|[46][1-9a-fA-F]|[57][0-9aA]|3[0-9])/.test(p)).toBe(false)
        if (config.escapedSlashes === 'decode') expect(/%(2f|5c)/i.test(p)).toBe(false)
      }),
      { numRuns: 2000 },
    )
  })

  it('resolves dot segments as the WHATWG URL parser does (an independent oracle)', () => {
    // Without merging, dot-segment removal is RFC 3986's, which WHATWG follows for these pieces (it
    // also treats %2e as a dot in a dot segment, but keeps it encoded elsewhere: hence the replace).
    const dots = fc
      .array(fc.constantFrom('/', 'a', 'b', '.', '..', '%2e', '%2E', '.%2e', '%2e.', '%2e%2E'), {
        maxLength: 20,
      })
      .map((parts) => `/${parts.join('')}`)
    fc.assert(
      fc.property(dots, (path) => {
        const oracle = new URL(`http://h${path}`).pathname.replace(/%2e/gi, '.')
        expect(norm(path, { mergeSlashes: false, escapedSlashes: 'keep' })).toBe(oracle)
      }),
      { numRuns: 2000 },
    )
  })

  it('refuses escaped slashes exactly when the action is reject', () => {
    fc.assert(
      fc.property(pathArb, (path) => {
        const has = /%(2f|5c)/i.test(path)
        const r = normalizePath(path, { mergeSlashes: true, escapedSlashes: 'reject' })
        expect(!r.ok && r.problem === 'escaped_slash').toBe(has)
      }),
      { numRuns: 1000 },
    )
  })

  it('never crashes on any string, and only refuses with a known problem', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 64 }), configArb, (path, config) => {
        const r = normalizePath(path, config)
        if (r.ok) expect(normalizePath(r.path, config)).toEqual(r)
        else expect(typeof pathError(r.problem).message).toBe('string')
      }),
      { numRuns: 1000 },
    )
  })
})
