// `meshgate/lambda`: the middy middleware, the edge gateway handler, and the event shapes they use.

export type { EventKind, EventShape, HttpEvent, LambdaHttpResult, NormalizedEvent } from './events.ts'
export { detectEventKind, EventKinds, normalizeEvent, toLambdaResult } from './events.ts'
export type { GatewayHandler } from './gateway.ts'
export { createGatewayHandler, gatewayHandler } from './gateway.ts'
export type { MeshContext, MeshMiddleware, MeshOptions } from './middleware.ts'
export { mesh, toFetchResponse } from './middleware.ts'
