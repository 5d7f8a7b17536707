// The issuers' signing keys, cached per issuer. A JWKS is fetched on first need, kept for `ttlMs`
// (then refreshed in the background while the old keys keep serving), and fetched again early when a
// token names a `kid` the cache does not hold (a key rotation), but at most once per `cooldownMs` per
// issuer: a flood of made-up `kid`s costs a handful of fetches, never one per request.
//
// Only asymmetric signature keys are kept, each with the one algorithm it may verify: the JWK's own
// `alg`, else the one its type implies (RSA → RS256, EC P-256/384/521 → ES256/384/512, Ed25519 →
// EdDSA). Symmetric (`oct`) keys are never taken, so no token can be checked with HMAC, whatever it
// claims; and `none` names no key.

import { importJWK, type JWK } from 'jose'

export interface VerificationKey {
  readonly alg: string
  readonly key: CryptoKey | Uint8Array
}

export type FetchJwks = (url: string) => Promise<unknown>

export interface JwksCacheOptions {
  fetch: FetchJwks
  /** Epoch-free ms clock (the injected Clock). */
  now(): number
  /** 10 min: keys are published well ahead of use; STS rotates rarely. */
  ttlMs?: number
  /** 30 s between fetches triggered by unknown `kid`s (jose's createRemoteJWKSet cooldown). */
  cooldownMs?: number
  /** Called with each failed fetch (the old keys, if any, keep serving). */
  onError?(issuer: string, err: unknown): void
}

interface IssuerKeys {
  keys: Map<string, VerificationKey>
  /** Clock ms of the last successful fetch; -Infinity before one. */
  fetchedAt: number
  /** Clock ms of the last attempt, successful or not. */
  triedAt: number
  inflight: Promise<void> | undefined
}

export interface JwksCache {
  /** The key `kid` of `issuer`, or undefined (fetching first when allowed). */
  key(issuer: string, kid: string): Promise<VerificationKey | undefined>
  /** Fetches so far, per issuer (for tests and /stats). */
  fetches(): Record<string, number>
}

const MAX_KEYS = 100
const ALGS = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
])

function impliedAlg(jwk: Record<string, unknown>): string | undefined {
  if (jwk.kty === 'RSA') return 'RS256'
  if (jwk.kty === 'EC') return { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }[String(jwk.crv)]
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
  return undefined
}

/** The JWKS document's usable keys; anything malformed or symmetric is skipped. */
export async function importJwks(doc: unknown): Promise<Map<string, VerificationKey>> {
  const out = new Map<string, VerificationKey>()
  const keys = (doc as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys)) throw new TypeError('a JWKS has a "keys" list')
  for (const raw of keys.slice(0, MAX_KEYS)) {
    if (typeof raw !== 'object' || raw === null) continue
    const jwk = raw as Record<string, unknown>
    if (typeof jwk.kid !== 'string' || jwk.kty === 'oct') continue
    if (jwk.use !== undefined && jwk.use !== 'sig') continue
    const alg = typeof jwk.alg === 'string' ? jwk.alg : impliedAlg(jwk)
    if (alg === undefined || !ALGS.has(alg)) continue
    try {
      const { d: _private, ...pub } = jwk
      out.set(jwk.kid, { alg, key: await importJWK(pub as JWK, alg) })
    } catch {
      // A key jose cannot import (wrong curve for the alg, bad modulus) is no key.
    }
  }
  return out
}

export function jwksUrl(issuer: string): string {
  return `${issuer}/.well-known/jwks.json`
}

export function createJwksCache(opts: JwksCacheOptions): JwksCache {
  const ttl = opts.ttlMs ?? 600_000
  const cooldown = opts.cooldownMs ?? 30_000
  const issuers = new Map<string, IssuerKeys>()
  const counts: Record<string, number> = {}

  function refresh(issuer: string, state: IssuerKeys): Promise<void> {
    state.inflight ??= (async () => {
      state.triedAt = opts.now()
      counts[issuer] = (counts[issuer] ?? 0) + 1
      try {
        state.keys = await importJwks(await opts.fetch(jwksUrl(issuer)))
        state.fetchedAt = opts.now()
      } catch (err) {
        opts.onError?.(issuer, err)
      } finally {
        state.inflight = undefined
      }
    })()
    return state.inflight
  }

  return {
    async key(issuer, kid) {
      let state = issuers.get(issuer)
      if (state === undefined) {
        state = {
          keys: new Map(),
          fetchedAt: Number.NEGATIVE_INFINITY,
          triedAt: Number.NEGATIVE_INFINITY,
          inflight: undefined,
        }
        issuers.set(issuer, state)
      }
      const now = opts.now()
      const known = state.keys.get(kid)
      if (known !== undefined) {
        // Stale keys keep serving while the refresh runs beside the request.
        if (now - state.fetchedAt >= ttl && now - state.triedAt >= cooldown) void refresh(issuer, state)
        return known
      }
      if (state.inflight !== undefined) await state.inflight
      else if (now - state.triedAt >= cooldown) await refresh(issuer, state)
      return state.keys.get(kid)
    },
    fetches: () => ({ ...counts }),
  }
}
