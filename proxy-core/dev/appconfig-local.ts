// A local AWS AppConfig: one in-memory store behind the three HTTP APIs that meshgate talks to, so
// the real SDK clients (and `meshgate dev`, and the tests) run unchanged against it:
//   - the AppConfig control plane (restJson1, `@aws-sdk/client-appconfig`),
//   - AppConfigData (restJson1, `@aws-sdk/client-appconfigdata`): sessions and single-use tokens,
//   - the AppConfig Agent / Lambda extension API (`GET /applications/A/environments/E/configurations/P`,
//     the real one on localhost:2772), on a second port.
// Shapes, header names and error shapes follow the SDK's own schemas (dist-cjs of both clients).
//
// Simplifications, on purpose:
//   - Without an injected clock a deployment is COMPLETE when StartDeployment returns (no rollout, no
//     bake). With `clock`, it is DEPLOYING for the strategy's duration (a session sees the new version
//     once its stable bucket falls under PercentageComplete), BAKING for the final bake time, then
//     COMPLETE; StopDeployment rolls an unfinished deployment back.
//   - Signatures are not verified; a SigV4 Authorization header must be present, as the real service
//     refuses anonymous calls.
//   - JSON_SCHEMA validators run with Draft 4 semantics (AppConfig's): keywords added after Draft 4
//     (`const`, `propertyNames`, `if`, ...) are ignored, as a Draft 4 validator would. LAMBDA
//     validators are stored, never run. A schema declaring another `$schema` draft is refused.
//   - No CloudWatch alarms, no KMS, no extensions, no poll-interval enforcement.
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface LocalAppConfigOptions {
  port?: number
  host?: string
  /** The agent / Lambda extension API's port; 0 (default) = a free one. */
  agentPort?: number
  /** Epoch milliseconds. When given, deployments take their strategy's time (see the header). */
  clock?: { now(): number }
  /** NextPollIntervalInSeconds when a session asks for no minimum. 60 s: AppConfigData's default. */
  defaultPollIntervalSeconds?: number
}

export type AppConfigApi = 'appconfig' | 'appconfigdata' | 'agent'

export interface LoggedRequest {
  api: AppConfigApi
  operation: string
  method: string
  path: string
  status: number
}

export interface LocalAppConfig {
  /** Control plane and AppConfigData endpoint (AWS_ENDPOINT_URL_APPCONFIG / _APPCONFIGDATA). */
  url: string
  /** The agent / Lambda extension API (MESHGATE_APPCONFIG_AGENT). */
  agentUrl: string
  /** Every request answered, in order. */
  requests: LoggedRequest[]
  /** Answer the next `n` requests (of one API, or any) with 500 InternalServerException. */
  failNext(n: number, api?: AppConfigApi): void
  /** While true, every connection is reset on its first request: the service is unreachable. */
  setUnavailable(down: boolean): void
  close(): Promise<void>
}

// AppConfig's predefined deployment strategies ("Using predefined deployment strategies", AWS
// AppConfig user guide). Their IDs are their names.
const PREDEFINED_STRATEGIES = [
  ['AppConfig.AllAtOnce', 'Quick: all targets at once, 10 min bake', 0, 'LINEAR', 100, 10],
  ['AppConfig.Linear50PercentEvery30Seconds', 'Testing/demonstration: half every 30 s', 1, 'LINEAR', 50, 1],
  [
    'AppConfig.Canary10Percent20Minutes',
    'AWS recommended: exponential 10% over 20 min',
    20,
    'EXPONENTIAL',
    10,
    10,
  ],
  ['AppConfig.Linear20PercentEvery6Minutes', 'AWS recommended: 20% every 6 min', 30, 'LINEAR', 20, 30],
] as const

interface Strategy {
  Id: string
  Name: string
  Description: string
  DeploymentDurationInMinutes: number
  GrowthType: 'LINEAR' | 'EXPONENTIAL'
  GrowthFactor: number
  FinalBakeTimeInMinutes: number
  ReplicateTo: 'NONE'
}

interface Application {
  Id: string
  Name: string
  Description?: string
  environments: Environment[]
  profiles: Profile[]
}

interface Environment {
  ApplicationId: string
  Id: string
  Name: string
  Description?: string
  Monitors?: unknown[]
  deployments: Deployment[]
}

interface Validator {
  Type: string
  Content: string
}

interface Profile {
  ApplicationId: string
  Id: string
  Name: string
  Description?: string
  LocationUri: string
  Type: string
  Validators: Validator[]
  versions: HostedVersion[]
  /** Compiled JSON_SCHEMA validators, made once at CreateConfigurationProfile. */
  checks: ((content: unknown) => InvalidDetail[])[]
}

