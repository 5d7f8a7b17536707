// The one classifier of upstream failures every invoker uses (proxy-core/http/upstream-failure.ts).
import { describe, expect, it } from 'vitest'
import { UpstreamFailure } from '../../proxy-core/engine/types.ts'
import { networkFailureKind, upstreamFailure } from '../../proxy-core/http/upstream-failure.ts'

const err = (code: string, cause?: string) =>
  Object.assign(new Error(`boom ${code}`), { code }, cause === undefined ? {} : { cause: { code: cause } })

describe('networkFailureKind', () => {
  it.each([
    ['our signal fired, whatever surfaced', err('ECONNREFUSED'), { aborted: true }, 'timeout'],
    ['an AbortError', Object.assign(new Error('x'), { name: 'AbortError' }), { aborted: false }, 'timeout'],
    ["undici's body timeout", err('UND_ERR_BODY_TIMEOUT'), { aborted: false }, 'timeout'],
    ['a refused connection', err('ECONNREFUSED'), { aborted: false }, 'connect-failure'],
    [
      'a refusal wrapped by undici',
      err('UND_ERR_SOCKET', 'ECONNREFUSED'),
      { aborted: false },
      'connect-failure',
    ],
    [
      'a reset during the handshake',
      err('ECONNRESET'),
      { aborted: false, connected: false },
      'connect-failure',
    ],
    ['a reset once connected', err('ECONNRESET'), { aborted: false, connected: true }, 'reset'],
    [
      'a connect code once connected (an idle timer)',
      err('ETIMEDOUT'),
      { aborted: false, connected: true },
      'reset',
    ],
    ['a reset, connection unknown', err('ECONNRESET'), { aborted: false }, 'reset'],
    ['a broken pipe', err('EPIPE'), { aborted: false }, 'reset'],
    ['something else', err('EWHATEVER'), { aborted: false }, undefined],
  ] as const)('%s', (_name, e, ctx, kind) => {
    expect(networkFailureKind(e, ctx)).toBe(kind)
  })
})

describe('upstreamFailure', () => {
  it('keeps an UpstreamFailure, names code and place, and defaults to a reset', () => {
    const given = new UpstreamFailure('timeout', 'x')
    expect(upstreamFailure(given, { aborted: false })).toBe(given)
    const f = upstreamFailure(err('ECONNREFUSED'), { aborted: false, what: 'http://up' })
    expect(f.kind).toBe('connect-failure')
    expect(f.message).toBe('http://up: boom ECONNREFUSED')
    const g = upstreamFailure(
      undefined,
      { aborted: false, connected: true },
      'upstream closed the connection',
    )
    expect(g.kind).toBe('reset')
    expect(g.message).toBe('upstream closed the connection')
  })
})
