// `meshgate inject --ecs TASKDEF.json`: the ECS half of the one decision about the sidecar. A task
// definition (RegisterTaskDefinition's input, or DescribeTaskDefinition's output) in, the same task
// with meshgate, the X-Ray daemon and the start order out. Pure, like pod.ts; the annotations that
// steer a pod are the app container's `dockerLabels` here (same names, settings.ts).
//
// - awsvpc networking: the containers of a task share one network namespace, so the app reaches the
//   sidecar on 127.0.0.1 (bridge mode gives each container its own; refused).
// - The app containers depend on meshgate being HEALTHY (its health check asks /ready), so an app
//   never starts meshless; ECS stops them in the reverse order, so the sidecar outlives the app.
// - The containers named in `meshgate.io/init-first` (one that copies the mesh config into a volume)
//   run before meshgate: it waits for their SUCCESS (or HEALTHY/START for essential ones, which ECS
//   does not let end), and mounts their volume at the config path read-only.

import type { InjectSettings, WorkloadSettings } from './settings.ts'
import {
  ANNOTATIONS,
  drainText,
  InjectError,
  isConfigUrl,
  optedOut,
  serviceName,
  workloadSettings,
} from './settings.ts'

export interface EcsKeyValue {
  name: string
  value: string
}
export interface EcsContainer {
  name: string
  image: string
  essential?: boolean
  environment?: EcsKeyValue[]
  portMappings?: { name?: string; containerPort?: number; protocol?: string; appProtocol?: string }[]
  mountPoints?: { sourceVolume?: string; containerPath?: string; readOnly?: boolean }[]
  dependsOn?: { containerName: string; condition: string }[]
  healthCheck?: {
    command: string[]
    interval?: number
    timeout?: number
    retries?: number
    startPeriod?: number
  }
  dockerLabels?: Record<string, string>
  logConfiguration?: { logDriver: string; options?: Record<string, string> }
  cpu?: number
  memory?: number
  memoryReservation?: number
  [key: string]: unknown
}
export interface EcsTaskDefinition {
  family: string
  networkMode?: string
  cpu?: string
  memory?: string
  containerDefinitions: EcsContainer[]
  [key: string]: unknown
}

export const ECS_SIDECAR_NAME = 'meshgate'
const XRAY_NAME = 'xray-daemon'
const XRAY_IMAGE = 'public.ecr.aws/xray/aws-xray-daemon:3.x'
/** Instance metadata, and the ECS agent's credentials endpoint (169.254.170.2): never through the mesh. */
const NO_PROXY_ECS = '127.0.0.1,localhost,169.254.169.254,169.254.170.2'
/** ECS waits at most 120 s after SIGTERM (stopTimeout's maximum, Fargate and EC2). */
const MAX_STOP_TIMEOUT_S = 120
/** Beyond the drain: the sidecar's 2 s exit grace and the flush of its last metrics. */
const STOP_BEYOND_DRAIN_S = 10
/** Task-level fields DescribeTaskDefinition returns that RegisterTaskDefinition refuses. */
const READ_ONLY_FIELDS = [
  'taskDefinitionArn',
  'revision',
  'status',
  'requiresAttributes',
  'compatibilities',
  'registeredAt',
  'registeredBy',
  'deregisteredAt',
]
/**
 * ECS's own units for the sidecar: 128 CPU units (1/8 vCPU), 128 MiB reserved, 256 MiB hard limit;
 * the sidecar idles at about 70 MB (docs/sidecar.md).
 */
const ECS_DEFAULTS = { cpu: 128, memoryReservation: 128, memory: 256 }

/** A Kubernetes quantity (the resource annotations) in ECS's units: CPU units, MiB. */
function cpuUnits(q: string): number {
  const vcpu = q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q)
  return Math.max(2, Math.round(vcpu * 1024))
}
function mebibytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q)
  const factor: Record<string, number> = {
    Ki: 1 / 1024,
    Mi: 1,
    Gi: 1024,
    Ti: 1024 * 1024,
    k: 1e3 / 2 ** 20,
    M: 1e6 / 2 ** 20,
    G: 1e9 / 2 ** 20,
    T: 1e12 / 2 ** 20,
  }
  if (!m) throw new InjectError(`not a memory quantity for ECS: ${q}`)
  return Math.ceil(Number(m[1]) * (m[2] === undefined ? 1 / 2 ** 20 : factor[m[2]]!))
}

