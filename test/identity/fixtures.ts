// Shared pieces of the identity tests: a mesh file with identity, the caller identities the local STS
// knows, and a raw HTTP request helper for the sidecar's inbound listener.

import { mkdtempSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IdentityProvider } from '../helpers/sts-endpoint.ts'

export const AUDIENCE = 'https://bookinfo.mesh'
export const ACCOUNT = '123456789012'
export const role = (name: string) => `arn:aws:iam::${ACCOUNT}:role/${name}`
export const fn = (name: string) => `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${name}`

/** Access key ids the local STS maps to callers. */
export const KEYS = {
  productpage: 'AKIDPRODUCTPAGE',
  details: 'AKIDDETAILS',
  stranger: 'AKIDSTRANGER',
  productpageFn: 'AKIDPRODUCTPAGEFN',
  gateway: 'AKIDGATEWAY',
} as const

export function registerCallers(idp: IdentityProvider): void {
  idp.identities.set(KEYS.productpage, { role: role('productpage-task') })
  idp.identities.set(KEYS.details, { role: role('details-task') })
  idp.identities.set(KEYS.stranger, { role: role('stranger-task') })
  // A Lambda function: its role is shared with other functions; the function ARN tells them apart.
  idp.identities.set(KEYS.productpageFn, { role: role('lambda-shared'), functionArn: fn('productpage-fn') })
  idp.identities.set(KEYS.gateway, { role: role('lambda-shared'), functionArn: fn('gateway-fn') })
}

/** The sidecar child's environment for a caller: the local STS and issuer, and its credentials. */
export function callerEnv(idp: IdentityProvider, key: string): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: key,
    AWS_SECRET_ACCESS_KEY: 'test-secret',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_STS: idp.stsUrl,
    MESHGATE_IDENTITY_CA: idp.caFile,
  }
}

export function writeMesh(doc: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-identity-'))
  const file = join(dir, 'mesh.json')
  writeFileSync(file, JSON.stringify(doc))
  return file
}

export interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One request on a fresh connection; `target` is sent as the request-target exactly as given. */
export function send(
  origin: string,
  target: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<RawResponse> {
  const u = new URL(origin)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path: target,
        headers: { connection: 'close', ...headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        )
      },
    )
    req.on('error', reject)
    req.end()
  })
}
