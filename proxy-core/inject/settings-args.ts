// The settings flags that `meshgate inject` and `meshgate injector` share, so both put the same sidecar
// into the same workload. Each flag can also come from the environment (the injector's Deployment).

import type { OptionSpec, ParsedArgs } from '../cli/args.ts'
import { stringOpt, UsageError } from '../cli/args.ts'
import { parseDuration } from '../config/duration.ts'
import type { InjectSettings } from './settings.ts'
import { DEFAULT_TLS_DIR, defaultSettings, isConfigUrl } from './settings.ts'

export const SETTINGS_OPTIONS: OptionSpec = {
  image: { type: 'string' },
  config: { type: 'string' },
  'config-map': { type: 'string' },
  drain: { type: 'string' },
  env: { type: 'string', multiple: true },
  xray: { type: 'string' },
  'http-proxy': { type: 'string' },
  // `mesh-`: the injector's own --tls-dir is its webhook certificate.
  'mesh-tls-secret': { type: 'string' },
  'mesh-tls-dir': { type: 'string' },
}

export const SETTINGS_USAGE = `sidecar settings (pods override them with meshgate.io/ annotations, docs/kubernetes.md):
  --image IMAGE        the sidecar image (MESHGATE_SIDECAR_IMAGE)
  --config SRC         MESHGATE_CONFIG of the sidecar: a path, appconfig://… or s3://… (/etc/meshgate/mesh.yaml)
  --config-map NAME    the ConfigMap mounted when the config is a path (meshgate-config)
  --drain DURATION     the sidecar's drain on shutdown (20s)
  --env NAME=VALUE     extra sidecar environment, repeatable (AWS_REGION=us-east-1)
  --xray on|off        send traces to an X-Ray daemon (on)
  --http-proxy on|off  point the app containers' HTTP_PROXY at the sidecar (on)
  --mesh-tls-secret NAME  TLS between sidecars: each pod's cert-manager Secret, {service} for the
                       service name (e.g. {service}-mesh-tls), mounted at --mesh-tls-dir (docs/tls.md)
  --mesh-tls-dir DIR   where the sidecar reads tls.crt, tls.key and ca.crt (${DEFAULT_TLS_DIR}); on ECS,
                       a meshgate.io/init-first container writes them into a volume mounted there`

function onOff(name: string, v: string | undefined, fallback: boolean): boolean {
  if (v === undefined) return fallback
  if (v === 'on') return true
  if (v === 'off') return false
  throw new UsageError(`--${name}: want on or off`)
}

/** `defaultImage` undefined: the image must be named (the injector has no safe guess for a cluster). */
export function settingsFromArgs(
  p: ParsedArgs,
  env: NodeJS.ProcessEnv,
  defaultImage?: string,
): InjectSettings {
  const image = stringOpt(p, 'image') ?? env.MESHGATE_SIDECAR_IMAGE ?? defaultImage
  if (image === undefined) throw new UsageError('--image (or MESHGATE_SIDECAR_IMAGE) is required')
  const s = defaultSettings(image)
  const config = stringOpt(p, 'config')
  if (config !== undefined) {
    if (!isConfigUrl(config) && !config.startsWith('/'))
      throw new UsageError('--config: want an absolute path in the container, appconfig:// or s3://')
    s.config = config
  }
  s.configMap = stringOpt(p, 'config-map') ?? s.configMap
  const drain = stringOpt(p, 'drain')
  if (drain !== undefined) {
    const ms = parseDuration(drain)
    if (ms === undefined) throw new UsageError(`--drain: not a duration: ${JSON.stringify(drain)} (e.g. 20s)`)
    s.drainMs = ms
  }
  for (const pair of (p.values.env as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=')
    if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(pair.slice(0, eq)))
      throw new UsageError(`--env: want NAME=VALUE, not ${JSON.stringify(pair)}`)
    s.env.push({ name: pair.slice(0, eq), value: pair.slice(eq + 1) })
  }
  s.xray = onOff('xray', stringOpt(p, 'xray'), s.xray)
  s.httpProxy = onOff('http-proxy', stringOpt(p, 'http-proxy'), s.httpProxy)
  const tlsSecret = stringOpt(p, 'mesh-tls-secret') ?? env.MESHGATE_MESH_TLS_SECRET
  const tlsDir = stringOpt(p, 'mesh-tls-dir')
  if (tlsDir !== undefined && !tlsDir.startsWith('/'))
    throw new UsageError('--mesh-tls-dir: want an absolute path in the container')
  if (tlsSecret !== undefined || tlsDir !== undefined)
    s.tls = { dir: tlsDir ?? DEFAULT_TLS_DIR, ...(tlsSecret === undefined ? {} : { secret: tlsSecret }) }
  return s
}