/** The node one-liner of the image's HEALTHCHECK (node:24-slim has no curl): exit 0 when /ready is 200. */
export function readyCheckCommand(adminPort: number): string[] {
  return [
    'CMD',
    'node',
    '-e',
    `fetch('http://127.0.0.1:${adminPort}/ready',{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))`,
  ]
}

function checkShape(td: unknown): asserts td is EcsTaskDefinition {
  const t = td as EcsTaskDefinition
  if (t === null || typeof t !== 'object' || Array.isArray(t))
    throw new InjectError('not a task definition (want a JSON object)')
  if (!Array.isArray(t.containerDefinitions) || t.containerDefinitions.length === 0)
    throw new InjectError('containerDefinitions: want at least one container')
  for (const c of t.containerDefinitions)
    if (c === null || typeof c !== 'object' || typeof c.name !== 'string' || typeof c.image !== 'string')
      throw new InjectError('containerDefinitions: every container needs a name and an image')
}

/** The app: the first container with a meshgate.io/ label, else the first essential one. */
function appContainer(containers: EcsContainer[]): EcsContainer {
  const labelled = containers.find((c) =>
    Object.keys(c.dockerLabels ?? {}).some((k) => k.startsWith('meshgate.io/')),
  )
  return labelled ?? containers.find((c) => c.essential !== false) ?? containers[0]!
}

function readyCondition(c: EcsContainer): string {
  if (c.essential === false) return 'SUCCESS'
  return c.healthCheck !== undefined ? 'HEALTHY' : 'START'
}

