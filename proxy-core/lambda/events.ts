// The event and result shapes of API Gateway and ALB, both ways:
//  - inbound (the gateway function and `mesh()`): an HTTP API v2, REST API v1 or ALB event becomes a
//    MeshRequest, and the MeshResponse goes back in the result shape that event's source expects;
//  - outbound (Lambda targets): an attempt becomes an HTTP API v2 event (so any function written for
//    API Gateway joins the mesh unchanged), and the function's result becomes a MeshResponse.
// Nothing here does I/O or imports a runtime package.

import type { ALBEvent, ALBResult, APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda'
import type { AttemptRequest, HeaderMap, MeshBody, MeshRequest, MeshResponse } from '../engine/types.ts'

export const EventKinds = {
  httpApiV2: 'http-api-v2',
  restApiV1: 'rest-api-v1',
  alb: 'alb',
} as const
export type EventKind = (typeof EventKinds)[keyof typeof EventKinds]

/** The events the gateway accepts. */
export type HttpEvent = APIGatewayProxyEventV2 | APIGatewayProxyEvent | ALBEvent

/** What the response shape depends on besides the response itself. */
export interface EventShape {
  kind: EventKind
  /** v1 and ALB: the event carried `multiValueHeaders`, so the result must use them too. */
  multiValue: boolean
}

export interface NormalizedEvent extends EventShape {
  request: MeshRequest
}

/** The HTTP API v2 result shape (the structured form). */
export interface HttpApiV2Result {
  statusCode: number
  headers: Record<string, string>
  cookies?: string[]
  body: string
  isBase64Encoded: boolean
}
/** The REST API v1 result shape. */
export interface RestApiV1Result {
  statusCode: number
  headers?: Record<string, string>
  multiValueHeaders?: Record<string, string[]>
  body: string
  isBase64Encoded: boolean
}
export type LambdaHttpResult = HttpApiV2Result | RestApiV1Result | ALBResult

// ---------------------------------------------------------------------------------------------
// Bodies

const textEncoder = new TextEncoder()
// fatal: a body that is not valid UTF-8 must go out as base64, never be mangled into U+FFFD.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Read a body fully. Lambda payloads are whole documents, so streams end up in memory anyway. */
export async function collectBody(body: MeshBody): Promise<Uint8Array | string | null> {
  if (body === null || typeof body === 'string' || body instanceof Uint8Array) return body
  const chunks: Uint8Array[] = []
  let length = 0
  for await (const chunk of body) {
    const bytes = typeof chunk === 'string' ? textEncoder.encode(chunk) : chunk
    chunks.push(bytes)
    length += bytes.byteLength
  }
  if (chunks.length === 1) return chunks[0]!
  const out = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}

// Content types API Gateway users expect as text. Everything else is binary and goes out as base64.
const textType =
  /^(text\/|application\/(json|xml|javascript|x-www-form-urlencoded|graphql)\b|[^;]*\+(json|xml)\b)/i

function headerValue(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

/**
 * Encode a body for an event or a result: text stays text, anything else is base64. A body counts as
 * text when its content type says so (or there is none) and its bytes are valid UTF-8.
 */
export function encodeBody(
  body: Uint8Array | string | null,
  contentType: string | undefined,
): { body: string; isBase64Encoded: boolean } {
  if (body === null) return { body: '', isBase64Encoded: false }
  if (typeof body === 'string') return { body, isBase64Encoded: false }
  if (body.byteLength === 0) return { body: '', isBase64Encoded: false }
  if (contentType === undefined || textType.test(contentType)) {
    try {
      return { body: strictUtf8.decode(body), isBase64Encoded: false }
    } catch {
      // not UTF-8 after all: fall through to base64
    }
  }
  return {
    body: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64'),
    isBase64Encoded: true,
  }
}

function decodeBody(body: string | null | undefined, isBase64Encoded: boolean | undefined): MeshBody {
  if (body === null || body === undefined || body === '') return null
  if (!isBase64Encoded) return body
  const buf = Buffer.from(body, 'base64')
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

// ---------------------------------------------------------------------------------------------
// Inbound: event → MeshRequest

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Which source sent this event, or undefined when it is not an HTTP event we know. */
export function detectEventKind(event: unknown): EventKind | undefined {
  if (!isObj(event)) return undefined
  const rc = event.requestContext
  if (!isObj(rc)) return undefined
  if (isObj(rc.elb)) return EventKinds.alb
  if (event.version === '2.0' && isObj(rc.http)) return EventKinds.httpApiV2
  if (typeof event.httpMethod === 'string') return EventKinds.restApiV1
  return undefined
}

function lowerHeaders(single: Obj | null | undefined, multi: Obj | null | undefined): HeaderMap {
  const out: HeaderMap = {}
  // multiValueHeaders hold every value; `headers` only the last one. Prefer the complete list.
  if (isObj(multi)) {
    for (const [name, values] of Object.entries(multi)) {
      if (!Array.isArray(values) || values.length === 0) continue
      const key = name.toLowerCase()
      const list = values.map(String)
      out[key] = key === 'set-cookie' || list.length > 1 ? list : list[0]
    }
  }
  if (isObj(single)) {
    for (const [name, value] of Object.entries(single)) {
      const key = name.toLowerCase()
      if (out[key] === undefined && value !== undefined && value !== null) out[key] = String(value)
    }
  }
  return out
}

function queryFromParams(
  single: Obj | null | undefined,
  multi: Obj | null | undefined,
  encode: boolean,
): string {
  const enc = encode ? encodeURIComponent : (s: string) => s
  const parts: string[] = []
  if (isObj(multi)) {
    for (const [name, values] of Object.entries(multi)) {
      if (!Array.isArray(values)) continue
      for (const v of values) parts.push(`${enc(name)}=${enc(String(v))}`)
    }
  } else if (isObj(single)) {
    for (const [name, v] of Object.entries(single)) {
      if (v !== undefined && v !== null) parts.push(`${enc(name)}=${enc(String(v))}`)
    }
  }
  return parts.join('&')
}

function firstForwardedFor(headers: HeaderMap): string | undefined {
  const xff = headerValue(headers, 'x-forwarded-for')
  const first = xff?.split(',')[0]?.trim()
  return first ? first : undefined
}

/** Turn an API Gateway (v2 or v1) or ALB event into the mesh's request. Throws on anything else. */
export function normalizeEvent(event: unknown): NormalizedEvent {
  const kind = detectEventKind(event)
  if (kind === undefined) {
    throw new TypeError('meshgate: not an API Gateway (HTTP API v2, REST API v1) or ALB event')
  }
  if (kind === EventKinds.httpApiV2) {
    const e = event as APIGatewayProxyEventV2
    const headers = lowerHeaders(e.headers as Obj, undefined)
    // v2 moves the Cookie header into `cookies`; put it back for the upstream.
    if (e.cookies && e.cookies.length > 0) headers.cookie = e.cookies.join('; ')
    const query = e.rawQueryString ? `?${e.rawQueryString}` : ''
    return {
      kind,
      multiValue: false,
      request: {
        method: e.requestContext.http.method.toUpperCase(),
        path: (e.rawPath || '/') + query,
        headers,
        body: decodeBody(e.body, e.isBase64Encoded),
        remoteAddress: e.requestContext.http.sourceIp,
      },
    }
  }
  // REST API (v1) and ALB events share one shape; they differ in two things.
  const e = event as APIGatewayProxyEvent | ALBEvent
  const rest = kind === EventKinds.restApiV1
  const multiValue = isObj(e.multiValueHeaders)
  const headers = lowerHeaders(e.headers as Obj, e.multiValueHeaders as Obj)
  // REST API hands over decoded query values (encode them again); ALB passes them as received.
  const qs = queryFromParams(e.queryStringParameters as Obj, e.multiValueQueryStringParameters as Obj, rest)
  const sourceIp = rest ? (e as APIGatewayProxyEvent).requestContext?.identity?.sourceIp : undefined
  return {
    kind,
    multiValue,
    request: {
      method: e.httpMethod.toUpperCase(),
      path: (e.path || '/') + (qs ? `?${qs}` : ''),
      headers,
      body: decodeBody(e.body, e.isBase64Encoded),
      remoteAddress: sourceIp ?? firstForwardedFor(headers),
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Inbound: MeshResponse → result

// The reason phrases ALB needs in `statusDescription` ("200 OK").
const reasons: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No Content',
  206: 'Partial Content',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

// Headers a Lambda result must not carry: the front end (API Gateway, ALB) frames the response itself.
const framingHeaders = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade'])

function valuesOf(v: string | string[] | undefined): string[] {
  if (v === undefined) return []
  return Array.isArray(v) ? v : [v]
}

/** Turn the mesh's response into the result shape of the event that came in. */
export async function toLambdaResult(res: MeshResponse, shape: EventShape): Promise<LambdaHttpResult> {
  const raw = await collectBody(res.body)
  const { body, isBase64Encoded } = encodeBody(raw, headerValue(res.headers, 'content-type'))
  const statusCode = res.status

  if (shape.kind === EventKinds.httpApiV2) {
    const headers: Record<string, string> = {}
    let cookies: string[] | undefined
    for (const [name, value] of Object.entries(res.headers)) {
      if (value === undefined || framingHeaders.has(name)) continue
      if (name === 'set-cookie') cookies = valuesOf(value)
      // v2 has no multi-value headers: duplicates are joined with commas, as API Gateway does.
      else headers[name] = valuesOf(value).join(',')
    }
    const out: HttpApiV2Result = { statusCode, headers, body, isBase64Encoded }
    if (cookies && cookies.length > 0) out.cookies = cookies
    return out
  }

  const single: Record<string, string> = {}
  const multi: Record<string, string[]> = {}
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || framingHeaders.has(name)) continue
    const list = valuesOf(value)
    multi[name] = list
    // Without multi-value headers only one value can go back; the last one wins (as in API Gateway).
    single[name] = name === 'set-cookie' ? list[list.length - 1]! : list.join(',')
  }
  if (shape.kind === EventKinds.restApiV1) {
    return shape.multiValue
      ? { statusCode, multiValueHeaders: multi, body, isBase64Encoded }
      : { statusCode, headers: single, body, isBase64Encoded }
  }
  const statusDescription = `${statusCode} ${reasons[statusCode] ?? 'Unknown'}`
  // ALB with multi-value headers enabled reads only `multiValueHeaders`; without, only `headers`.
  return shape.multiValue
    ? { statusCode, statusDescription, multiValueHeaders: multi, body, isBase64Encoded }
    : { statusCode, statusDescription, headers: single, body, isBase64Encoded }
}

// ---------------------------------------------------------------------------------------------
// Outbound (Lambda targets): AttemptRequest → HTTP API v2 event, result → MeshResponse

export interface V2EventOptions {
  /** Defaults to the current time. */
  timeEpoch?: number
  requestId?: string
}

let requestCounter = 0

function newRequestId(): string {
  requestCounter = (requestCounter + 1) % 0x1000000
  return `mg-${Date.now().toString(36)}-${requestCounter.toString(36)}`
}

function decodeQueryPart(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    return s
  }
}

/**
 * Build the HTTP API v2 event a function behind API Gateway would receive for this attempt. The body
 * must already be in memory (Invoke takes one JSON document).
 */
export function toHttpApiV2Event(
  req: AttemptRequest,
  body: Uint8Array | string | null,
  opts: V2EventOptions = {},
): APIGatewayProxyEventV2 {
  const q = req.path.indexOf('?')
  const rawPath = q === -1 ? req.path : req.path.slice(0, q)
  const rawQueryString = q === -1 ? '' : req.path.slice(q + 1)

  const headers: Record<string, string> = {}
  let cookies: string[] | undefined
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue
    const key = name.toLowerCase()
    const list = valuesOf(value)
    if (key === 'cookie') {
      cookies = list.flatMap((c) => c.split(';').map((s) => s.trim())).filter((s) => s.length > 0)
      continue
    }
    headers[key] = list.join(',')
  }

  let queryStringParameters: Record<string, string> | undefined
  if (rawQueryString) {
    queryStringParameters = {}
    for (const pair of rawQueryString.split('&')) {
      if (!pair) continue
      const eq = pair.indexOf('=')
      const k = decodeQueryPart(eq === -1 ? pair : pair.slice(0, eq))
      const v = eq === -1 ? '' : decodeQueryPart(pair.slice(eq + 1))
      // v2 joins repeated parameters with commas.
      queryStringParameters[k] = k in queryStringParameters ? `${queryStringParameters[k]},${v}` : v
    }
  }

  const timeEpoch = opts.timeEpoch ?? Date.now()
  const requestId = opts.requestId ?? newRequestId()
  const encoded = encodeBody(body, headers['content-type'])
  const host = headers.host ?? req.service
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'meshgate',
      domainName: host,
      domainPrefix: host.split('.')[0] ?? host,
      http: {
        method: req.method.toUpperCase(),
        path: rawPath,
        protocol: 'HTTP/1.1',
        sourceIp: req.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: formatClf(new Date(timeEpoch)),
      timeEpoch,
    },
    isBase64Encoded: encoded.isBase64Encoded,
  }
  if (cookies && cookies.length > 0) event.cookies = cookies
  if (queryStringParameters) event.queryStringParameters = queryStringParameters
  if (body !== null) event.body = encoded.body
  return event
}

/** API Gateway's `requestContext.time`: `12/Mar/2020:19:03:58 +0000`. */
function formatClf(d: Date): string {
  // toUTCString(): `Thu, 12 Mar 2020 19:03:58 GMT`
  const [, day, month, year, time] = d.toUTCString().split(' ')
  return `${day}/${month}/${year}:${time} +0000`
}

/**
 * Read a function's result the way API Gateway reads it for payload v2: an object with a `statusCode`
 * is a structured response; anything else (a string, a number, an object without statusCode) is a
 * 200 whose JSON body is that value.
 */
export function fromLambdaResult(result: unknown): MeshResponse {
  if (!isObj(result) || typeof result.statusCode !== 'number') {
    const body = typeof result === 'string' ? result : (JSON.stringify(result) ?? '')
    return { status: 200, headers: { 'content-type': 'application/json' }, body }
  }
  const headers: HeaderMap = {}
  const add = (name: string, value: unknown) => {
    if (value === undefined || value === null) return
    const key = name.toLowerCase()
    const prev = headers[key]
    const v = String(value)
    headers[key] = prev === undefined ? v : [...valuesOf(prev), v]
  }
  if (isObj(result.multiValueHeaders)) {
    for (const [name, values] of Object.entries(result.multiValueHeaders)) {
      if (Array.isArray(values)) for (const v of values) add(name, v)
    }
  }
  if (isObj(result.headers)) {
    for (const [name, value] of Object.entries(result.headers)) {
      // multiValueHeaders already gave the full list for this name.
      if (isObj(result.multiValueHeaders) && name in result.multiValueHeaders) continue
      add(name, value)
    }
  }
  if (Array.isArray(result.cookies)) for (const c of result.cookies) add('set-cookie', c)
  // set-cookie is always a list, as node:http delivers it.
  const sc = headers['set-cookie']
  if (typeof sc === 'string') headers['set-cookie'] = [sc]

  let body: MeshBody = null
  if (typeof result.body === 'string') {
    body = decodeBody(result.body, result.isBase64Encoded === true)
  } else if (result.body !== undefined && result.body !== null) {
    // API Gateway would refuse a non-string body; be lenient and serialize it.
    body = JSON.stringify(result.body)
  }
  return { status: result.statusCode, headers, body }
}