interface HostedVersion {
  VersionNumber: number
  Content: Buffer
  ContentType: string
  Description?: string
  VersionLabel?: string
}

interface Deployment {
  number: number
  profile: Profile
  version: HostedVersion
  strategy: Strategy
  description?: string
  startedAt: number
  /** Set when stopped: the deployment then serves nothing. */
  stoppedAt?: number
}

interface InvalidDetail {
  Constraint: string
  Location: string
  Reason: string
  Type: string
  Value: string
}

interface Session {
  application: Application
  environment: Environment
  profile: Profile
  pollSeconds: number
  /** 0–99, fixed per session: which side of a gradual rollout this session is on. */
  bucket: number
  /** The version this session last received (0 = none yet). */
  seen: number
}

interface Token {
  session: Session
  expiresAt: number
}

class ApiError extends Error {
  readonly status: number
  readonly type: string
  readonly extra: Record<string, unknown>
  constructor(status: number, type: string, message: string, extra: Record<string, unknown> = {}) {
    super(message)
    this.status = status
    this.type = type
    this.extra = extra
  }
}

// 2 MiB: AppConfig's default maximum size of a hosted configuration version.
const MAX_CONTENT_BYTES = 2 * 1024 * 1024
// 32 768 characters: the maximum length of a validator's Content (the SDK's model).
const MAX_VALIDATOR_CHARS = 32_768
// 24 h: how long an AppConfigData configuration token is valid.
const TOKEN_TTL_MS = 24 * 60 * 60 * 1000

const notFound = (what: string, id: string) =>
  new ApiError(404, 'ResourceNotFoundException', `${what} ${id} not found`, { ResourceName: id })
const badRequest = (message: string, extra: Record<string, unknown> = {}) =>
  new ApiError(400, 'BadRequestException', message, extra)

/** AppConfig resource IDs are 7 lowercase letters and digits. */
function newId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  return Array.from(randomBytes(7), (b) => alphabet[b % alphabet.length]).join('')
}

/** AppConfig's timestamps are date-time strings (RFC 3339); the SDK refuses numbers there. */
const timestamp = (ms: number) => new Date(ms).toISOString()

function page<T>(items: T[], url: URL): { Items: T[]; NextToken?: string } {
  const max = Math.min(Math.max(Number(url.searchParams.get('max_results') ?? 50) || 50, 1), 50)
  const start = Number(url.searchParams.get('next_token') ?? 0) || 0
  const slice = items.slice(start, start + max)
  return start + max < items.length ? { Items: slice, NextToken: String(start + max) } : { Items: slice }
}

