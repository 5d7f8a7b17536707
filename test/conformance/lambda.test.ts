// The shared routing cases against the Lambda runtime: a handler wrapped with mesh() in the real
// middy engine, calling the same upstreams through context.mesh.fetch.
import middy from '@middy/core'
import type { Context } from 'aws-lambda'
import { afterAll, beforeAll, describe } from 'vitest'
import { mesh } from '../../proxy-core/lambda/index.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import {
  type ConformanceReply,
  type ConformanceRequest,
  conformanceMesh,
  parseJson,
  type Runner,
} from './cases.ts'
import { runConformance } from './run-cases.ts'

let upstreams: Upstream[] = []
let handler: (req: ConformanceRequest) => Promise<ConformanceReply>

beforeAll(async () => {
  upstreams = await Promise.all(
    ['v1', 'v2', 'v3'].map((n) => startUpstream(n, { headers: { 'x-upstream-port': 'x' } })),
  )
  const [v1, v2, v3] = upstreams.map((u) => u.url) as [string, string, string]
  const config = JSON.stringify(conformanceMesh({ v1, v2, v3 }))
  const wrapped = middy(async (event: ConformanceRequest, context: Context): Promise<ConformanceReply> => {
    const res = await context.mesh.fetch(`http://${event.service}${event.path}`, {
      method: event.method ?? 'GET',
      headers: event.headers ?? {},
    })
    const headers: Record<string, string | undefined> = {}
    res.headers.forEach((v, k) => {
      headers[k] = v
    })
    return { status: res.status, headers, json: parseJson(await res.text()) }
  }).use(mesh({ service: 'productpage', config }))
  handler = (req) => wrapped(req, { functionName: 'productpage' } as Context)
})

afterAll(async () => {
  await Promise.all(upstreams.map((u) => u.close()))
})

const runner: Runner = (req) => handler(req)

describe('conformance: lambda', () => runConformance(() => runner))
