// The local AppConfig driven only through the real SDK clients (and plain fetch for the agent API,
// which has no SDK): if the SDK parses every answer, the wire shapes are right.
import {
  AppConfigClient,
  BadRequestException,
  ConflictException,
  CreateApplicationCommand,
  CreateConfigurationProfileCommand,
  CreateEnvironmentCommand,
  CreateHostedConfigurationVersionCommand,
  GetDeploymentCommand,
  GetHostedConfigurationVersionCommand,
  ListApplicationsCommand,
  ListConfigurationProfilesCommand,
  ListDeploymentStrategiesCommand,
  ListDeploymentsCommand,
  ListEnvironmentsCommand,
  ListHostedConfigurationVersionsCommand,
  ResourceNotFoundException,
  StartDeploymentCommand,
  StopDeploymentCommand,
} from '@aws-sdk/client-appconfig'
import {
  AppConfigDataClient,
  BadRequestException as DataBadRequestException,
  GetLatestConfigurationCommand,
  StartConfigurationSessionCommand,
} from '@aws-sdk/client-appconfigdata'
import { afterEach, describe, expect, it } from 'vitest'
import { type LocalAppConfig, startLocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'

const credentials = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' }
const clients = (url: string) => ({
  control: new AppConfigClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts: 1 }),
  data: new AppConfigDataClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts: 1 }),
})

const DRAFT4 = JSON.stringify({
  $schema: 'http://json-schema.org/draft-04/schema#',
  type: 'object',
  required: ['version'],
  properties: {
    version: { enum: [1] },
    ratio: { type: 'number', minimum: 0, maximum: 1, exclusiveMaximum: true },
  },
})

let local: LocalAppConfig | undefined
afterEach(async () => {
  await local?.close()
  local = undefined
})

async function setUp(validators: { Type: 'JSON_SCHEMA'; Content: string }[] = []) {
  local = await startLocalAppConfig()
  const { control, data } = clients(local.url)
  const app = await control.send(new CreateApplicationCommand({ Name: 'bookinfo' }))
  const env = await control.send(new CreateEnvironmentCommand({ ApplicationId: app.Id!, Name: 'prod' }))
  const profile = await control.send(
    new CreateConfigurationProfileCommand({
      ApplicationId: app.Id!,
      Name: 'mesh',
      LocationUri: 'hosted',
      Validators: validators,
    }),
  )
  const put = (content: string, label?: string) =>
    control.send(
      new CreateHostedConfigurationVersionCommand({
        ApplicationId: app.Id!,
        ConfigurationProfileId: profile.Id!,
        Content: Buffer.from(content),
        ContentType: 'application/json',
        ...(label ? { VersionLabel: label } : {}),
      }),
    )
  const deploy = (version: number) =>
    control.send(
      new StartDeploymentCommand({
        ApplicationId: app.Id!,
        EnvironmentId: env.Id!,
        ConfigurationProfileId: profile.Id!,
        ConfigurationVersion: String(version),
        DeploymentStrategyId: 'AppConfig.AllAtOnce',
      }),
    )
  return { local, control, data, app, env, profile, put, deploy }
}

