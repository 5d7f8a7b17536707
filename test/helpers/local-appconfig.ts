// The local AppConfig (proxy-core/dev/appconfig-local.ts) with a profile ready to publish to, through
// the control module's own store and the real @aws-sdk/client-appconfig, reached through
// AWS_ENDPOINT_URL_APPCONFIG. Sets the AWS variables of this test process (each vitest file has its own).

import { appConfigMeshSchema } from '../../proxy-core/control/appconfig-schema.ts'
import { type AppConfigStore, createAppConfigStore } from '../../proxy-core/control/appconfig-store.ts'
import { parseLiveConfigUrl } from '../../proxy-core/control/config-url.ts'
import { type LocalAppConfig, startLocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'

export function useLocalAwsEnv(endpoints: { appconfig?: string; s3?: string }): void {
  process.env.AWS_REGION = 'us-east-1'
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER'
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER'
  process.env.AWS_EC2_METADATA_DISABLED = 'true'
  delete process.env.AWS_PROFILE
  delete process.env.AWS_SESSION_TOKEN
  if (endpoints.appconfig) {
    process.env.AWS_ENDPOINT_URL_APPCONFIG = endpoints.appconfig
    process.env.AWS_ENDPOINT_URL_APPCONFIGDATA = endpoints.appconfig
  }
  if (endpoints.s3) process.env.AWS_ENDPOINT_URL_S3 = endpoints.s3
}

export async function startAppConfig(pollSeconds = 1): Promise<LocalAppConfig> {
  const local = await startLocalAppConfig({ host: '127.0.0.1', defaultPollIntervalSeconds: pollSeconds })
  useLocalAwsEnv({ appconfig: local.url })
  return local
}

/** A profile created with `publish --init`'s validator, and a publish function for it. */
export async function profile(url: string): Promise<AppConfigStore> {
  const parsed = parseLiveConfigUrl(url)
  if (parsed.kind !== 'appconfig') throw new Error(`not an appconfig:// URL: ${url}`)
  const store = await createAppConfigStore(parsed)
  await store.init(appConfigMeshSchema())
  return store
}
