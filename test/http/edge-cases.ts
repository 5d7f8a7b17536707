// The raw-socket cases of issue 16, as tables that every listener's tests run: the sidecar's outbound
// and inbound listeners (test/sidecar/edge-framing.test.ts, path-normalization.test.ts) and the dev
// gateway (test/dev/gateway-edge.test.ts). One table, so no listener is tested on fewer cases.
//
// Framing: from RFC 9112 §2–§7 (message format, request line, request target, field syntax,
// Content-Length, Transfer-Encoding, chunked coding, trailers) and RFC 9110 §5 (field values).

/** A request an attacker tucks in after the bad one: it must never reach the upstream. */
export const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: up\r\n\r\n'

/** `code`: the refusal's code when it is not the status's usual one (CODE). */
export type FramingCase = [name: string, head: string, status?: number, code?: string]

/** `POST /` with the given extra field lines, then `body`. */
export const post = (fields: string, body = ''): string =>
  `POST / HTTP/1.1\r\nHost: up\r\n${fields}\r\n${body}`
export const chunked = (body: string): string => post('Transfer-Encoding: chunked\r\n', body)

export const FRAMING_CASES: FramingCase[] = [
  // Field values: only SP and HTAB are whitespace around a value (RFC 9110 §5.5); controls never.
  ['Content-Length with a trailing VT', post('Content-Length: 5\x0b\r\n', 'hello')],
  ['Content-Length with a leading FF', post('Content-Length: \x0c5\r\n', 'hello')],
  ['Content-Length with a trailing latin1 no-break space', post('Content-Length: 5\xa0\r\n', 'hello')],
  ['Content-Length with a trailing UTF-8 no-break space', post('Content-Length: 5\xc2\xa0\r\n', 'hello')],
  ['Transfer-Encoding with a trailing VT', chunked('').replace('chunked', 'chunked\x0b') + '0\r\n\r\n'],
  [
    'Transfer-Encoding with a trailing no-break space',
    chunked('').replace('chunked', 'chunked\xa0') + '0\r\n\r\n',
  ],
  [
    'Transfer-Encoding with a leading no-break space',
    chunked('').replace('chunked', '\xa0chunked') + '0\r\n\r\n',
  ],
  ['a NUL in a value', post('X-A: a\x00b\r\n')],
  ['a bare CR in a value', post('X-A: a\rb\r\n')],
  ['a bare LF ending a field line', post('X-A: a\nContent-Length: 5\r\n', 'hello')],
  ['obs-fold in a request', post('X-A: a\r\n b\r\n')],
  ['whitespace before the first field line', `GET / HTTP/1.1\r\n Host: up\r\n\r\n`],
  ['a field name with a parenthesis', post('X(A): 1\r\n')],
  ['a field name with a space inside', post('X A: 1\r\n')],
  ['whitespace between a field name and its colon', post('Content-Length : 5\r\n', 'hello')],
  ['a field line without a colon', post('X-A\r\n')],
  ['a field line with an empty name', post(': 1\r\n')],
  // Content-Length (RFC 9112 §6.3, RFC 9110 §8.6).
  ['two equal Content-Length fields', post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello')],
  ['two different Content-Length fields', post('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!')],
  ['a Content-Length list', post('Content-Length: 5, 5\r\n', 'hello')],
  ['a signed Content-Length', post('Content-Length: +5\r\n', 'hello')],
  ['a hex Content-Length', post('Content-Length: 0x5\r\n', 'hello')],
  ['a fractional Content-Length', post('Content-Length: 5.0\r\n', 'hello')],
  ['an empty Content-Length', post('Content-Length:\r\n')],
  ['an overflowing Content-Length', post('Content-Length: 99999999999999999999\r\n')],
  [
    'Content-Length and Transfer-Encoding together',
    post('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'),
  ],
  // Transfer-Encoding in a request: chunked, exactly, last (RFC 9112 §6.1, §6.3).
  ['Transfer-Encoding not ending in chunked', post('Transfer-Encoding: gzip\r\n', 'x')],
  ['chunked followed by another coding', post('Transfer-Encoding: chunked, gzip\r\n', '0\r\n\r\n')],
  ['chunked twice', post('Transfer-Encoding: chunked, chunked\r\n', '0\r\n\r\n')],
  [
    'two Transfer-Encoding fields',
    post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'),
  ],
  ['chunked with a parameter', post('Transfer-Encoding: chunked;q=1\r\n', '0\r\n\r\n')],
  ['an empty list element after chunked', post('Transfer-Encoding: chunked,\r\n', '0\r\n\r\n')],
  ['identity', post('Transfer-Encoding: identity\r\n', 'x')],
  [
    'a coding it does not implement before chunked',
    post('Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n'),
    501,
  ],
  [
    'Transfer-Encoding in HTTP/1.0',
    'POST / HTTP/1.0\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  ],
  // Chunk sizes and extensions (RFC 9112 §7.1, §7.1.1).
  ['a chunk size with leading whitespace', chunked(' 5\r\nhello\r\n0\r\n\r\n')],
  ['a chunk size with trailing whitespace', chunked('5 \r\nhello\r\n0\r\n\r\n')],
  ['a chunk size with a tab before its extension and none after', chunked('5\t\r\nhello\r\n0\r\n\r\n')],
  ['a signed chunk size', chunked('+5\r\nhello\r\n0\r\n\r\n')],
  ['a negative chunk size', chunked('-5\r\nhello\r\n0\r\n\r\n')],
  ['a 0x chunk size', chunked('0x5\r\nhello\r\n0\r\n\r\n')],
  ['a chunk size with a control byte', chunked('5\x0b\r\nhello\r\n0\r\n\r\n')],
  ['a chunk size with a NUL', chunked('5\x00\r\nhello\r\n0\r\n\r\n')],
  ['an overflowing chunk size', chunked('10000000000000005\r\nhello\r\n0\r\n\r\n')],
  ['an empty chunk size', chunked('\r\nhello\r\n0\r\n\r\n')],
  ['a chunk extension with a bare CR', chunked('5;a\rb\r\nhello\r\n0\r\n\r\n')],
  ['a chunk extension with a bare CR in its quoted value', chunked('5;a="x\ry"\r\nhello\r\n0\r\n\r\n')],
  ['a chunk size line ended by a bare LF', chunked('5\nhello\r\n0\r\n\r\n')],
  ['a chunk extension without a name', chunked('5;\r\nhello\r\n0\r\n\r\n')],
  ['a chunk extension with an empty value', chunked('5;a=\r\nhello\r\n0\r\n\r\n')],
  ['a chunk extension with an unterminated quote', chunked('5;a="x\r\nhello\r\n0\r\n\r\n')],
  ['a chunk extension with whitespace at the end', chunked('5;a \r\nhello\r\n0\r\n\r\n')],
  ['chunk data not followed by CRLF', chunked('5\r\nhelloXX\r\n0\r\n\r\n')],
  ['chunk data followed by a bare LF', chunked('5\r\nhello\n0\r\n\r\n')],
  ['chunk data longer than its size', chunked('3\r\nhello\r\n0\r\n\r\n')],
  // The trailer section is field lines (RFC 9112 §7.1.2).
  ['a trailer line that is not a field line', chunked('5\r\nhello\r\n0\r\nnot a field\r\n\r\n')],
  ['a trailer line with an empty name', chunked('5\r\nhello\r\n0\r\n: x\r\n\r\n')],
  ['obs-fold in the trailer section', chunked('5\r\nhello\r\n0\r\nx-a: 1\r\n folded\r\n\r\n')],
  ['a trailer value with a bare CR', chunked('5\r\nhello\r\n0\r\nx-a: 1\r2\r\n\r\n')],
  ['a trailer line ended by a bare LF', chunked('5\r\nhello\r\n0\r\nx-a: 1\n\r\n')],
  // The request line (RFC 9112 §3).
  ['two spaces after the method', 'GET  / HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['a space after the version', 'GET / HTTP/1.1 \r\nHost: up\r\n\r\n'],
  ['a tab as separator', 'GET\t/ HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['a method that is no token', 'G(T / HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['an empty method', ' / HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['a version in lower case', 'GET / http/1.1\r\nHost: up\r\n\r\n'],
  ['a version with more after it', 'GET / HTTP/1.1x\r\nHost: up\r\n\r\n'],
  ['a version the edge does not speak', 'GET / HTTP/2.0\r\nHost: up\r\n\r\n', 505],
  ['a bare CR in the request line', 'GET /\r HTTP/1.1\r\nHost: up\r\n\r\n'],
  // The request target (RFC 9112 §3.2).
  ['a fragment in the target', 'GET /a#b HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['a non-ASCII byte in the target', 'GET /caf\xc3\xa9 HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['a malformed percent-escape', 'GET /a%zz HTTP/1.1\r\nHost: up\r\n\r\n', 400, 'invalid_path'],
  ['a truncated percent-escape', 'GET /a%2 HTTP/1.1\r\nHost: up\r\n\r\n', 400, 'invalid_path'],
  ['a malformed percent-escape in the query', 'GET /a?q=%zz HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['a relative target', 'GET a/b HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['the asterisk form with GET', 'GET * HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['absolute form with userinfo', 'GET http://evil@up/ HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['absolute form with an empty host', 'GET http:///x HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['absolute form with another scheme', 'GET ftp://up/x HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['absolute form with a bad port', 'GET http://up:8x/ HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['authority form outside CONNECT', 'GET up:80 HTTP/1.1\r\nHost: up\r\n\r\n'],
  ['CONNECT', 'CONNECT up:80 HTTP/1.1\r\nHost: up:80\r\n\r\n', 405],
  // Host (RFC 9112 §3.2: one, valid, in HTTP/1.1).
  ['no Host in HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n'],
  ['two Hosts', 'GET / HTTP/1.1\r\nHost: up\r\nHost: up\r\n\r\n'],
  ['a Host with a path', 'GET / HTTP/1.1\r\nHost: up/x\r\n\r\n'],
  ['a Host with userinfo', 'GET / HTTP/1.1\r\nHost: a@up\r\n\r\n'],
  ['a Host with a space inside', 'GET / HTTP/1.1\r\nHost: up x\r\n\r\n'],
  ['a Host with a bad port', 'GET / HTTP/1.1\r\nHost: up:8o\r\n\r\n'],
  // Expect (RFC 9110 §10.1.1).
  ['an Expect other than 100-continue', post('Expect: 200-ok\r\nContent-Length: 5\r\n', 'hello'), 417],
]

export const CODE: Record<number, string> = {
  400: 'bad_request',
  405: 'method_not_allowed',
  417: 'expectation_failed',
  501: 'not_implemented',
  505: 'version_not_supported',
}

/** FRAMING_CASES as test rows: the status and the code each one must be refused with. */
export function framingRows(): { name: string; head: string; status: number; code: string }[] {
  return FRAMING_CASES.map(([name, head, status, code]) => ({
    name,
    head,
    status: status ?? 400,
    code: code ?? CODE[status ?? 400]!,
  }))
}

/** How many refusals of each code the whole table makes: what a listener's counters must show. */
export function framingRefusalCounts(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const { code } of framingRows()) out[code] = (out[code] ?? 0) + 1
  return out
}

// Path normalization (RFC 3986 §5.2.4 dot segments, §6.2.2 escapes). With a route for `/public` and
// one for `/admin`: what an attacker sends to reach /admin past the route for /public, and the one
// normal form that must be both routed and forwarded.
export const PATH_BYPASSES: [sent: string, normal: string][] = [
  ['/public/../admin', '/admin'],
  ['/public/%2e%2e/admin', '/admin'],
  ['/public/%2E%2E/admin/', '/admin/'],
  ['/public/.%2e/admin', '/admin'],
  ['/public/%2e./admin', '/admin'],
  ['/public/./../admin', '/admin'],
  ['/public/x/../../admin?q=/../', '/admin?q=/../'],
  ['//public//..//admin', '/admin'],
  ['/%61dmin/%7Eusers', '/admin/~users'],
  ['http://svc/public/../admin', '/admin'],
  ['http://svc/public/%2e%2e/admin?x=1', '/admin?x=1'],
]

/** Paths refused with 400 invalid_path under the default normalization, with the reason given. */
export const PATH_REFUSALS: [sent: string, reason: string][] = [
  ['/public/%zz', 'bad_percent_encoding'],
  ['/public/%2', 'bad_percent_encoding'],
  ['/public/a%00.png', 'encoded_nul'],
  ['/public/..\\admin', 'backslash'],
  ['/public/..%2Fadmin', 'escaped_slash'],
  ['/public/..%5cadmin', 'escaped_slash'],
]
