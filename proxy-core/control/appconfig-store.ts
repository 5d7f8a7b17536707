// The live config in AWS AppConfig, through the control-plane API (`@aws-sdk/client-appconfig`):
// resolve names to IDs, create the resources once, publish a hosted version and deploy it, and read
// back what is deployed. The endpoint comes from the SDK's own AWS_ENDPOINT_URL_APPCONFIG.
import type {
  AppConfigClient,
  ConfigurationProfileSummary,
  Deployment,
  DeploymentSummary,
} from '@aws-sdk/client-appconfig'
import type { LiveConfigUrl } from './config-url.ts'

type AppConfigUrl = Extract<LiveConfigUrl, { kind: 'appconfig' }>
type Sdk = typeof import('@aws-sdk/client-appconfig')

export class LiveConfigError extends Error {}

/** The default strategy: the issue's `AllAtOnce`, AppConfig's predefined quick one. */
export const DEFAULT_STRATEGY = 'AppConfig.AllAtOnce'

export interface Resolved {
  applicationId: string
  environmentId: string
  profile: ConfigurationProfileSummary & { Id: string }
}

export interface AppConfigLive {
  version: number
  label?: string
  content: string
  deployment: DeploymentSummary
}

export interface AppConfigStore {
  resolve(): Promise<Resolved>
  init(
    validatorContent: string,
  ): Promise<{ created: string[]; reused: string[]; warnings: string[]; idUrl: string }>
  publish(
    content: string,
    opts: { strategy?: string; description?: string },
  ): Promise<{ version: number; label: string; deployment: Deployment }>
  live(): Promise<AppConfigLive | undefined>
  deployments(): Promise<DeploymentSummary[]>
  latestVersion(): Promise<number>
}

/**
 * `clientConfig` is for in-process callers (`meshgate dev`, tests): endpoint, region, credentials.
 * The CLI passes none, so the SDK reads AWS_REGION, AWS_ENDPOINT_URL_APPCONFIG and the credential chain.
 */