describe('local AppConfig: control plane', () => {
  it('creates and lists applications, environments and profiles, with validators stored', async () => {
    const { control, app, env, profile } = await setUp([{ Type: 'JSON_SCHEMA', Content: DRAFT4 }])
    expect(app.Id).toMatch(/^[a-z0-9]{7}$/)
    const apps = await control.send(new ListApplicationsCommand({}))
    expect(apps.Items?.map((a) => [a.Id, a.Name])).toEqual([[app.Id, 'bookinfo']])
    const envs = await control.send(new ListEnvironmentsCommand({ ApplicationId: app.Id! }))
    expect(envs.Items?.map((e) => [e.Id, e.Name, e.State])).toEqual([[env.Id, 'prod', 'ReadyForDeployment']])
    expect(profile.Validators).toEqual([{ Type: 'JSON_SCHEMA', Content: DRAFT4 }])
    const profiles = await control.send(new ListConfigurationProfilesCommand({ ApplicationId: app.Id! }))
    expect(profiles.Items?.[0]).toMatchObject({
      Id: profile.Id,
      Name: 'mesh',
      ValidatorTypes: ['JSON_SCHEMA'],
    })
  })

  it('lists the predefined deployment strategies', async () => {
    const { control } = await setUp()
    const s = await control.send(new ListDeploymentStrategiesCommand({}))
    expect(s.Items?.map((x) => x.Id).sort()).toEqual([
      'AppConfig.AllAtOnce',
      'AppConfig.Canary10Percent20Minutes',
      'AppConfig.Linear20PercentEvery6Minutes',
      'AppConfig.Linear50PercentEvery30Seconds',
    ])
    expect(s.Items?.find((x) => x.Id === 'AppConfig.Canary10Percent20Minutes')).toMatchObject({
      GrowthType: 'EXPONENTIAL',
      GrowthFactor: 10,
      DeploymentDurationInMinutes: 20,
    })
  })

  it('stores hosted versions (raw content, headers) and deploys them', async () => {
    const { control, app, env, profile, put, deploy } = await setUp()
    const v1 = await put('{"version":1}', 'first')
    expect(v1.VersionNumber).toBe(1)
    expect(v1.VersionLabel).toBe('first')
    expect(Buffer.from(v1.Content!).toString()).toBe('{"version":1}')
    const v2 = await put('{"version":1,"mesh":"b"}')
    expect(v2.VersionNumber).toBe(2)
    const got = await control.send(
      new GetHostedConfigurationVersionCommand({
        ApplicationId: app.Id!,
        ConfigurationProfileId: profile.Id!,
        VersionNumber: 1,
      }),
    )
    expect(got.ContentType).toBe('application/json')
    expect(Buffer.from(got.Content!).toString()).toBe('{"version":1}')
    const list = await control.send(
      new ListHostedConfigurationVersionsCommand({
        ApplicationId: app.Id!,
        ConfigurationProfileId: profile.Id!,
      }),
    )
    expect(list.Items?.map((i) => i.VersionNumber)).toEqual([2, 1])

    const d = await deploy(2)
    expect(d).toMatchObject({
      DeploymentNumber: 1,
      State: 'COMPLETE',
      ConfigurationVersion: '2',
      PercentageComplete: 100,
    })
    expect(d.StartedAt).toBeInstanceOf(Date)
    const again = await control.send(
      new GetDeploymentCommand({ ApplicationId: app.Id!, EnvironmentId: env.Id!, DeploymentNumber: 1 }),
    )
    expect(again.State).toBe('COMPLETE')
    expect(again.CompletedAt).toBeInstanceOf(Date)
    const all = await control.send(
      new ListDeploymentsCommand({ ApplicationId: app.Id!, EnvironmentId: env.Id! }),
    )
    expect(all.Items?.map((i) => [i.DeploymentNumber, i.State])).toEqual([[1, 'COMPLETE']])
  })

  it('refuses, at StartDeployment, a version that fails the JSON Schema validator', async () => {
    const { put, deploy, control, app, env } = await setUp([{ Type: 'JSON_SCHEMA', Content: DRAFT4 }])
    await put('{"version":2}')
    await put('{"version":1,"ratio":1}') // exclusiveMaximum: Draft 4's boolean form is honoured
    await put('{"version":1,"ratio":0.5}')
    for (const bad of [1, 2]) {
      const e = await deploy(bad).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(BadRequestException)
      expect((e as BadRequestException).Reason).toBe('InvalidConfiguration')
      expect((e as BadRequestException).Details?.InvalidConfiguration?.[0]?.Type).toBe('JSON_SCHEMA')
    }
    expect((await deploy(3)).State).toBe('COMPLETE')
    const all = await control.send(
      new ListDeploymentsCommand({ ApplicationId: app.Id!, EnvironmentId: env.Id! }),
    )
    expect(all.Items).toHaveLength(1)
  })

  it('refuses a schema of a draft AppConfig does not run, and unknown resources', async () => {
    const { control, app } = await setUp()
    const e = await control
      .send(
        new CreateConfigurationProfileCommand({
          ApplicationId: app.Id!,
          Name: 'x',
          LocationUri: 'hosted',
          Validators: [
            { Type: 'JSON_SCHEMA', Content: '{"$schema":"https://json-schema.org/draft/2020-12/schema"}' },
          ],
        }),
      )
      .catch((x: unknown) => x)
    expect(e).toBeInstanceOf(BadRequestException)
    const missing = await control
      .send(new ListEnvironmentsCommand({ ApplicationId: 'nope123' }))
      .catch((x: unknown) => x)
    expect(missing).toBeInstanceOf(ResourceNotFoundException)
  })

  it('refuses a stale Latest-Version-Number', async () => {
    const { control, app, profile, put } = await setUp()
    await put('{}')
    const e = await control
      .send(
        new CreateHostedConfigurationVersionCommand({
          ApplicationId: app.Id!,
          ConfigurationProfileId: profile.Id!,
          Content: Buffer.from('{}'),
          ContentType: 'application/json',
          LatestVersionNumber: 0,
        }),
      )
      .catch((x: unknown) => x)
    expect(e).toBeInstanceOf(ConflictException)
  })
})

