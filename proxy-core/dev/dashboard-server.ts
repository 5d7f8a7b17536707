// The dashboard's HTTP server: the page itself (plain files from ./dashboard, no build step), the state
// as JSON (`GET /api/state`) and as Server-Sent Events (`GET /api/events`, once a second), and the
// controls (`POST /api/edit`, `POST /api/traffic`), which edit the running config file.
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import { listen } from '../sidecar/listen-address.ts'
import type { DashboardState, EditRequest, EditResult } from './dev-mesh.ts'
import type { TrafficGenerator } from './traffic.ts'

const STATIC: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
}
const DASHBOARD_DIR = new URL('./dashboard/', import.meta.url)
/** SSE pushes the state this often (ms). */
const PUSH_INTERVAL_MS = 1_000
const MAX_BODY = 64 * 1024

export interface DashboardServerOptions {
  host: string
  port: number
  state(): DashboardState
  edit(req: EditRequest): Promise<EditResult>
  traffic: TrafficGenerator
}

export interface DashboardServer {
  readonly url: string
  close(): Promise<void>
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(text)
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength
    if (size > MAX_BODY) throw new Error('body too large')
    chunks.push(chunk as Buffer)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

/** The edit as the page sent it, checked field by field. */
export function parseEdit(body: unknown): EditRequest | string {
  if (!isObj(body)) return 'want a JSON object'
  const { op, service, route } = body
  if (typeof service !== 'string' || typeof route !== 'string') return 'want service and route'
  if (op === 'weights') {
    if (!isObj(body.to)) return 'want to: { target: weight }'
    const to: Record<string, number> = {}
    for (const [k, v] of Object.entries(body.to)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return `weight of ${k} must be a number ≥ 0`
      to[k] = Math.round(v * 100) / 100
    }
    return { op, service, route, to }
  }
  if (op === 'target') {
    if (typeof body.target !== 'string') return 'want target'
    return { op, service, route, target: body.target }
  }
  if (op === 'fault' || op === 'route') {
    if (typeof body.enabled !== 'boolean') return 'want enabled: true|false'
    return { op, service, route, enabled: body.enabled }
  }
  return `unknown op ${JSON.stringify(op)}`
}

export async function startDashboardServer(opts: DashboardServerOptions): Promise<DashboardServer> {
  const streams = new Set<ServerResponse>()

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!
    const file = STATIC[path]
    if (req.method === 'GET' && file) {
      const body = await readFile(new URL(file.file, DASHBOARD_DIR))
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' })
      res.end(body)
      return
    }
    if (req.method === 'GET' && path === '/api/state') return json(res, 200, opts.state())
    if (req.method === 'GET' && path === '/api/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      })
      res.write(`retry: 1000\ndata: ${JSON.stringify(opts.state())}\n\n`)
      streams.add(res)
      res.once('close', () => streams.delete(res))
      return
    }
    if (req.method === 'POST' && path === '/api/edit') {
      let body: unknown
      try {
        body = await readJson(req)
      } catch {
        return json(res, 400, { ok: false, error: 'want a JSON body' })
      }
      const edit = parseEdit(body)
      if (typeof edit === 'string') return json(res, 400, { ok: false, error: edit })
      const result = await opts.edit(edit)
      push()
      return json(res, result.ok ? 200 : 422, result)
    }
    if (req.method === 'POST' && path === '/api/traffic') {
      let body: unknown
      try {
        body = await readJson(req)
      } catch {
        return json(res, 400, { ok: false, error: 'want a JSON body' })
      }
      if (!isObj(body)) return json(res, 400, { ok: false, error: 'want a JSON object' })
      if (typeof body.rate === 'number' && Number.isFinite(body.rate)) opts.traffic.setRate(body.rate)
      if (body.running === true) opts.traffic.start()
      if (body.running === false) opts.traffic.stop()
      return json(res, 200, { ok: true, traffic: opts.traffic.stats() })
    }
    json(res, 404, { error: 'not found' })
  }

  function push(): void {
    if (streams.size === 0) return
    const frame = `data: ${JSON.stringify(opts.state())}\n\n`
    for (const s of streams) s.write(frame)
  }
  const timer = setInterval(push, PUSH_INTERVAL_MS)

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: String(err) })
      else res.destroy()
    })
  })
  const port = await listen(server, opts.port, opts.host)
  return {
    url: `http://${opts.host}:${port}`,
    close() {
      clearInterval(timer)
      for (const s of streams) s.end()
      streams.clear()
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}