export async function startLocalAppConfig(opts: LocalAppConfigOptions = {}): Promise<LocalAppConfig> {
  const host = opts.host ?? '127.0.0.1'
  const clock = opts.clock
  const now = () => (clock ? clock.now() : Date.now())
  const defaultPoll = opts.defaultPollIntervalSeconds ?? 60
  const applications: Application[] = []
  const strategies: Strategy[] = PREDEFINED_STRATEGIES.map(
    ([id, description, duration, growth, factor, bake]) => ({
      Id: id,
      Name: id,
      Description: description,
      DeploymentDurationInMinutes: duration,
      GrowthType: growth,
      GrowthFactor: factor,
      FinalBakeTimeInMinutes: bake,
      ReplicateTo: 'NONE',
    }),
  )
  const tokens = new Map<string, Token>()
  const requests: LoggedRequest[] = []
  const failures: { api?: AppConfigApi; left: number }[] = []
  let unavailable = false
  let deploymentCount = 0

  // --- the store -------------------------------------------------------------------------------

  const application = (id: string) =>
    applications.find((a) => a.Id === id) ?? throwIt(notFound('Application', id))
  const environment = (app: Application, id: string) =>
    app.environments.find((e) => e.Id === id) ?? throwIt(notFound('Environment', id))
  const profile = (app: Application, id: string) =>
    app.profiles.find((p) => p.Id === id) ?? throwIt(notFound('ConfigurationProfile', id))
  // AppConfigData and the agent take a name or an ID.
  const byNameOrId = <T extends { Id: string; Name: string }>(items: T[], key: string, what: string) =>
    items.find((i) => i.Id === key) ?? items.find((i) => i.Name === key) ?? throwIt(notFound(what, key))

  /** Where a deployment stands at `t`: state and percentage, from its strategy (or at once, without a clock). */
  function progress(d: Deployment, t: number): { state: string; percent: number; completedAt?: number } {
    if (d.stoppedAt !== undefined) return { state: 'ROLLED_BACK', percent: 0, completedAt: d.stoppedAt }
    if (!clock) return { state: 'COMPLETE', percent: 100, completedAt: d.startedAt }
    const s = d.strategy
    const duration = s.DeploymentDurationInMinutes * 60_000
    const elapsed = t - d.startedAt
    if (elapsed < duration) {
      // LINEAR: GrowthFactor% per step; EXPONENTIAL: G·2^N, steps spread evenly over the duration.
      const steps =
        s.GrowthType === 'LINEAR'
          ? Math.ceil(100 / s.GrowthFactor)
          : Math.ceil(Math.log2(100 / s.GrowthFactor)) + 1
      const step = Math.floor(elapsed / (duration / steps))
      const percent = s.GrowthType === 'LINEAR' ? s.GrowthFactor * (step + 1) : s.GrowthFactor * 2 ** step
      return { state: 'DEPLOYING', percent: Math.min(100, percent) }
    }
    if (elapsed < duration + s.FinalBakeTimeInMinutes * 60_000) return { state: 'BAKING', percent: 100 }
    return {
      state: 'COMPLETE',
      percent: 100,
      completedAt: d.startedAt + duration + s.FinalBakeTimeInMinutes * 60_000,
    }
  }

  /** The version a client in `bucket` receives for this profile in this environment, if any. */
  function deployedVersion(env: Environment, prof: Profile, bucket: number): HostedVersion | undefined {
    const t = now()
    for (let i = env.deployments.length - 1; i >= 0; i--) {
      const d = env.deployments[i]!
      if (d.profile !== prof) continue
      const p = progress(d, t)
      if (p.state === 'ROLLED_BACK') continue
      if (p.state === 'DEPLOYING' && bucket >= p.percent) continue
      return d.version
    }
    return undefined
  }

  function deploymentJson(app: Application, env: Environment, d: Deployment, summary = false) {
    const p = progress(d, now())
    const common = {
      DeploymentNumber: d.number,
      ConfigurationProfileId: d.profile.Id,
      ConfigurationName: d.profile.Name,
      ConfigurationVersion: String(d.version.VersionNumber),
      DeploymentDurationInMinutes: d.strategy.DeploymentDurationInMinutes,
      GrowthType: d.strategy.GrowthType,
      GrowthFactor: d.strategy.GrowthFactor,
      FinalBakeTimeInMinutes: d.strategy.FinalBakeTimeInMinutes,
      State: p.state,
      PercentageComplete: p.percent,
      StartedAt: timestamp(d.startedAt),
      ...(p.completedAt !== undefined ? { CompletedAt: timestamp(p.completedAt) } : {}),
      ...(d.version.VersionLabel !== undefined ? { VersionLabel: d.version.VersionLabel } : {}),
    }
    if (summary) return common
    const events = [
      {
        EventType: 'DEPLOYMENT_STARTED',
        TriggeredBy: 'USER',
        Description: 'Deployment started',
        OccurredAt: timestamp(d.startedAt),
      },
    ]
    if (p.completedAt !== undefined) {
      const stopped = p.state === 'ROLLED_BACK'
      events.unshift({
        EventType: stopped ? 'ROLLBACK_COMPLETED' : 'DEPLOYMENT_COMPLETED',
        TriggeredBy: stopped ? 'USER' : 'APPCONFIG',
        Description: stopped ? 'Deployment stopped and rolled back' : 'Deployment completed',
        OccurredAt: timestamp(p.completedAt),
      })
    }
    return {
      ApplicationId: app.Id,
      EnvironmentId: env.Id,
      DeploymentStrategyId: d.strategy.Id,
      ConfigurationLocationUri: d.profile.LocationUri,
      ...(d.description !== undefined ? { Description: d.description } : {}),
      EventLog: events,
      ...common,
    }
  }

  const environmentJson = (env: Environment) => ({
    ApplicationId: env.ApplicationId,
    Id: env.Id,
    Name: env.Name,
    ...(env.Description !== undefined ? { Description: env.Description } : {}),
    State: env.deployments.some((d) => progress(d, now()).state === 'DEPLOYING')
      ? 'DEPLOYING'
      : 'ReadyForDeployment',
    ...(env.Monitors ? { Monitors: env.Monitors } : {}),
  })

  const profileJson = (p: Profile) => ({
    ApplicationId: p.ApplicationId,
    Id: p.Id,
    Name: p.Name,
    ...(p.Description !== undefined ? { Description: p.Description } : {}),
    LocationUri: p.LocationUri,
    Validators: p.Validators,
    Type: p.Type,
  })

  // --- the control plane ---------------------------------------------------------------------

  type Reply = { status: number; body?: unknown; raw?: Buffer; headers?: Record<string, string> }
  type Handler = (m: string[], url: URL, req: IncomingMessage, body: Buffer) => Reply | Promise<Reply>
  const routes: [string, string, RegExp, Handler][] = []
  const route = (operation: string, method: string, pattern: string, handler: Handler) => {
    const re = new RegExp(`^${pattern.replace(/\{\w+\}/g, '([^/]+)')}$`)
    routes.push([operation, method, re, handler])
  }

  route('CreateApplication', 'POST', '/applications', (_m, _u, _r, body) => {
    const input = jsonBody(body)
    const name = requireName(input.Name)
    const app: Application = { Id: newId(), Name: name, environments: [], profiles: [] }
    if (typeof input.Description === 'string') app.Description = input.Description
    applications.push(app)
    return { status: 201, body: { Id: app.Id, Name: app.Name, Description: app.Description } }
  })
  route('ListApplications', 'GET', '/applications', (_m, url) => ({
    status: 200,
    body: page(
      applications.map((a) => ({ Id: a.Id, Name: a.Name, Description: a.Description })),
      url,
    ),
  }))
  route('CreateEnvironment', 'POST', '/applications/{app}/environments', ([appId], _u, _r, body) => {
    const app = application(appId!)
    const input = jsonBody(body)
    const env: Environment = {
      ApplicationId: app.Id,
      Id: newId(),
      Name: requireName(input.Name),
      deployments: [],
    }
    if (typeof input.Description === 'string') env.Description = input.Description
    if (Array.isArray(input.Monitors)) env.Monitors = input.Monitors
    app.environments.push(env)
    return { status: 201, body: environmentJson(env) }
  })
  route('ListEnvironments', 'GET', '/applications/{app}/environments', ([appId], url) => ({
    status: 200,
    body: page(application(appId!).environments.map(environmentJson), url),
  }))
  route(
    'CreateConfigurationProfile',
    'POST',
    '/applications/{app}/configurationprofiles',
    async ([appId], _u, _r, body) => {
      const app = application(appId!)
      const input = jsonBody(body)
      const locationUri = typeof input.LocationUri === 'string' ? input.LocationUri : ''
      if (locationUri !== 'hosted')
        throw badRequest('only hosted configuration profiles are emulated (LocationUri "hosted")')
      const validators = Array.isArray(input.Validators) ? (input.Validators as Validator[]) : []
      if (validators.length > 2) throw badRequest('a configuration profile can have at most 2 validators')
      const checks: Profile['checks'] = []
      for (const v of validators) {
        if (typeof v?.Content !== 'string' || (v.Type !== 'JSON_SCHEMA' && v.Type !== 'LAMBDA'))
          throw badRequest('a validator needs Type JSON_SCHEMA or LAMBDA and a Content string')
        if (v.Content.length > MAX_VALIDATOR_CHARS)
          throw badRequest(
            `validator Content is ${v.Content.length} characters; the maximum is ${MAX_VALIDATOR_CHARS}`,
          )
        if (v.Type === 'JSON_SCHEMA') checks.push(await compileDraft4(v.Content))
      }
      const p: Profile = {
        ApplicationId: app.Id,
        Id: newId(),
        Name: requireName(input.Name),
        LocationUri: 'hosted',
        Type: typeof input.Type === 'string' ? input.Type : 'AWS.Freeform',
        Validators: validators.map((v) => ({ Type: v.Type, Content: v.Content })),
        versions: [],
        checks,
      }
      if (typeof input.Description === 'string') p.Description = input.Description
      app.profiles.push(p)
      return { status: 201, body: profileJson(p) }
    },
  )
  route('ListConfigurationProfiles', 'GET', '/applications/{app}/configurationprofiles', ([appId], url) => ({
    status: 200,
    body: page(
      application(appId!).profiles.map((p) => ({
        ApplicationId: p.ApplicationId,
        Id: p.Id,
        Name: p.Name,
        LocationUri: p.LocationUri,
        ValidatorTypes: p.Validators.map((v) => v.Type),
        Type: p.Type,
      })),
      url,
    ),
  }))
  route(
    'GetConfigurationProfile',
    'GET',
    '/applications/{app}/configurationprofiles/{profile}',
    ([appId, id]) => ({
      status: 200,
      body: profileJson(profile(application(appId!), id!)),
    }),
  )

  const versionReply = (status: number, p: Profile, v: HostedVersion): Reply => ({
    status,
    raw: v.Content,
    headers: {
      'application-id': p.ApplicationId,
      'configuration-profile-id': p.Id,
      'version-number': String(v.VersionNumber),
      'content-type': v.ContentType,
      ...(v.Description !== undefined ? { description: v.Description } : {}),
      ...(v.VersionLabel !== undefined ? { versionlabel: v.VersionLabel } : {}),
    },
  })
  route(
    'CreateHostedConfigurationVersion',
    'POST',
    '/applications/{app}/configurationprofiles/{profile}/hostedconfigurationversions',
    ([appId, id], _u, req, body) => {
      const p = profile(application(appId!), id!)
      const contentType = req.headers['content-type']
      if (!contentType) throw badRequest('Content-Type is required')
      const latest = p.versions.at(-1)?.VersionNumber ?? 0
      const expected = req.headers['latest-version-number']
      if (expected !== undefined && Number(expected) !== latest)
        throw new ApiError(409, 'ConflictException', `the latest version is ${latest}, not ${expected}`)
      const label = header(req, 'versionlabel')
      if (label !== undefined && /^\d+$/.test(label))
        throw badRequest('VersionLabel must contain a non-numeric character')
      const v: HostedVersion = { VersionNumber: latest + 1, Content: body, ContentType: contentType }
      const description = header(req, 'description')
      if (description !== undefined) v.Description = description
      if (label !== undefined) v.VersionLabel = label
      p.versions.push(v)
      return versionReply(201, p, v)
    },
  )
  route(
    'GetHostedConfigurationVersion',
    'GET',
    '/applications/{app}/configurationprofiles/{profile}/hostedconfigurationversions/{n}',
    ([appId, id, n]) => {
      const p = profile(application(appId!), id!)
      const v =
        p.versions.find((x) => String(x.VersionNumber) === n) ??
        throwIt(notFound('HostedConfigurationVersion', n!))
      return versionReply(200, p, v)
    },
  )
  route(
    'ListHostedConfigurationVersions',
    'GET',
    '/applications/{app}/configurationprofiles/{profile}/hostedconfigurationversions',
    ([appId, id], url) => {
      const p = profile(application(appId!), id!)
      const label = url.searchParams.get('version_label')
      const items = [...p.versions]
        .reverse()
        .filter((v) => label === null || v.VersionLabel === label)
        .map((v) => ({
          ApplicationId: p.ApplicationId,
          ConfigurationProfileId: p.Id,
          VersionNumber: v.VersionNumber,
          ContentType: v.ContentType,
          ...(v.Description !== undefined ? { Description: v.Description } : {}),
          ...(v.VersionLabel !== undefined ? { VersionLabel: v.VersionLabel } : {}),
        }))
      return { status: 200, body: page(items, url) }
    },
  )
  route('ListDeploymentStrategies', 'GET', '/deploymentstrategies', (_m, url) => ({
    status: 200,
    body: page(strategies, url),
  }))
  route(
    'StartDeployment',
    'POST',
    '/applications/{app}/environments/{env}/deployments',
    ([appId, envId], _u, _r, body) => {
      const app = application(appId!)
      const env = environment(app, envId!)
      const input = jsonBody(body)
      const strategyId = String(input.DeploymentStrategyId ?? '')
      const strategy =
        strategies.find((s) => s.Id === strategyId) ?? throwIt(notFound('DeploymentStrategy', strategyId))
      const prof = profile(app, String(input.ConfigurationProfileId ?? ''))
      const wanted = String(input.ConfigurationVersion ?? '')
      const version =
        prof.versions.find((v) => String(v.VersionNumber) === wanted) ??
        throwIt(notFound('HostedConfigurationVersion', wanted))
      if (env.deployments.some((d) => ['DEPLOYING', 'BAKING'].includes(progress(d, now()).state)))
        throw new ApiError(
          409,
          'ConflictException',
          `environment ${env.Id} already has a deployment in progress`,
        )
      const problems = validate(prof, version)
      if (problems.length > 0)
        throw badRequest(`configuration version ${version.VersionNumber} failed validation`, {
          Reason: 'InvalidConfiguration',
          Details: { InvalidConfiguration: problems },
        })
      const d: Deployment = { number: ++deploymentCount, profile: prof, version, strategy, startedAt: now() }
      if (typeof input.Description === 'string') d.description = input.Description
      env.deployments.push(d)
      return { status: 201, body: deploymentJson(app, env, d) }
    },
  )
  const deployment = (env: Environment, n: string) =>
    env.deployments.find((d) => String(d.number) === n) ?? throwIt(notFound('Deployment', n))
  route(
    'GetDeployment',
    'GET',
    '/applications/{app}/environments/{env}/deployments/{n}',
    ([appId, envId, n]) => {
      const app = application(appId!)
      const env = environment(app, envId!)
      return { status: 200, body: deploymentJson(app, env, deployment(env, n!)) }
    },
  )
  route(
    'StopDeployment',
    'DELETE',
    '/applications/{app}/environments/{env}/deployments/{n}',
    ([appId, envId, n]) => {
      const app = application(appId!)
      const env = environment(app, envId!)
      const d = deployment(env, n!)
      if (!['DEPLOYING', 'BAKING'].includes(progress(d, now()).state))
        throw badRequest(`deployment ${d.number} is not in progress`)
      d.stoppedAt = now()
      return { status: 202, body: deploymentJson(app, env, d) }
    },
  )
  route(
    'ListDeployments',
    'GET',
    '/applications/{app}/environments/{env}/deployments',
    ([appId, envId], url) => {
      const app = application(appId!)
      const env = environment(app, envId!)
      const items = [...env.deployments].reverse().map((d) => deploymentJson(app, env, d, true))
      return { status: 200, body: page(items, url) }
    },
  )

  function validate(p: Profile, v: HostedVersion): InvalidDetail[] {
    if (p.checks.length === 0) return []
    let content: unknown
    try {
      content = JSON.parse(v.Content.toString('utf8'))
    } catch (e) {
      return [
        {
          Constraint: 'json',
          Location: '',
          Reason: `not JSON: ${(e as Error).message}`,
          Type: 'JSON_SCHEMA',
          Value: '',
        },
      ]
    }
    return p.checks.flatMap((check) => check(content))
  }

  // --- AppConfigData -------------------------------------------------------------------------

  function issueToken(session: Session): string {
    const token = randomBytes(24).toString('base64url')
    tokens.set(token, { session, expiresAt: now() + TOKEN_TTL_MS })
    return token
  }
  const dataBadRequest = (message: string, problem: 'Corrupted' | 'Expired') =>
    badRequest(message, {
      Reason: 'InvalidParameters',
      Details: { InvalidParameters: { ConfigurationToken: { Problem: problem } } },
    })

  route('StartConfigurationSession', 'POST', '/configurationsessions', (_m, _u, _r, body) => {
    const input = jsonBody(body)
    const app = byNameOrId(applications, String(input.ApplicationIdentifier ?? ''), 'Application')
    const env = byNameOrId(app.environments, String(input.EnvironmentIdentifier ?? ''), 'Environment')
    const prof = byNameOrId(
      app.profiles,
      String(input.ConfigurationProfileIdentifier ?? ''),
      'ConfigurationProfile',
    )
    const min = input.RequiredMinimumPollIntervalInSeconds
    if (min !== undefined && (typeof min !== 'number' || min < 15 || min > 86_400))
      throw badRequest('RequiredMinimumPollIntervalInSeconds must be between 15 and 86400')
    const session: Session = {
      application: app,
      environment: env,
      profile: prof,
      pollSeconds: typeof min === 'number' ? min : defaultPoll,
      bucket: randomBytes(1)[0]! % 100,
      seen: 0,
    }
    return { status: 201, body: { InitialConfigurationToken: issueToken(session) } }
  })
  route('GetLatestConfiguration', 'GET', '/configuration', (_m, url) => {
    const key = url.searchParams.get('configuration_token') ?? ''
    const token = tokens.get(key)
    if (!token) throw dataBadRequest('the configuration token is not valid', 'Corrupted')
    // Single use, like the real service: the next call must carry NextPollConfigurationToken.
    tokens.delete(key)
    if (now() > token.expiresAt) throw dataBadRequest('the configuration token has expired', 'Expired')
    const s = token.session
    const v = deployedVersion(s.environment, s.profile, s.bucket)
    const headers: Record<string, string> = {
      'next-poll-configuration-token': issueToken(s),
      'next-poll-interval-in-seconds': String(s.pollSeconds),
    }
    // An empty body means "you already have the latest": the session remembers what it was sent.
    if (v === undefined || v.VersionNumber === s.seen) return { status: 200, raw: Buffer.alloc(0), headers }
    s.seen = v.VersionNumber
    headers['content-type'] = v.ContentType
    if (v.VersionLabel !== undefined) headers['version-label'] = v.VersionLabel
    return { status: 200, raw: v.Content, headers }
  })

  // --- the agent / Lambda extension API --------------------------------------------------------

  const agentRoute: Handler = ([a, e, p]) => {
    const app = byNameOrId(applications, decodeURIComponent(a!), 'Application')
    const env = byNameOrId(app.environments, decodeURIComponent(e!), 'Environment')
    const prof = byNameOrId(app.profiles, decodeURIComponent(p!), 'ConfigurationProfile')
    // The agent holds one session of its own; bucket 0 sees a gradual rollout first.
    const v = deployedVersion(env, prof, 0) ?? throwIt(notFound('Configuration', prof.Name))
    return {
      status: 200,
      raw: v.Content,
      headers: {
        'content-type': v.ContentType,
        'configuration-version': String(v.VersionNumber),
        ...(v.VersionLabel !== undefined ? { 'version-label': v.VersionLabel } : {}),
      },
    }
  }
  const agentPattern = /^\/applications\/([^/]+)\/environments\/([^/]+)\/configurations\/([^/]+)$/

  // --- HTTP ------------------------------------------------------------------------------------

  function takeFailure(api: AppConfigApi): boolean {
    const f = failures.find((x) => x.left > 0 && (x.api === undefined || x.api === api))
    if (!f) return false
    f.left--
    return true
  }

  function send(res: ServerResponse, reply: Reply): void {
    const headers: Record<string, string | number> = { ...reply.headers }
    let payload: Buffer
    if (reply.raw !== undefined) payload = reply.raw
    else {
      payload = Buffer.from(JSON.stringify(reply.body ?? {}))
      headers['content-type'] = 'application/json'
    }
    headers['content-length'] = payload.length
    headers['x-amzn-requestid'] = randomBytes(16).toString('hex')
    res.writeHead(reply.status, headers)
    res.end(payload)
  }

  function errorReply(e: unknown): Reply {
    if (e instanceof ApiError)
      return {
        status: e.status,
        body: { Message: e.message, ...e.extra },
        headers: { 'x-amzn-errortype': e.type },
      }
    return {
      status: 500,
      body: { Message: `internal error: ${(e as Error).message}` },
      headers: { 'x-amzn-errortype': 'InternalServerException' },
    }
  }

  function handle(agent: boolean) {
    return (req: IncomingMessage, res: ServerResponse) => {
      if (unavailable) {
        req.socket.destroy()
        return
      }
      const url = new URL(req.url ?? '/', 'http://local')
      let api: AppConfigApi = agent ? 'agent' : 'appconfig'
      let operation = 'Unknown'
      let handler: Handler | undefined
      let match: string[] = []
      const agentMatch = req.method === 'GET' ? agentPattern.exec(url.pathname) : null
      if (agentMatch) {
        api = 'agent'
        operation = 'GetConfiguration'
        handler = agentRoute
        match = agentMatch.slice(1)
      } else if (!agent) {
        for (const [op, method, re, h] of routes) {
          const m = req.method === method ? re.exec(url.pathname) : null
          if (!m) continue
          operation = op
          handler = h
          match = m.slice(1).map(decodeURIComponent)
          if (op === 'StartConfigurationSession' || op === 'GetLatestConfiguration') api = 'appconfigdata'
          break
        }
      }
      const finish = (reply: Reply) => {
        requests.push({ api, operation, method: req.method ?? '', path: url.pathname, status: reply.status })
        send(res, reply)
      }
      readBody(req, MAX_CONTENT_BYTES).then(
        async (body) => {
          if (!handler)
            return finish(
              errorReply(
                new ApiError(
                  404,
                  'UnknownOperationException',
                  `no operation at ${req.method} ${url.pathname}`,
                ),
              ),
            )
          if (api !== 'agent' && !/^AWS4-HMAC-SHA256 /.test(req.headers.authorization ?? ''))
            return finish(
              errorReply(
                new ApiError(
                  403,
                  'MissingAuthenticationTokenException',
                  'missing SigV4 Authorization header',
                ),
              ),
            )
          if (takeFailure(api))
            return finish(errorReply(new ApiError(500, 'InternalServerException', 'injected failure')))
          try {
            finish(await handler(match, url, req, body))
          } catch (e) {
            finish(errorReply(e))
          }
        },
        (e: Error) => {
          const tooLarge = e.message === 'too large'
          finish(
            errorReply(
              tooLarge
                ? new ApiError(413, 'PayloadTooLargeException', 'the configuration is larger than 2 MB', {
                    Measure: 'MEGABYTES',
                    Limit: 2,
                  })
                : badRequest(`could not read the request: ${e.message}`),
            ),
          )
          if (tooLarge) res.on('finish', () => req.socket.destroy())
        },
      )
    }
  }

  const listen = async (server: Server, port: number) => {
    // Bounded waits for a slow or silent client.
    server.headersTimeout = 10_000
    server.requestTimeout = 30_000
    server.keepAliveTimeout = 5_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => resolve())
    })
    const a = server.address() as AddressInfo
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
  }
  const main = createServer({ maxHeaderSize: 16 * 1024 }, handle(false))
  const agentServer = createServer({ maxHeaderSize: 16 * 1024 }, handle(true))
  const url = await listen(main, opts.port ?? 0)
  const agentUrl = await listen(agentServer, opts.agentPort ?? 0)

  const closeServer = (s: Server) =>
    new Promise<void>((resolve) => {
      s.close(() => resolve())
      s.closeAllConnections()
    })

  return {
    url,
    agentUrl,
    requests,
    failNext(n, api) {
      failures.push(api === undefined ? { left: n } : { api, left: n })
    },
    setUnavailable(down) {
      unavailable = down
      if (down) {
        main.closeIdleConnections()
        agentServer.closeIdleConnections()
      }
    },
    async close() {
      await Promise.all([closeServer(main), closeServer(agentServer)])
    },
  }
}

