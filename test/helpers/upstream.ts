// Real upstream servers for integration tests: node:http on a loopback port 0. Each answers with its
// name (header `x-upstream` and the JSON body), counts requests, and can fail a share of them, answer
// slowly, echo the request, or count the bytes of a streamed upload.

import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { seededRandom } from './manual-clock.ts'

export interface UpstreamBehaviour {
  /** Status of a normal answer. Default 200. */
  status?: number
  /** Extra response headers. */
  headers?: Record<string, string>
  /** Fraction 0–1 of requests answered with `failStatus` instead. Default 0. */
  failRate?: number
  /** Default 503. */
  failStatus?: number
  /** Wait this long before answering, in ms. Default 0. */
  delayMs?: number
  /** Answer only once this resolves: a gate the test opens (test/helpers/gate.ts). */
  hold?: Promise<void>
  /**
   * `json` (default): `{upstream, method, url, headers, bodyBytes}` after reading the whole body;
   * `echo`: the request body streamed back as it arrives; `count`: reads the body without keeping it
   * and answers `{upstream, bodyBytes}`.
   */
  mode?: 'json' | 'echo' | 'count'
}

export interface RecordedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  bodyBytes: number
  status: number
}

export interface Upstream {
  readonly name: string
  readonly url: string
  readonly port: number
  /** Requests received so far (counted on arrival). */
  count(): number
  /** The last requests answered (at most 1000 kept), oldest first. */
  requests(): RecordedRequest[]
  /** Requests answered with the failure status. */
  failures(): number
  /** Requests received but not yet answered. */
  inFlight(): number
  set(b: UpstreamBehaviour): void
  reset(): void
  close(): Promise<void>
}

const MAX_RECORDED = 1000

export async function startUpstream(
  name: string,
  behaviour: UpstreamBehaviour = {},
  seed = 1,
  /** Where to listen; default a free port on 127.0.0.1 (any 127.0.0.0/8 address works on Linux). */
  at: { host?: string; port?: number } = {},
): Promise<Upstream> {
  let b: UpstreamBehaviour = { ...behaviour }
  let received = 0
  let failed = 0
  let active = 0
  let recorded: RecordedRequest[] = []
  // Seeded, so failure patterns are the same from run to run.
  const random = seededRandom(seed)
  const sockets = new Set<Socket>()

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    received++
    active++
    res.once('close', () => active--)
    const fail = (b.failRate ?? 0) > 0 && random() < (b.failRate ?? 0)
    const status = fail ? (b.failStatus ?? 503) : (b.status ?? 200)
    if (fail) failed++
    const mode = b.mode ?? 'json'
    const record = (bodyBytes: number) => {
      recorded.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes, status })
      if (recorded.length > MAX_RECORDED) recorded = recorded.slice(-MAX_RECORDED)
    }
    if ((b.delayMs ?? 0) > 0) await new Promise((r) => setTimeout(r, b.delayMs))
    if (b.hold !== undefined) await b.hold
    if (res.destroyed) return
    res.setHeader('x-upstream', name)
    for (const [k, v] of Object.entries(b.headers ?? {})) res.setHeader(k, v)
    if (mode === 'echo' && !fail) {
      res.writeHead(status, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' })
      let bytes = 0
      req.on('data', (c: Buffer) => {
        bytes += c.length
      })
      req.pipe(res)
      req.once('end', () => record(bytes))
      return
    }
    let bytes = 0
    for await (const chunk of req) bytes += (chunk as Buffer).length
    record(bytes)
    const body =
      mode === 'count'
        ? JSON.stringify({ upstream: name, bodyBytes: bytes })
        : JSON.stringify({
            upstream: name,
            method: req.method,
            url: req.url,
            headers: req.headers,
            bodyBytes: bytes,
          })
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy())
  })
  server.keepAliveTimeout = 30_000
  server.on('connection', (s: Socket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  const host = at.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(at.port ?? 0, host, resolve)
  })
  const port = (server.address() as AddressInfo).port

  return {
    name,
    url: `http://${host}:${port}`,
    port,
    count: () => received,
    requests: () => [...recorded],
    failures: () => failed,
    inFlight: () => active,
    set(next) {
      b = { ...next }
    },
    reset() {
      received = 0
      failed = 0
      recorded = []
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const s of sockets) s.destroy()
      })
    },
  }
}
