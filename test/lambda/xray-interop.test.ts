// A function that already uses aws-xray-sdk-core: meshgate's subsegments nest under the SDK's
// current subsegment. The real SDK, a real UDP socket standing in for the daemon.
import { createSocket, type Socket } from 'node:dgram'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import middy from '@middy/core'
import type { Context } from 'aws-lambda'
import AWSXRay from 'aws-xray-sdk-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { mesh } from '../../proxy-core/lambda/index.ts'

let daemon: Socket
let upstream: Server
const docs: Record<string, unknown>[] = []

beforeAll(async () => {
  daemon = createSocket('udp4')
  daemon.on('message', (msg) => {
    const [header, body] = msg.toString().split('\n', 2)
    expect(JSON.parse(header!)).toEqual({ format: 'json', version: 1 })
    docs.push(JSON.parse(body!))
  })
  await new Promise<void>((r) => daemon.bind(0, '127.0.0.1', () => r()))
  const address = `127.0.0.1:${(daemon.address() as AddressInfo).port}`
  process.env.AWS_XRAY_DAEMON_ADDRESS = address
  AWSXRay.setDaemonAddress(address)
  AWSXRay.setContextMissingStrategy('IGNORE_ERROR')
  upstream = createServer((_req, res) => res.end('ok'))
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()))
})

afterAll(() => {
  daemon.close()
  upstream.close()
})

it("nests meshgate's subsegments under the SDK's current subsegment", async () => {
  const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  const config = JSON.stringify({
    version: 1,
    mesh: 'interop',
    services: { ratings: { targets: { v1: { http: origin } } } },
  })
  let sdkSubsegmentId = ''
  let traceId = ''
  const handler = middy(async (_event: unknown, context: Context) => {
    return AWSXRay.captureAsyncFunc('business-logic', async (sub) => {
      sdkSubsegmentId = sub!.id
      const res = await context.mesh.fetch('http://ratings/ratings/0')
      sub!.close()
      return { statusCode: res.status, body: await res.text() }
    })
  }).use(mesh({ service: 'reviews', config, xray: AWSXRay }))

  const segment = new AWSXRay.Segment('reviews')
  traceId = segment.trace_id
  const ns = AWSXRay.getNamespace()
  const result = await ns.runPromise(async () => {
    AWSXRay.setSegment(segment)
    return handler({}, { functionName: 'reviews' } as Context)
  })
  expect(result).toEqual({ statusCode: 200, body: 'ok' })

  await expect
    .poll(() => docs.find((d) => (d.annotations as Record<string, unknown> | undefined)?.mesh === 'interop'))
    .toBeTruthy()
  const ours = docs.find((d) => (d.annotations as Record<string, unknown> | undefined)?.mesh === 'interop')!
  expect(ours).toMatchObject({
    type: 'subsegment',
    namespace: 'remote',
    trace_id: traceId,
    parent_id: sdkSubsegmentId,
  })
})
