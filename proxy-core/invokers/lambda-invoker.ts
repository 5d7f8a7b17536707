// The Lambda target invoker, shared by the Lambda runtime and the sidecar: one attempt is one
// `Invoke` (RequestResponse) carrying an API Gateway HTTP API v2 event, so any function written for
// API Gateway joins the mesh unchanged.
//
// Cold start: `@aws-sdk/client-lambda` costs ~50 ms to load, so it is imported on the first invoke,
// never at module load. A function that only calls HTTP targets never pays for it.

import type { InvokeCommandOutput, LambdaClient } from '@aws-sdk/client-lambda'
import { toAbortSignal } from '../engine/cancel.ts'
import type { AttemptRequest, CancelSignal, Endpoint, Invoker, MeshResponse } from '../engine/types.ts'
import { FailureKinds, UpstreamFailure } from '../engine/types.ts'
import { networkFailureKind } from '../http/upstream-failure.ts'
import { collectBody, fromLambdaResult, toHttpApiV2Event } from '../lambda/events.ts'

export interface LambdaInvokerOptions {
  /** An emulator or VPC endpoint, e.g. `http://127.0.0.1:3002`. Default: `MESHGATE_LAMBDA_ENDPOINT`. */
  endpoint?: string
  /** Default: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then `us-east-1`. */
  region?: string
}

type ClientModule = typeof import('@aws-sdk/client-lambda')

interface Loaded {
  client: LambdaClient
  InvokeCommand: ClientModule['InvokeCommand']
}

// Lambda API errors that mean "try again later". Other API errors are answered as bad gateway.
const throttleNames = new Set(['TooManyRequestsException', 'ThrottlingException', 'EC2ThrottledException'])

interface SdkLikeError {
  name?: string
  code?: string
  message?: string
  $metadata?: { httpStatusCode?: number }
  cause?: unknown
}

/** Map whatever the SDK threw to the failure kinds the retry policy understands. */
export function classifyLambdaError(err: unknown, signal: AbortSignal): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkLikeError
  const message = e.message ?? String(err)
  // Only our signal means timeout: the SDK also names a socket hang-up `TimeoutError`.
  if (signal.aborted || e.name === 'AbortError') {
    return new UpstreamFailure(FailureKinds.timeout, `lambda invoke aborted: ${message}`, { cause: err })
  }
  const status = e.$metadata?.httpStatusCode
  if ((e.name && throttleNames.has(e.name)) || status === 429) {
    return new UpstreamFailure(FailureKinds.throttled, `lambda throttled: ${e.name ?? status}`, {
      cause: err,
    })
  }
  // The function is not there to call: to the mesh, like a refused connection.
  if (e.name === 'ResourceNotFoundException') {
    return new UpstreamFailure(FailureKinds.connectFailure, `lambda unavailable: ${message}`, { cause: err })
  }
  const kind = networkFailureKind(err, { aborted: false })
  if (kind === FailureKinds.connectFailure) {
    return new UpstreamFailure(FailureKinds.connectFailure, `lambda endpoint: ${message}`, { cause: err })
  }
  if (kind === FailureKinds.reset || /socket hang up/i.test(message)) {
    return new UpstreamFailure(FailureKinds.reset, `lambda endpoint: ${message}`, { cause: err })
  }
  // Anything else the Lambda API answered (5xx service errors, KMS, invalid payloads): the function
  // could not produce a response, which the mesh answers as a bad gateway.
  return new UpstreamFailure(FailureKinds.functionError, `lambda invoke failed: ${e.name ?? message}`, {
    cause: err,
  })
}

const textDecoder = new TextDecoder()
const textEncoder = new TextEncoder()

export function createLambdaInvoker(opts: LambdaInvokerOptions = {}): Invoker {
  // Read the environment once, when the invoker is made.
  const endpoint = opts.endpoint ?? process.env.MESHGATE_LAMBDA_ENDPOINT
  const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1'
  let loading: Promise<Loaded> | undefined

  function load(): Promise<Loaded> {
    loading ??= import('@aws-sdk/client-lambda').then((mod) => {
      // An emulator takes any credentials; do not make local runs hunt for real ones.
      const credentials =
        endpoint && !process.env.AWS_ACCESS_KEY_ID
          ? { accessKeyId: 'meshgate-local', secretAccessKey: 'meshgate-local' }
          : undefined
      const client = new mod.LambdaClient({
        region,
        // The mesh's retry policy and budget decide retries; SDK retries would multiply them.
        maxAttempts: 1,
        ...(endpoint ? { endpoint } : {}),
        ...(credentials ? { credentials } : {}),
      })
      return { client, InvokeCommand: mod.InvokeCommand }
    })
    // A failed import must not poison every later call.
    loading.catch(() => {
      loading = undefined
    })
    return loading
  }

  async function invoke(req: AttemptRequest, ep: Endpoint, cancel: CancelSignal): Promise<MeshResponse> {
    const signal = toAbortSignal(cancel)
    const target = ep.target
    if (target.kind !== 'lambda') {
      throw new TypeError(`lambda invoker got a ${target.kind} endpoint (${ep.id})`)
    }
    let payload: Uint8Array
    let out: InvokeCommandOutput
    try {
      signal.throwIfAborted()
      const body = await collectBody(req.body)
      payload = textEncoder.encode(JSON.stringify(toHttpApiV2Event(req, body)))
      const { client, InvokeCommand } = await load()
      const command = new InvokeCommand({
        FunctionName: target.functionName,
        InvocationType: 'RequestResponse',
        Payload: payload,
        ...(target.qualifier ? { Qualifier: target.qualifier } : {}),
      })
      out = await client.send(command, { abortSignal: signal })
    } catch (err) {
      throw classifyLambdaError(err, signal)
    }
    const text = out.Payload && out.Payload.byteLength > 0 ? textDecoder.decode(out.Payload) : ''
    if (out.FunctionError) {
      // The function threw (Unhandled) or reported an error (Handled): no HTTP response exists.
      let detail = out.FunctionError
      try {
        const parsed = JSON.parse(text) as { errorType?: string; errorMessage?: string }
        detail = `${parsed.errorType ?? out.FunctionError}: ${parsed.errorMessage ?? ''}`
      } catch {
        // not JSON: keep the bare FunctionError
      }
      throw new UpstreamFailure(FailureKinds.functionError, `${target.functionName}: ${detail}`)
    }
    let result: unknown = null
    if (text !== '') {
      try {
        result = JSON.parse(text)
      } catch {
        // Invoke payloads are JSON; a bare text reply is still answered as API Gateway would.
        result = text
      }
    }
    return fromLambdaResult(result)
  }

  return { invoke }
}
