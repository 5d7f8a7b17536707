// "Amazon S3" for a task run in a network namespace: s3rver on ADDRESS, holding one object, put there
// with the real S3 client. `node s3-server.ts HOST:PORT DATA_DIR BUCKET KEY FILE`; prints `ready`.
import { readFileSync } from 'node:fs'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import S3rver from 's3rver'

const [listen, dir, bucket, key, file] = process.argv.slice(2)
const [address, port] = listen!.split(':')
const server = new S3rver({
  address,
  port: Number(port),
  silent: true,
  directory: dir!,
  configureBuckets: [{ name: bucket! }],
})
await server.run()
const s3 = new S3Client({
  endpoint: `http://${listen}`,
  forcePathStyle: true,
  region: 'us-east-1',
  credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
})
await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: readFileSync(file!) }))
process.stdout.write('ready\n')
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)))
