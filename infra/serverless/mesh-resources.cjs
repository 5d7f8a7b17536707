// Variables for serverless.yml computed from the mesh config (osls and Serverless v4 both resolve
// `${file(./infra/serverless/mesh-resources.cjs):NAME}` by calling the exported function NAME).
//
//   configFile  converts the mesh file (YAML or JSON) to JSON at dist/lambda/mesh.json, which every
//               function bundle ships; MESHGATE_CONFIG points at it. JSON keeps the YAML parser out of
//               the Lambda bundles. Invalid YAML fails the packaging here.
//   roles       one IAM role per function (least privilege). A function may `lambda:InvokeFunction`
//               exactly the Lambda targets of the services it calls:
//                 - a function with `gateway: true` calls every service a gateway route names;
//                 - any other function calls the services listed in its `calls`.
//               Reach is one hop: the gateway may invoke reviews-v2, and reviews-v2's own role covers
//               what reviews-v2 calls. Mirrors are targets of the same service, so they are covered.
//               A function that calls a container service also gets AWSLambdaVPCAccessExecutionRole
//               (its network interfaces in the VPC) when custom.meshgate.vpc names subnets.
//   vpc         `{ <function key>: { subnetIds, securityGroupIds } }` for the functions that call a
//               service with HTTP targets (containers: an ECS service or a pod, reached in the VPC),
//               when custom.meshgate.vpc names subnets; every other function (and every function when
//               no subnets are given, as in an offline `serverless package`) stays out of the VPC.
//
//   rollout role / rolloutEnabled
//               functions/rollout (docs/rollout.md), on an EventBridge schedule enabled only with a live
//               source: MeshgateRolloutRole may read and publish that one profile (or object) and read
//               CloudWatch metrics, nothing more (rolloutStatements below).
//   configSource / layers / prefetchList
//               the live config (docs/live-config.md): with custom.meshgate.source set to
//               appconfig://APP_ID/ENV_ID/PROFILE_ID, MESHGATE_CONFIG is that URL, every function
//               gets the AWS AppConfig Agent Lambda extension layer and prefetches the profile, and
//               every role may read that one profile (appconfig:StartConfigurationSession and
//               GetLatestConfiguration); with s3://BUCKET/KEY, s3:GetObject on that key only; empty,
//               MESHGATE_CONFIG is the bundled file and nothing is added.
//
// They read `custom.meshgate` of serverless.yml:
//   custom.meshgate.config     the mesh file
//   custom.meshgate.functions  { <function key>: { gateway?: true, calls?: [service...] } }
//   custom.meshgate.vpc        { subnetIds, securityGroupIds }: lists, or comma-separated strings
//   custom.meshgate.source     '' or the live config URL (the `meshConfig` parameter)
//   custom.meshgate.appConfigExtensionLayer  the extension's layer ARN for the region and architecture
// and each function sets `role: Meshgate<FunctionKey>Role` (the logical ids made here).
'use strict'

const { readFileSync, mkdirSync, writeFileSync } = require('node:fs')
const { dirname, resolve } = require('node:path')

const OUTPUT = 'dist/lambda/mesh.json'

async function meshSettings(resolveConfigurationProperty) {
  const settings = await resolveConfigurationProperty(['custom', 'meshgate'])
  if (!settings || typeof settings.config !== 'string') {
    throw new Error('custom.meshgate.config must name the mesh file')
  }
  return settings
}

