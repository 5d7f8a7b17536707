// The one refusal path of the HTTP edge: a request the edge will not take is answered from the error
// table (engine/errors.ts: code → status, JSON body, `x-meshgate-error`) and its connection closes,
// since after a framing error nothing more on it can be read safely (RFC 9112 §9.6, §11.2).

import { STATUS_CODES } from 'node:http'
import { type ErrorCode, errorResponse, MeshError } from '../engine/errors.ts'

/** `Date` for responses that lack one (RFC 9110 §6.6.1), remade at most once a second. */
let dateText = ''
let dateAt = 0
export function httpDate(): string {
  const now = Date.now()
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000)
    dateText = new Date(dateAt).toUTCString()
  }
  return dateText
}

/** `HTTP/1.1 200 OK\r\n` and the like, made once per status code. */
const statusLines: string[] = []
export function statusLine(status: number): string {
  let line = statusLines[status]
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`
    if (status >= 100 && status <= 999) statusLines[status] = line
  }
  return line
}

/** The whole refusal for `code`, with `connection: close`, as latin1 text to write on the socket. */
export function refusalText(code: ErrorCode, details?: Readonly<Record<string, string>>): string {
  const res = errorResponse(new MeshError(code, code, details && { details: { ...details } }))
  let head = statusLine(res.status)
  for (const name in res.headers) head += `${name}: ${res.headers[name]}\r\n`
  return `${head}date: ${httpDate()}\r\nconnection: close\r\n\r\n${res.body as string}`
}
