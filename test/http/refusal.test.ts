// The one refusal path (proxy-core/http/refusal.ts over engine/errors.ts): every status the edge
// refuses with has a code of its own, and the response on the wire comes from the error table.
import { describe, expect, it } from 'vitest'
import { ErrorCodes, statusFor } from '../../proxy-core/engine/errors.ts'
import { refusalText } from '../../proxy-core/http/refusal.ts'

const EDGE = [
  [ErrorCodes.badRequest, 400, 'Bad Request'],
  [ErrorCodes.methodNotAllowed, 405, 'Method Not Allowed'],
  [ErrorCodes.requestTimeout, 408, 'Request Timeout'],
  [ErrorCodes.requestTooLarge, 413, 'Payload Too Large'],
  [ErrorCodes.uriTooLong, 414, 'URI Too Long'],
  [ErrorCodes.expectationFailed, 417, 'Expectation Failed'],
  [ErrorCodes.headersTooLarge, 431, 'Request Header Fields Too Large'],
  [ErrorCodes.notImplemented, 501, 'Not Implemented'],
  [ErrorCodes.versionNotSupported, 505, 'HTTP Version Not Supported'],
] as const

describe('refusals', () => {
  it('give each status the edge refuses with a code of its own', () => {
    const statuses = EDGE.map(([code]) => statusFor(code))
    expect(statuses).toEqual(EDGE.map(([, status]) => status))
    expect(new Set(EDGE.map(([code]) => code)).size).toBe(EDGE.length)
  })

  it.each(EDGE)(
    '%s: status line, JSON body, x-meshgate-error and connection: close',
    (code, status, reason) => {
      const text = refusalText(code)
      const [head, body] = text.split('\r\n\r\n') as [string, string]
      const lines = head.split('\r\n')
      expect(lines[0]).toBe(`HTTP/1.1 ${status} ${reason}`)
      expect(lines).toContain(`x-meshgate-error: ${code}`)
      expect(lines).toContain('connection: close')
      expect(lines).toContain(`content-length: ${Buffer.byteLength(body)}`)
      expect(JSON.parse(body)).toEqual({ error: code })
    },
  )
})
