// One Lambda container in a worker thread: its own module state (the mesh() container, its config
// source), a real middy handler, invoked one event at a time as Lambda does. Each answer says which
// upstream served the call and which weights the invocation routed by.

import { parentPort, workerData } from 'node:worker_threads'
import middy from '@middy/core'
import type { Context } from 'aws-lambda'
import { mesh } from '../../proxy-core/lambda/index.ts'

const { config } = workerData as { config: string }

const handler = middy(async (_event: unknown, context: Context) => {
  const res = await context.mesh.fetch('http://reviews/')
  await res.arrayBuffer()
  const route = context.mesh.runtime.config.services.reviews?.routes[0]
  return { status: res.status, upstream: res.headers.get('x-upstream') ?? undefined, weights: route?.to }
}).use(mesh({ service: 'productpage', config }))

const context = {
  functionName: 'productpage',
  awsRequestId: 'fleet',
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context

// Lambda runs one invocation at a time per container: queue the rest.
let chain: Promise<unknown> = Promise.resolve()
parentPort!.on('message', (msg: { id: number }) => {
  chain = chain.then(async () => {
    try {
      const r = await handler({}, context)
      parentPort!.postMessage({ id: msg.id, ...r })
    } catch (err) {
      parentPort!.postMessage({ id: msg.id, status: 0, error: String(err) })
    }
  })
})
parentPort!.postMessage({ ready: true })
