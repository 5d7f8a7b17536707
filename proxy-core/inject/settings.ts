// What the injected sidecar looks like, before a workload's own annotations have their say: the
// injector's (or `meshgate inject`'s) settings, the annotation names that override them, and the
// reading of one workload's annotations into the settings for that workload.

import { formatDuration, parseDuration } from '../config/duration.ts'

/** Every annotation meshgate reads, on a pod (template) or, for ECS, as a container's dockerLabels. */
export const ANNOTATIONS = {
  /** `"false"` opts a pod out; `"true"` opts it in (the label of that name is what reaches the webhook). */
  inject: 'meshgate.io/inject',
  /** The mesh service this workload is; else the `app` label, `app.kubernetes.io/name`, the owner. */
  service: 'meshgate.io/service',
  /** The config source: a file path (mounted from a ConfigMap), `appconfig://…` or `s3://…`. */
  config: 'meshgate.io/config',
  /** The ConfigMap mounted at the config path's directory when the source is a file. */
  configMap: 'meshgate.io/config-map',
  /** Longest drain on shutdown (`20s`); the termination grace period grows to cover it. */
  drain: 'meshgate.io/drain',
  /** The app's port, when its container's first port is not the one inbound traffic goes to. */
  appPort: 'meshgate.io/app-port',
  inboundPort: 'meshgate.io/inbound-port',
  outboundPort: 'meshgate.io/outbound-port',
  adminPort: 'meshgate.io/admin-port',
  cpuRequest: 'meshgate.io/cpu-request',
  memoryRequest: 'meshgate.io/memory-request',
  cpuLimit: 'meshgate.io/cpu-limit',
  memoryLimit: 'meshgate.io/memory-limit',
  /** `"false"`: leave the app containers' HTTP_PROXY alone (the app addresses 127.0.0.1:15001 itself). */
  httpProxy: 'meshgate.io/http-proxy',
  /** Init containers (comma-separated names) that must run before the sidecar starts. */
  initFirst: 'meshgate.io/init-first',
  /**
   * Kubernetes: the Secret (cert-manager's tls.crt, tls.key, ca.crt) of this workload's mesh
   * certificate: TLS between sidecars (docs/tls.md). `"off"`: none for this workload.
   */
  tlsSecret: 'meshgate.io/tls-secret',
} as const

/** Where the sidecar finds its TLS files (MESHGATE_TLS_DIR): the Secret's mount, or a task volume on ECS. */
export const DEFAULT_TLS_DIR = '/etc/meshgate/tls'

export interface SidecarResources {
  cpuRequest?: string
  memoryRequest?: string
  cpuLimit?: string
  memoryLimit?: string
}

export interface InjectSettings {
  /** The sidecar image (infra/docker/Dockerfile). */
  image: string
  /** MESHGATE_CONFIG: a path, `appconfig://APP/ENV/PROFILE` or `s3://BUCKET/KEY`. */
  config: string
  /** Kubernetes: the ConfigMap holding the config file when `config` is a path. */
  configMap: string
  drainMs: number
  ports: { outbound: number; inbound: number; admin: number }
  resources: SidecarResources
  /** Extra environment of the sidecar container, after meshgate's own (AWS_REGION, …). */
  env: { name: string; value: string }[]
  /** Point the app containers' HTTP_PROXY at the outbound listener. */
  httpProxy: boolean
  /** Send X-Ray segments to a daemon: the node's DaemonSet (Kubernetes) or a task container (ECS). */
  xray: boolean
  /**
   * TLS between sidecars (docs/tls.md). Kubernetes: `secret` names the workload's cert-manager Secret,
   * `{service}` standing for the service name; ECS: `dir` is filled by an init-first container.
   */
  tls?: { secret?: string; dir: string }
}

/** The sidecar's ports are DESIGN's (Istio's capture ports and Envoy's admin port). */
export const DEFAULT_PORTS = { outbound: 15001, inbound: 15006, admin: 15000 } as const

/**
 * 100m / 128Mi requested, 256Mi limit: what the sidecar's idle RSS (about 70 MB, docs/sidecar.md) and
 * a loaded one need. No CPU limit: CFS throttling adds tail latency to every call through the proxy.
 */
