// `meshgate injector`: the Kubernetes mutating admission webhook. HTTPS (the API server calls webhooks
// over TLS only), `admission.k8s.io/v1` AdmissionReview in and out, the sidecar as a base64 JSONPatch.
//
// It never stands in the way of a pod: every review it can answer is `allowed: true`, and a pod it
// cannot inject gets a warning (kubectl prints it) instead of a refusal. A request that is not an
// AdmissionReview at all (bad JSON, no uid to answer) gets a 400 with the reason; one over the size
// bound a 413. The TLS key and certificate are read from files (what cert-manager writes into the
// Secret the Deployment mounts) and swapped in when they change, for new connections, without a
// restart.

import type { FSWatcher } from 'node:fs'
import { readFileSync, watch } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Server } from 'node:https'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { dirname } from 'node:path'
import { createSecureContext } from 'node:tls'
import { diff } from './json-patch.ts'
import { injectPod } from './pod.ts'
import type { InjectSettings } from './settings.ts'
import { InjectError } from './settings.ts'

/**
 * 4 MiB: an AdmissionReview carries the pod twice at most (object, oldObject); the API server's own
 * limit for an object is 1.5 MiB (etcd's request size), so anything bigger is not a real review.
 */
export const MAX_REVIEW_BYTES = 4 * 1024 * 1024
/** Several file events come per rotation (the Secret volume's `..data` symlink swap); one reload. */
const TLS_DEBOUNCE_MS = 100
/** The API server gives a webhook 10 s by default (timeoutSeconds); a slow client is cut at that. */
const REQUEST_TIMEOUT_MS = 10_000

export interface InjectorOptions {
  host?: string
  port: number
  /** PEM files: cert-manager writes `tls.crt` and `tls.key`. */
  certFile: string
  keyFile: string
  settings: InjectSettings
  /** One JSON line per event (listening, TLS reloads, refusals). Default: dropped. */
  log?: (line: string) => void
  maxBodyBytes?: number
}

export interface Injector {
  readonly port: number
  readonly server: Server
  /** Reads the files again now; false (and the old certificate kept) when they do not load. */
  reloadTls(): boolean
  close(): Promise<void>
}

type Json = Record<string, unknown>

interface ReviewAnswer {
  status: number
  body: Json
}

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function allowed(uid: string, extra: Json = {}): Json {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid, allowed: true, ...extra },
  }
}

/** The answer to one AdmissionReview body (already bounded in size). Pure apart from `settings`. */
export function answerReview(text: string, settings: InjectSettings): ReviewAnswer {
  let review: unknown
  try {
    review = JSON.parse(text)
  } catch (e) {
    return { status: 400, body: { error: `not JSON: ${(e as Error).message}` } }
  }
  if (!isObject(review) || review.kind !== 'AdmissionReview' || review.apiVersion !== 'admission.k8s.io/v1')
    return { status: 400, body: { error: 'not an admission.k8s.io/v1 AdmissionReview' } }
  const request = review.request
  if (!isObject(request) || typeof request.uid !== 'string' || request.uid === '')
    return { status: 400, body: { error: 'the AdmissionReview has no request.uid to answer' } }
  const uid = request.uid
  const kind = isObject(request.kind) ? request.kind : {}
  // Only pod creation is ours; the webhook configuration asks for nothing else, but say yes to it.
  if (
    kind.kind !== 'Pod' ||
    (kind.group ?? '') !== '' ||
    request.operation !== 'CREATE' ||
    request.subResource
  )
    return { status: 200, body: allowed(uid) }
  const pod = request.object
  if (!isObject(pod))
    return { status: 200, body: allowed(uid, { warnings: ['meshgate: no pod in the review; not injected'] }) }
  try {
    const outcome = injectPod(pod.metadata, pod.spec, settings)
    if (outcome.kind === 'unchanged') return { status: 200, body: allowed(uid) }
    const patch = diff(pod.spec, outcome.spec).map((op) => ({ ...op, path: `/spec${op.path}` }))
    return {
      status: 200,
      body: allowed(uid, {
        patchType: 'JSONPatch',
        patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
      }),
    }
  } catch (e) {
    if (!(e instanceof InjectError)) throw e
    // Kubernetes shows a warning of up to 256 characters; ours say which pod and why.
    return {
      status: 200,
      body: allowed(uid, { warnings: [`meshgate: sidecar not injected: ${e.message}`.slice(0, 256)] }),
    }
  }
}

