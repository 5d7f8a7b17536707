// The Kubernetes half of the one decision about what the sidecar looks like: a pod (its metadata and
// spec, as the webhook receives it or as a workload's template carries it) in, the same pod with
// meshgate added out. Pure: no I/O, the input is never modified. The webhook turns the difference into
// a JSONPatch; `meshgate inject` applies the same difference to the manifest it read.
//
// Decisions, and why (docs/kubernetes.md explains them to users):
// - A native sidecar (an init container with `restartPolicy: Always`, Kubernetes 1.29+): it starts
//   before the app and stops after it, so the app never runs without its mesh.
// - First among the init containers, unless `meshgate.io/init-first` names some to run before it:
//   init containers that call other services (migrations, warm-ups) then go through the mesh, as
//   Istio's native-sidecar ordering does; an init container that prepares something the sidecar
//   needs is named in the annotation.
// - The app's probes stay as they are, straight to the app's port. meshgate adds no iptables capture
//   and no mTLS on inbound, so the kubelet still reaches the app directly; a probe through the inbound
//   listener would put probes into the mesh's metrics and traces, and would fail the app's liveness
//   (and restart the app) whenever the sidecar restarts. Pod readiness still waits for both: the
//   sidecar's readinessProbe counts towards it.
// - No preStop hook on the sidecar: native sidecars get SIGTERM only after the app containers have
//   exited, and the sidecar drains on SIGTERM by itself. The grace period covers app and drain.

import { basename, dirname } from 'node:path/posix'
import type { InjectSettings, WorkloadSettings } from './settings.ts'
import { drainText, InjectError, isConfigUrl, optedOut, serviceName, workloadSettings } from './settings.ts'

export const SIDECAR_NAME = 'meshgate'
const CONFIG_VOLUME = 'mesh-config'
const TLS_VOLUME = 'meshgate-tls'
const INBOUND_PORT_NAME = 'mesh-inbound'
const ADMIN_PORT_NAME = 'mesh-admin'
/** Beyond the drain: the app's own shutdown and the sidecar's 2 s exit grace (sidecar/command.ts). */
const GRACE_BEYOND_DRAIN_S = 15
/** Kubernetes' default terminationGracePeriodSeconds. */
const DEFAULT_GRACE_S = 30
/** The image's user (infra/docker/Dockerfile: `USER 1000:1000`), by number for runAsNonRoot. */
const IMAGE_UID = 1000
/**
 * Addresses that must never go through the outbound listener: the instance metadata service and EKS
 * Pod Identity's agent (credentials), and the pod itself.
 */
const NO_PROXY_K8S = '127.0.0.1,localhost,169.254.169.254,169.254.170.23'

type Json = Record<string, unknown>

export interface K8sContainer extends Json {
  name: string
  env?: Json[]
  ports?: { name?: string; containerPort?: number; protocol?: string }[]
  restartPolicy?: string
}

export interface K8sPodSpec extends Json {
  containers: K8sContainer[]
  initContainers?: K8sContainer[]
  volumes?: Json[]
  terminationGracePeriodSeconds?: number
  hostNetwork?: boolean
}

export interface K8sPod {
  metadata?: Json
  spec: K8sPodSpec
}

/** The container that is already meshgate's, in either list (injection is then a no-op). */
export function hasSidecar(spec: K8sPodSpec): boolean {
  const named = (list: unknown) => Array.isArray(list) && list.some((c) => (c as Json)?.name === SIDECAR_NAME)
  return named(spec.initContainers) || named(spec.containers)
}

function checkShape(spec: unknown): asserts spec is K8sPodSpec {
  const s = spec as K8sPodSpec
  if (s === null || typeof s !== 'object' || Array.isArray(s)) throw new InjectError('the pod has no spec')
  if (!Array.isArray(s.containers) || s.containers.length === 0)
    throw new InjectError('the pod has no containers')
  for (const list of [s.containers, s.initContainers ?? []]) {
    if (!Array.isArray(list)) throw new InjectError('initContainers is not a list')
    for (const c of list) {
      if (c === null || typeof c !== 'object' || typeof c.name !== 'string')
        throw new InjectError('a container without a name')
      if (c.env !== undefined && !Array.isArray(c.env))
        throw new InjectError(`container ${c.name}: env is not a list`)
      if (c.ports !== undefined && !Array.isArray(c.ports))
        throw new InjectError(`container ${c.name}: ports is not a list`)
    }
  }
  if (s.volumes !== undefined && !Array.isArray(s.volumes)) throw new InjectError('volumes is not a list')
}

