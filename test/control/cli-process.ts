// The meshgate CLI as a child process, asynchronously (the local AppConfig and S3 run in this test
// process, so a blocking spawn would starve them), with dummy AWS credentials and local endpoints.
import { execFile } from 'node:child_process'

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

export function awsEnv(endpoints: { appconfig?: string; s3?: string }): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NO_COLOR: '1',
    AWS_REGION: 'us-east-1',
    // s3rver's built-in key pair; the local AppConfig accepts any.
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    // No profile or instance metadata lookups on a test machine.
    AWS_EC2_METADATA_DISABLED: 'true',
  }
  delete env.AWS_PROFILE
  delete env.AWS_SESSION_TOKEN
  if (endpoints.appconfig) env.AWS_ENDPOINT_URL_APPCONFIG = endpoints.appconfig
  if (endpoints.s3) env.AWS_ENDPOINT_URL_S3 = endpoints.s3
  return env
}

export function meshgate(env: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/meshgate.js', ...args],
      { env, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0
        resolve({ code, stdout, stderr })
      },
    )
  })
}
