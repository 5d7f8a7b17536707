// publish / shift / status against the local AppConfig, as a user runs them: the CLI in a child
// process, the real SDK inside it, AWS_ENDPOINT_URL_APPCONFIG pointing at the emulator.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AppConfigClient,
  BadRequestException,
  CreateHostedConfigurationVersionCommand,
  GetConfigurationProfileCommand,
  ListApplicationsCommand,
  ListConfigurationProfilesCommand,
  ListDeploymentsCommand,
  ListEnvironmentsCommand,
  StartDeploymentCommand,
} from '@aws-sdk/client-appconfig'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalAppConfig, startLocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import { awsEnv, meshgate } from './cli-process.ts'

// The part of a mesh document these tests read (a cast, not a check: the assertions are the check).
type Doc = { services: { reviews: { routes: [{ to: unknown }, { to: unknown }] } } }

const URL_ = 'appconfig://bookinfo/prod/mesh'
let local: LocalAppConfig
let env: NodeJS.ProcessEnv
let control: AppConfigClient
let dir: string

const MESH = `version: 1
mesh: bookinfo
services:
  reviews:
    targets:
      v1: { http: http://reviews-v1.bookinfo.local:9080 }
      v3: { http: http://reviews-v3.bookinfo.local:9080 }
    routes:
      - name: default
        match: { path: { prefix: / } }
        to: v1   # all of it, for now
        timeout: 3s
`

beforeAll(async () => {
  local = await startLocalAppConfig()
  env = awsEnv({ appconfig: local.url })
  control = new AppConfigClient({
    endpoint: local.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' },
    maxAttempts: 1,
  })
  dir = mkdtempSync(join(tmpdir(), 'meshgate-control-'))
})
afterAll(async () => {
  await local.close()
})

async function ids() {
  const app = (await control.send(new ListApplicationsCommand({}))).Items!.find((a) => a.Name === 'bookinfo')!
  const environment = (
    await control.send(new ListEnvironmentsCommand({ ApplicationId: app.Id! }))
  ).Items!.find((e) => e.Name === 'prod')!
  const profile = (
    await control.send(new ListConfigurationProfilesCommand({ ApplicationId: app.Id! }))
  ).Items!.find((p) => p.Name === 'mesh')!
  return { app: app.Id!, env: environment.Id!, profile: profile.Id! }
}
const deployments = async () => {
  const { app, env: e } = await ids()
  return (
    (await control.send(new ListDeploymentsCommand({ ApplicationId: app, EnvironmentId: e }))).Items ?? []
  )
}
async function agentDocument() {
  const res = await fetch(`${local.agentUrl}/applications/bookinfo/environments/prod/configurations/mesh`)
  expect(res.status).toBe(200)
  return { version: res.headers.get('configuration-version'), doc: (await res.json()) as Doc }
}