describe('local AppConfig: AppConfigData', () => {
  it('serves the deployed version once per session, then an empty body until a new one', async () => {
    const { data, put, deploy } = await setUp()
    await put('{"version":1,"n":1}', 'one')
    await deploy(1)
    const session = await data.send(
      new StartConfigurationSessionCommand({
        ApplicationIdentifier: 'bookinfo',
        EnvironmentIdentifier: 'prod',
        ConfigurationProfileIdentifier: 'mesh',
        RequiredMinimumPollIntervalInSeconds: 15,
      }),
    )
    const first = await data.send(
      new GetLatestConfigurationCommand({ ConfigurationToken: session.InitialConfigurationToken! }),
    )
    expect(Buffer.from(first.Configuration!).toString()).toBe('{"version":1,"n":1}')
    expect(first.ContentType).toBe('application/json')
    expect(first.VersionLabel).toBe('one')
    expect(first.NextPollIntervalInSeconds).toBe(15)
    const second = await data.send(
      new GetLatestConfigurationCommand({ ConfigurationToken: first.NextPollConfigurationToken! }),
    )
    expect(second.Configuration?.length ?? 0).toBe(0)
    await put('{"version":1,"n":2}', 'two')
    await deploy(2)
    const third = await data.send(
      new GetLatestConfigurationCommand({ ConfigurationToken: second.NextPollConfigurationToken! }),
    )
    expect(Buffer.from(third.Configuration!).toString()).toBe('{"version":1,"n":2}')
    expect(third.VersionLabel).toBe('two')
  })

  it('takes each token once: a reused or unknown token is BadRequestException', async () => {
    const { data, put, deploy } = await setUp()
    await put('{}')
    await deploy(1)
    const s = await data.send(
      new StartConfigurationSessionCommand({
        ApplicationIdentifier: 'bookinfo',
        EnvironmentIdentifier: 'prod',
        ConfigurationProfileIdentifier: 'mesh',
      }),
    )
    const first = await data.send(
      new GetLatestConfigurationCommand({ ConfigurationToken: s.InitialConfigurationToken! }),
    )
    expect(first.NextPollIntervalInSeconds).toBe(60)
    for (const token of [s.InitialConfigurationToken!, 'not-a-token']) {
      const e = await data
        .send(new GetLatestConfigurationCommand({ ConfigurationToken: token }))
        .catch((x: unknown) => x)
      expect(e).toBeInstanceOf(DataBadRequestException)
    }
  })
})

