// The caller side: one token per destination audience, minted with STS GetWebIdentityToken on first
// need, cached, and re-minted in the background once most of its life is spent, so no request after
// the first to a destination waits for STS. `tokenFor` answers a cached token synchronously.

import type { CallerIdentity, Clock } from '../engine/types.ts'

export interface MintedToken {
  token: string
  /** Epoch ms. */
  expiresAt: number
}

export type Mint = (audience: string) => Promise<MintedToken>

export interface TokenSourceOptions {
  mint: Mint
  audienceOf(service: string): string
  /** Epoch ms (injected). */
  epochNow(): number
  clock: Clock
  /** A mint failure, one line each; the call goes out without a token and the receiver decides. */
  onError?(message: string): void
}

/** Re-mint once 80% of a token's life is spent (the Kubernetes projected-token kubelet's rule). */
const REFRESH_AT = 0.8
/** Never send a token with less than 30 s left: it could expire in transit or in a retry. */
const MIN_REMAINING_MS = 30_000
/** After a failed mint, calls go without a token for 1 s instead of each waiting on STS again. */
const FAILURE_HOLD_MS = 1000

interface Entry {
  token: string | undefined
  issuedAt: number
  expiresAt: number
  inflight: Promise<string | undefined> | undefined
  failedAt: number
}

export interface TokenSource extends CallerIdentity {
  /** Mints so far (for tests and benchmarks). */
  mints(): number
}

export function createTokenSource(opts: TokenSourceOptions): TokenSource {
  const entries = new Map<string, Entry>()
  let mints = 0

  function mint(audience: string, entry: Entry): Promise<string | undefined> {
    entry.inflight ??= (async () => {
      mints++
      try {
        const t = await opts.mint(audience)
        entry.token = t.token
        entry.issuedAt = opts.epochNow()
        entry.expiresAt = t.expiresAt
        return t.token
      } catch (err) {
        entry.failedAt = opts.clock.now()
        opts.onError?.(`minting a token for ${audience} failed: ${String(err)}`)
        return undefined
      } finally {
        entry.inflight = undefined
      }
    })()
    return entry.inflight
  }

  return {
    tokenFor(service) {
      const audience = opts.audienceOf(service)
      let entry = entries.get(audience)
      if (entry === undefined) {
        entry = {
          token: undefined,
          issuedAt: 0,
          expiresAt: 0,
          inflight: undefined,
          failedAt: Number.NEGATIVE_INFINITY,
        }
        entries.set(audience, entry)
      }
      const now = opts.epochNow()
      if (entry.token !== undefined && entry.expiresAt - now > MIN_REMAINING_MS) {
        const refreshAt = entry.issuedAt + (entry.expiresAt - entry.issuedAt) * REFRESH_AT
        if (now >= refreshAt && entry.inflight === undefined) void mint(audience, entry)
        return entry.token
      }
      if (entry.inflight !== undefined) return entry.inflight
      if (opts.clock.now() - entry.failedAt < FAILURE_HOLD_MS) return undefined
      return mint(audience, entry)
    },
    mints: () => mints,
  }
}
