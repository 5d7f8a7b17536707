// `meshgate sidecar …`: the one file of the sidecar with process side effects. It reads flags and the
// environment, prints the bound addresses and the access log on stdout (notices on stderr), checks the
// config source at once on SIGHUP (the source itself watches a file and polls AppConfig or S3), and
// drains on SIGTERM/SIGINT before exiting 0.

import { resolve } from 'node:path'
import { parseDuration } from '../config/duration.ts'
import { isSourceUrl, parsePollInterval } from '../config-source/index.ts'
import { edgeTimeoutsFromEnv } from '../http/limits.ts'
import { tlsFilesFromArgs } from '../tls/index.ts'
import type { Sidecar, SidecarOptions } from './index.ts'
import { DEFAULT_ADMIN, DEFAULT_DRAIN_MS, DEFAULT_INBOUND, DEFAULT_OUTBOUND, startSidecar } from './index.ts'
import { createLineWriter } from './line-writer.ts'
import { parseListenAddress } from './listen-address.ts'

/** Flag → environment variable, for container specs that prefer the environment. */
const FLAGS = {
  config: 'MESHGATE_CONFIG',
  service: 'MESHGATE_SERVICE',
  app: 'MESHGATE_APP',
  'app-protocol': 'MESHGATE_APP_PROTOCOL',
  outbound: 'MESHGATE_OUTBOUND',
  inbound: 'MESHGATE_INBOUND',
  admin: 'MESHGATE_ADMIN',
  drain: 'MESHGATE_DRAIN',
  'tls-dir': 'MESHGATE_TLS_DIR',
  'tls-cert': 'MESHGATE_TLS_CERT',
  'tls-key': 'MESHGATE_TLS_KEY',
  'tls-ca': 'MESHGATE_TLS_CA',
  'tls-mode': 'MESHGATE_TLS_MODE',
} as const
type Flag = keyof typeof FLAGS

/** If anything still holds the process after the drain, exit anyway this long after it. */
const EXIT_GRACE_MS = 2000

export const SIDECAR_USAGE = `usage: meshgate sidecar --config FILE|URL --service NAME [--app URL]
                        [--app-protocol http1|http2|grpc]
                        [--outbound ${DEFAULT_OUTBOUND}] [--inbound ${DEFAULT_INBOUND}]
                        [--admin ${DEFAULT_ADMIN}] [--drain ${DEFAULT_DRAIN_MS / 1000}s]
                        [--tls-dir DIR | --tls-cert FILE --tls-key FILE [--tls-ca FILE]]
                        [--tls-mode strict|permissive]
--config takes a file (YAML or JSON), inline JSON, appconfig://APP/ENV/PROFILE or s3://BUCKET/KEY;
MESHGATE_CONFIG_POLL sets how often AppConfig and S3 are asked (default 45s, jittered ±10%);
MESHGATE_CONFIG_SETTLE how long a file written in place must rest before it is read (default 1s).
Each flag can also come from the environment: ${Object.values(FLAGS).join(', ')}.
Listener timeouts come from MESHGATE_HEADERS_TIMEOUT, MESHGATE_BODY_IDLE_TIMEOUT, MESHGATE_BODY_MIN_RATE.
TLS between sidecars (docs/tls.md): the inbound listener speaks TLS with --tls-cert/--tls-key and, with
--tls-ca, requires client certificates that chain to it; https:// targets are called with the same
certificate and verified against the same bundle. --tls-dir reads tls.crt, tls.key and ca.crt (a
cert-manager Secret). The files are watched and swapped in; MESHGATE_TLS_HANDSHAKE_TIMEOUT (default 10s).
--tls-mode permissive also serves cleartext HTTP on the inbound port while callers move to https://.
Port 0 binds a free port; the bound addresses are printed as one JSON line on stdout.`

class UsageError extends Error {}

/** `--drain 20s`, `--drain 500ms`, or a bare number of seconds (`--drain 20`). */
function parseDrain(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000
  const ms = parseDuration(text)
  if (ms === undefined) throw new UsageError(`--drain: not a duration: ${JSON.stringify(text)} (e.g. 20s)`)
  return ms
}