function sidecarContainer(
  app: EcsContainer,
  service: string,
  settings: WorkloadSettings,
  before: EcsContainer[],
): EcsContainer {
  const { ports } = settings
  const appPort =
    settings.appPort ??
    (app.portMappings ?? []).find(
      (p) => (p.protocol ?? 'tcp') === 'tcp' && typeof p.containerPort === 'number',
    )?.containerPort
  const env: EcsKeyValue[] = [
    { name: 'MESHGATE_CONFIG', value: settings.config },
    { name: 'MESHGATE_SERVICE', value: service },
  ]
  if (appPort !== undefined) env.push({ name: 'MESHGATE_APP', value: `http://127.0.0.1:${appPort}` })
  env.push({ name: 'MESHGATE_OUTBOUND', value: `127.0.0.1:${ports.outbound}` })
  if (appPort !== undefined) env.push({ name: 'MESHGATE_INBOUND', value: `0.0.0.0:${ports.inbound}` })
  // The health check runs inside the container: loopback is enough, and nothing outside sees /config.
  env.push({ name: 'MESHGATE_ADMIN', value: `127.0.0.1:${ports.admin}` })
  env.push({ name: 'MESHGATE_DRAIN', value: drainText(settings.drainMs) })
  if (settings.xray) env.push({ name: 'AWS_XRAY_DAEMON_ADDRESS', value: '127.0.0.1:2000' })
  else env.push({ name: 'MESHGATE_XRAY', value: 'off' })
  if (settings.tls !== undefined) env.push({ name: 'MESHGATE_TLS_DIR', value: settings.tls.dir })
  for (const e of settings.env) env.push({ name: e.name, value: e.value })

  const stopTimeout = Math.ceil(settings.drainMs / 1000) + STOP_BEYOND_DRAIN_S
  if (stopTimeout > MAX_STOP_TIMEOUT_S)
    throw new InjectError(
      `${ANNOTATIONS.drain}: ECS stops a container at most ${MAX_STOP_TIMEOUT_S}s after SIGTERM`,
    )
  const r = settings.resources
  const sidecar: EcsContainer = {
    name: ECS_SIDECAR_NAME,
    image: settings.image,
    essential: true,
  }
  if (before.length > 0)
    sidecar.dependsOn = before.map((c) => ({ containerName: c.name, condition: readyCondition(c) }))
  sidecar.environment = env
  if (appPort !== undefined)
    sidecar.portMappings = [
      { name: 'mesh-inbound', containerPort: ports.inbound, protocol: 'tcp', appProtocol: 'http' },
    ]
  if (!isConfigUrl(settings.config)) {
    // The config file comes from a volume an init-first container fills.
    const mount = before
      .flatMap((c) => c.mountPoints ?? [])
      .find(
        (m) =>
          m.containerPath !== undefined &&
          settings.config.startsWith(`${m.containerPath.replace(/\/$/, '')}/`),
      )
    if (mount === undefined)
      throw new InjectError(
        `MESHGATE_CONFIG ${settings.config} is a file, and no ${ANNOTATIONS.initFirst} container mounts its directory: ` +
          `use an s3:// or appconfig:// source (${ANNOTATIONS.config}), or name the container that writes the file`,
      )
    sidecar.mountPoints = [
      { sourceVolume: mount.sourceVolume, containerPath: mount.containerPath, readOnly: true },
    ]
  }
  if (settings.tls !== undefined) {
    // ECS has no Secret volumes: an init-first container (one that fetches the certificate from ACM
    // Private CA or Secrets Manager) writes tls.crt, tls.key and ca.crt into a task volume.
    const dir = settings.tls.dir.replace(/\/$/, '')
    const mount = before
      .flatMap((c) => c.mountPoints ?? [])
      .find((m) => m.containerPath !== undefined && m.containerPath.replace(/\/$/, '') === dir)
    if (mount === undefined)
      throw new InjectError(
        `MESHGATE_TLS_DIR ${dir}: no ${ANNOTATIONS.initFirst} container mounts it; name the container that writes the certificate files`,
      )
    const mounts = sidecar.mountPoints ?? []
    if (!mounts.some((m) => m.containerPath === mount.containerPath))
      sidecar.mountPoints = [
        ...mounts,
        { sourceVolume: mount.sourceVolume, containerPath: mount.containerPath, readOnly: true },
      ]
  }
  sidecar.healthCheck = {
    command: readyCheckCommand(ports.admin),
    interval: 5,
    timeout: 3,
    retries: 3,
    startPeriod: 10,
  }
  sidecar.stopTimeout = stopTimeout
  sidecar.readonlyRootFilesystem = true
  // The image's user (infra/docker/Dockerfile: `USER 1000:1000`).
  sidecar.user = '1000:1000'
  sidecar.ulimits = [{ name: 'nofile', softLimit: 65535, hardLimit: 65535 }]
  sidecar.cpu =
    r.cpuRequest !== undefined && r.cpuRequest !== '100m' ? cpuUnits(r.cpuRequest) : ECS_DEFAULTS.cpu
  sidecar.memoryReservation =
    r.memoryRequest !== undefined && r.memoryRequest !== '128Mi'
      ? mebibytes(r.memoryRequest)
      : ECS_DEFAULTS.memoryReservation
  sidecar.memory = r.memoryLimit !== undefined ? mebibytes(r.memoryLimit) : ECS_DEFAULTS.memory
  const logs = logConfiguration(app, 'meshgate')
  if (logs !== undefined) sidecar.logConfiguration = logs
  return sidecar
}

/** The app's awslogs settings with the container's own stream prefix, so every log lands in one group. */
function logConfiguration(app: EcsContainer, prefix: string): EcsContainer['logConfiguration'] {
  const lc = app.logConfiguration
  if (lc?.logDriver !== 'awslogs') return undefined
  return { logDriver: 'awslogs', options: { ...lc.options, 'awslogs-stream-prefix': prefix } }
}

function isXrayDaemon(c: EcsContainer): boolean {
  return (
    c.name === XRAY_NAME ||
    c.image.startsWith('public.ecr.aws/xray/aws-xray-daemon') ||
    c.image.startsWith('amazon/aws-xray-daemon')
  )
}

function withProxy(c: EcsContainer, settings: WorkloadSettings): EcsContainer {
  const out: EcsContainer = { ...c }
  const env = c.environment ?? []
  const has = (name: string) => env.some((e) => e.name === name)
  if (settings.httpProxy && !has('HTTP_PROXY') && !has('http_proxy')) {
    const added = [
      { name: 'HTTP_PROXY', value: `http://127.0.0.1:${settings.ports.outbound}` },
      { name: 'NO_PROXY', value: NO_PROXY_ECS },
      // Node's fetch honours HTTP_PROXY only with this (Node 24).
      { name: 'NODE_USE_ENV_PROXY', value: '1' },
    ].filter((e) => !has(e.name))
    out.environment = [...env, ...added]
  }
  const deps = c.dependsOn ?? []
  if (!deps.some((d) => d.containerName === ECS_SIDECAR_NAME))
    out.dependsOn = [...deps, { containerName: ECS_SIDECAR_NAME, condition: 'HEALTHY' }]
  return out
}

