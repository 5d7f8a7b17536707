// What `meshgate dev` runs for each target of the mesh config: the one map from config names to code.
//
// - Lambda targets: the function name in the config (`lambda: bookinfo-reviews-v1`) → the module under
//   functions/ and its export, as serverless.yml names them. A name missing here is answered by the
//   local Invoke API as ResourceNotFoundException, exactly as AWS would answer it.
// - HTTP targets: the service (and target) → a container app. A service missing here gets the echo app,
//   so any mesh config runs, with answers that say which instance served them.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import type { MeshClient } from '../../functions/bookinfo/containers/mesh-client.ts'
import { createProductpageApp } from '../../functions/bookinfo/containers/productpage.ts'
import { createRatingsApp } from '../../functions/bookinfo/containers/ratings.ts'
import { createReviewsApp } from '../../functions/bookinfo/containers/reviews.ts'

export interface LambdaFunctionEntry {
  /** Module path relative to the package root. */
  module: string
  /** The handler's export name. */
  export: string
}

export const LAMBDA_FUNCTIONS: Readonly<Record<string, LambdaFunctionEntry>> = {
  'bookinfo-details': { module: 'functions/bookinfo/details.ts', export: 'handler' },
  'bookinfo-reviews-v1': { module: 'functions/bookinfo/reviews.ts', export: 'v1' },
  'bookinfo-reviews-v2': { module: 'functions/bookinfo/reviews.ts', export: 'v2' },
  'bookinfo-reviews-v3': { module: 'functions/bookinfo/reviews.ts', export: 'v3' },
}

export interface ContainerContext {
  service: string
  /** The target name in the config (`v3`). */
  target: string
  /** A readable name of this instance, e.g. `reviews-v3-a`. */
  instance: string
  /** Calls into the mesh through this instance's sidecar. */
  mesh: MeshClient
}

export type ContainerAppFactory = (ctx: ContainerContext) => RequestListener

const starColors: Record<string, 'black' | 'red'> = { v2: 'black', v3: 'red' }

export const CONTAINER_APPS: Readonly<Record<string, ContainerAppFactory>> = {
  productpage: (c) => createProductpageApp({ instance: c.instance, mesh: c.mesh }),
  reviews: (c) => {
    const color = starColors[c.target]
    return createReviewsApp({
      version: c.target,
      instance: c.instance,
      mesh: c.mesh,
      ...(color ? { color } : {}),
    })
  },
  ratings: (c) => createRatingsApp({ instance: c.instance }),
}

/** For services with no app of their own: answers every request with who served it. */
export function createEchoApp(ctx: ContainerContext): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': ctx.instance })
    res.end(
      JSON.stringify({
        service: ctx.service,
        target: ctx.target,
        instance: ctx.instance,
        method: req.method,
        path: req.url,
      }),
    )
  }
}

export function containerAppFor(ctx: ContainerContext): RequestListener {
  const factory = CONTAINER_APPS[ctx.service]
  return factory ? factory(ctx) : createEchoApp(ctx)
}
