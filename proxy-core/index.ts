// `meshgate`: the engine, for tools and for embedding it in a runtime of your own. Load and validate a
// mesh config, compile it, and run requests through it with invokers of your choosing. The Lambda
// middleware is `meshgate/lambda`, the sidecar `meshgate/sidecar`.

export { ConfigError, type ConfigProblem, formatProblem, loadConfig, loadConfigText } from './config/load.ts'
export { Cancellation, toAbortSignal } from './engine/cancel.ts'
export { type CompiledMesh, compileMesh } from './engine/compile.ts'
export { type ErrorCode, ErrorCodes, MeshError } from './engine/errors.ts'
export { createMemoryInvoker, type MemoryHandler, type MemoryInvoker } from './engine/memory-invoker.ts'
export { createMeshRuntime } from './engine/runtime.ts'
export * from './engine/types.ts'
