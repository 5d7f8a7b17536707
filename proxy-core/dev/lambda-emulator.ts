// The Lambda Invoke API on loopback (`POST /2015-03-31/functions/{name}/invocations`), enough of it
// for the real @aws-sdk/client-lambda: RequestResponse returns the handler's result; a handler that
// throws gives `X-Amz-Function-Error: Unhandled` with the error payload; an unknown name is a 404
// ResourceNotFoundException; Event returns 202 and DryRun 204. Every function runs in its own worker
// thread (its sandbox) inside this process: no child process, and a config change redeploys it.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import { extname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { listen } from '../sidecar/listen-address.ts'
import type { LambdaFunctionEntry } from './catalog.ts'
import type { SandboxData, SandboxReply } from './lambda-worker.ts'

// The worker's file is a sibling with this module's own extension: `.ts` in a checkout, `.js` in the
// published package (tsc rewrites import specifiers, not URLs).
const WORKER_URL = new URL(`./lambda-worker${extname(import.meta.url)}`, import.meta.url)

/** Epoch ms with the sub-millisecond part: invocations often take less than a millisecond. */
const epochNow = () => performance.timeOrigin + performance.now()

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/
/** 20 s: serverless.yml's function timeout. */
const FUNCTION_TIMEOUT_MS = 20_000
const REGION = 'us-east-1'

export interface InvocationRecord {
  functionName: string
  /** Epoch ms. */
  start: number
  end: number
  ok: boolean
  /** The HTTP status in the function's result, when it returned one. */
  status?: number
  /** The event's X-Amzn-Trace-Id header, which carries the trace through the function. */
  traceHeader?: string
}

export interface LambdaEmulatorOptions {
  /** The package root: catalog modules are relative to it. */
  root: string
  functions: Readonly<Record<string, LambdaFunctionEntry>>
  /** The environment of a sandbox started now (called per deployment). */
  env(functionName: string): Record<string, string>
  /** A line a function wrote on stdout or stderr (EMF lines included). */
  onOutput?(functionName: string, line: string): void
  onInvoke?(record: InvocationRecord): void
}

export interface LambdaEmulator {
  /** `http://127.0.0.1:PORT`: the value for MESHGATE_LAMBDA_ENDPOINT. */
  readonly url: string
  /** From now on, invocations go to fresh sandboxes; old ones finish their work and stop. */
  redeploy(): void
  /** Sandboxes currently alive. */
  sandboxes(): number
  close(): Promise<void>
}

interface Pending {
  resolve(reply: SandboxReply): void
}

interface Sandbox {
  readonly worker: Worker
  readonly generation: number
  readonly pending: Map<number, Pending>
  retired: boolean
}

function lineSplitter(onLine: (line: string) => void): (chunk: Buffer | string) => void {
  let rest = ''
  return (chunk) => {
    rest += chunk.toString()
    let nl = rest.indexOf('\n')
    while (nl >= 0) {
      onLine(rest.slice(0, nl))
      rest = rest.slice(nl + 1)
      nl = rest.indexOf('\n')
    }
  }
}

/** `name`, `name:alias`, or an ARN `arn:aws:lambda:region:acct:function:name[:alias]` → `name`. */
export function functionNameOf(raw: string): string {
  const arn = /^arn:[^:]+:lambda:[^:]*:[^:]*:function:([^:]+)(:.+)?$/.exec(raw)
  if (arn) return arn[1]!
  return raw.split(':')[0]!
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': crypto.randomUUID(),
    ...headers,
  })
  res.end(text)
}

