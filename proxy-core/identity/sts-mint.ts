// Minting with the real STS client: GetWebIdentityToken on the regional endpoint (the operation is
// not served by the global one), the client loaded on the first mint so a Lambda function that never
// makes a mesh call never loads it. Endpoints, region and credentials come from the SDK's own chain
// (AWS_REGION, AWS_ENDPOINT_URL_STS, the execution role).

import { lazyModule } from '../lazy-module.ts'
import type { Mint } from './token-source.ts'

/** 900 s: a quarter hour per token, re-minted at 80% (token-source.ts); STS allows 60–3600, default 300. */
export const TOKEN_SECONDS = 900
/** RS256: of the two STS signs with (RS256, ES384), the far cheaper one to verify (bench/identity.ts). */
export const SIGNING_ALGORITHM = 'RS256'

export function createStsMint(options: { region?: string } = {}): Mint {
  let client: Promise<{ send(audience: string): Promise<{ token: string; expiresAt: number }> }> | undefined
  const load = async () => {
    const sts = lazyModule(await import('@aws-sdk/client-sts'), 'STSClient')
    const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1'
    const c = new sts.STSClient({ region })
    return {
      async send(audience: string) {
        const out = await c.send(
          new sts.GetWebIdentityTokenCommand({
            Audience: [audience],
            SigningAlgorithm: SIGNING_ALGORITHM,
            DurationSeconds: TOKEN_SECONDS,
          }),
        )
        if (out.WebIdentityToken === undefined) throw new Error('GetWebIdentityToken returned no token')
        const expiresAt = out.Expiration?.getTime() ?? Date.now() + TOKEN_SECONDS * 1000
        return { token: out.WebIdentityToken, expiresAt }
      },
    }
  }
  return async (audience) => {
    client ??= load()
    client.catch(() => {
      client = undefined
    })
    return (await client).send(audience)
  }
}
