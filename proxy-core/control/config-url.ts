// The live config's address: `appconfig://APPLICATION/ENVIRONMENT/PROFILE` or `s3://BUCKET/KEY`
// (DESIGN.md "Live config"). Names or IDs, as AppConfig accepts either in its data plane.
export type LiveConfigUrl =
  | { kind: 'appconfig'; application: string; environment: string; profile: string; url: string }
  | { kind: 's3'; bucket: string; key: string; url: string }

export class ConfigUrlError extends Error {}

export function parseLiveConfigUrl(text: string): LiveConfigUrl {
  const appconfig = /^appconfig:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(text)
  if (appconfig) {
    const [application, environment, profile] = appconfig.slice(1).map(decodeURIComponent) as [
      string,
      string,
      string,
    ]
    return { kind: 'appconfig', application, environment, profile, url: text }
  }
  const s3 = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(text)
  if (s3) return { kind: 's3', bucket: s3[1]!, key: s3[2]!, url: text }
  throw new ConfigUrlError(
    `"${text}" is not a live config URL: expected appconfig://APPLICATION/ENVIRONMENT/PROFILE or s3://BUCKET/KEY`,
  )
}