describe('local AppConfig: agent API and controls', () => {
  it('serves the deployed content with Configuration-Version on the agent port', async () => {
    const { local, put, deploy } = await setUp()
    const path = '/applications/bookinfo/environments/prod/configurations/mesh'
    expect((await fetch(`${local.agentUrl}${path}`)).status).toBe(404)
    await put('{"version":1}')
    await put('{"version":1,"x":2}')
    await deploy(2)
    const res = await fetch(`${local.agentUrl}${path}`)
    expect(res.status).toBe(200)
    expect(res.headers.get('configuration-version')).toBe('2')
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(await res.text()).toBe('{"version":1,"x":2}')
  })

  it('fails the next requests on demand, resets connections while unavailable, and logs requests', async () => {
    const { local, control } = await setUp()
    local.failNext(1, 'appconfig')
    const e = await control.send(new ListApplicationsCommand({})).catch((x: unknown) => x)
    expect((e as { name: string }).name).toBe('InternalServerException')
    expect((await control.send(new ListApplicationsCommand({}))).Items).toHaveLength(1)
    local.setUnavailable(true)
    const down = await control.send(new ListApplicationsCommand({})).catch((x: unknown) => x)
    expect(down).toBeInstanceOf(Error)
    expect((down as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBeUndefined()
    local.setUnavailable(false)
    expect((await control.send(new ListApplicationsCommand({}))).Items).toHaveLength(1)
    expect(local.requests.filter((r) => r.operation === 'ListApplications').map((r) => r.status)).toEqual([
      500, 200, 200,
    ])
    expect(local.requests[0]).toMatchObject({ api: 'appconfig', operation: 'CreateApplication', status: 201 })
  })
})

describe('local AppConfig: gradual deployments on an injected clock', () => {
  it('deploys, bakes and completes on the strategy timeline; StopDeployment rolls back', async () => {
    let t = 1_700_000_000_000
    local = await startLocalAppConfig({ clock: { now: () => t } })
    const { control } = clients(local.url)
    const app = await control.send(new CreateApplicationCommand({ Name: 'a' }))
    const env = await control.send(new CreateEnvironmentCommand({ ApplicationId: app.Id!, Name: 'e' }))
    const p = await control.send(
      new CreateConfigurationProfileCommand({ ApplicationId: app.Id!, Name: 'p', LocationUri: 'hosted' }),
    )
    for (const c of ['{"v":1}', '{"v":2}'])
      await control.send(
        new CreateHostedConfigurationVersionCommand({
          ApplicationId: app.Id!,
          ConfigurationProfileId: p.Id!,
          Content: Buffer.from(c),
          ContentType: 'application/json',
        }),
      )
    const start = (version: string, strategy: string) =>
      control.send(
        new StartDeploymentCommand({
          ApplicationId: app.Id!,
          EnvironmentId: env.Id!,
          ConfigurationProfileId: p.Id!,
          ConfigurationVersion: version,
          DeploymentStrategyId: strategy,
        }),
      )
    const get = (n: number) =>
      control.send(
        new GetDeploymentCommand({ ApplicationId: app.Id!, EnvironmentId: env.Id!, DeploymentNumber: n }),
      )
    const d1 = await start('1', 'AppConfig.Linear50PercentEvery30Seconds')
    expect([d1.State, d1.PercentageComplete]).toEqual(['DEPLOYING', 50])
    const busy = await start('2', 'AppConfig.AllAtOnce').catch((x: unknown) => x)
    expect(busy).toBeInstanceOf(ConflictException)
    t += 30_000
    expect((await get(1)).PercentageComplete).toBe(100)
    t += 30_000
    expect((await get(1)).State).toBe('BAKING')
    t += 60_000
    expect((await get(1)).State).toBe('COMPLETE')
    const agent = () =>
      fetch(`${local!.agentUrl}/applications/a/environments/e/configurations/p`).then((r) => r.text())
    expect(await agent()).toBe('{"v":1}')

    await start('2', 'AppConfig.AllAtOnce')
    expect((await get(2)).State).toBe('BAKING')
    expect(await agent()).toBe('{"v":2}')
    const stopped = await control.send(
      new StopDeploymentCommand({ ApplicationId: app.Id!, EnvironmentId: env.Id!, DeploymentNumber: 2 }),
    )
    expect(stopped.State).toBe('ROLLED_BACK')
    expect(await agent()).toBe('{"v":1}')
  })
})
