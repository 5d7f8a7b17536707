// The aws-cli image's `s3 cp s3://BUCKET/KEY DEST`, for a task run on this machine: the real S3
// client's GetObject (endpoint from AWS_ENDPOINT_URL_S3, as the CLI reads it too), written to DEST.
import { writeFileSync } from 'node:fs'
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3'

const [verb, action, from, to] = process.argv.slice(2)
if (verb !== 's3' || action !== 'cp' || !from?.startsWith('s3://') || to === undefined) {
  process.stderr.write('usage: aws-s3-cp.ts s3 cp s3://BUCKET/KEY DEST\n')
  process.exit(2)
}
const [bucket, ...key] = from.slice(5).split('/')
const s3 = new S3Client({ forcePathStyle: true })
const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key.join('/') }))
writeFileSync(to, await res.Body!.transformToString())
process.stdout.write(`download: ${from} to ${to}\n`)
