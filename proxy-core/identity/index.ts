// Mesh identity and authorization (DESIGN "Identity and authorization"; docs/security.md).
//
// Caller side: `createCallerIdentity` mints one STS web identity token per destination service and
// hands it to the engine, whose `identify` layer puts it in `x-meshgate-identity`.
// Receiver side: `createReceiver` gives the layers authenticate → authorize → rate limit that each
// runtime puts in front of its app (the sidecar's inbound path, the Lambda middleware, the gateway).

import type { CallerIdentity, Clock, MeshConfig } from '../engine/types.ts'
import { audienceFor } from './audience.ts'
import { createStsMint } from './sts-mint.ts'
import { createTokenSource, type Mint, type TokenSource } from './token-source.ts'

export { audienceFor } from './audience.ts'
export { type Caller, callerLabel } from './caller.ts'
export { createJwksFetch } from './fetch.ts'
export { createJwksCache, type FetchJwks, importJwks, jwksUrl } from './jwks.ts'
export { decide, policyFor } from './policy.ts'
export { createRateLimiter } from './rate-limit.ts'
export {
  createReceiver,
  type GuardedCall,
  type GuardInvoke,
  type GuardLayer,
  IDENTITY_HEADER,
  type Receiver,
  type ReceiverOptions,
} from './receiver.ts'
export { createStsMint, SIGNING_ALGORITHM, TOKEN_SECONDS } from './sts-mint.ts'
export { createTokenSource, type Mint, type MintedToken, type TokenSource } from './token-source.ts'
export { LEEWAY_SECONDS, MAX_TOKEN_BYTES, type TokenProblem, verifyToken } from './verify.ts'

/** The caller side for a runtime: tokens for `config()`'s audience, minted with STS unless `mint` is given. */
export function createCallerIdentity(opts: {
  config(): MeshConfig
  clock: Clock
  epochNow?: () => number
  mint?: Mint
  onError?(message: string): void
}): CallerIdentity & TokenSource {
  return createTokenSource({
    mint: opts.mint ?? createStsMint(),
    audienceOf: (service) => audienceFor(opts.config().identity?.audience ?? '', service),
    epochNow: opts.epochNow ?? Date.now,
    clock: opts.clock,
    ...(opts.onError === undefined ? {} : { onError: opts.onError }),
  })
}

/** Whether a config asks for identity at all (the caller side mints only then). */
export function usesIdentity(config: MeshConfig): boolean {
  return config.identity !== undefined
}
