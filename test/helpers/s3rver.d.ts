// s3rver ships no types: the part of its API the tests use (one declaration for every suite).
declare module 's3rver' {
  interface S3rverOptions {
    port?: number
    address?: string
    directory: string
    silent?: boolean
    configureBuckets?: { name: string }[]
  }
  export default class S3rver {
    constructor(options: S3rverOptions)
    run(): Promise<{ address: string; family: string; port: number }>
    close(): Promise<void>
  }
}
