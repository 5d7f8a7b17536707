// The AWS AppConfig source: `appconfig://APPLICATION/ENVIRONMENT/PROFILE`, read the two ways AWS offers.
//
//  agent  the AppConfig Agent beside a container, or the AppConfig Lambda extension, on
//         `localhost:2772` (MESHGATE_APPCONFIG_AGENT overrides; `off` never uses it): a plain local
//         GET of /applications/A/environments/E/configurations/P. The agent holds the session and
//         polls AppConfig itself; each answer carries the whole config and its Configuration-Version.
//         Inside Lambda this costs no SDK at all, which is why it is the default there.
//  sdk    AppConfigData with the real `@aws-sdk/client-appconfigdata` (loaded on first use only):
//         StartConfigurationSession once, then GetLatestConfiguration with the token each answer
//         returns, no sooner than its NextPollIntervalInSeconds; an empty body means "unchanged".
//         The endpoint comes from the SDK's own AWS_ENDPOINT_URL_APPCONFIGDATA.
//
// `auto` (the default) asks the agent first and falls back to the SDK when nothing listens there
// (connection refused); an agent that answers with an error is an error, not a reason to switch.

import type { IncomingMessage } from 'node:http'
import type { GetLatestConfigurationCommandOutput } from '@aws-sdk/client-appconfigdata'
import { lazyModule } from '../lazy-module.ts'
import { contentVersion } from './content-hash.ts'
import type { ConfigSource, ConfigVersion, SourceOptions } from './types.ts'
import { SourceError, SourceKinds } from './types.ts'

/** The AppConfig Agent's and the Lambda extension's default address. */
export const DEFAULT_AGENT = 'http://localhost:2772'
/** 5 s per agent request: it is a local process answering from its cache. */
const AGENT_TIMEOUT_MS = 5000
/** 10 s per AppConfigData call. */
const SDK_TIMEOUT_MS = 10_000
/** AppConfigData refuses a RequiredMinimumPollIntervalInSeconds below 15. */
const SDK_MIN_POLL_S = 15
/** Answers larger than this are refused: AppConfig's own hosted-configuration limit is 2 MB. */
const MAX_CONFIG_BYTES = 2 * 1024 * 1024

export interface AppConfigIds {
  application: string
  environment: string
  profile: string
}

export function parseAppConfigUrl(url: string): AppConfigIds {
  const m = /^appconfig:\/\/([^/]+)\/([^/]+)\/([^/]+)\/?$/i.exec(url.trim())
  if (m === null) throw new SourceError(url, 'want appconfig://APPLICATION/ENVIRONMENT/PROFILE')
  const [application, environment, profile] = [m[1]!, m[2]!, m[3]!].map((s) => decodeURIComponent(s))
  return { application: application!, environment: environment!, profile: profile! }
}

interface AgentReply {
  status: number
  body: string
  version: string | undefined
}

