// One Lambda sandbox of `meshgate dev`: a worker thread that loads one function's module, with the
// environment a deployment would give it, and runs its invocations. A new config is a new deployment:
// the emulator retires this worker and starts another, so the function's mesh() middleware reads the
// new config on its cold start, as in AWS.
import { randomUUID } from 'node:crypto'
import { parentPort, workerData } from 'node:worker_threads'

export interface SandboxData {
  moduleUrl: string
  exportName: string
  functionName: string
  region: string
  /** Milliseconds an invocation may run. */
  timeoutMs: number
}

export type SandboxRequest = { id: number; event: unknown }
export type SandboxReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { errorType: string; errorMessage: string; trace: string[] } }

type Handler = (event: unknown, context: unknown) => Promise<unknown>

const data = workerData as SandboxData
const port = parentPort!
let handler: Promise<Handler> | undefined

function load(): Promise<Handler> {
  handler ??= import(data.moduleUrl).then((mod: Record<string, unknown>) => {
    const fn = mod[data.exportName]
    if (typeof fn !== 'function') {
      throw new TypeError(`${data.moduleUrl} has no function export "${data.exportName}"`)
    }
    return fn as Handler
  })
  return handler
}

function contextFor(requestId: string) {
  const deadline = Date.now() + data.timeoutMs
  return {
    functionName: data.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${data.region}:000000000000:function:${data.functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${data.functionName}`,
    logStreamName: 'meshgate-dev',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  }
}

function errorOf(err: unknown) {
  const e = err instanceof Error ? err : new Error(String(err))
  return {
    errorType: e.name || 'Error',
    errorMessage: e.message,
    trace: (e.stack ?? '').split('\n').slice(1, 8),
  }
}

port.on('message', async (msg: SandboxRequest) => {
  let reply: SandboxReply
  try {
    const fn = await load()
    const result = await fn(msg.event, contextFor(randomUUID()))
    reply = { id: msg.id, ok: true, result: result === undefined ? null : result }
  } catch (err) {
    reply = { id: msg.id, ok: false, error: errorOf(err) }
  }
  port.postMessage(reply)
})