/** The app container: `kubectl.kubernetes.io/default-container`, else the first. */
function appContainer(spec: K8sPodSpec, annotations: Record<string, string>): K8sContainer {
  const wanted = annotations['kubectl.kubernetes.io/default-container']
  return spec.containers.find((c) => c.name === wanted) ?? spec.containers[0]!
}

function appPortOf(app: K8sContainer, settings: WorkloadSettings): number | undefined {
  if (settings.appPort !== undefined) return settings.appPort
  const tcp = (app.ports ?? []).find(
    (p) => (p.protocol ?? 'TCP') === 'TCP' && typeof p.containerPort === 'number',
  )
  return tcp?.containerPort
}

/** Ports and names the sidecar takes must be free in the pod (they share one network namespace). */
function checkPortsFree(spec: K8sPodSpec, settings: WorkloadSettings): void {
  const taken = new Map<number, string>()
  const names = new Set<string>()
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    for (const p of c.ports ?? []) {
      if (typeof p?.containerPort === 'number') taken.set(p.containerPort, c.name)
      if (typeof p?.name === 'string') names.add(p.name)
    }
  }
  for (const [what, port] of Object.entries(settings.ports)) {
    const owner = taken.get(port)
    if (owner !== undefined)
      throw new InjectError(
        `port ${port} (meshgate ${what}) is container ${owner}'s: set meshgate.io/${what}-port`,
      )
  }
  for (const name of [INBOUND_PORT_NAME, ADMIN_PORT_NAME])
    if (names.has(name)) throw new InjectError(`a container already names a port ${name}`)
}

function sidecarEnv(service: string, appPort: number | undefined, settings: WorkloadSettings): Json[] {
  const { ports } = settings
  const env: Json[] = [
    { name: 'MESHGATE_CONFIG', value: settings.config },
    { name: 'MESHGATE_SERVICE', value: service },
  ]
  if (appPort !== undefined) env.push({ name: 'MESHGATE_APP', value: `http://127.0.0.1:${appPort}` })
  env.push({ name: 'MESHGATE_OUTBOUND', value: `127.0.0.1:${ports.outbound}` })
  if (appPort !== undefined) env.push({ name: 'MESHGATE_INBOUND', value: `0.0.0.0:${ports.inbound}` })
  // On every address: the kubelet's probes and Prometheus come from outside the pod. The admin
  // endpoints only read; a NetworkPolicy can close them to the rest of the cluster.
  env.push({ name: 'MESHGATE_ADMIN', value: `0.0.0.0:${ports.admin}` })
  env.push({ name: 'MESHGATE_DRAIN', value: drainText(settings.drainMs) })
  if (settings.xray) {
    // The X-Ray daemon DaemonSet (infra/k8s/xray-daemon.yaml) listens on each node's hostPort 2000/udp.
    env.push({ name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } })
    env.push({ name: 'AWS_XRAY_DAEMON_ADDRESS', value: '$(HOST_IP):2000' })
  } else {
    env.push({ name: 'MESHGATE_XRAY', value: 'off' })
  }
  if (settings.tls?.secret !== undefined) env.push({ name: 'MESHGATE_TLS_DIR', value: settings.tls.dir })
  for (const e of settings.env) env.push({ name: e.name, value: e.value })
  return env
}

/** The Secret of a workload's mesh certificate: the settings' name with `{service}` filled in. */
export function tlsSecretName(template: string, service: string): string {
  return template.replaceAll('{service}', service)
}