export const DEFAULT_RESOURCES: SidecarResources = {
  cpuRequest: '100m',
  memoryRequest: '128Mi',
  memoryLimit: '256Mi',
}

export function defaultSettings(image: string): InjectSettings {
  return {
    image,
    config: '/etc/meshgate/mesh.yaml',
    configMap: 'meshgate-config',
    // 20 s: the sidecar's own --drain default.
    drainMs: 20_000,
    ports: { ...DEFAULT_PORTS },
    resources: { ...DEFAULT_RESOURCES },
    env: [],
    httpProxy: true,
    xray: true,
  }
}

/** Raised for a workload whose annotations (or shape) meshgate will not inject into, with the reason. */
export class InjectError extends Error {}

/** The settings for one workload: `settings` with its annotations applied, and its app port if named. */
export interface WorkloadSettings extends InjectSettings {
  appPort?: number
  initFirst: string[]
}

const QUANTITY = /^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/

function portValue(key: string, text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535)
    throw new InjectError(`${key}: not a port: ${JSON.stringify(text)}`)
  return Number(text)
}

function boolValue(key: string, text: string): boolean {
  if (text === 'true') return true
  if (text === 'false') return false
  throw new InjectError(`${key}: want "true" or "false", not ${JSON.stringify(text)}`)
}

/** The config source: a path, or one of the live-config schemes (docs/config.md). */
export function isConfigUrl(config: string): boolean {
  return /^(appconfig|s3):\/\//.test(config)
}

/** Applies a workload's annotations over the settings; an unreadable annotation is an InjectError. */
export function workloadSettings(
  settings: InjectSettings,
  annotations: Readonly<Record<string, string>>,
): WorkloadSettings {
  const get = (key: string): string | undefined => {
    const v = Object.hasOwn(annotations, key) ? annotations[key] : undefined
    return typeof v === 'string' ? v.trim() : undefined
  }
  const out: WorkloadSettings = {
    ...settings,
    ports: { ...settings.ports },
    resources: { ...settings.resources },
    env: [...settings.env],
    initFirst: [],
  }
  const config = get(ANNOTATIONS.config)
  if (config !== undefined) {
    if (config === '' || /\s/.test(config))
      throw new InjectError(`${ANNOTATIONS.config}: not a config source`)
    if (!isConfigUrl(config) && !config.startsWith('/'))
      throw new InjectError(`${ANNOTATIONS.config}: want an absolute path, appconfig:// or s3://`)
    out.config = config
  }
  const configMap = get(ANNOTATIONS.configMap)
  if (configMap !== undefined) {
    // A ConfigMap name is a DNS subdomain (RFC 1123).
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(configMap))
      throw new InjectError(`${ANNOTATIONS.configMap}: not a ConfigMap name: ${JSON.stringify(configMap)}`)
    out.configMap = configMap
  }
  const drain = get(ANNOTATIONS.drain)
  if (drain !== undefined) {
    const ms = parseDuration(drain)
    // An hour: beyond that a grace period holds nodes hostage during drains and upgrades.
    if (ms === undefined || ms > 3_600_000)
      throw new InjectError(
        `${ANNOTATIONS.drain}: not a duration up to 1h: ${JSON.stringify(drain)} (e.g. 20s)`,
      )
    out.drainMs = ms
  }
  for (const [name, key] of [
    ['inbound', ANNOTATIONS.inboundPort],
    ['outbound', ANNOTATIONS.outboundPort],
    ['admin', ANNOTATIONS.adminPort],
  ] as const) {
    const v = get(key)
    if (v !== undefined) out.ports[name] = portValue(key, v)
  }
  const { inbound, outbound, admin } = out.ports
  if (new Set([inbound, outbound, admin]).size !== 3)
    throw new InjectError(
      `the sidecar's ports must differ: inbound ${inbound}, outbound ${outbound}, admin ${admin}`,
    )
  const appPort = get(ANNOTATIONS.appPort)
  if (appPort !== undefined) out.appPort = portValue(ANNOTATIONS.appPort, appPort)
  for (const [name, key] of [
    ['cpuRequest', ANNOTATIONS.cpuRequest],
    ['memoryRequest', ANNOTATIONS.memoryRequest],
    ['cpuLimit', ANNOTATIONS.cpuLimit],
    ['memoryLimit', ANNOTATIONS.memoryLimit],
  ] as const) {
    const v = get(key)
    if (v === undefined) continue
    if (!QUANTITY.test(v))
      throw new InjectError(`${key}: not a quantity: ${JSON.stringify(v)} (e.g. 100m, 128Mi)`)
    out.resources[name] = v
  }
  const httpProxy = get(ANNOTATIONS.httpProxy)
  if (httpProxy !== undefined) out.httpProxy = boolValue(ANNOTATIONS.httpProxy, httpProxy)
  const tlsSecret = get(ANNOTATIONS.tlsSecret)
  if (tlsSecret === 'off') delete out.tls
  else if (tlsSecret !== undefined) {
    if (!/^[a-z0-9{]([-a-z0-9.{}]{0,251}[a-z0-9}])?$/.test(tlsSecret))
      throw new InjectError(`${ANNOTATIONS.tlsSecret}: not a Secret name: ${JSON.stringify(tlsSecret)}`)
    out.tls = { dir: settings.tls?.dir ?? DEFAULT_TLS_DIR, secret: tlsSecret }
  }
  const initFirst = get(ANNOTATIONS.initFirst)
  if (initFirst !== undefined)
    out.initFirst = initFirst
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
  return out
}

