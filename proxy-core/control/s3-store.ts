// The live config as one S3 object. The endpoint comes from the SDK's AWS_ENDPOINT_URL_S3. The JS
// SDK has no variable for path-style addressing: it uses path style by itself when the endpoint is
// an IP address (http://127.0.0.1:4569), and AWS_S3_FORCE_PATH_STYLE=true forces it for a hostname
// endpoint (an S3-compatible server without virtual-host buckets).
import type { S3Client } from '@aws-sdk/client-s3'
import type { LiveConfigUrl } from './config-url.ts'

type S3Url = Extract<LiveConfigUrl, { kind: 's3' }>

export interface S3Live {
  etag: string
  content: string
  lastModified?: Date
  versionId?: string
}

export interface S3Store {
  put(content: string): Promise<{ etag: string; versionId?: string }>
  live(): Promise<S3Live | undefined>
}

export async function createS3Store(url: S3Url): Promise<S3Store> {
  const sdk = await import('@aws-sdk/client-s3')
  const client: S3Client = new sdk.S3Client({
    forcePathStyle: process.env.AWS_S3_FORCE_PATH_STYLE === 'true',
  })
  return {
    async put(content) {
      const r = await client.send(
        new sdk.PutObjectCommand({
          Bucket: url.bucket,
          Key: url.key,
          Body: content,
          ContentType: 'application/json',
        }),
      )
      return { etag: r.ETag ?? '', ...(r.VersionId ? { versionId: r.VersionId } : {}) }
    },
    async live() {
      try {
        const r = await client.send(new sdk.GetObjectCommand({ Bucket: url.bucket, Key: url.key }))
        return {
          etag: r.ETag ?? '',
          content: (await r.Body?.transformToString('utf8')) ?? '',
          ...(r.LastModified ? { lastModified: r.LastModified } : {}),
          ...(r.VersionId ? { versionId: r.VersionId } : {}),
        }
      } catch (e) {
        if ((e as { name?: string }).name === 'NoSuchKey') return undefined
        throw e
      }
    },
  }
}