describe('meshgate publish / shift / status on AppConfig', () => {
  it('init creates the application, environment and profile with the schema validator, and is idempotent', async () => {
    const first = await meshgate(env, 'publish', '--init', URL_)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/created application bookinfo/)
    expect(first.stdout).toMatch(/created configuration profile mesh .* with mesh.schema.json/)
    const again = await meshgate(env, 'publish', '--init', URL_)
    expect(again.code).toBe(0)
    expect(again.stdout).not.toMatch(/created/)
    expect(again.stdout.match(/^exists/gm)).toHaveLength(3)
    expect((await control.send(new ListApplicationsCommand({}))).Items).toHaveLength(1)
    const { app, env: e, profile } = await ids()
    expect(again.stdout).toContain(
      `by ID (for serverless.yml --param="meshConfig=..." and IAM): appconfig://${app}/${e}/${profile}\n`,
    )
    const p = await control.send(
      new GetConfigurationProfileCommand({ ApplicationId: app, ConfigurationProfileId: profile }),
    )
    expect(p.Validators?.map((v) => v.Type)).toEqual(['JSON_SCHEMA'])
    expect(JSON.parse(p.Validators![0]!.Content!).$schema).toBe('http://json-schema.org/draft-04/schema#')
  })

  it('publish validates, creates a hosted version as JSON and deploys it', async () => {
    const file = join(dir, 'mesh.yaml')
    writeFileSync(file, MESH)
    const r = await meshgate(env, 'publish', file, '--to', URL_, '--description', 'first')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/version 1 \(label v1\), deployment #1 AppConfig\.AllAtOnce COMPLETE 100%/)
    const live = await agentDocument()
    expect(live.version).toBe('1')
    // The user's document as JSON: no defaults filled in, durations as written.
    expect(live.doc.services.reviews.routes[0]).toEqual({
      name: 'default',
      match: { path: { prefix: '/' } },
      to: 'v1',
      timeout: '3s',
    })
  })

  it('status shows the live version and its deployment', async () => {
    const r = await meshgate(env, 'status', '--config', URL_)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/live version +1 \(label v1\)/)
    expect(r.stdout).toMatch(/deployment +#1 COMPLETE 100%, started \d{4}-/)
    const json = JSON.parse((await meshgate(env, 'status', '--config', URL_, '--json')).stdout)
    expect(json).toMatchObject({
      source: URL_,
      version: 1,
      label: 'v1',
      latestHostedVersion: 1,
      deployment: { number: 1, state: 'COMPLETE' },
    })
  })

  it('shift moves 100/0 to 97/3, changing only those weights, and prints the diff', async () => {
    const r = await meshgate(env, 'shift', '--config', URL_, 'reviews', 'default', 'v1=97', 'v3=3')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('reviews/default: v1 100 → 97, v3 0 → 3')
    expect(r.stdout).toMatch(/published version 2 \(was version 1 \(label v1\)\), deployment #2 COMPLETE/)
    const live = await agentDocument()
    expect(live.version).toBe('2')
    expect(live.doc.services.reviews.routes[0]).toEqual({
      name: 'default',
      match: { path: { prefix: '/' } },
      to: { v1: 97, v3: 3 },
      timeout: '3s',
    })
    const back = await meshgate(env, 'shift', '--config', URL_, 'reviews', 'default', 'v3=10')
    expect(back.stdout).toContain('reviews/default: v3 3 → 10')
    expect((await agentDocument()).doc.services.reviews.routes[0].to).toEqual({ v1: 97, v3: 10 })
  })

  it('shift refuses an unknown target or route, and publishes nothing', async () => {
    const before = (await deployments()).length
    const t = await meshgate(env, 'shift', '--config', URL_, 'reviews', 'default', 'v9=3')
    expect(t.code).toBe(1)
    expect(t.stderr).toContain('service reviews has no target "v9" (its targets: v1, v3)')
    const r = await meshgate(env, 'shift', '--config', URL_, 'reviews', 'canary', 'v3=3')
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('no route "canary"')
    const u = await meshgate(env, 'shift', '--config', URL_, 'reviews', 'default', 'v3=-1')
    expect(u.code).toBe(1)
    expect((await deployments()).length).toBe(before)
  })

  it('publish refuses an invalid file with FILE:LINE:COL problems, exit 1, nothing deployed', async () => {
    const before = await deployments()
    const file = join(dir, 'bad.yaml')
    writeFileSync(
      file,
      MESH.replace('to: v1   # all of it, for now', 'to: v2').replace('timeout: 3s', 'timeout: 3'),
    )
    const r = await meshgate(env, 'publish', file, '--to', URL_)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`${file}:11:13: services.reviews.routes[0].to: unknown target "v2"`)
    expect(r.stderr).toContain(`${file}:12:18: services.reviews.routes[0].timeout:`)
    expect(r.stderr).toContain('nothing published')
    expect(await deployments()).toEqual(before)
    expect(local.requests.filter((q) => q.operation === 'CreateHostedConfigurationVersion')).toHaveLength(3)
  })

  it("AppConfig's own validator refuses a config that bypasses the loader", async () => {
    const { app, env: e, profile } = await ids()
    const valid = {
      version: 1,
      mesh: 'm',
      services: { reviews: { targets: { v1: { http: 'http://a:1' } } } },
    }
    const cases = [
      { ...valid, version: 2 }, // `const: 1` in the shipped schema: only enforced if converted to Draft 4
      { ...valid, services: { reviews: { ...valid.services.reviews, routes: [{ to: { 'Bad Name': 1 } }] } } },
      { ...valid, surprise: true },
    ]
    for (const doc of cases) {
      const v = await control.send(
        new CreateHostedConfigurationVersionCommand({
          ApplicationId: app,
          ConfigurationProfileId: profile,
          Content: Buffer.from(JSON.stringify(doc)),
          ContentType: 'application/json',
        }),
      )
      const refused = await control
        .send(
          new StartDeploymentCommand({
            ApplicationId: app,
            EnvironmentId: e,
            ConfigurationProfileId: profile,
            ConfigurationVersion: String(v.VersionNumber),
            DeploymentStrategyId: 'AppConfig.AllAtOnce',
          }),
        )
        .catch((x: unknown) => x)
      expect(refused, JSON.stringify(doc)).toBeInstanceOf(BadRequestException)
      expect((refused as BadRequestException).Reason).toBe('InvalidConfiguration')
    }
    expect((await agentDocument()).doc.services.reviews.routes[0].to).toEqual({ v1: 97, v3: 10 })
    // A valid one passes the same validator: the refusals were about the content.
    const ok = await control.send(
      new CreateHostedConfigurationVersionCommand({
        ApplicationId: app,
        ConfigurationProfileId: profile,
        Content: Buffer.from(JSON.stringify(valid)),
        ContentType: 'application/json',
      }),
    )
    const deployed = await control.send(
      new StartDeploymentCommand({
        ApplicationId: app,
        EnvironmentId: e,
        ConfigurationProfileId: profile,
        ConfigurationVersion: String(ok.VersionNumber),
        DeploymentStrategyId: 'AppConfig.AllAtOnce',
      }),
    )
    expect(deployed.State).toBe('COMPLETE')
  })

  it('publish with a named strategy, and refuses an unknown one', async () => {
    const file = join(dir, 'mesh.yaml')
    const r = await meshgate(
      env,
      'publish',
      file,
      '--to',
      URL_,
      '--strategy',
      'Linear50PercentEvery30Seconds',
    )
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain('AppConfig.Linear50PercentEvery30Seconds')
    const bad = await meshgate(env, 'publish', file, '--to', URL_, '--strategy', 'Fastest')
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('no deployment strategy "Fastest"')
  })

  it('says clearly when the resources do not exist or the URL is wrong', async () => {
    const r = await meshgate(env, 'status', '--config', 'appconfig://nope/prod/mesh')
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(
      'no AppConfig application "nope" (create it with: meshgate publish --init appconfig://nope/prod/mesh)',
    )
    const u = await meshgate(env, 'status', '--config', 'http://x')
    expect(u.code).toBe(1)
    expect(u.stderr).toContain('not a live config URL')
    const usage = await meshgate(env, 'publish', join(dir, 'mesh.yaml'))
    expect(usage.code).toBe(2)
  })
})