function resources(settings: WorkloadSettings): Json {
  const r = settings.resources
  const requests: Json = {}
  const limits: Json = {}
  if (r.cpuRequest !== undefined) requests.cpu = r.cpuRequest
  if (r.memoryRequest !== undefined) requests.memory = r.memoryRequest
  if (r.cpuLimit !== undefined) limits.cpu = r.cpuLimit
  if (r.memoryLimit !== undefined) limits.memory = r.memoryLimit
  const out: Json = {}
  if (Object.keys(requests).length > 0) out.requests = requests
  if (Object.keys(limits).length > 0) out.limits = limits
  return out
}

function sidecarContainer(
  service: string,
  appPort: number | undefined,
  settings: WorkloadSettings,
): K8sContainer {
  const ports: K8sContainer['ports'] = []
  if (appPort !== undefined)
    ports.push({ name: INBOUND_PORT_NAME, containerPort: settings.ports.inbound, protocol: 'TCP' })
  ports.push({ name: ADMIN_PORT_NAME, containerPort: settings.ports.admin, protocol: 'TCP' })
  const container: K8sContainer = {
    name: SIDECAR_NAME,
    image: settings.image,
    restartPolicy: 'Always',
    env: sidecarEnv(service, appPort, settings),
    ports,
    // The kubelet starts the next container only once this passes: the app never starts meshless.
    startupProbe: {
      httpGet: { path: '/ready', port: ADMIN_PORT_NAME },
      periodSeconds: 1,
      failureThreshold: 30,
    },
    readinessProbe: {
      httpGet: { path: '/ready', port: ADMIN_PORT_NAME },
      periodSeconds: 5,
      failureThreshold: 2,
    },
    livenessProbe: {
      httpGet: { path: '/healthz', port: ADMIN_PORT_NAME },
      periodSeconds: 10,
      failureThreshold: 3,
    },
    resources: resources(settings),
    // Pod Security Standards' "restricted" profile, met by the sidecar itself.
    securityContext: {
      runAsNonRoot: true,
      runAsUser: IMAGE_UID,
      runAsGroup: IMAGE_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  }
  const mounts: Json[] = []
  if (!isConfigUrl(settings.config))
    mounts.push({ name: CONFIG_VOLUME, mountPath: dirname(settings.config), readOnly: true })
  // cert-manager renews into the Secret; the kubelet swaps the volume's `..data` link and the sidecar's
  // watch takes the new pair, no restart.
  if (settings.tls?.secret !== undefined)
    mounts.push({ name: TLS_VOLUME, mountPath: settings.tls.dir, readOnly: true })
  if (mounts.length > 0) container.volumeMounts = mounts
  return container
}

function tlsVolume(
  volumes: Json[] | undefined,
  service: string,
  settings: WorkloadSettings,
): Json[] | undefined {
  const secret = settings.tls?.secret
  if (secret === undefined) return volumes
  const list = volumes ?? []
  if (list.some((v) => v?.name === TLS_VOLUME))
    throw new InjectError(`the pod already has a volume named ${TLS_VOLUME}`)
  const secretName = tlsSecretName(secret, service)
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(secretName))
    throw new InjectError(`the TLS Secret name ${JSON.stringify(secretName)} is not a Secret name`)
  // The kubelet's default mode (0644, owned by root): the sidecar's non-root user must read the key,
  // and only the sidecar mounts the volume.
  return [...list, { name: TLS_VOLUME, secret: { secretName } }]
}

/** The app's calls go through the outbound listener, unless the container routes its own. */
function withProxyEnv(c: K8sContainer, settings: WorkloadSettings): K8sContainer {
  const env = c.env ?? []
  const has = (name: string) => env.some((e) => e?.name === name)
  if (has('HTTP_PROXY') || has('http_proxy')) return c
  const added: Json[] = [
    { name: 'HTTP_PROXY', value: `http://127.0.0.1:${settings.ports.outbound}` },
    { name: 'NO_PROXY', value: NO_PROXY_K8S },
    // Node's fetch honours HTTP_PROXY only with this (Node 24).
    { name: 'NODE_USE_ENV_PROXY', value: '1' },
  ].filter((e) => !has(e.name as string))
  return { ...c, env: [...env, ...added] }
}