function send(res: ServerResponse, status: number, body: Json | string): void {
  const text = typeof body === 'string' ? `${body}\n` : JSON.stringify(body)
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
  })
  res.end(text)
}

/** The request body up to `max` bytes, or `undefined` once it goes over (the rest is not read). */
function readBounded(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > max) {
        req.off('data', onData)
        req.pause()
        resolve(undefined)
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

export async function startInjector(opts: InjectorOptions): Promise<Injector> {
  const log = opts.log ?? (() => {})
  const max = opts.maxBodyBytes ?? MAX_REVIEW_BYTES
  const loadTls = () => {
    const tls = { cert: readFileSync(opts.certFile), key: readFileSync(opts.keyFile) }
    // Throws for a key that does not match the certificate, or a half-written file.
    createSecureContext(tls)
    return tls
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) return send(res, 200, 'ok')
    if (path !== '/mutate') return send(res, 404, { error: 'not found' })
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST')
      return send(res, 405, { error: 'POST an AdmissionReview' })
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    if (type !== 'application/json') return send(res, 415, { error: 'want content-type application/json' })
    const declared = Number(req.headers['content-length'] ?? 0)
    const tooLarge = () => {
      res.setHeader('connection', 'close')
      send(res, 413, { error: `an AdmissionReview is at most ${max} bytes` })
      res.on('finish', () => req.destroy())
    }
    if (declared > max) return tooLarge()
    const body = await readBounded(req, max)
    if (body === undefined) return tooLarge()
    const answer = answerReview(body.toString('utf8'), opts.settings)
    if (answer.status !== 200)
      log(JSON.stringify({ event: 'refused', status: answer.status, error: answer.body.error }))
    send(res, answer.status, answer.body)
  }

  const server = createServer(
    {
      ...loadTls(),
      // The API server speaks TLS 1.2+ to webhooks.
      minVersion: 'TLSv1.2',
      requestTimeout: REQUEST_TIMEOUT_MS,
      headersTimeout: REQUEST_TIMEOUT_MS,
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        log(JSON.stringify({ event: 'error', error: String(err) }))
        if (!res.headersSent) send(res, 500, { error: 'internal error' })
        else res.destroy()
      })
    },
  )
  // A client that sends garbage before or instead of HTTP gets a 400 from node and no crash.
  server.on('clientError', (_err, socket) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
    else socket.destroy()
  })
  server.on('tlsClientError', () => {})

  const reloadTls = (): boolean => {
    try {
      server.setSecureContext({ ...loadTls(), minVersion: 'TLSv1.2' })
      log(JSON.stringify({ event: 'tls_reloaded', cert: opts.certFile }))
      return true
    } catch (err) {
      log(JSON.stringify({ event: 'tls_reload_refused', error: (err as Error).message }))
      return false
    }
  }

  // The directories, not the files: a Secret volume swaps a `..data` symlink and a watch on the old
  // inode would go quiet.
  const watchers: FSWatcher[] = []
  let debounce: NodeJS.Timeout | undefined
  for (const dir of new Set([dirname(opts.certFile), dirname(opts.keyFile)])) {
    const w = watch(dir, () => {
      clearTimeout(debounce)
      debounce = setTimeout(reloadTls, TLS_DEBOUNCE_MS)
    })
    w.on('error', (err) => log(JSON.stringify({ event: 'tls_watch_stopped', error: err.message })))
    watchers.push(w)
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  log(JSON.stringify({ event: 'listening', port }))
  return {
    port,
    server,
    reloadTls,
    close: () => {
      clearTimeout(debounce)
      for (const w of watchers) w.close()
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}
