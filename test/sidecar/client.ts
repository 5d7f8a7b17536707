// An HTTP client for the sidecar tests: node:http with a keep-alive agent (the way an app talks to
// its sidecar), and a bounded load loop that records every outcome.

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { Agent, request as httpRequest } from 'node:http'
import type { Readable } from 'node:stream'

export interface SendOptions {
  method?: string
  /** Origin-form path (`/x`), or an absolute URL for absolute-form requests. */
  path?: string
  /** The Host header; default the mesh service to call. */
  host?: string
  headers?: OutgoingHttpHeaders
  body?: string | Buffer | Readable
  agent?: Agent
  timeoutMs?: number
}

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
  ms: number
}

/** One request to `base` (`http://127.0.0.1:PORT`). Rejects on a socket error, never on a status. */
export function send(base: string, opts: SendOptions = {}): Promise<Reply> {
  const url = new URL(base)
  const started = performance.now()
  return new Promise<Reply>((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: { ...(opts.host === undefined ? {} : { host: opts.host }), ...opts.headers },
        agent: opts.agent ?? false,
        timeout: opts.timeoutMs ?? 20_000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - started,
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('client timeout')))
    req.on('error', reject)
    const body = opts.body
    if (body === undefined) req.end()
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body)
    else body.pipe(req)
  })
}

export interface LoadResult {
  replies: Reply[]
  errors: Error[]
  /** Replies by status. */
  byStatus: Map<number, number>
  /** Replies by `x-upstream`. */
  byUpstream: Map<string, number>
}

export interface LoadOptions {
  concurrency: number
  /** Stop after this many requests... */
  total?: number
  /** ...or after this long, in ms (whichever comes first; one of them is required). */
  durationMs?: number
  /** Stops starting new requests once it returns true. */
  stop?: () => boolean
  make: (i: number) => SendOptions
}

/** Runs `concurrency` loops over one keep-alive agent until `total` requests or `durationMs` pass. */
export async function load(base: string, opts: LoadOptions): Promise<LoadResult> {
  if (opts.total === undefined && opts.durationMs === undefined)
    throw new Error('load needs total or durationMs')
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency })
  const result: LoadResult = { replies: [], errors: [], byStatus: new Map(), byUpstream: new Map() }
  const until = opts.durationMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + opts.durationMs
  const total = opts.total ?? Number.POSITIVE_INFINITY
  let next = 0
  const worker = async () => {
    while (next < total && performance.now() < until && !(opts.stop?.() ?? false)) {
      const i = next++
      try {
        const r = await send(base, { ...opts.make(i), agent })
        result.replies.push(r)
        result.byStatus.set(r.status, (result.byStatus.get(r.status) ?? 0) + 1)
        const up = r.headers['x-upstream']
        if (typeof up === 'string') result.byUpstream.set(up, (result.byUpstream.get(up) ?? 0) + 1)
      } catch (err) {
        result.errors.push(err as Error)
      }
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  agent.destroy()
  return result
}
