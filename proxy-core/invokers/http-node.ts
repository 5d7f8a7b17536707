// The HTTP invoker for the Lambda path: node:http / node:https with keep-alive agents. No undici here:
// it costs ~40 ms of init, and a function returns whole responses anyway, so the response body is
// collected into memory. The modules and agents are created on the first call, not at import.

import type { ClientRequest, Agent as HttpAgent, IncomingMessage, RequestOptions } from 'node:http'
import { toAbortSignal } from '../engine/cancel.ts'
import type {
  AttemptRequest,
  CancelSignal,
  Endpoint,
  HeaderMap,
  Invoker,
  MeshBody,
  MeshResponse,
} from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import { endWhole } from '../http/body-stream.ts'
import { forwardedCopy } from '../http/header-policy.ts'
import { drainOrClose } from '../http/pump.ts'
import { upstreamFailure } from '../http/upstream-failure.ts'

export interface NodeHttpInvokerOptions {
  /** Idle keep-alive sockets are closed after this many ms. 5000: Node's own global agent default. */
  idleTimeout?: number
  /** Per origin. Infinity: Node's default; the engine's circuit breaker bounds concurrency. */
  maxSockets?: number
}

/**
 * Copy headers without the hop-by-hop ones (RFC 9110 §7.6.1) and any the Connection header names.
 * `TE: trailers` goes too: this invoker collects whole responses and delivers no trailers.
 */
export function stripHopByHop(headers: HeaderMap): Record<string, string | string[]> {
  return forwardedCopy(headers) as Record<string, string | string[]>
}

interface Net {
  http: typeof import('node:http')
  https: typeof import('node:https')
  agents: { http: HttpAgent; https: HttpAgent }
}

export function createNodeHttpInvoker(opts: NodeHttpInvokerOptions = {}): Invoker {
  const idleTimeout = opts.idleTimeout ?? 5000
  const maxSockets = opts.maxSockets ?? Number.POSITIVE_INFINITY
  let net: Net | undefined
  let loading: Promise<Net> | undefined
  // HTTP/2 targets (`protocol: http2 | grpc`, cleartext): the sidecar's HTTP/2 client, loaded on the
  // first such call only; the response is collected whole, as every response is here.
  let h2: Promise<Invoker> | undefined

  async function invokeHttp2(req: AttemptRequest, ep: Endpoint, cancel: CancelSignal): Promise<MeshResponse> {
    h2 ??= import('../http/http2-client.ts').then((m) => m.createHttp2Invoker({ idleTimeout }))
    const res = await (await h2).invoke(req, ep, cancel)
    const body = res.body
    if (body === null || typeof body === 'string' || body instanceof Uint8Array) return res
    const chunks: Uint8Array[] = []
    let length = 0
    try {
      for await (const chunk of body) {
        chunks.push(chunk)
        length += chunk.byteLength
      }
    } catch (err) {
      throw upstreamFailure(err, { aborted: cancel.aborted, connected: true, what: ep.id })
    }
    const whole = Buffer.concat(chunks, length)
    const trailers = res.trailers instanceof Promise ? await res.trailers : res.trailers
    return {
      status: res.status,
      headers: res.headers,
      body: new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength),
      ...(trailers === undefined ? {} : { trailers }),
    }
  }

  function load(): Promise<Net> {
    // getBuiltinModule, not import(): an ES namespace of node:http evaluates its lazy exports, Node's
    // own undici among them (~47 ms on Node 24, against ~6 ms).
    const builtins = [process.getBuiltinModule('node:http'), process.getBuiltinModule('node:https')] as const
    loading ??= Promise.resolve(builtins).then(([http, https]) => {
      // lifo: the most recently used socket is the least likely to have been closed by the server
      // while the function was frozen.
      const agentOptions = { keepAlive: true, timeout: idleTimeout, maxSockets, scheduling: 'lifo' as const }
      net = {
        http,
        https,
        agents: { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) },
      }
      return net
    })
    return loading
  }

  const invoke: Invoker['invoke'] = async (req, ep, cancel) => {
    const t = ep.target
    if (t.kind === 'http' && (t.protocol === 'http2' || t.protocol === 'grpc') && ep.id.startsWith('http:'))
      return invokeHttp2(req, ep, cancel)
    const signal = toAbortSignal(cancel)
    if (signal.aborted) throw new UpstreamFailure(FailureKinds.timeout, `aborted before sending to ${ep.id}`)
    const { http, https, agents } = net ?? (await load())
    const origin = new URL(ep.id)
    const secure = origin.protocol === 'https:'
    const headers = stripHopByHop(req.headers)
    const body = req.body
    if (typeof body === 'string' || body instanceof Uint8Array) {
      headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength)
    } else if (body !== null) {
      // A stream of unknown length goes out chunked; the length it claimed no longer applies.
      delete headers['content-length']
    }
    const options: RequestOptions = {
      protocol: origin.protocol,
      hostname: origin.hostname.startsWith('[') ? origin.hostname.slice(1, -1) : origin.hostname,
      port: origin.port || (secure ? 443 : 80),
      method: req.method,
      path: req.path,
      headers,
      agent: secure ? agents.https : agents.http,
    }

    return new Promise<MeshResponse>((resolve, reject) => {
      let connected = false
      let settled = false
      const fail = (err: unknown) => {
        if (settled) return
        settled = true
        signal.removeEventListener('abort', onAbort)
        reject(classify(err, connected, signal, ep.id))
      }
      const onAbort = () => {
        creq.destroy()
        fail(signal.reason)
      }
      const onResponse = (res: IncomingMessage) => {
        const chunks: Buffer[] = []
        let length = 0
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk)
          length += chunk.byteLength
        })
        res.on('error', fail)
        res.on('aborted', () => fail(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' })))
        res.on('end', () => {
          if (settled) return
          if (!res.complete) {
            fail(Object.assign(new Error('response ended early'), { code: 'ECONNRESET' }))
            return
          }
          settled = true
          signal.removeEventListener('abort', onAbort)
          const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)
          const resHeaders = forwardedCopy(res.headers)
          resolve({
            status: res.statusCode ?? 502,
            headers: resHeaders,
            body: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
          })
        })
      }
      const creq: ClientRequest = (secure ? https : http).request(options, onResponse)
      creq.on('socket', (socket) => {
        // A reused keep-alive socket is already connected; a new one connects later.
        if (!socket.connecting) connected = true
        else socket.once('connect', () => (connected = true))
      })
      creq.on('error', fail)
      signal.addEventListener('abort', onAbort, { once: true })
      writeBody(creq, body).catch((err) => {
        creq.destroy(err as Error)
        fail(err)
      })
    })
  }

  return { invoke }
}

async function writeBody(creq: ClientRequest, body: MeshBody): Promise<void> {
  if (endWhole(creq, body)) return
  for await (const chunk of body) {
    if (creq.destroyed) return
    if (!creq.write(chunk)) {
      await drainOrClose(creq)
    }
  }
  creq.end()
}

function classify(err: unknown, connected: boolean, signal: AbortSignal, origin: string): UpstreamFailure {
  // Refused, unresolvable, unreachable, or reset during the handshake: nothing reached the app.
  return upstreamFailure(err, { aborted: signal.aborted, connected, what: origin })
}