function readMesh(file) {
  const text = readFileSync(resolve(file), 'utf8')
  if (file.endsWith('.json')) return JSON.parse(text)
  const YAML = require('yaml')
  const doc = YAML.parseDocument(text)
  if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`)
  return doc.toJS()
}

/** `name`, `name:alias`, `name:version` or a full ARN → the ARN IAM must allow. */
function functionArn(spec) {
  if (spec.startsWith('arn:')) return spec
  return { 'Fn::Sub': `arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${spec}` }
}

function lambdaTargets(mesh, service) {
  const svc = mesh.services?.[service]
  if (!svc) throw new Error(`custom.meshgate.functions: unknown mesh service "${service}"`)
  const out = []
  for (const target of Object.values(svc.targets ?? {})) {
    if (target && typeof target.lambda === 'string') out.push(target.lambda)
  }
  return out
}

function servicesCalled(mesh, fn) {
  if (fn.gateway === true) {
    return [...new Set((mesh.gateway?.routes ?? []).map((r) => r.service))]
  }
  return Array.isArray(fn.calls) ? fn.calls : []
}

/**
 * Mesh identity (docs/security.md): a function that calls mesh services may mint STS web identity
 * tokens for exactly those services' audiences (`<identity.audience>/<service>`), signed RS256, for
 * at most 15 minutes (what meshgate asks for). undefined when the mesh has no identity or the
 * function calls nothing.
 */
function identityStatement(mesh, fn) {
  const audience = mesh.identity?.audience
  if (typeof audience !== 'string') return undefined
  const called = servicesCalled(mesh, fn)
  if (called.length === 0) return undefined
  const base = audience.replace(/\/+$/, '')
  return {
    Effect: 'Allow',
    Action: 'sts:GetWebIdentityToken',
    Resource: '*',
    Condition: {
      'ForAllValues:StringEquals': { 'sts:IdentityTokenAudience': called.map((s) => `${base}/${s}`).sort() },
      StringEquals: { 'sts:SigningAlgorithm': 'RS256' },
      NumericLessThanEquals: { 'sts:DurationSeconds': 900 },
    },
  }
}

/**
 * The live config source, or undefined for the bundled file. AppConfig URLs must carry IDs (not
 * names): IAM scopes the permission to the profile's ARN, which is built from IDs.
 */
function liveSource(settings) {
  const source = typeof settings.source === 'string' ? settings.source.trim() : ''
  if (source === '') return undefined
  const appconfig = /^appconfig:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(source)
  if (appconfig) {
    const [application, environment, profile] = appconfig.slice(1)
    for (const id of [application, environment, profile]) {
      if (!/^[a-z0-9]{4,7}$/.test(id)) {
        throw new Error(
          `meshConfig ${source}: "${id}" is not an AppConfig ID. On Lambda use appconfig://APP_ID/ENV_ID/PROFILE_ID ` +
            '(`meshgate publish --init` prints them): the IAM policy names the profile by its ARN, made of IDs',
        )
      }
    }
    return { kind: 'appconfig', url: source, application, environment, profile }
  }
  const s3 = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(source)
  if (s3) return { kind: 's3', url: source, bucket: s3[1], key: s3[2] }
  throw new Error(
    `meshConfig "${source}": expected appconfig://APP_ID/ENV_ID/PROFILE_ID, s3://BUCKET/KEY or '' (the bundled file)`,
  )
}