function throwIt(e: Error): never {
  throw e
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return typeof v === 'string' ? v : undefined
}

function requireName(name: unknown): string {
  if (typeof name !== 'string' || name.length < 1 || name.length > 64)
    throw badRequest('Name must be 1 to 64 characters')
  return name
}

function jsonBody(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {}
  let v: unknown
  try {
    v = JSON.parse(body.toString('utf8'))
  } catch {
    throw badRequest('the request body is not JSON')
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw badRequest('the request body is not a JSON object')
  return v as Record<string, unknown>
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > limit) {
        req.removeAllListeners('data')
        req.resume()
        reject(new Error('too large'))
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

// Keywords that Draft 4 does not know: a Draft 4 validator (AppConfig's) ignores them, so we do too.
const AFTER_DRAFT_4 = [
  'const',
  'contains',
  'propertyNames',
  'if',
  'then',
  'else',
  '$defs',
  'dependentRequired',
  'dependentSchemas',
  'prefixItems',
  'unevaluatedProperties',
  'unevaluatedItems',
  '$anchor',
  '$dynamicRef',
  '$dynamicAnchor',
  'examples',
  'contentMediaType',
  'contentEncoding',
]

/** A Draft 4 schema, turned into a check with Draft 4 meaning (run by ajv's Draft 7 engine). */
async function compileDraft4(text: string): Promise<(content: unknown) => InvalidDetail[]> {
  let schema: unknown
  try {
    schema = JSON.parse(text)
  } catch {
    throw badRequest('the JSON_SCHEMA validator is not JSON')
  }
  if (typeof schema !== 'object' || schema === null)
    throw badRequest('the JSON_SCHEMA validator is not a schema')
  const declared = (schema as Record<string, unknown>).$schema
  if (declared !== undefined && !/draft-04\/schema#?$/.test(String(declared)))
    throw badRequest(`AppConfig validates with JSON Schema Draft 4; this schema declares ${String(declared)}`)
  const draft7 = toDraft7Meaning(schema)
  // ajv is loaded only when a validator is created (a dev/test path), never at import.
  const { Ajv } = await import('ajv')
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false })
  let check: ReturnType<typeof ajv.compile>
  try {
    check = ajv.compile(draft7 as object)
  } catch (e) {
    throw badRequest(`the JSON_SCHEMA validator does not compile: ${(e as Error).message}`)
  }
  return (content) => {
    if (check(content)) return []
    return (check.errors ?? []).map((err) => ({
      Constraint: err.keyword,
      Location: err.instancePath || '/',
      Reason: err.message ?? 'invalid',
      Type: 'JSON_SCHEMA',
      Value: JSON.stringify(err.params),
    }))
  }
}

/** Draft 4 → the same meaning in Draft 7 terms: boolean exclusive bounds, `id`, later keywords dropped. */
function toDraft7Meaning(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toDraft7Meaning)
  if (typeof node !== 'object' || node === null) return node
  const out: Record<string, unknown> = {}
  const src = node as Record<string, unknown>
  for (const [k, v] of Object.entries(src)) {
    if (AFTER_DRAFT_4.includes(k) || k === '$schema' || k === 'id' || k === '$id') continue
    if (k === 'properties' || k === 'patternProperties' || k === 'definitions' || k === 'dependencies') {
      out[k] = Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([name, s]) => [name, toDraft7Meaning(s)]),
      )
      continue
    }
    if (k === 'exclusiveMinimum' || k === 'exclusiveMaximum') continue
    out[k] = toDraft7Meaning(v)
  }
  if (src.exclusiveMinimum === true && typeof src.minimum === 'number') {
    out.exclusiveMinimum = src.minimum
    delete out.minimum
  }
  if (src.exclusiveMaximum === true && typeof src.maximum === 'number') {
    out.exclusiveMaximum = src.maximum
    delete out.maximum
  }
  return out
}
