// The local AppConfig as a listener facing bad input: every malformed or oversized request gets a
// 4xx with AppConfig's error shape, and the server keeps serving. Raw HTTP here, since the SDK never
// sends such requests (the wire shapes are checked with the SDK in appconfig-local.test.ts).
import { request } from 'node:http'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalAppConfig, startLocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'

let local: LocalAppConfig
beforeAll(async () => {
  local = await startLocalAppConfig()
})
afterAll(async () => {
  await local.close()
})

const SIGNED = { authorization: 'AWS4-HMAC-SHA256 Credential=a/20261204/us-east-1/appconfig/aws4_request' }

function send(
  method: string,
  path: string,
  body?: Buffer | string,
  headers: Record<string, string> = SIGNED,
) {
  const u = new URL(local.url)
  return new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers['x-amzn-errortype'] as string | undefined,
          body: Buffer.concat(chunks).toString(),
        }),
      )
    })
    req.on('error', reject)
    req.end(body)
  })
}

describe('local AppConfig under bad input', () => {
  it('answers a body that is not JSON with BadRequestException', async () => {
    const r = await send('POST', '/applications', '{"Name":')
    expect([r.status, r.type]).toEqual([400, 'BadRequestException'])
    expect(JSON.parse(r.body).Message).toMatch(/not JSON/)
  })

  it('answers an unsigned request with 403', async () => {
    const r = await send('GET', '/applications', undefined, {})
    expect([r.status, r.type]).toEqual([403, 'MissingAuthenticationTokenException'])
  })

  it('answers a malformed percent-escape and an unknown path with 4xx', async () => {
    expect((await send('GET', '/applications/%zz/environments')).status).toBe(400)
    expect((await send('GET', '/nothing/here')).status).toBe(404)
  })

  it('refuses a body over 2 MiB with PayloadTooLargeException and keeps serving', async () => {
    const r = await send('POST', '/applications', Buffer.alloc(2 * 1024 * 1024 + 1, 0x20)).catch(
      (e: Error) => e,
    )
    // The server answers 413 and closes; a client still writing may see the reset instead.
    if (!(r instanceof Error)) expect([r.status, r.type]).toEqual([413, 'PayloadTooLargeException'])
    expect(local.requests.find((q) => q.status === 413)).toMatchObject({ operation: 'CreateApplication' })
    expect((await send('GET', '/applications')).status).toBe(200)
  })

  it('survives a request line that is not HTTP', async () => {
    const u = new URL(local.url)
    const reply = await new Promise<string>((resolve) => {
      const s = connect(Number(u.port), u.hostname, () => s.write('NOT HTTP AT ALL\r\n\r\n'))
      let got = ''
      s.on('data', (c) => {
        got += c
      })
      s.on('close', () => resolve(got))
      s.on('error', () => resolve(got))
    })
    expect(reply).toMatch(/^HTTP\/1\.1 400/)
    expect((await send('GET', '/applications')).status).toBe(200)
  })
})
