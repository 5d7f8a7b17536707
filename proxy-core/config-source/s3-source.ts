// The S3 source, for teams without AppConfig: `s3://BUCKET/KEY`, read with GetObject and If-None-Match
// on the last ETag, so an unchanged object costs a 304 and no body. The real `@aws-sdk/client-s3`,
// loaded on the first check only; its endpoint comes from the SDK's own `AWS_ENDPOINT_URL_S3`.

import { lazyModule } from '../lazy-module.ts'
import type { ConfigSource, ConfigVersion, SourceOptions } from './types.ts'
import { SourceError, SourceKinds } from './types.ts'

/** 10 s: a GetObject of a config file that takes longer than this is treated as unreachable. */
const REQUEST_TIMEOUT_MS = 10_000

export interface S3Location {
  bucket: string
  key: string
}

export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/(.+)$/i.exec(url.trim())
  if (m === null) throw new SourceError(url, 'want s3://BUCKET/KEY')
  return { bucket: m[1]!, key: m[2]! }
}

type S3Module = typeof import('@aws-sdk/client-s3')

interface SdkError {
  name?: string
  message?: string
  $metadata?: { httpStatusCode?: number }
}

export function createS3Source(loc: S3Location, opts: SourceOptions = {}): ConfigSource {
  const url = `s3://${loc.bucket}/${loc.key}`
  const env = opts.env ?? process.env
  let client: Promise<{ sdk: S3Module; client: InstanceType<S3Module['S3Client']> }> | undefined
  let etag: string | undefined

  function getClient() {
    client ??= import('@aws-sdk/client-s3')
      .then((mod) => lazyModule(mod, 'S3Client'))
      .then((sdk) => ({
        sdk,
        client: new sdk.S3Client({
          region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
          // A local endpoint (s3rver, MinIO) is addressed by IP or localhost: path-style URLs only.
          forcePathStyle: env.AWS_ENDPOINT_URL_S3 !== undefined || env.AWS_ENDPOINT_URL !== undefined,
        }),
      }))
    client.catch(() => {
      client = undefined
    })
    return client
  }

  return {
    kind: SourceKinds.s3,
    url,
    async check(): Promise<ConfigVersion | undefined> {
      const { sdk, client: s3 } = await getClient()
      try {
        const res = await s3.send(
          new sdk.GetObjectCommand({
            Bucket: loc.bucket,
            Key: loc.key,
            ...(etag === undefined ? {} : { IfNoneMatch: etag }),
          }),
          { abortSignal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) },
        )
        const text = (await res.Body?.transformToString('utf8')) ?? ''
        const version = res.ETag ?? ''
        if (version !== '' && version === etag) return undefined
        etag = version === '' ? undefined : version
        return { text, version: version === '' ? 'unknown' : version, name: url }
      } catch (err) {
        const e = err as SdkError
        // The SDK turns 304 Not Modified into an error (name `NotModified` or `304`): unchanged.
        if (e.$metadata?.httpStatusCode === 304) return undefined
        const status = e.$metadata?.httpStatusCode
        const what = `${e.name ?? 'Error'}${status === undefined ? '' : ` (HTTP ${status})`}: ${e.message ?? String(err)}`
        throw new SourceError(url, `GetObject failed: ${what}`, { cause: err })
      }
    },
    close() {
      void client?.then((c) => c.client.destroy()).catch(() => {})
    },
  }
}
