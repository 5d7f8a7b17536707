// `serverless package` (osls, offline) with the live config parameter: the default stays the
// bundled file with nothing added; an AppConfig source adds the extension layer, the prefetch path
// and a read-only permission on that one profile; an S3 source, s3:GetObject on that one key.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServiceDir, ROOT, type ServiceDir } from './service-dir.ts'

const run = promisify(execFile)

interface Resource {
  Type: string
  Properties: Record<string, unknown>
}
type Template = { Resources: Record<string, Resource> }
interface Statement {
  Effect: string
  Action: string | string[]
  Resource: unknown
}

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

const functions = (t: Template) =>
  Object.values(t.Resources).filter((r) => r.Type === 'AWS::Lambda::Function')
/** The mesh functions' roles (functions/rollout's own is checked in test/rollout/package.test.ts). */
const roles = (t: Template) =>
  Object.entries(t.Resources)
    .filter(([id, r]) => r.Type === 'AWS::IAM::Role' && id !== 'MeshgateRolloutRole')
    .map(([, r]) => r)
const variables = (fn: Resource) =>
  (fn.Properties.Environment as { Variables: Record<string, string> }).Variables
const liveStatements = (role: Resource) =>
  ((role.Properties.Policies ?? []) as { PolicyName: string; PolicyDocument: { Statement: Statement[] } }[])
    .filter((p) => p.PolicyName === 'meshgate-live-config')
    .flatMap((p) => p.PolicyDocument.Statement)

describe('serverless package with the live config parameter', () => {
  it('defaults to the bundled file: no layer, no extra permission', async () => {
    const t = await packageWith()
    for (const fn of functions(t)) {
      expect(variables(fn).MESHGATE_CONFIG).toBe('dist/lambda/mesh.json')
      expect(fn.Properties.Layers ?? []).toEqual([])
    }
    for (const role of roles(t)) expect(liveStatements(role)).toEqual([])
  }, 150_000)

  it('appconfig://: the extension layer, its prefetch path, and read access to that profile only', async () => {
    const t = await packageWith('--param=meshConfig=appconfig://abc1234/def5678/ghi9012')
    expect(functions(t)).toHaveLength(5)
    for (const fn of functions(t)) {
      expect(variables(fn).MESHGATE_CONFIG).toBe('appconfig://abc1234/def5678/ghi9012')
      expect(variables(fn).AWS_APPCONFIG_EXTENSION_PREFETCH_LIST).toBe(
        '/applications/abc1234/environments/def5678/configurations/ghi9012',
      )
      expect(fn.Properties.Layers).toEqual([
        'arn:aws:lambda:us-east-1:027255383542:layer:AWS-AppConfig-Extension-Arm64:254',
      ])
    }
    expect(roles(t)).toHaveLength(4)
    for (const role of roles(t)) {
      expect(liveStatements(role)).toEqual([
        {
          Effect: 'Allow',
          Action: ['appconfig:StartConfigurationSession', 'appconfig:GetLatestConfiguration'],
          Resource: {
            'Fn::Sub': `arn:\${AWS::Partition}:appconfig:\${AWS::Region}:\${AWS::AccountId}:application/abc1234/environment/def5678/configuration/ghi9012`,
          },
        },
      ])
    }
  }, 150_000)

  it('s3://: s3:GetObject on that key only, and no extension', async () => {
    const t = await packageWith('--param=meshConfig=s3://mesh-config/bookinfo/mesh.json')
    for (const fn of functions(t)) {
      expect(variables(fn).MESHGATE_CONFIG).toBe('s3://mesh-config/bookinfo/mesh.json')
      expect(fn.Properties.Layers ?? []).toEqual([])
    }
    for (const role of roles(t))
      expect(liveStatements(role)).toEqual([
        {
          Effect: 'Allow',
          Action: 's3:GetObject',
          Resource: { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::mesh-config/bookinfo/mesh.json` },
        },
      ])
  }, 150_000)

  it('refuses an AppConfig URL of names, which IAM cannot scope', async () => {
    const e = await packageWith('--param=meshConfig=appconfig://bookinfo/prod/mesh').catch((x: unknown) => x)
    expect(String((e as { stdout?: string }).stdout) + String((e as { stderr?: string }).stderr)).toContain(
      '"bookinfo" is not an AppConfig ID',
    )
  }, 150_000)
})