/** `"false"` in the annotation or the label of `meshgate.io/inject`: leave this workload alone. */
export function optedOut(meta: {
  annotations?: Record<string, string>
  labels?: Record<string, string>
}): boolean {
  return meta.annotations?.[ANNOTATIONS.inject] === 'false' || meta.labels?.[ANNOTATIONS.inject] === 'false'
}

/** MESHGATE_DRAIN's text for a drain: the sidecar reads the same duration format. */
export function drainText(ms: number): string {
  return formatDuration(ms)
}

/**
 * The service name of a workload: the annotation, else the `app` label, else
 * `app.kubernetes.io/name`, else the owner's name (a ReplicaSet's with its pod-template hash taken
 * off, which gives the Deployment's name; a CronJob's Job without its schedule suffix), else the
 * object's own name.
 */
export function serviceName(
  meta: {
    name?: string
    generateName?: string
    annotations?: Record<string, string>
    labels?: Record<string, string>
    ownerReferences?: { kind?: string; name?: string; controller?: boolean }[]
  },
  ownerName?: string,
): string {
  const pick = (v: unknown): string | undefined =>
    typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined
  const named =
    pick(meta.annotations?.[ANNOTATIONS.service]) ??
    pick(meta.labels?.app) ??
    pick(meta.labels?.['app.kubernetes.io/name']) ??
    ownerName ??
    ownerOf(meta) ??
    pick(meta.name) ??
    pick(meta.generateName?.replace(/-+$/, ''))
  if (named === undefined) throw new InjectError(`no service name: set the ${ANNOTATIONS.service} annotation`)
  // The mesh config's service names are DNS labels; so is MESHGATE_SERVICE's value.
  if (!/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$/.test(named))
    throw new InjectError(`not a service name: ${JSON.stringify(named)}`)
  return named
}

function ownerOf(meta: {
  labels?: Record<string, string>
  ownerReferences?: { kind?: string; name?: string; controller?: boolean }[]
}): string | undefined {
  const refs = Array.isArray(meta.ownerReferences) ? meta.ownerReferences : []
  const owner = refs.find((r) => r?.controller === true) ?? refs[0]
  const name = typeof owner?.name === 'string' ? owner.name : undefined
  if (name === undefined || name === '') return undefined
  if (owner?.kind === 'ReplicaSet') {
    // A Deployment's ReplicaSet is `<deployment>-<pod-template-hash>`.
    const hash = meta.labels?.['pod-template-hash']
    if (hash !== undefined && name.endsWith(`-${hash}`)) return name.slice(0, -hash.length - 1)
    return name.replace(/-[a-z0-9]{6,10}$/, '')
  }
  // A CronJob's Job is `<cronjob>-<scheduled time in minutes since the epoch>`.
  if (owner?.kind === 'Job') return name.replace(/-\d{8,}$/, '')
  return name
}