function awsError(res: ServerResponse, status: number, type: string, message: string) {
  sendJson(res, status, { Type: 'User', message, __type: type }, { 'x-amzn-errortype': type })
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

export async function startLambdaEmulator(opts: LambdaEmulatorOptions): Promise<LambdaEmulator> {
  let generation = 0
  let nextId = 1
  let closed = false
  const live = new Map<string, Sandbox>()
  const all = new Set<Sandbox>()

  function stopIfIdle(sb: Sandbox): void {
    if (sb.retired && sb.pending.size === 0) {
      all.delete(sb)
      void sb.worker.terminate()
    }
  }

  function failAll(sb: Sandbox, message: string): void {
    for (const [id, p] of sb.pending) {
      p.resolve({
        id,
        ok: false,
        error: { errorType: 'Runtime.ExitError', errorMessage: message, trace: [] },
      })
    }
    sb.pending.clear()
  }

  function sandboxFor(name: string, entry: LambdaFunctionEntry): Sandbox {
    const current = live.get(name)
    if (current && current.generation === generation && !current.retired) return current
    if (current) {
      current.retired = true
      stopIfIdle(current)
    }
    const data: SandboxData = {
      moduleUrl: pathToFileURL(join(opts.root, entry.module)).href,
      exportName: entry.export,
      functionName: name,
      region: REGION,
      timeoutMs: FUNCTION_TIMEOUT_MS,
    }
    const worker = new Worker(WORKER_URL, {
      workerData: data,
      env: opts.env(name),
      stdout: true,
      stderr: true,
      name: `lambda:${name}`,
    })
    const sb: Sandbox = { worker, generation, pending: new Map(), retired: false }
    const out = lineSplitter((line) => opts.onOutput?.(name, line))
    worker.stdout.on('data', out)
    worker.stderr.on(
      'data',
      lineSplitter((line) => opts.onOutput?.(name, line)),
    )
    worker.on('message', (reply: SandboxReply) => {
      const p = sb.pending.get(reply.id)
      if (!p) return
      sb.pending.delete(reply.id)
      p.resolve(reply)
      stopIfIdle(sb)
    })
    worker.on('error', (err) => {
      sb.retired = true
      failAll(sb, `sandbox crashed: ${err.message}`)
    })
    worker.on('exit', (code) => {
      sb.retired = true
      all.delete(sb)
      if (live.get(name) === sb) live.delete(name)
      failAll(sb, `Runtime exited with error: exit status ${code}`)
    })
    live.set(name, sb)
    all.add(sb)
    return sb
  }

  function invoke(name: string, entry: LambdaFunctionEntry, event: unknown): Promise<SandboxReply> {
    const sb = sandboxFor(name, entry)
    const id = nextId++
    return new Promise<SandboxReply>((resolve) => {
      const timer = setTimeout(() => {
        if (!sb.pending.delete(id)) return
        // A timed-out sandbox is not trusted again (Lambda resets it too).
        sb.retired = true
        stopIfIdle(sb)
        resolve({
          id,
          ok: false,
          error: {
            errorType: 'Sandbox.Timedout',
            errorMessage: `Task timed out after ${(FUNCTION_TIMEOUT_MS / 1000).toFixed(2)} seconds`,
            trace: [],
          },
        })
      }, FUNCTION_TIMEOUT_MS)
      sb.pending.set(id, {
        resolve: (reply) => {
          clearTimeout(timer)
          resolve(reply)
        },
      })
      sb.worker.postMessage({ id, event })
    })
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!
    const m = INVOKE_PATH.exec(path)
    if (req.method !== 'POST' || !m) {
      req.resume()
      return awsError(res, 404, 'UnknownOperationException', `unknown operation ${req.method} ${path}`)
    }
    const name = functionNameOf(decodeURIComponent(m[1]!))
    const entry = opts.functions[name]
    const body = await readBody(req)
    if (!entry) {
      return awsError(
        res,
        404,
        'ResourceNotFoundException',
        `Function not found: arn:aws:lambda:${REGION}:000000000000:function:${name}`,
      )
    }
    let event: unknown = {}
    if (body.byteLength > 0) {
      try {
        event = JSON.parse(body.toString('utf8'))
      } catch {
        return awsError(res, 400, 'InvalidRequestContentException', 'Could not parse request body into json')
      }
    }
    const type = String(req.headers['x-amz-invocation-type'] ?? 'RequestResponse')
    if (type === 'DryRun') {
      res.writeHead(204)
      res.end()
      return
    }
    const start = epochNow()
    const traceHeader = (event as { headers?: Record<string, string> })?.headers?.['x-amzn-trace-id']
    const run = invoke(name, entry, event).then((reply) => {
      const result = reply.ok ? (reply.result as { statusCode?: unknown } | null) : null
      opts.onInvoke?.({
        functionName: name,
        start,
        end: epochNow(),
        ok: reply.ok,
        ...(typeof result?.statusCode === 'number' ? { status: result.statusCode } : {}),
        ...(typeof traceHeader === 'string' ? { traceHeader } : {}),
      })
      return reply
    })
    if (type === 'Event') {
      res.writeHead(202, { 'content-length': 0 })
      res.end()
      return
    }
    const reply = await run
    if (reply.ok) {
      sendJson(res, 200, reply.result, { 'x-amz-executed-version': '$LATEST' })
    } else {
      sendJson(res, 200, reply.error, {
        'x-amz-executed-version': '$LATEST',
        'x-amz-function-error': 'Unhandled',
      })
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) awsError(res, 500, 'ServiceException', String(err))
      else res.destroy()
    })
  })
  const port = await listen(server, 0, '127.0.0.1')

  return {
    url: `http://127.0.0.1:${port}`,
    redeploy() {
      generation++
      for (const sb of live.values()) {
        sb.retired = true
        stopIfIdle(sb)
      }
    },
    sandboxes: () => all.size,
    async close() {
      if (closed) return
      closed = true
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await Promise.all([...all].map((sb) => sb.worker.terminate()))
      all.clear()
      live.clear()
    },
  }
}
