// serverless.yml's VPC parameters: `serverless package` (osls, offline) with subnets and security
// groups given puts exactly the functions that call container services in the VPC, with the ENI
// permissions on their roles; without them (test/lambda/package.test.ts packages the defaults) no
// function is in a VPC, and the resolver says why a half-given VPC is refused.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServiceDir, ROOT, type ServiceDir } from '../lambda/service-dir.ts'

const run = promisify(execFile)

interface VpcConfig {
  subnetIds: string[]
  securityGroupIds: string[]
}
const { vpcConfigs } = createRequire(import.meta.url)('../../infra/serverless/mesh-resources.cjs') as {
  vpcConfigs(mesh: unknown, functions: unknown, vpc: unknown): Record<string, VpcConfig>
}

interface Resource {
  Type: string
  Properties: Record<string, unknown>
}
let template: { Resources: Record<string, Resource> }
let service: ServiceDir

beforeAll(async () => {
  service = createServiceDir(readFileSync(join(ROOT, 'serverless.yml'), 'utf8'))
  await run(
    join(ROOT, 'node_modules/.bin/serverless'),
    ['package', '--param=subnetIds=subnet-0a, subnet-0b', '--param=securityGroupIds=sg-0c'],
    {
      cwd: service.dir,
      env: {
        ...process.env,
        SLS_TELEMETRY_DISABLED: '1',
        MESHGATE_MESH_FILE: 'infra/examples/bookinfo.yaml',
      },
      timeout: 120_000,
    },
  )
  template = JSON.parse(
    readFileSync(join(service.dir, '.serverless/cloudformation-template-update-stack.json'), 'utf8'),
  )
}, 150_000)

afterAll(() => service?.remove())

const managedPolicies = (roleId: string) =>
  (template.Resources[roleId]!.Properties.ManagedPolicyArns as { 'Fn::Sub': string }[]).map((a) =>
    a['Fn::Sub'].slice(a['Fn::Sub'].lastIndexOf('/') + 1),
  )

describe('serverless package with VPC parameters', () => {
  it('puts the functions that call containers in the VPC, and only them', () => {
    const vpc = Object.fromEntries(
      Object.entries(template.Resources)
        .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
        .map(([id, r]) => [id, r.Properties.VpcConfig]),
    )
    // The gateway routes to productpage (ECS), reviews v2 calls ratings (containers); details and
    // reviews v1 call nothing.
    const given = { SecurityGroupIds: ['sg-0c'], SubnetIds: ['subnet-0a', 'subnet-0b'] }
    expect(vpc).toEqual({
      GatewayLambdaFunction: given,
      ReviewsV2LambdaFunction: given,
      DetailsLambdaFunction: undefined,
      ReviewsV1LambdaFunction: undefined,
    })
  })

  it('gives the roles of those functions the VPC access policy, and no other role', () => {
    const vpcAccess = 'AWSLambdaVPCAccessExecutionRole'
    expect(managedPolicies('MeshgateGatewayRole')).toContain(vpcAccess)
    expect(managedPolicies('MeshgateReviewsV2Role')).toContain(vpcAccess)
    expect(managedPolicies('MeshgateDetailsRole')).not.toContain(vpcAccess)
    expect(managedPolicies('MeshgateReviewsV1Role')).not.toContain(vpcAccess)
  })
})

describe('the VPC resolver (infra/serverless/mesh-resources.cjs)', () => {
  const mesh = {
    gateway: { routes: [{ service: 'web' }] },
    services: {
      web: { targets: { v1: { http: 'http://web.local:15006' } } },
      fn: { targets: { v1: { lambda: 'f' } } },
    },
  }
  const functions = { gateway: { gateway: true }, worker: { calls: ['fn'] } }

  it('keeps every function out of the VPC when no subnets are given (the offline default)', () => {
    expect(vpcConfigs(mesh, functions, { subnetIds: '', securityGroupIds: '' })).toEqual({})
    expect(vpcConfigs(mesh, functions, undefined)).toEqual({})
  })

  it('refuses subnets without security groups', () => {
    expect(() => vpcConfigs(mesh, functions, { subnetIds: 'subnet-1', securityGroupIds: '' })).toThrow(
      /no securityGroupIds/,
    )
  })

  it('accepts lists or comma-separated strings', () => {
    expect(vpcConfigs(mesh, functions, { subnetIds: ['subnet-1'], securityGroupIds: 'sg-1, sg-2' })).toEqual({
      gateway: { subnetIds: ['subnet-1'], securityGroupIds: ['sg-1', 'sg-2'] },
    })
  })
})