/** The one statement that lets a function read its live config, and nothing else. */
function liveConfigStatement(live) {
  if (live.kind === 'appconfig') {
    return {
      Effect: 'Allow',
      Action: ['appconfig:StartConfigurationSession', 'appconfig:GetLatestConfiguration'],
      Resource: {
        'Fn::Sub': `arn:\${AWS::Partition}:appconfig:\${AWS::Region}:\${AWS::AccountId}:application/${live.application}/environment/${live.environment}/configuration/${live.profile}`,
      },
    }
  }
  return {
    Effect: 'Allow',
    Action: 's3:GetObject',
    Resource: { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${live.bucket}/${live.key}` },
  }
}

/**
 * What the rollout controller needs: read the live config, publish a version of that one profile
 * (deployed with AppConfig.AllAtOnce), and GetMetricData. AppConfig's ListApplications and
 * ListDeploymentStrategies and CloudWatch's GetMetricData take no resource (IAM wants "*"); every other
 * action is scoped to the application, environment and profile of the URL.
 */
function rolloutStatements(live) {
  const metrics = { Effect: 'Allow', Action: 'cloudwatch:GetMetricData', Resource: '*' }
  if (live.kind === 's3') {
    return [
      metrics,
      {
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject'],
        Resource: { 'Fn::Sub': `arn:\${AWS::Partition}:s3:::${live.bucket}/${live.key}` },
      },
    ]
  }
  const arn = (path) => ({
    'Fn::Sub': `arn:\${AWS::Partition}:appconfig:\${AWS::Region}:\${AWS::AccountId}:${path}`,
  })
  const app = `application/${live.application}`
  const profile = `${app}/configurationprofile/${live.profile}`
  const environment = `${app}/environment/${live.environment}`
  return [
    metrics,
    {
      Effect: 'Allow',
      Action: ['appconfig:ListApplications', 'appconfig:ListDeploymentStrategies'],
      Resource: '*',
    },
    {
      Effect: 'Allow',
      Action: ['appconfig:ListEnvironments', 'appconfig:ListConfigurationProfiles'],
      Resource: arn(app),
    },
    {
      Effect: 'Allow',
      Action: [
        'appconfig:ListHostedConfigurationVersions',
        'appconfig:GetHostedConfigurationVersion',
        'appconfig:CreateHostedConfigurationVersion',
      ],
      Resource: [arn(profile), arn(`${profile}/hostedconfigurationversion/*`)],
    },
    { Effect: 'Allow', Action: 'appconfig:ListDeployments', Resource: arn(environment) },
    {
      Effect: 'Allow',
      Action: 'appconfig:StartDeployment',
      Resource: [arn(environment), arn(profile), arn('deploymentstrategy/AppConfig.AllAtOnce')],
    },
  ]
}

/** Whether the function calls a service with an HTTP target (a container, reached in the VPC). */
function callsContainers(mesh, fn) {
  return servicesCalled(mesh, fn).some((service) =>
    Object.values(mesh.services?.[service]?.targets ?? {}).some((t) => t && t.http !== undefined),
  )
}

/** `'a, b'` or `['a', 'b']` → `['a', 'b']`; empty entries dropped. */
function idList(value) {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : []
  return items.map((v) => String(v).trim()).filter((v) => v !== '')
}

/** Function key → its VpcConfig, for the functions that call containers; none without subnets. */
function vpcConfigs(mesh, functions, vpc) {
  const subnetIds = idList(vpc?.subnetIds)
  const securityGroupIds = idList(vpc?.securityGroupIds)
  if (subnetIds.length === 0) return {}
  if (securityGroupIds.length === 0) {
    throw new Error('custom.meshgate.vpc: subnetIds are given but no securityGroupIds')
  }
  const out = {}
  for (const [key, fn] of Object.entries(functions ?? {})) {
    if (callsContainers(mesh, fn ?? {})) out[key] = { subnetIds, securityGroupIds }
  }
  return out
}

function logicalId(functionKey) {
  const pascal = functionKey.replace(/(^|[^A-Za-z0-9])([A-Za-z0-9])/g, (_m, _sep, c) => c.toUpperCase())
  return `Meshgate${pascal}Role`
}

/** Function key → the function specs (name, name:alias or ARN) it may invoke, sorted. */
function reachableTargets(mesh, functions) {
  const out = {}
  for (const [key, fn] of Object.entries(functions ?? {})) {
    const specs = new Set()
    for (const service of servicesCalled(mesh, fn ?? {})) {
      for (const spec of lambdaTargets(mesh, service)) specs.add(spec)
    }
    out[key] = [...specs].sort()
  }
  return out
}

module.exports = {
  identityStatement,
  reachableTargets,
  rolloutStatements,
  vpcConfigs,
  logicalId,
  liveSource,

  /** MESHGATE_CONFIG: the live config URL, or the bundled JSON file. */
  async configSource(params) {
    const live = liveSource(await meshSettings(params.resolveConfigurationProperty))
    return live ? live.url : module.exports.configFile(params)
  },

  /** The AppConfig Agent Lambda extension, only when the source is AppConfig. */
  async layers({ resolveConfigurationProperty }) {
    const settings = await meshSettings(resolveConfigurationProperty)
    const live = liveSource(settings)
    if (live?.kind !== 'appconfig') return []
    if (
      typeof settings.appConfigExtensionLayer !== 'string' ||
      !settings.appConfigExtensionLayer.startsWith('arn:')
    ) {
      throw new Error(
        'custom.meshgate.appConfigExtensionLayer must be the AppConfig extension layer ARN of the region',
      )
    }
    return [settings.appConfigExtensionLayer]
  },

  /** AWS_APPCONFIG_EXTENSION_PREFETCH_LIST: the extension fetches the profile before the handler's init. */
  async prefetchList({ resolveConfigurationProperty }) {
    const live = liveSource(await meshSettings(resolveConfigurationProperty))
    if (live?.kind !== 'appconfig') return ''
    return `/applications/${live.application}/environments/${live.environment}/configurations/${live.profile}`
  },

  async configFile({ resolveConfigurationProperty }) {
    const settings = await meshSettings(resolveConfigurationProperty)
    const mesh = readMesh(settings.config)
    mkdirSync(dirname(resolve(OUTPUT)), { recursive: true })
    writeFileSync(resolve(OUTPUT), JSON.stringify(mesh))
    return OUTPUT
  },

  /** The rollout schedule runs only against a live config: a bundled file cannot be published to. */
  async rolloutEnabled({ resolveConfigurationProperty }) {
    return liveSource(await meshSettings(resolveConfigurationProperty)) !== undefined
  },

  async roles({ resolveConfigurationProperty }) {
    const settings = await meshSettings(resolveConfigurationProperty)
    const mesh = readMesh(settings.config)
    const reach = reachableTargets(mesh, settings.functions)
    const live = liveSource(settings)
    const inVpc = vpcConfigs(mesh, settings.functions, settings.vpc)
    const resources = {}
    for (const [key, specs] of Object.entries(reach)) {
      const role = {
        Type: 'AWS::IAM::Role',
        Properties: {
          AssumeRolePolicyDocument: {
            Version: '2012-10-17',
            Statement: [
              { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
            ],
          },
          // Logs, and the X-Ray segments of active tracing.
          ManagedPolicyArns: [
            { 'Fn::Sub': `arn:\${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole` },
            { 'Fn::Sub': `arn:\${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess` },
          ],
        },
      }
      const policies = []
      if (inVpc[key] !== undefined) {
        role.Properties.ManagedPolicyArns.push({
          'Fn::Sub': `arn:\${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole`,
        })
      }
      if (specs.length > 0) {
        policies.push({
          PolicyName: 'meshgate-invoke-targets',
          PolicyDocument: {
            Version: '2012-10-17',
            Statement: [
              { Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: specs.map(functionArn) },
            ],
          },
        })
      }
      const tokens = identityStatement(mesh, settings.functions?.[key] ?? {})
      if (tokens) {
        policies.push({
          PolicyName: 'meshgate-identity-tokens',
          PolicyDocument: { Version: '2012-10-17', Statement: [tokens] },
        })
      }
      if (live) {
        policies.push({
          PolicyName: 'meshgate-live-config',
          PolicyDocument: { Version: '2012-10-17', Statement: [liveConfigStatement(live)] },
        })
      }
      if (policies.length > 0) role.Properties.Policies = policies
      resources[logicalId(key)] = role
    }
    resources.MeshgateRolloutRole = {
      Type: 'AWS::IAM::Role',
      Properties: {
        AssumeRolePolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
          ],
        },
        ManagedPolicyArns: [
          { 'Fn::Sub': `arn:\${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole` },
        ],
        ...(live
          ? {
              Policies: [
                {
                  PolicyName: 'meshgate-rollout',
                  PolicyDocument: { Version: '2012-10-17', Statement: rolloutStatements(live) },
                },
              ],
            }
          : {}),
      },
    }
    return resources
  },

  async vpc({ resolveConfigurationProperty }) {
    const settings = await meshSettings(resolveConfigurationProperty)
    return vpcConfigs(readMesh(settings.config), settings.functions, settings.vpc)
  },
}
