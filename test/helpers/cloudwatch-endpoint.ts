// A local CloudWatch endpoint that speaks the wire protocol the real @aws-sdk/client-cloudwatch uses
// (awsJson1_0 with query compatibility): POST /, `x-amz-target: GraniteServiceVersion20100801.<Op>`,
// JSON body, gzip when `content-encoding: gzip`. It records every request and answers `200 {}`, or an
// error on demand, so tests run the real client against it. No signature check: any credentials pass.

import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'

export const CLOUDWATCH_TARGET_PREFIX = 'GraniteServiceVersion20100801.'

export interface ReceivedStatisticSet {
  SampleCount: number
  Sum: number
  Minimum: number
  Maximum: number
}
export interface ReceivedDatum {
  MetricName: string
  Dimensions?: { Name: string; Value: string }[]
  /** Epoch seconds on the wire. */
  Timestamp?: number
  Value?: number
  StatisticValues?: ReceivedStatisticSet
  Values?: number[]
  Counts?: number[]
  Unit?: string
  StorageResolution?: number
}
export interface ReceivedRequest {
  /** The operation, e.g. `PutMetricData`. */
  operation: string
  gzip: boolean
  headers: IncomingHttpHeaders
  /** The parsed JSON body (for PutMetricData: Namespace and MetricData). */
  body: { Namespace?: string; MetricData?: ReceivedDatum[]; [k: string]: unknown }
}

export interface InjectedError {
  status: number
  /** The query-protocol error code, e.g. `Throttling`, `InternalServiceError`. */
  code: string
  message?: string
}

export interface CloudWatchEndpoint {
  /** `http://127.0.0.1:<port>`: pass as the client's `endpoint`. */
  url: string
  /** Every request answered with success, in arrival order. */
  readonly requests: ReceivedRequest[]
  /** Every request received, failed ones included. */
  readonly received: ReceivedRequest[]
  /** Answer the next `n` requests with `error` (default: a 400 Throttling, which the SDK retries). */
  failNext(n: number, error?: InjectedError): void
  /** Resolves once `n` successful requests have arrived. */
  waitForRequests(n: number): Promise<void>
  /** Every datum of every successful PutMetricData, flattened. */
  datums(): ReceivedDatum[]
  close(): Promise<void>
}

export const THROTTLING: InjectedError = { status: 400, code: 'Throttling', message: 'Rate exceeded' }
export const INTERNAL_ERROR: InjectedError = { status: 500, code: 'InternalServiceError', message: 'boom' }

export async function startCloudWatchEndpoint(): Promise<CloudWatchEndpoint> {
  const requests: ReceivedRequest[] = []
  const received: ReceivedRequest[] = []
  const failures: InjectedError[] = []
  const waiters: { n: number; resolve: () => void }[] = []

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const reply = (status: number, body: object, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', ...headers })
        res.end(JSON.stringify(body))
      }
      const target = String(req.headers['x-amz-target'] ?? '')
      if (req.method !== 'POST' || !target.startsWith(CLOUDWATCH_TARGET_PREFIX)) {
        reply(400, { __type: 'UnknownOperationException', message: `no target ${target}` })
        return
      }
      const gzip = req.headers['content-encoding'] === 'gzip'
      let body: ReceivedRequest['body']
      try {
        const raw = Buffer.concat(chunks)
        body = JSON.parse((gzip ? gunzipSync(raw) : raw).toString('utf8'))
      } catch {
        reply(400, { __type: 'SerializationException', message: 'bad body' })
        return
      }
      const entry: ReceivedRequest = {
        operation: target.slice(CLOUDWATCH_TARGET_PREFIX.length),
        gzip,
        headers: req.headers,
        body,
      }
      received.push(entry)
      const failure = failures.shift()
      if (failure !== undefined) {
        // awsJson1_0 error shape; query-compatible services also name the code in x-amzn-query-error.
        reply(
          failure.status,
          { __type: failure.code, message: failure.message ?? failure.code },
          { 'x-amzn-query-error': `${failure.code};${failure.status >= 500 ? 'Receiver' : 'Sender'}` },
        )
        return
      }
      requests.push(entry)
      reply(200, {})
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (requests.length >= waiters[i]!.n) waiters.splice(i, 1)[0]!.resolve()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    received,
    failNext(n, error = THROTTLING) {
      for (let i = 0; i < n; i++) failures.push(error)
    },
    waitForRequests(n) {
      if (requests.length >= n) return Promise.resolve()
      return new Promise((resolve) => waiters.push({ n, resolve }))
    },
    datums: () => requests.flatMap((r) => r.body.MetricData ?? []),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
