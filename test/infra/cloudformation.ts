// A CloudFormation template for the tests: parsed with its short-form intrinsics (`!Ref X` becomes
// `{ Ref: 'X' }`, `!GetAtt A.B` becomes `{ 'Fn::GetAtt': ['A', 'B'] }`, `!Sub s` `{ 'Fn::Sub': s }`),
// linted against what CloudFormation itself would refuse for the resource types the template uses
// (a type it does not know here, a missing required property, an unknown property name, a Ref or
// GetAtt or ${...} to nothing), and evaluated where a test needs a concrete value (Ref to a
// parameter's default, Sub with those defaults).
//
// The tables cover the types in infra/cloudformation/ only, from the CloudFormation resource reference;
// a template that uses another type fails the lint until the type is added here.

import type { Node } from 'yaml'
import { isMap, isScalar, isSeq, parseDocument } from 'yaml'

export type Cfn = null | boolean | number | string | Cfn[] | { [key: string]: Cfn }
export type CfnObject = { [key: string]: Cfn }

export interface CfnResource {
  Type: string
  Properties?: CfnObject
  DependsOn?: string | string[]
}

export interface CfnTemplate {
  AWSTemplateFormatVersion?: string
  Parameters?: Record<string, { Type: string; Default?: Cfn; Description?: string }>
  Resources: Record<string, CfnResource>
  Outputs?: Record<string, { Value: Cfn; Description?: string }>
}

/** `!Name` → the long form's key. */
function intrinsicKey(tag: string): string {
  const name = tag.slice(1)
  return name === 'Ref' || name === 'Condition' ? name : `Fn::${name}`
}

function toCfn(node: unknown): Cfn {
  let value: Cfn
  if (isMap(node)) {
    const out: CfnObject = {}
    for (const pair of node.items)
      out[String(isScalar(pair.key) ? pair.key.value : pair.key)] = toCfn(pair.value)
    value = out
  } else if (isSeq(node)) value = node.items.map(toCfn)
  else if (isScalar(node)) value = node.value as Cfn
  else value = null
  const tag = (node as Node | null)?.tag
  if (typeof tag !== 'string' || !tag.startsWith('!')) return value
  if (tag === '!GetAtt' && typeof value === 'string') {
    const dot = value.indexOf('.')
    return { 'Fn::GetAtt': [value.slice(0, dot), value.slice(dot + 1)] }
  }
  return { [intrinsicKey(tag)]: value }
}

export function parseTemplate(text: string): CfnTemplate {
  const doc = parseDocument(text, { uniqueKeys: true })
  if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('; '))
  return toCfn(doc.contents) as unknown as CfnTemplate
}

interface TypeSpec {
  required: string[]
  allowed: string[]
  attributes: string[]
}