function configVolume(spec: K8sPodSpec, settings: WorkloadSettings): Json[] | undefined {
  if (isConfigUrl(settings.config)) return spec.volumes
  const volumes = spec.volumes ?? []
  if (volumes.some((v) => v?.name === CONFIG_VOLUME))
    throw new InjectError(`the pod already has a volume named ${CONFIG_VOLUME}`)
  const file = basename(settings.config)
  return [
    ...volumes,
    { name: CONFIG_VOLUME, configMap: { name: settings.configMap, items: [{ key: file, path: file }] } },
  ]
}

/**
 * The pod with the sidecar added, or `undefined` when it already carries one. Throws InjectError for a
 * pod meshgate will not inject into (its reason is what the webhook's warning and the CLI say).
 */
export function injectPodSpec(
  spec: unknown,
  service: string,
  settings: WorkloadSettings,
  annotations: Record<string, string>,
): K8sPodSpec | undefined {
  checkShape(spec)
  if (hasSidecar(spec)) return undefined
  // The sidecar's ports would be the node's, shared by every such pod on it.
  if (spec.hostNetwork === true) throw new InjectError('hostNetwork pods share the node ports; not injected')
  checkPortsFree(spec, settings)
  const inits = spec.initContainers ?? []
  for (const name of settings.initFirst)
    if (!inits.some((c) => c.name === name))
      throw new InjectError(`meshgate.io/init-first names ${name}, which is not an init container`)
  const at = inits.reduce((pos, c, i) => (settings.initFirst.includes(c.name) ? i + 1 : pos), 0)

  const app = appContainer(spec, annotations)
  const appPort = appPortOf(app, settings)
  const sidecar = sidecarContainer(service, appPort, settings)
  const proxy = (c: K8sContainer) => (settings.httpProxy ? withProxyEnv(c, settings) : c)
  // Init containers after the sidecar run with the mesh up; those before it do not see it.
  const initContainers = [
    ...inits.slice(0, at),
    sidecar,
    ...inits.slice(at).map((c) => (c.restartPolicy === 'Always' ? c : proxy(c))),
  ]
  const out: K8sPodSpec = { ...spec, initContainers, containers: spec.containers.map(proxy) }
  const volumes = tlsVolume(configVolume(spec, settings), service, settings)
  if (volumes !== undefined) out.volumes = volumes
  const grace = Math.ceil(settings.drainMs / 1000) + GRACE_BEYOND_DRAIN_S
  const current =
    typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : null
  if ((current ?? DEFAULT_GRACE_S) < grace) out.terminationGracePeriodSeconds = grace
  return out
}

export interface PodMeta {
  name?: string
  generateName?: string
  namespace?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  ownerReferences?: { kind?: string; name?: string; controller?: boolean }[]
}

export type InjectOutcome =
  | { kind: 'injected'; service: string; spec: K8sPodSpec }
  | { kind: 'unchanged'; reason: 'opted-out' | 'already-injected' }

function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v)) throw new InjectError(`metadata.${what} is not a map`)
  return v as Record<string, string>
}

/**
 * The whole decision for one pod (or pod template): opted out, already carrying meshgate, or the
 * spec with the sidecar. `ownerName` is the workload a template belongs to (`meshgate inject`); the
 * webhook's pods carry their owner in `ownerReferences` instead.
 */
export function injectPod(
  metadata: unknown,
  spec: unknown,
  settings: InjectSettings,
  ownerName?: string,
): InjectOutcome {
  const meta = (metadata ?? {}) as PodMeta
  if (typeof meta !== 'object' || Array.isArray(meta)) throw new InjectError('metadata is not an object')
  const annotations = stringMap(meta.annotations, 'annotations')
  const labels = stringMap(meta.labels, 'labels')
  if (optedOut({ annotations, labels })) return { kind: 'unchanged', reason: 'opted-out' }
  checkShape(spec)
  if (hasSidecar(spec)) return { kind: 'unchanged', reason: 'already-injected' }
  const service = serviceName({ ...meta, annotations, labels }, ownerName)
  const patched = injectPodSpec(spec, service, workloadSettings(settings, annotations), annotations)!
  return { kind: 'injected', service, spec: patched }
}