/** A GET through node:http, taken the cheap way (no ES module namespace, no undici) for Lambda. */
function agentGet(url: string): Promise<AgentReply> {
  const http = process.getBuiltinModule('node:http')
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: AGENT_TIMEOUT_MS }, (res: IncomingMessage) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > MAX_CONFIG_BYTES) {
          req.destroy(new Error(`answer larger than ${MAX_CONFIG_BYTES} bytes`))
          return
        }
        chunks.push(c)
      })
      res.on('end', () => {
        const v = res.headers['configuration-version']
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          version: typeof v === 'string' && v !== '' ? v : undefined,
        })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${AGENT_TIMEOUT_MS} ms`)))
    req.on('error', reject)
  })
}

/** Nothing listens at the agent address: the signal to use AppConfigData instead. */
function nobodyThere(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ECONNREFUSED' || code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') return true
  // Happy eyeballs over ::1 and 127.0.0.1 reports both refusals together.
  const errors = (err as { errors?: unknown[] }).errors
  return Array.isArray(errors) && errors.length > 0 && errors.every(nobodyThere)
}

type DataModule = typeof import('@aws-sdk/client-appconfigdata')

interface SdkError {
  name?: string
  message?: string
  $metadata?: { httpStatusCode?: number }
}

export function createAppConfigSource(ids: AppConfigIds, opts: SourceOptions = {}): ConfigSource {
  const url = `appconfig://${ids.application}/${ids.environment}/${ids.profile}`
  const env = opts.env ?? process.env
  const agentSetting = env.MESHGATE_APPCONFIG_AGENT
  let via: 'auto' | 'agent' | 'sdk' =
    opts.appConfigVia ?? (agentSetting === 'off' ? 'sdk' : agentSetting ? 'agent' : 'auto')
  const agentBase = (agentSetting && agentSetting !== 'off' ? agentSetting : DEFAULT_AGENT).replace(
    /\/+$/,
    '',
  )
  const agentUrl = `${agentBase}/applications/${encodeURIComponent(ids.application)}/environments/${encodeURIComponent(ids.environment)}/configurations/${encodeURIComponent(ids.profile)}`
  const pollS = Math.ceil((opts.pollMs ?? 45_000) / 1000)
  let lastVersion: string | undefined

  async function fromAgent(): Promise<ConfigVersion | undefined> {
    const reply = await agentGet(agentUrl)
    if (reply.status !== 200) {
      throw new SourceError(
        url,
        `the AppConfig agent at ${agentBase} answered ${reply.status}: ${reply.body.slice(0, 200)}`,
      )
    }
    const version = reply.version ?? contentVersion(reply.body)
    if (version === lastVersion) return undefined
    lastVersion = version
    return { text: reply.body, version, name: url }
  }

  // AppConfigData: the session token of the next call and the least wait before it.
  let data: Promise<{ sdk: DataModule; client: InstanceType<DataModule['AppConfigDataClient']> }> | undefined
  let token: string | undefined
  let nextPollMs: number | undefined

  function getData() {
    data ??= import('@aws-sdk/client-appconfigdata')
      .then((mod) => lazyModule(mod, 'AppConfigDataClient'))
      .then((sdk) => ({
        sdk,
        client: new sdk.AppConfigDataClient({
          region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
        }),
      }))
    data.catch(() => {
      data = undefined
    })
    return data
  }

  function sdkError(op: string, err: unknown): SourceError {
    const e = err as SdkError
    const status = e.$metadata?.httpStatusCode
    const what = `${e.name ?? 'Error'}${status === undefined ? '' : ` (HTTP ${status})`}: ${e.message ?? String(err)}`
    return new SourceError(url, `${op} failed: ${what}`, { cause: err })
  }

  async function fromSdk(retried = false): Promise<ConfigVersion | undefined> {
    const { sdk, client } = await getData()
    if (token === undefined) {
      try {
        const started = await client.send(
          new sdk.StartConfigurationSessionCommand({
            ApplicationIdentifier: ids.application,
            EnvironmentIdentifier: ids.environment,
            ConfigurationProfileIdentifier: ids.profile,
            // AWS refuses values under 15 s; a shorter MESHGATE_CONFIG_POLL (tests, local runs) leaves
            // the interval to the endpoint.
            ...(pollS >= SDK_MIN_POLL_S ? { RequiredMinimumPollIntervalInSeconds: pollS } : {}),
          }),
          { abortSignal: AbortSignal.timeout(SDK_TIMEOUT_MS) },
        )
        token = started.InitialConfigurationToken
      } catch (err) {
        throw sdkError('StartConfigurationSession', err)
      }
      if (token === undefined) throw new SourceError(url, 'StartConfigurationSession returned no token')
    }
    let res: GetLatestConfigurationCommandOutput
    try {
      res = await client.send(new sdk.GetLatestConfigurationCommand({ ConfigurationToken: token }), {
        abortSignal: AbortSignal.timeout(SDK_TIMEOUT_MS),
      })
    } catch (err) {
      // A token is single-use and expires after 24 h: a refused one means a new session, once.
      if ((err as SdkError).name === 'BadRequestException' && !retried) {
        token = undefined
        return fromSdk(true)
      }
      throw sdkError('GetLatestConfiguration', err)
    }
    token = res.NextPollConfigurationToken ?? undefined
    nextPollMs =
      res.NextPollIntervalInSeconds === undefined ? undefined : res.NextPollIntervalInSeconds * 1000
    const body = res.Configuration
    // "Unchanged" is an empty body; the SDK hands it over as an empty array, or as nothing at all.
    if (body === undefined || body === null || body.length === 0) return undefined
    const text = new TextDecoder().decode(body)
    const version = res.VersionLabel ?? contentVersion(text)
    if (version === lastVersion) return undefined
    lastVersion = version
    return { text, version, name: url }
  }

  return {
    kind: SourceKinds.appconfig,
    url,
    async check() {
      if (via === 'sdk') return fromSdk()
      try {
        const got = await fromAgent()
        via = 'agent'
        return got
      } catch (err) {
        if (err instanceof SourceError) throw err
        if (via === 'auto' && nobodyThere(err)) {
          via = 'sdk'
          opts.log?.(`no AppConfig agent at ${agentBase}: reading ${url} through AppConfigData`)
          return fromSdk()
        }
        throw new SourceError(
          url,
          `the AppConfig agent at ${agentBase}: ${(err as Error).message || (err as NodeJS.ErrnoException).code}`,
          { cause: err },
        )
      }
    },
    minNextCheckMs: () => (via === 'sdk' ? nextPollMs : undefined),
    close() {
      void data?.then((d) => d.client.destroy()).catch(() => {})
    },
  }
}
