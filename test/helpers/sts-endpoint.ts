// A local STS that speaks the wire protocol the real @aws-sdk/client-sts uses for GetWebIdentityToken
// (awsQuery: a form-encoded POST, an XML answer), and a local HTTPS issuer serving the JWKS. Tokens
// are signed with a test key, the way the account's issuer signs them: `iss` the issuer URL, `sub` the
// caller's role ARN, `aud` as asked, and the Lambda function's ARN under `https://sts.amazonaws.com/`.
// The caller is told apart by the access key id of its SigV4 signature (no signature check).

import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose'
import { makeCert } from './certs.ts'

export interface TestIdentity {
  /** `sub`: a role ARN. */
  role: string
  /** Set for a Lambda function's execution-role session. */
  functionArn?: string
}

export interface MintRecord {
  accessKeyId: string
  audience: string[]
  algorithm: string
  durationSeconds: number
}

export interface IdentityProvider {
  /** `http://127.0.0.1:PORT`: AWS_ENDPOINT_URL_STS. */
  stsUrl: string
  /** `https://127.0.0.1:PORT`: the issuer (its JWKS at /.well-known/jwks.json). */
  issuer: string
  /** The self-signed certificate of the issuer, for MESHGATE_IDENTITY_CA. */
  caFile: string
  /** Access key id → who that caller is. */
  identities: Map<string, TestIdentity>
  readonly mints: MintRecord[]
  /** JWKS documents served so far. */
  jwksFetches(): number
  /** The public key as published. */
  publicJwk: JWK
  /** A token signed with the issuer's key (or the header/claims an attack needs). */
  sign(
    claims: Record<string, unknown>,
    opts?: { kid?: string; expiresIn?: number; notBefore?: number; issuedAt?: number },
  ): Promise<string>
  /** Epoch seconds the STS and `sign` consider now (default: the wall clock). */
  setNow(epochSeconds: number | undefined): void
  close(): Promise<void>
}

export const TEST_KID = 'meshgate-test-1'

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  )
}

export async function startIdentityProvider(): Promise<IdentityProvider> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  const publicJwk = { ...(await exportJWK(publicKey)), kid: TEST_KID, alg: 'RS256', use: 'sig' }
  const identities = new Map<string, TestIdentity>()
  const mints: MintRecord[] = []
  let jwksFetches = 0
  let fixedNow: number | undefined
  const now = () => fixedNow ?? Math.floor(Date.now() / 1000)

  const dir = mkdtempSync(join(tmpdir(), 'meshgate-issuer-'))
  const cert = makeCert(dir, 'issuer')
  const jwksServer = createHttpsServer(
    { cert: readFileSync(cert.cert), key: readFileSync(cert.key) },
    (req, res) => {
      if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
        jwksFetches++
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }))
        return
      }
      res.writeHead(404).end()
    },
  )
  const issuer = `https://127.0.0.1:${await listen(jwksServer)}`
  const caFile = join(dir, 'ca.pem')
  writeFileSync(caFile, readFileSync(cert.cert))

  async function sign(
    claims: Record<string, unknown>,
    opts: { kid?: string; expiresIn?: number; notBefore?: number; issuedAt?: number } = {},
  ): Promise<string> {
    const t = now()
    let jwt = new SignJWT({ iss: issuer, ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? TEST_KID, typ: 'JWT' })
      .setIssuedAt(opts.issuedAt ?? t)
      .setExpirationTime(t + (opts.expiresIn ?? 900))
      .setJti(randomUUID())
    if (opts.notBefore !== undefined) jwt = jwt.setNotBefore(opts.notBefore)
    return jwt.sign(privateKey)
  }

  const sts = createHttpServer(async (req, res) => {
    const form = new URLSearchParams(await body(req))
    const reply = (status: number, xml: string) =>
      res
        .writeHead(status, { 'content-type': 'text/xml' })
        .end(`<?xml version="1.0" encoding="UTF-8"?>\n${xml}`)
    const credential = /Credential=([^/]+)\//.exec(String(req.headers.authorization ?? ''))?.[1] ?? ''
    const who = identities.get(credential)
    if (req.method !== 'POST' || form.get('Action') !== 'GetWebIdentityToken' || who === undefined) {
      reply(
        403,
        `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      )
      return
    }
    const audience: string[] = []
    for (let i = 1; form.has(`Audience.member.${i}`); i++) audience.push(form.get(`Audience.member.${i}`)!)
    const duration = Number(form.get('DurationSeconds') ?? 300)
    mints.push({
      accessKeyId: credential,
      audience,
      algorithm: form.get('SigningAlgorithm') ?? '',
      durationSeconds: duration,
    })
    const token = await sign(
      {
        sub: who.role,
        aud: audience.length === 1 ? audience[0] : audience,
        'https://sts.amazonaws.com/': {
          aws_account: '123456789012',
          source_region: 'us-east-1',
          ...(who.functionArn === undefined ? {} : { lambda_source_function_arn: who.functionArn }),
        },
      },
      { expiresIn: duration },
    )
    const expiration = new Date((now() + duration) * 1000).toISOString()
    reply(
      200,
      `<GetWebIdentityTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetWebIdentityTokenResult><WebIdentityToken>${xmlEscape(token)}</WebIdentityToken><Expiration>${expiration}</Expiration></GetWebIdentityTokenResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></GetWebIdentityTokenResponse>`,
    )
  })
  const stsUrl = `http://127.0.0.1:${await listen(sts)}`

  return {
    stsUrl,
    issuer,
    caFile,
    identities,
    mints,
    jwksFetches: () => jwksFetches,
    publicJwk,
    sign,
    setNow(s) {
      fixedNow = s
    },
    async close() {
      jwksServer.closeAllConnections()
      sts.closeAllConnections()
      await Promise.all([new Promise((r) => jwksServer.close(r)), new Promise((r) => sts.close(r))])
    },
  }
}