const TAGS = ['Tags']
/** The resource types the templates use: required and known properties, and GetAtt attributes. */
const TYPES: Record<string, TypeSpec> = {
  'AWS::ServiceDiscovery::PrivateDnsNamespace': {
    required: ['Name', 'Vpc'],
    allowed: ['Name', 'Vpc', 'Description', 'Properties', ...TAGS],
    attributes: ['Id', 'Arn', 'HostedZoneId'],
  },
  'AWS::ServiceDiscovery::Service': {
    required: [],
    allowed: [
      'Name',
      'NamespaceId',
      'DnsConfig',
      'HealthCheckConfig',
      'HealthCheckCustomConfig',
      'Description',
      'Type',
      'ServiceAttributes',
      ...TAGS,
    ],
    attributes: ['Id', 'Arn', 'Name'],
  },
  'AWS::EC2::SecurityGroup': {
    required: ['GroupDescription'],
    allowed: [
      'GroupDescription',
      'GroupName',
      'VpcId',
      'SecurityGroupIngress',
      'SecurityGroupEgress',
      ...TAGS,
    ],
    attributes: ['GroupId', 'VpcId'],
  },
  'AWS::EC2::SecurityGroupIngress': {
    required: ['IpProtocol'],
    allowed: [
      'GroupId',
      'GroupName',
      'IpProtocol',
      'FromPort',
      'ToPort',
      'CidrIp',
      'CidrIpv6',
      'SourceSecurityGroupId',
      'SourceSecurityGroupName',
      'SourceSecurityGroupOwnerId',
      'SourcePrefixListId',
      'Description',
    ],
    attributes: ['Id'],
  },
  'AWS::ECS::Cluster': {
    required: [],
    allowed: [
      'ClusterName',
      'ClusterSettings',
      'CapacityProviders',
      'DefaultCapacityProviderStrategy',
      'Configuration',
      'ServiceConnectDefaults',
      ...TAGS,
    ],
    attributes: ['Arn'],
  },
  'AWS::Logs::LogGroup': {
    required: [],
    allowed: [
      'LogGroupName',
      'RetentionInDays',
      'KmsKeyId',
      'DataProtectionPolicy',
      'LogGroupClass',
      ...TAGS,
    ],
    attributes: ['Arn'],
  },
  'AWS::IAM::Role': {
    required: ['AssumeRolePolicyDocument'],
    allowed: [
      'AssumeRolePolicyDocument',
      'Description',
      'ManagedPolicyArns',
      'MaxSessionDuration',
      'Path',
      'PermissionsBoundary',
      'Policies',
      'RoleName',
      ...TAGS,
    ],
    attributes: ['Arn', 'RoleId'],
  },
  'AWS::ECS::TaskDefinition': {
    required: [],
    allowed: [
      'Family',
      'ContainerDefinitions',
      'Cpu',
      'Memory',
      'NetworkMode',
      'RequiresCompatibilities',
      'RuntimePlatform',
      'ExecutionRoleArn',
      'TaskRoleArn',
      'Volumes',
      'PlacementConstraints',
      'ProxyConfiguration',
      'EphemeralStorage',
      'PidMode',
      'IpcMode',
      ...TAGS,
    ],
    attributes: ['TaskDefinitionArn'],
  },
  'AWS::ECS::Service': {
    required: [],
    allowed: [
      'ServiceName',
      'Cluster',
      'TaskDefinition',
      'LaunchType',
      'DesiredCount',
      'NetworkConfiguration',
      'ServiceRegistries',
      'DeploymentConfiguration',
      'DeploymentController',
      'LoadBalancers',
      'CapacityProviderStrategy',
      'PlatformVersion',
      'PropagateTags',
      'EnableECSManagedTags',
      'EnableExecuteCommand',
      'HealthCheckGracePeriodSeconds',
      'SchedulingStrategy',
      'ServiceConnectConfiguration',
      'PlacementConstraints',
      'PlacementStrategies',
      'Role',
      ...TAGS,
    ],
    attributes: ['Name', 'ServiceArn'],
  },
}

/** Nested shapes CloudFormation checks too: each item's required keys. */
const NESTED_REQUIRED: Record<string, Record<string, string[]>> = {
  'AWS::ECS::TaskDefinition': { ContainerDefinitions: ['Name', 'Image'] },
  'AWS::ECS::Service': { ServiceRegistries: ['RegistryArn'] },
  'AWS::ServiceDiscovery::Service': {},
}

const PSEUDO = new Set([
  'AWS::AccountId',
  'AWS::NotificationARNs',
  'AWS::NoValue',
  'AWS::Partition',
  'AWS::Region',
  'AWS::StackId',
  'AWS::StackName',
  'AWS::URLSuffix',
])

const PARAMETER_TYPES =
  /^(String|Number|CommaDelimitedList|List<Number>|AWS::[A-Za-z0-9]+::[A-Za-z0-9]+::[A-Za-z0-9]+|List<AWS::[A-Za-z0-9]+::[A-Za-z0-9]+::[A-Za-z0-9]+>)$/