/** Flags win over the environment; `--flag value` and `--flag=value` both work. */
export function parseSidecarArgs(argv: readonly string[], env: NodeJS.ProcessEnv): SidecarOptions | 'help' {
  const args = argv[0] === 'sidecar' ? argv.slice(1) : [...argv]
  const given: Partial<Record<Flag, string>> = {}
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === '--help' || arg === '-h') return 'help'
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`)
    const eq = arg.indexOf('=')
    const name = (eq < 0 ? arg.slice(2) : arg.slice(2, eq)) as Flag
    if (!Object.hasOwn(FLAGS, name)) throw new UsageError(`unknown flag --${name}`)
    let value: string | undefined = eq < 0 ? args[++i] : arg.slice(eq + 1)
    if (value === undefined || (eq < 0 && value.startsWith('--')))
      throw new UsageError(`--${name} needs a value`)
    value = value.trim()
    given[name] = value
  }
  const get = (flag: Flag): string | undefined => {
    const v = given[flag] ?? env[FLAGS[flag]]
    return v === undefined || v === '' ? undefined : v
  }
  const configPath = get('config')
  const service = get('service')
  if (configPath === undefined) throw new UsageError('--config (or MESHGATE_CONFIG) is required')
  if (service === undefined) throw new UsageError('--service (or MESHGATE_SERVICE) is required')
  // A path is made absolute (it names the file in logs and /config); URLs and inline JSON stay as given.
  const isPath = !isSourceUrl(configPath) && !configPath.startsWith('{')
  const opts: SidecarOptions = { configPath: isPath ? resolve(configPath) : configPath, service }
  if (env.MESHGATE_CONFIG_POLL !== undefined && env.MESHGATE_CONFIG_POLL !== '') {
    try {
      opts.configPollMs = parsePollInterval(env.MESHGATE_CONFIG_POLL)
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
  }
  const settle = env.MESHGATE_CONFIG_SETTLE
  if (settle !== undefined && settle !== '') {
    const ms = parseDuration(settle)
    if (ms === undefined)
      throw new UsageError(`MESHGATE_CONFIG_SETTLE: not a duration: ${JSON.stringify(settle)} (e.g. 1s)`)
    opts.configSettleMs = ms
  }
  for (const flag of ['outbound', 'inbound', 'admin'] as const) {
    const v = get(flag)
    if (v === undefined) continue
    try {
      parseListenAddress(v)
    } catch (err) {
      throw new UsageError(`--${flag}: ${(err as Error).message}`)
    }
    opts[flag] = v
  }
  const app = get('app')
  if (app !== undefined) {
    let url: URL
    try {
      url = new URL(app)
    } catch {
      throw new UsageError(`--app: not a URL: ${JSON.stringify(app)} (e.g. http://127.0.0.1:8080)`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new UsageError('--app: want an http(s) URL')
    opts.app = url.origin
  }
  const appProtocol = get('app-protocol')
  if (appProtocol !== undefined) {
    if (appProtocol !== 'http1' && appProtocol !== 'http2' && appProtocol !== 'grpc')
      throw new UsageError(`--app-protocol: want http1, http2 or grpc, got ${JSON.stringify(appProtocol)}`)
    opts.appProtocol = appProtocol
  }
  const drain = get('drain')
  if (drain !== undefined) opts.drainMs = parseDrain(drain)
  let tls: ReturnType<typeof tlsFilesFromArgs>
  try {
    tls = tlsFilesFromArgs({
      dir: get('tls-dir'),
      cert: get('tls-cert'),
      key: get('tls-key'),
      ca: get('tls-ca'),
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (tls !== undefined) {
    const abs = (f: string) => resolve(f)
    opts.tls = {
      cert: abs(tls.cert),
      key: abs(tls.key),
      ...(tls.ca === undefined ? {} : { ca: abs(tls.ca) }),
    }
    const mode = get('tls-mode')
    if (mode !== undefined) {
      if (mode !== 'strict' && mode !== 'permissive')
        throw new UsageError(`--tls-mode: want strict or permissive, not ${JSON.stringify(mode)}`)
      opts.tls.mode = mode
    }
    const handshake = env.MESHGATE_TLS_HANDSHAKE_TIMEOUT
    if (handshake !== undefined && handshake !== '') {
      const ms = parseDuration(handshake)
      if (ms === undefined || ms <= 0)
        throw new UsageError(
          `MESHGATE_TLS_HANDSHAKE_TIMEOUT: not a duration: ${JSON.stringify(handshake)} (e.g. 10s)`,
        )
      opts.tls.handshakeTimeoutMs = ms
    }
  }
  try {
    opts.edge = edgeTimeoutsFromEnv(env)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  return opts
}

/** Telemetry settings that only the environment carries (they differ per platform, not per mesh). */
function telemetryFromEnv(env: NodeJS.ProcessEnv): Partial<SidecarOptions> {
  const out: Partial<SidecarOptions> = {}
  out.xrayDaemon = env.MESHGATE_XRAY === 'off' ? null : (env.AWS_XRAY_DAEMON_ADDRESS ?? '127.0.0.1:2000')
  out.xrayOrigin = env.KUBERNETES_SERVICE_HOST ? 'AWS::EKS::Container' : 'AWS::ECS::Container'
  // PutMetricData needs AWS credentials and a region: on by default inside ECS (the task role), else
  // when a namespace is named. MESHGATE_CLOUDWATCH=off turns it off everywhere.
  const namespace =
    env.MESHGATE_CLOUDWATCH_NAMESPACE ?? (env.ECS_CONTAINER_METADATA_URI_V4 ? 'meshgate' : undefined)
  if (namespace !== undefined && env.MESHGATE_CLOUDWATCH !== 'off') {
    out.cloudWatch = {
      namespace,
      ...(env.MESHGATE_CLOUDWATCH_ENDPOINT ? { endpoint: env.MESHGATE_CLOUDWATCH_ENDPOINT } : {}),
    }
  }
  // A configured endpoint is called as given: no `data-` host prefix (see cloudmap-discovery.ts).
  const endpointSet =
    env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS !== 'true' &&
    Boolean(env.AWS_ENDPOINT_URL_SERVICEDISCOVERY || env.AWS_ENDPOINT_URL)
  if (endpointSet) out.cloudMap = { disableHostPrefix: true }
  // A private issuer's CA (or a test's) for fetching JWKS documents, beside the system's roots.
  if (env.MESHGATE_IDENTITY_CA) out.identity = { caFile: env.MESHGATE_IDENTITY_CA }
  if (env.MESHGATE_DNS_SERVERS) out.dnsServers = env.MESHGATE_DNS_SERVERS.split(',').map((s) => s.trim())
  return out
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n').join('; ')
}

export async function runSidecarCommand(argv: string[]): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`)
  const note = (line: string) => process.stderr.write(`meshgate sidecar: ${line}\n`)
  let parsed: SidecarOptions | 'help'
  try {
    parsed = parseSidecarArgs(argv, process.env)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`meshgate sidecar: ${err.message}\n${SIDECAR_USAGE}\n`)
    return 2
  }
  if (parsed === 'help') {
    out(SIDECAR_USAGE)
    return 0
  }
  const accessLog = createLineWriter((chunk) => process.stdout.write(chunk))
  // Whatever way the process ends, the lines still waiting are written (a sync write on exit).
  process.once('exit', () => accessLog.flush())
  const opts: SidecarOptions = {
    ...telemetryFromEnv(process.env),
    ...parsed,
    log: accessLog.line,
    notice: note,
  }

  let sidecar: Sidecar
  try {
    sidecar = await startSidecar(opts)
  } catch (err) {
    note(`cannot start: ${oneLine(err)}`)
    return 1
  }
  out(
    JSON.stringify({
      event: 'listening',
      service: opts.service,
      mesh: sidecar.config().mesh,
      outbound: sidecar.addresses.outbound,
      inbound: sidecar.addresses.inbound,
      admin: sidecar.addresses.admin,
      tcp: sidecar.addresses.tcp(),
      ...(opts.tls === undefined
        ? {}
        : { tls: { mutual: opts.tls.ca !== undefined, mode: opts.tls.mode ?? 'strict' } }),
      pid: process.pid,
    }),
  )

  // The source reports its own reloads and refusals through `notice`; SIGHUP only asks it now.
  const onHup = () => {
    sidecar.reload().catch(() => {})
  }
  process.on('SIGHUP', onHup)

  return new Promise<number>((done) => {
    let signals = 0
    const onStop = (signal: NodeJS.Signals) => {
      signals++
      if (signals > 1) {
        if (signal === 'SIGINT') process.exit(130)
        return
      }
      note(`${signal}: draining (up to ${(opts.drainMs ?? DEFAULT_DRAIN_MS) / 1000}s)`)
      process.off('SIGHUP', onHup)
      void (async () => {
        const result = await sidecar.drain()
        if (!result.drained) note(`drain time over with ${result.inFlight} requests still in flight`)
        await sidecar.close()
        accessLog.flush()
        process.off('SIGTERM', onStop)
        process.off('SIGINT', onStop)
        // Whatever still holds the event loop (a stuck upstream socket), the process ends soon.
        setTimeout(() => process.exit(0), EXIT_GRACE_MS).unref()
        done(0)
      })()
    }
    process.on('SIGTERM', onStop)
    process.on('SIGINT', onStop)
  })
}
