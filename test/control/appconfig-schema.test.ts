// The Draft 4 rendering of mesh.schema.json that `publish --init` attaches: it must fit AppConfig's
// validator limit and refuse what the shipped schema refuses, when AppConfig (here the local one,
// through the real SDK) runs it with Draft 4 semantics.
import { readFileSync } from 'node:fs'
import {
  AppConfigClient,
  BadRequestException,
  CreateApplicationCommand,
  CreateConfigurationProfileCommand,
  CreateEnvironmentCommand,
  CreateHostedConfigurationVersionCommand,
  StartDeploymentCommand,
} from '@aws-sdk/client-appconfig'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import {
  appConfigMeshSchema,
  MAX_VALIDATOR_CHARS,
  toDraft4,
} from '../../proxy-core/control/appconfig-schema.ts'
import { type LocalAppConfig, startLocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'

const bookinfo = readFileSync('infra/examples/bookinfo.yaml', 'utf8')
let local: LocalAppConfig
let deploy: (doc: unknown) => Promise<unknown>

beforeAll(async () => {
  local = await startLocalAppConfig()
  const c = new AppConfigClient({
    endpoint: local.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    maxAttempts: 1,
  })
  const app = await c.send(new CreateApplicationCommand({ Name: 'a' }))
  const env = await c.send(new CreateEnvironmentCommand({ ApplicationId: app.Id!, Name: 'e' }))
  const p = await c.send(
    new CreateConfigurationProfileCommand({
      ApplicationId: app.Id!,
      Name: 'p',
      LocationUri: 'hosted',
      Validators: [{ Type: 'JSON_SCHEMA', Content: appConfigMeshSchema() }],
    }),
  )
  deploy = async (doc) => {
    const v = await c.send(
      new CreateHostedConfigurationVersionCommand({
        ApplicationId: app.Id!,
        ConfigurationProfileId: p.Id!,
        Content: Buffer.from(JSON.stringify(doc)),
        ContentType: 'application/json',
      }),
    )
    return c
      .send(
        new StartDeploymentCommand({
          ApplicationId: app.Id!,
          EnvironmentId: env.Id!,
          ConfigurationProfileId: p.Id!,
          ConfigurationVersion: String(v.VersionNumber),
          DeploymentStrategyId: 'AppConfig.AllAtOnce',
        }),
      )
      .catch((e: unknown) => e)
  }
})
afterAll(async () => {
  await local.close()
})

describe('the AppConfig validator schema', () => {
  it('is Draft 4 and fits in a validator', () => {
    const s = appConfigMeshSchema()
    expect(s.length).toBeLessThanOrEqual(MAX_VALIDATOR_CHARS)
    expect(JSON.parse(s).$schema).toBe('http://json-schema.org/draft-04/schema#')
    expect(s).not.toMatch(/"(const|propertyNames|\$id)"/)
  })

  it('refuses keywords it cannot convert, rather than dropping them', () => {
    expect(() => toDraft4({ if: { type: 'string' } })).toThrow(/no Draft 4 form/)
    expect(() =>
      toDraft4({ type: 'object', properties: { a: {} }, propertyNames: { pattern: 'a' } }),
    ).toThrow()
  })

  it('lets the Bookinfo example deploy', async () => {
    expect(await deploy(parse(bookinfo))).toMatchObject({ State: 'COMPLETE' })
  })

  // biome-ignore lint/suspicious/noExplicitAny: mutations reach into an untyped parsed document
  const broken: [string, (d: any) => void][] = [
    ['wrong version (const)', (d) => (d.version = 2)],
    ['bad mesh name', (d) => (d.mesh = 'Bad Name')],
    ['unknown top-level key', (d) => (d.extra = true)],
    ['numeric duration', (d) => (d.defaults.timeout = 5)],
    ['percent over 100', (d) => (d.services.ratings.routes[0].fault.delay.percent = 150)],
    ['negative weight', (d) => (d.services.reviews.routes[1].to.v1 = -1)],
    ['bad target name in weights (propertyNames)', (d) => (d.services.reviews.routes[1].to['Bad Name'] = 1)],
    [
      'bad header name to set (propertyNames)',
      (d) => (d.services.reviews.routes[1].headers = { request: { set: { 'a b': 'x' } } }),
    ],
    ['both lambda and http', (d) => (d.services.details.targets.v1.http = 'http://x:1')],
    ['unknown load balancer', (d) => (d.services.reviews.targets.v3.loadBalancer = 'random')],
    ['typo in a route key', (d) => (d.services.reviews.routes[0].too = 'v1')],
    ['no services', (d) => (d.services = {})],
  ]
  for (const [name, mutate] of broken) {
    it(`refuses at StartDeployment: ${name}`, async () => {
      const doc = parse(bookinfo)
      mutate(doc)
      const r = await deploy(doc)
      expect(r).toBeInstanceOf(BadRequestException)
      expect((r as BadRequestException).Reason).toBe('InvalidConfiguration')
    })
  }
})