export async function createAppConfigStore(
  url: AppConfigUrl,
  clientConfig: import('@aws-sdk/client-appconfig').AppConfigClientConfig = {},
): Promise<AppConfigStore> {
  const sdk: Sdk = await import('@aws-sdk/client-appconfig')
  const client: AppConfigClient = new sdk.AppConfigClient(clientConfig)

  async function all<T>(
    fetchPage: (token?: string) => Promise<{ Items?: T[]; NextToken?: string }>,
  ): Promise<T[]> {
    const items: T[] = []
    let token: string | undefined
    do {
      const page = await fetchPage(token)
      items.push(...(page.Items ?? []))
      token = page.NextToken
    } while (token)
    return items
  }

  /** One resource by ID or by name; two of the same name is the caller's to settle (AppConfig allows it). */
  function pick<T extends { Id?: string; Name?: string }>(
    items: T[],
    key: string,
    what: string,
  ): T | undefined {
    const byId = items.find((i) => i.Id === key)
    if (byId) return byId
    const named = items.filter((i) => i.Name === key)
    if (named.length > 1)
      throw new LiveConfigError(
        `${named.length} ${what}s are named "${key}" (${named.map((n) => n.Id).join(', ')}): use the ID in the URL`,
      )
    return named[0]
  }

  const applications = () => all((NextToken) => client.send(new sdk.ListApplicationsCommand({ NextToken })))
  const environments = (ApplicationId: string) =>
    all((NextToken) => client.send(new sdk.ListEnvironmentsCommand({ ApplicationId, NextToken })))
  const profiles = (ApplicationId: string) =>
    all((NextToken) => client.send(new sdk.ListConfigurationProfilesCommand({ ApplicationId, NextToken })))

  async function resolve(): Promise<Resolved> {
    const app = pick(await applications(), url.application, 'application')
    if (!app?.Id)
      throw new LiveConfigError(
        `no AppConfig application "${url.application}" (create it with: meshgate publish --init ${url.url})`,
      )
    const env = pick(await environments(app.Id), url.environment, 'environment')
    if (!env?.Id)
      throw new LiveConfigError(
        `no environment "${url.environment}" in application ${url.application} (meshgate publish --init ${url.url})`,
      )
    const prof = pick(await profiles(app.Id), url.profile, 'configuration profile')
    if (!prof?.Id)
      throw new LiveConfigError(
        `no configuration profile "${url.profile}" in application ${url.application} (meshgate publish --init ${url.url})`,
      )
    return { applicationId: app.Id, environmentId: env.Id, profile: prof as Resolved['profile'] }
  }

  async function strategyId(name: string | undefined): Promise<string> {
    const wanted = name ?? DEFAULT_STRATEGY
    const strategies = await all((NextToken) =>
      client.send(new sdk.ListDeploymentStrategiesCommand({ NextToken })),
    )
    // `AllAtOnce` is short for the predefined `AppConfig.AllAtOnce`.
    const found = strategies.find(
      (s) =>
        s.Id === wanted ||
        s.Name === wanted ||
        s.Name === `AppConfig.${wanted}` ||
        s.Id === `AppConfig.${wanted}`,
    )
    if (!found?.Id)
      throw new LiveConfigError(
        `no deployment strategy "${wanted}" (known: ${strategies.map((s) => s.Name ?? s.Id).join(', ')})`,
      )
    return found.Id
  }

  async function latestVersion(r?: Resolved): Promise<number> {
    const { applicationId, profile } = r ?? (await resolve())
    const versions = await all((NextToken) =>
      client.send(
        new sdk.ListHostedConfigurationVersionsCommand({
          ApplicationId: applicationId,
          ConfigurationProfileId: profile.Id,
          NextToken,
        }),
      ),
    )
    return Math.max(0, ...versions.map((v) => v.VersionNumber ?? 0))
  }

  async function deployments(r?: Resolved): Promise<DeploymentSummary[]> {
    const { applicationId, environmentId, profile } = r ?? (await resolve())
    const items = await all((NextToken) =>
      client.send(
        new sdk.ListDeploymentsCommand({
          ApplicationId: applicationId,
          EnvironmentId: environmentId,
          NextToken,
        }),
      ),
    )
    return items
      .filter((d) => d.ConfigurationProfileId === profile.Id)
      .sort((a, b) => (b.DeploymentNumber ?? 0) - (a.DeploymentNumber ?? 0))
  }

  return {
    resolve,
    latestVersion: () => latestVersion(),
    deployments: () => deployments(),

    async init(validatorContent) {
      const created: string[] = []
      const reused: string[] = []
      const warnings: string[] = []
      let app = pick(await applications(), url.application, 'application')
      if (app) reused.push(`application ${url.application} (${app.Id})`)
      else {
        app = await client.send(
          new sdk.CreateApplicationCommand({ Name: url.application, Description: 'meshgate mesh config' }),
        )
        created.push(`application ${url.application} (${app.Id})`)
      }
      const appId = app.Id!
      let env = pick(await environments(appId), url.environment, 'environment')
      if (env) reused.push(`environment ${url.environment} (${env.Id})`)
      else {
        env = await client.send(
          new sdk.CreateEnvironmentCommand({ ApplicationId: appId, Name: url.environment }),
        )
        created.push(`environment ${url.environment} (${env.Id})`)
      }
      const existing = pick(await profiles(appId), url.profile, 'configuration profile')
      let profileId = existing?.Id
      if (existing) {
        reused.push(`configuration profile ${url.profile} (${existing.Id})`)
        const full = await client.send(
          new sdk.GetConfigurationProfileCommand({
            ApplicationId: appId,
            ConfigurationProfileId: existing.Id!,
          }),
        )
        const schema = full.Validators?.find((v) => v.Type === 'JSON_SCHEMA')
        if (!schema)
          warnings.push(
            `profile ${url.profile} has no JSON_SCHEMA validator: AppConfig will not check configs`,
          )
        else if (schema.Content !== validatorContent)
          warnings.push(`profile ${url.profile}'s JSON Schema differs from this meshgate's mesh.schema.json`)
      } else {
        const p = await client.send(
          new sdk.CreateConfigurationProfileCommand({
            ApplicationId: appId,
            Name: url.profile,
            LocationUri: 'hosted',
            Type: 'AWS.Freeform',
            Description: 'meshgate mesh config (JSON), validated by mesh.schema.json',
            Validators: [{ Type: 'JSON_SCHEMA', Content: validatorContent }],
          }),
        )
        created.push(`configuration profile ${url.profile} (${p.Id}) with mesh.schema.json as its validator`)
        profileId = p.Id
      }
      return { created, reused, warnings, idUrl: `appconfig://${appId}/${env.Id}/${profileId}` }
    },

    async publish(content, opts) {
      const r = await resolve()
      const strategy = await strategyId(opts.strategy)
      // AppConfig rolls out one deployment per environment at a time: say so before creating a
      // version that could not be deployed.
      const rolling = (await deployments(r)).find((d) => d.State === 'DEPLOYING' || d.State === 'VALIDATING')
      if (rolling)
        throw new LiveConfigError(
          `deployment #${rolling.DeploymentNumber} (version ${rolling.ConfigurationVersion}) is ${rolling.State} at ` +
            `${rolling.PercentageComplete ?? 0}%: wait for it, or stop it (aws appconfig stop-deployment ` +
            `--application-id ${r.applicationId} --environment-id ${r.environmentId} --deployment-number ${rolling.DeploymentNumber})`,
        )
      const latest = await latestVersion(r)
      // The label a runtime sees (AppConfigData's Version-Label). With Latest-Version-Number set, the
      // new version is exactly latest + 1, or AppConfig refuses (someone published in between).
      const label = `v${latest + 1}`
      const version = await client.send(
        new sdk.CreateHostedConfigurationVersionCommand({
          ApplicationId: r.applicationId,
          ConfigurationProfileId: r.profile.Id,
          Content: Buffer.from(content),
          ContentType: 'application/json',
          LatestVersionNumber: latest,
          VersionLabel: label,
          ...(opts.description ? { Description: headerSafe(opts.description) } : {}),
        }),
      )
      const deployment = await client.send(
        new sdk.StartDeploymentCommand({
          ApplicationId: r.applicationId,
          EnvironmentId: r.environmentId,
          ConfigurationProfileId: r.profile.Id,
          ConfigurationVersion: String(version.VersionNumber),
          DeploymentStrategyId: strategy,
          ...(opts.description ? { Description: headerSafe(opts.description) } : {}),
        }),
      )
      return { version: version.VersionNumber!, label, deployment }
    },

    async live() {
      const r = await resolve()
      // The newest deployment that was not rolled back: what the fleet runs, or is moving to.
      const current = (await deployments(r)).find((d) => d.State !== 'ROLLED_BACK' && d.State !== 'REVERTED')
      if (!current) return undefined
      const v = await client.send(
        new sdk.GetHostedConfigurationVersionCommand({
          ApplicationId: r.applicationId,
          ConfigurationProfileId: r.profile.Id,
          VersionNumber: Number(current.ConfigurationVersion),
        }),
      )
      return {
        version: v.VersionNumber!,
        ...(v.VersionLabel ? { label: v.VersionLabel } : {}),
        content: Buffer.from(v.Content ?? new Uint8Array()).toString('utf8'),
        deployment: current,
      }
    },
  }
}

/** AppConfig keeps at most 1024 characters of a description. */
const DESCRIPTION_MAX = 1024

/**
 * A version's description travels as an HTTP header (CreateHostedConfigurationVersion's
 * `Description`), which takes visible ASCII only: a dashboard edit's or a rollout decision's arrows
 * and signs in ASCII, anything else as `?`.
 */
export function headerSafe(text: string): string {
  return text
    .replaceAll('→', '->')
    .replaceAll('≤', '<=')
    .replaceAll('≥', '>=')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, DESCRIPTION_MAX)
}
