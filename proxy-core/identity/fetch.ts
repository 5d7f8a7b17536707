// Fetching an issuer's JWKS over HTTPS with node:https: a bounded body (64 KiB), a bounded wait (5 s),
// certificates checked against the system's roots plus, when MESHGATE_IDENTITY_CA names a PEM file,
// that bundle (a private issuer, or a test's).

import { readFileSync } from 'node:fs'
import { request } from 'node:https'
import { rootCertificates } from 'node:tls'
import type { FetchJwks } from './jwks.ts'

const MAX_BODY = 64 * 1024
const TIMEOUT_MS = 5000

export function createJwksFetch(options: { caFile?: string } = {}): FetchJwks {
  const ca =
    options.caFile === undefined ? undefined : [...rootCertificates, readFileSync(options.caFile, 'utf8')]
  return (url) =>
    new Promise((resolve, reject) => {
      const u = new URL(url)
      if (u.protocol !== 'https:') {
        reject(new Error(`a JWKS is fetched over https only, not ${url}`))
        return
      }
      const req = request(
        u,
        {
          method: 'GET',
          headers: { accept: 'application/json' },
          timeout: TIMEOUT_MS,
          ...(ca ? { ca } : {}),
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume()
            reject(new Error(`JWKS ${url} answered ${res.statusCode}`))
            return
          }
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (c: Buffer) => {
            size += c.length
            if (size > MAX_BODY) {
              req.destroy(new Error(`JWKS ${url} is larger than ${MAX_BODY} bytes`))
              return
            }
            chunks.push(c)
          })
          res.on('end', () => {
            try {
              resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')))
            } catch (err) {
              reject(err)
            }
          })
          res.on('error', reject)
        },
      )
      req.on('timeout', () => req.destroy(new Error(`JWKS ${url}: no answer within ${TIMEOUT_MS} ms`)))
      req.on('error', reject)
      req.end()
    })
}
