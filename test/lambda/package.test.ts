// `serverless package` (osls + serverless-esbuild, offline) on the project's serverless.yml, then the
// generated CloudFormation is read: runtimes, tracing, per-function IAM, the HTTP API route, bundles.
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServiceDir, ROOT, type ServiceDir } from './service-dir.ts'

const run = promisify(execFile)

interface Resource {
  Type: string
  Properties: Record<string, unknown>
}
let template: { Resources: Record<string, Resource> }
let service: ServiceDir

beforeAll(async () => {
  service = createServiceDir(readFileSync(join(ROOT, 'serverless.yml'), 'utf8'))
  await run(join(ROOT, 'node_modules/.bin/serverless'), ['package'], {
    cwd: service.dir,
    env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', MESHGATE_MESH_FILE: 'infra/examples/bookinfo.yaml' },
    timeout: 120_000,
  })
  template = JSON.parse(
    readFileSync(join(service.dir, '.serverless/cloudformation-template-update-stack.json'), 'utf8'),
  )
}, 150_000)

afterAll(() => service?.remove())

function byType(type: string): [string, Resource][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type)
}

type Sub = { 'Fn::Sub': string }
const arnOf = (fn: string) =>
  `arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${fn}`

function invokeTargets(roleId: string): string[] | undefined {
  const role = template.Resources[roleId]
  expect(role?.Type).toBe('AWS::IAM::Role')
  const policies = (role!.Properties.Policies ?? []) as {
    PolicyDocument: { Statement: Record<string, unknown>[] }
  }[]
  const statements = policies.flatMap((p) => p.PolicyDocument.Statement)
  const invoke = statements.filter((s) => s.Action === 'lambda:InvokeFunction')
  if (invoke.length === 0) return undefined
  // Nothing broader than InvokeFunction on named functions.
  for (const s of statements) expect(s.Action).toBe('lambda:InvokeFunction')
  return invoke.flatMap((s) => (s.Resource as Sub[]).map((r) => r['Fn::Sub'])).sort()
}

describe('serverless package (offline)', () => {
  it('puts every function on nodejs24.x with active X-Ray tracing', () => {
    const functions = byType('AWS::Lambda::Function')
    expect(functions.map(([id]) => id).sort()).toEqual([
      'DetailsLambdaFunction',
      'GatewayLambdaFunction',
      'ReviewsV1LambdaFunction',
      'ReviewsV2LambdaFunction',
      'RolloutLambdaFunction',
    ])
    for (const [, fn] of functions) {
      expect(fn.Properties.Runtime).toBe('nodejs24.x')
      expect(fn.Properties.TracingConfig).toEqual({ Mode: 'Active' })
      expect(
        (fn.Properties.Environment as { Variables: Record<string, string> }).Variables.MESHGATE_CONFIG,
      ).toBe('dist/lambda/mesh.json')
    }
    const names = functions.map(([, fn]) => fn.Properties.FunctionName).sort()
    expect(names).toEqual([
      'bookinfo-details',
      'bookinfo-reviews-v1',
      'bookinfo-reviews-v2',
      'meshgate-dev-gateway',
      'meshgate-dev-rollout',
    ])
  })

  it('lets each function invoke exactly the Lambda targets its routes reach', () => {
    const roleOf = (fnId: string) =>
      (template.Resources[fnId]!.Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0]
    // The gateway routes reach productpage (HTTP), reviews (v1, v2 on Lambda, v3 HTTP), details (Lambda).
    expect(invokeTargets(roleOf('GatewayLambdaFunction'))).toEqual(
      ['bookinfo-details', 'bookinfo-reviews-v1', 'bookinfo-reviews-v2'].map(arnOf),
    )
    // reviews-v2 calls ratings, which runs only in containers: no Lambda to invoke.
    expect(invokeTargets(roleOf('ReviewsV2LambdaFunction'))).toBeUndefined()
    expect(invokeTargets(roleOf('ReviewsV1LambdaFunction'))).toBeUndefined()
    expect(invokeTargets(roleOf('DetailsLambdaFunction'))).toBeUndefined()
    // No shared role with broader rights was generated.
    expect(template.Resources.IamRoleLambdaExecution).toBeUndefined()
  })

  it('fronts the gateway with an HTTP API $default route, payload 2.0', () => {
    const routes = byType('AWS::ApiGatewayV2::Route')
    expect(routes.map(([, r]) => r.Properties.RouteKey)).toEqual(['$default'])
    const [[, integration]] = byType('AWS::ApiGatewayV2::Integration') as [[string, Resource]]
    expect(integration.Properties.PayloadFormatVersion).toBe('2.0')
    expect(JSON.stringify(integration.Properties.IntegrationUri)).toContain('GatewayLambdaFunction')
  })

  it('ships one ESM bundle per function with the mesh config as JSON, and no SDK inside', async () => {
    for (const fn of ['gateway', 'details', 'reviewsV1', 'reviewsV2']) {
      const zip = join(service.dir, '.serverless', `${fn}.zip`)
      expect(existsSync(zip)).toBe(true)
      const { stdout } = await run('unzip', ['-l', zip])
      expect(stdout).toContain('dist/lambda/mesh.json')
      expect(stdout).toMatch(/functions\/\S+\.mjs/)
      expect(stdout).not.toContain('node_modules')
    }
    const gatewayZip = join(service.dir, '.serverless/gateway.zip')
    const { stdout: listing } = await run('unzip', ['-Z1', gatewayZip])
    const files = listing.split('\n').filter((f) => f.endsWith('.mjs'))
    const read = async (f: string) =>
      (await run('unzip', ['-p', gatewayZip, f], { maxBuffer: 16 * 1024 * 1024 })).stdout
    const entry = await read('functions/gateway/index.mjs')
    const chunks = await Promise.all(files.filter((f) => f !== 'functions/gateway/index.mjs').map(read))
    // The Lambda invoker sits in a chunk of its own, and the client comes from the runtime's SDK
    // (imported there on the first Lambda-target call), never from the bundle.
    const sdkImport = /import\(\s*["']@aws-sdk\/client-lambda["']\s*\)/
    expect(sdkImport.test(entry)).toBe(false)
    expect(chunks.some((c) => sdkImport.test(c))).toBe(true)
    expect([entry, ...chunks].some((c) => c.includes('LambdaClient extends'))).toBe(false)
    const { stdout: config } = await run('unzip', [
      '-p',
      join(service.dir, '.serverless/gateway.zip'),
      'dist/lambda/mesh.json',
    ])
    expect(JSON.parse(config)).toMatchObject({ version: 1, mesh: 'bookinfo' })
  })
})
