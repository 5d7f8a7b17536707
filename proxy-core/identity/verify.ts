// Verifying one token (an STS web identity token, a JWT) with jose, offline against the cached keys.
// Checked before any key is looked up, so a bad token never causes a fetch: its size and shape, an
// algorithm from the asymmetric set (never `none`, never HMAC), an issuer from the trusted list and a
// `kid`. Then jose checks the signature with the one algorithm the issuer's key is published for, and
// `iss`, `aud`, `exp` and `nbf` with a small leeway.

import { decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose'
import type { JwksCache } from './jwks.ts'

/** 8 KiB: an STS token with tags is a few KB; past this the header is refused unread. */
export const MAX_TOKEN_BYTES = 8192
/** 60 s of clock skew either way (Envoy jwt_authn's clock_skew_seconds default). */
export const LEEWAY_SECONDS = 60

/** Why a token was refused: the `reason` of the 401. A closed set, safe to show a caller. */
export type TokenProblem =
  | 'missing'
  | 'malformed'
  | 'too_large'
  | 'unsupported_algorithm'
  | 'untrusted_issuer'
  | 'unknown_key'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_audience'

export interface VerifiedToken {
  /** `sub`: the caller's role ARN. */
  readonly subject: string
  /** `https://sts.amazonaws.com/`.lambda_source_function_arn, when a Lambda function minted it. */
  readonly functionArn: string | undefined
  readonly issuer: string
  /** `exp`, epoch seconds. */
  readonly expires: number
}

export type Verification = { ok: true; token: VerifiedToken } | { ok: false; problem: TokenProblem }

export interface VerifyOptions {
  issuers: readonly string[]
  audience: string
  /** Epoch ms now (injected). */
  epochNow(): number
}

const COMPACT_JWS = /^[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}$/
const ASYMMETRIC = /^(RS|PS|ES)(256|384|512)$|^EdDSA$/
const STS_CLAIMS = 'https://sts.amazonaws.com/'

function fail(problem: TokenProblem): Verification {
  return { ok: false, problem }
}

export async function verifyToken(
  token: string,
  opts: VerifyOptions,
  jwks: JwksCache,
): Promise<Verification> {
  if (token.length > MAX_TOKEN_BYTES) return fail('too_large')
  if (!COMPACT_JWS.test(token)) return fail('malformed')
  let alg: unknown
  let kid: unknown
  let iss: unknown
  try {
    ;({ alg, kid } = decodeProtectedHeader(token))
    ;({ iss } = decodeJwt(token))
  } catch {
    return fail('malformed')
  }
  if (typeof alg !== 'string' || !ASYMMETRIC.test(alg)) return fail('unsupported_algorithm')
  if (typeof iss !== 'string' || !opts.issuers.includes(iss)) return fail('untrusted_issuer')
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 256) return fail('unknown_key')
  const key = await jwks.key(iss, kid)
  if (key === undefined) return fail('unknown_key')
  if (key.alg !== alg) return fail('unsupported_algorithm')
  try {
    const { payload } = await jwtVerify(token, key.key, {
      algorithms: [key.alg],
      issuer: iss,
      audience: opts.audience,
      clockTolerance: LEEWAY_SECONDS,
      currentDate: new Date(opts.epochNow()),
      requiredClaims: ['exp', 'sub'],
    })
    const sts = payload[STS_CLAIMS] as { lambda_source_function_arn?: unknown } | undefined
    const fn = sts?.lambda_source_function_arn
    return {
      ok: true,
      token: {
        subject: String(payload.sub),
        functionArn: typeof fn === 'string' ? fn : undefined,
        issuer: iss,
        expires: payload.exp!,
      },
    }
  } catch (err) {
    if (err instanceof errors.JWTExpired) return fail('expired')
    if (err instanceof errors.JWTClaimValidationFailed) {
      if (err.claim === 'nbf' || err.claim === 'iat') return fail('not_yet_valid')
      if (err.claim === 'aud') return fail('wrong_audience')
      if (err.claim === 'iss') return fail('untrusted_issuer')
      return fail('malformed')
    }
    if (err instanceof errors.JWSSignatureVerificationFailed) return fail('bad_signature')
    if (err instanceof errors.JOSEAlgNotAllowed) return fail('unsupported_algorithm')
    return fail('malformed')
  }
}