/** The sum of what the containers ask for must fit the task's size (Fargate refuses it otherwise). */
function checkFits(td: EcsTaskDefinition): void {
  const total = (f: (c: EcsContainer) => number) => td.containerDefinitions.reduce((s, c) => s + f(c), 0)
  const memory = total((c) => c.memoryReservation ?? c.memory ?? 0)
  const cpu = total((c) => c.cpu ?? 0)
  if (td.memory !== undefined && memory > Number(td.memory))
    throw new InjectError(
      `the containers reserve ${memory} MiB, more than the task's memory ${td.memory}: raise it`,
    )
  if (td.cpu !== undefined && cpu > Number(td.cpu))
    throw new InjectError(
      `the containers ask for ${cpu} CPU units, more than the task's cpu ${td.cpu}: raise it`,
    )
}

export type EcsInjectOutcome =
  | { kind: 'injected'; service: string; taskDefinition: EcsTaskDefinition }
  | { kind: 'unchanged'; reason: 'opted-out' | 'already-injected'; taskDefinition: EcsTaskDefinition }

export function injectTaskDefinition(input: unknown, settings: InjectSettings): EcsInjectOutcome {
  let td = input as EcsTaskDefinition & { taskDefinition?: EcsTaskDefinition }
  // `aws ecs describe-task-definition` output: the definition, without what only ECS may set.
  if (td !== null && typeof td === 'object' && !Array.isArray(td) && td.taskDefinition !== undefined) {
    td = { ...td.taskDefinition } as typeof td
    for (const f of READ_ONLY_FIELDS) delete td[f]
  }
  checkShape(td)
  const containers = td.containerDefinitions
  const app = appContainer(containers)
  const labels = app.dockerLabels ?? {}
  if (optedOut({ annotations: labels })) return { kind: 'unchanged', reason: 'opted-out', taskDefinition: td }
  if (containers.some((c) => c.name === ECS_SIDECAR_NAME))
    return { kind: 'unchanged', reason: 'already-injected', taskDefinition: td }
  if (td.networkMode !== undefined && td.networkMode !== 'awsvpc')
    throw new InjectError(
      `networkMode ${td.networkMode}: meshgate needs awsvpc (one localhost for the whole task)`,
    )

  const ws = workloadSettings(settings, labels)
  const service = serviceName({ annotations: labels, name: app.name })
  for (const name of ws.initFirst)
    if (!containers.some((c) => c.name === name))
      throw new InjectError(`${ANNOTATIONS.initFirst} names ${name}, which is not a container of the task`)
  const before = containers.filter((c) => ws.initFirst.includes(c.name))
  const sidecar = sidecarContainer(app, service, ws, before)
  const xrayPresent = containers.some(isXrayDaemon)
  const xray: EcsContainer[] =
    ws.xray && !xrayPresent
      ? [
          {
            name: XRAY_NAME,
            image: XRAY_IMAGE,
            essential: false,
            portMappings: [{ containerPort: 2000, protocol: 'udp' }],
            cpu: 32,
            memoryReservation: 32,
            ...(logConfiguration(app, 'xray') ? { logConfiguration: logConfiguration(app, 'xray') } : {}),
          },
        ]
      : []
  // Order in the file follows the start order: the init-first ones, meshgate, the daemon, the apps.
  const at = containers.reduce((pos, c, i) => (ws.initFirst.includes(c.name) ? i + 1 : pos), 0)
  const rest = (c: EcsContainer) => (ws.initFirst.includes(c.name) || isXrayDaemon(c) ? c : withProxy(c, ws))
  const out: EcsTaskDefinition = {
    ...td,
    networkMode: 'awsvpc',
    containerDefinitions: [...containers.slice(0, at), sidecar, ...xray, ...containers.slice(at).map(rest)],
  }
  checkFits(out)
  return { kind: 'injected', service, taskDefinition: out }
}