/** Every problem CloudFormation would refuse the template for (in what the tables cover). */
export function lintTemplate(t: CfnTemplate): string[] {
  const problems: string[] = []
  if (t.AWSTemplateFormatVersion !== '2010-09-09') problems.push('AWSTemplateFormatVersion: not 2010-09-09')
  const params = t.Parameters ?? {}
  const resources = t.Resources ?? {}
  if (Object.keys(resources).length === 0) problems.push('Resources: none')
  for (const [name, p] of Object.entries(params)) {
    if (!PARAMETER_TYPES.test(p.Type)) problems.push(`Parameters.${name}: unknown type ${p.Type}`)
    if (p.Type === 'Number' && p.Default !== undefined && !Number.isFinite(Number(p.Default)))
      problems.push(`Parameters.${name}: default is not a number`)
  }
  const refable = (n: string) => PSEUDO.has(n) || Object.hasOwn(params, n) || Object.hasOwn(resources, n)
  const attr = (res: string, at: string, where: string) => {
    const r = resources[res]
    if (r === undefined) problems.push(`${where}: GetAtt of unknown resource ${res}`)
    else if (!(TYPES[r.Type]?.attributes ?? []).includes(at))
      problems.push(`${where}: ${r.Type} has no attribute ${at}`)
  }
  const walk = (v: Cfn, where: string): void => {
    if (Array.isArray(v)) {
      for (const [i, x] of v.entries()) walk(x, `${where}[${i}]`)
      return
    }
    if (v === null || typeof v !== 'object') return
    if ('Ref' in v && typeof v.Ref === 'string' && !refable(v.Ref))
      problems.push(`${where}: Ref to unknown ${v.Ref}`)
    const getAtt = v['Fn::GetAtt']
    if (Array.isArray(getAtt)) attr(String(getAtt[0]), String(getAtt[1]), where)
    const sub = v['Fn::Sub']
    if (typeof sub === 'string') {
      for (const m of sub.matchAll(/\$\{([^}!]+)\}/g)) {
        const [name, at] = m[1]!.split('.') as [string, string | undefined]
        if (at === undefined) {
          if (!refable(name)) problems.push(`${where}: \${${name}} names nothing`)
        } else attr(name, at, where)
      }
    }
    for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`)
  }
  for (const [id, r] of Object.entries(resources)) {
    const spec = TYPES[r.Type]
    if (spec === undefined) {
      problems.push(`Resources.${id}: type ${r.Type} is not in this lint's tables`)
      continue
    }
    const props = r.Properties ?? {}
    for (const req of spec.required)
      if (!(req in props)) problems.push(`Resources.${id}: ${r.Type} needs ${req}`)
    for (const k of Object.keys(props))
      if (!spec.allowed.includes(k)) problems.push(`Resources.${id}: ${r.Type} has no property ${k}`)
    for (const [list, keys] of Object.entries(NESTED_REQUIRED[r.Type] ?? {})) {
      const items = props[list]
      if (!Array.isArray(items)) continue
      items.forEach((item, i) => {
        for (const k of keys)
          if (item === null || typeof item !== 'object' || !(k in item))
            problems.push(`Resources.${id}.${list}[${i}]: needs ${k}`)
      })
    }
    for (const dep of [r.DependsOn ?? []].flat())
      if (!Object.hasOwn(resources, dep)) problems.push(`Resources.${id}: DependsOn unknown ${dep}`)
    walk(props as Cfn, `Resources.${id}`)
  }
  for (const [name, o] of Object.entries(t.Outputs ?? {})) {
    if (o.Value === undefined) problems.push(`Outputs.${name}: no Value`)
    walk(o.Value, `Outputs.${name}`)
  }
  return problems
}

/**
 * A value as the stack would see it with every parameter at its default: Ref to a parameter is its
 * default, Fn::Sub fills ${Param}; anything else (a resource's Ref or attribute) stays as it is.
 */
export function evaluate(t: CfnTemplate, v: Cfn): Cfn {
  if (Array.isArray(v)) return v.map((x) => evaluate(t, x))
  if (v === null || typeof v !== 'object') return v
  const params = t.Parameters ?? {}
  if (typeof v.Ref === 'string' && Object.hasOwn(params, v.Ref)) {
    const d = params[v.Ref]!.Default
    if (d === undefined) throw new Error(`parameter ${v.Ref} has no default`)
    return d
  }
  if (typeof v['Fn::Sub'] === 'string') {
    return v['Fn::Sub'].replace(/\$\{([^}.!]+)\}/g, (m, name: string) =>
      Object.hasOwn(params, name) && params[name]!.Default !== undefined ? String(params[name]!.Default) : m,
    )
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, evaluate(t, x)]))
}

/** `{ Ref: X }` or `{ 'Fn::GetAtt': [X, ...] }` → X; else undefined. */
export function referencedResource(v: Cfn | undefined): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
  if (typeof v.Ref === 'string') return v.Ref
  const g = v['Fn::GetAtt']
  return Array.isArray(g) ? String(g[0]) : undefined
}
