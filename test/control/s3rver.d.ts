// The part of s3rver's API these tests use (the package ships no types).
declare module 's3rver' {
  interface S3rverOptions {
    port?: number
    address?: string
    directory: string
    silent?: boolean
  }
  export default class S3rver {
    constructor(options: S3rverOptions)
    run(): Promise<{ address: string; family: string; port: number }>
    close(): Promise<void>
  }
}
