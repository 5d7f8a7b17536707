// `serverless package` (osls, offline) builds functions/rollout: an EventBridge schedule that is on
// only with a live config, and a role that may read and publish that one profile and read metrics.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServiceDir, ROOT, type ServiceDir } from '../lambda/service-dir.ts'

const run = promisify(execFile)
type Resource = { Type: string; Properties: Record<string, unknown> }
type Template = { Resources: Record<string, Resource> }

let service: ServiceDir
beforeAll(() => {
  service = createServiceDir(readFileSync(join(ROOT, 'serverless.yml'), 'utf8'))
})
afterAll(() => service?.remove())

async function packageWith(...args: string[]): Promise<Template> {
  await run(join(ROOT, 'node_modules/.bin/serverless'), ['package', ...args], {
    cwd: service.dir,
    env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', MESHGATE_MESH_FILE: 'infra/examples/bookinfo.yaml' },
    timeout: 120_000,
  })
  return JSON.parse(
    readFileSync(join(service.dir, '.serverless/cloudformation-template-update-stack.json'), 'utf8'),
  )
}

const rule = (t: Template) => Object.values(t.Resources).find((r) => r.Type === 'AWS::Events::Rule')!
const statements = (t: Template) =>
  (
    (t.Resources.MeshgateRolloutRole!.Properties.Policies ?? []) as {
      PolicyDocument: { Statement: { Action: string | string[]; Resource: unknown }[] }
    }[]
  ).flatMap((p) => p.PolicyDocument.Statement)

describe('functions/rollout in serverless package', () => {
  it('with an AppConfig live config: a schedule every minute, and a role scoped to that profile', async () => {
    const t = await packageWith('--param=meshConfig=appconfig://abc1234/def5678/ghi9012')
    const fn = Object.entries(t.Resources).find(
      ([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith('Rollout'),
    )![1]
    expect(fn.Properties.Role).toEqual({ 'Fn::GetAtt': ['MeshgateRolloutRole', 'Arn'] })
    expect(rule(t).Properties).toMatchObject({ ScheduleExpression: 'rate(1 minute)', State: 'ENABLED' })
    const s = statements(t)
    const text = JSON.stringify(s)
    expect(text).toContain('application/abc1234/configurationprofile/ghi9012/hostedconfigurationversion/*')
    expect(text).toContain('deploymentstrategy/AppConfig.AllAtOnce')
    // "*" only where IAM takes no resource.
    const wildcard = s.filter((x) => x.Resource === '*').flatMap((x) => [x.Action].flat())
    expect(wildcard.sort()).toEqual([
      'appconfig:ListApplications',
      'appconfig:ListDeploymentStrategies',
      'cloudwatch:GetMetricData',
    ])
    expect(text).not.toMatch(/appconfig:\*|"\*:\*"|Delete/)
  }, 150_000)

  it('with the bundled file: the schedule is off and the role has no permission beyond logs', async () => {
    // The same functions serverless.yml calls, without another packaging run.
    const resources = createRequire(import.meta.url)(join(ROOT, 'infra/serverless/mesh-resources.cjs'))
    const settings = { config: 'infra/examples/bookinfo.yaml', source: '', functions: {} }
    const resolveConfigurationProperty = async () => settings
    expect(await resources.rolloutEnabled({ resolveConfigurationProperty })).toBe(false)
    const roles = await resources.roles({ resolveConfigurationProperty })
    expect(roles.MeshgateRolloutRole.Properties.Policies).toBeUndefined()
    settings.source = 's3://mesh-config/bookinfo/mesh.json'
    expect(await resources.rolloutEnabled({ resolveConfigurationProperty })).toBe(true)
    expect(
      resources.rolloutStatements({ kind: 's3', bucket: 'mesh-config', key: 'bookinfo/mesh.json' })[1],
    ).toEqual({
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:PutObject'],
      Resource: { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::mesh-config/bookinfo/mesh.json` },
    })
  })
})
