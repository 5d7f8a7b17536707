// The deployment files in infra/, read the way their platforms read them: the Dockerfile's runtime
// stage, the ECS task definition's containers, the Kubernetes objects (with the kubelet's `$(VAR)`
// expansion of container env), and what the meshgate container would be started with.

import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseAllDocuments } from 'yaml'
import type { Stage } from './dockerfile.ts'
import { last, parseDockerfile, stageEnv } from './dockerfile.ts'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const INFRA = join(ROOT, 'infra')

export function readInfra(path: string): string {
  return readFileSync(join(INFRA, path), 'utf8')
}

// ---- Dockerfile --------------------------------------------------------------------------------------

export interface Image {
  stages: Stage[]
  runtime: Stage
  /** The build stage's WORKDIR: the repository root's place in it (`COPY . .`). */
  buildRoot: string
  env: Record<string, string>
  entrypoint: string[]
}

export function readImage(): Image {
  const stages = parseDockerfile(readInfra('docker/Dockerfile'))
  const runtime = stages.at(-1)!
  const build = stages.find((s) => s.name === 'build')
  const entrypoint = last(runtime, 'ENTRYPOINT')?.exec
  if (build === undefined || entrypoint === undefined)
    throw new Error('Dockerfile: no build stage or ENTRYPOINT')
  return {
    stages,
    runtime,
    buildRoot: last(build, 'WORKDIR')!.rest.trim(),
    env: stageEnv(runtime),
    entrypoint,
  }
}

/** The repository path a file in the runtime image comes from (`COPY --from=build SRC DEST`). */
export function imageFileSource(image: Image, dest: string): string | undefined {
  for (const ins of image.runtime.instructions) {
    if (ins.keyword !== 'COPY' || ins.flags.from !== 'build') continue
    const [from, to] = ins.rest.trim().split(/\s+/)
    let src = from!
    if (from!.endsWith('/') && to!.endsWith('/')) {
      // A directory copied into a directory: `dest` is some file inside it.
      if (!dest.startsWith(to!)) continue
      src = join(from!, dest.slice(to!.length))
    } else {
      const target = to!.endsWith('/') ? join(to!, from!.split('/').at(-1)!) : to!
      if (target !== dest) continue
    }
    const abs = src.startsWith('/') ? src : join(image.buildRoot, src)
    if (!abs.startsWith(`${image.buildRoot}/`)) return undefined
    return abs.slice(image.buildRoot.length + 1)
  }
  return undefined
}

// ---- ECS ---------------------------------------------------------------------------------------------

export interface EcsContainer {
  name: string
  image: string
  essential?: boolean
  command?: string[]
  entryPoint?: string[]
  environment?: { name: string; value: string }[]
  portMappings?: { name?: string; containerPort: number; protocol?: string }[]
  mountPoints?: { sourceVolume: string; containerPath: string; readOnly?: boolean }[]
  dependsOn?: { containerName: string; condition: string }[]
  healthCheck?: {
    command: string[]
    interval?: number
    timeout?: number
    retries?: number
    startPeriod?: number
  }
  stopTimeout?: number
  user?: string
}

export interface EcsTaskDefinition {
  family: string
  networkMode: string
  volumes?: { name: string }[]
  containerDefinitions: EcsContainer[]
}

export function readTaskDefinition(): EcsTaskDefinition {
  return JSON.parse(readInfra('ecs/task-definition.json')) as EcsTaskDefinition
}

export function ecsEnv(c: EcsContainer): Record<string, string> {
  return Object.fromEntries((c.environment ?? []).map((e) => [e.name, e.value]))
}

// ---- Kubernetes ----------------------------------------------------------------------------------------

export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string> }
  [key: string]: unknown
}

export interface K8sEnvVar {
  name: string
  value?: string
  valueFrom?: { fieldRef?: { fieldPath: string } }
}

export interface K8sProbe {
  httpGet?: { path: string; port: number | string }
  periodSeconds?: number
  failureThreshold?: number
}

export interface K8sContainer {
  name: string
  image: string
  restartPolicy?: string
  command?: string[]
  args?: string[]
  env?: K8sEnvVar[]
  ports?: { name?: string; containerPort: number; protocol?: string; hostPort?: number }[]
  startupProbe?: K8sProbe
  readinessProbe?: K8sProbe
  livenessProbe?: K8sProbe
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[]
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number }
}

export interface K8sPodSpec {
  initContainers?: K8sContainer[]
  containers: K8sContainer[]
  volumes?: { name: string; configMap?: { name: string; items?: { key: string; path: string }[] } }[]
  terminationGracePeriodSeconds?: number
}

/** Every object of every YAML file in infra/k8s/, with the file it came from. */
export function readK8s(files: string[]): (K8sObject & { file: string })[] {
  const out: (K8sObject & { file: string })[] = []
  for (const file of files) {
    for (const doc of parseAllDocuments(readInfra(`k8s/${file}`))) {
      if (doc.errors.length > 0)
        throw new Error(`k8s/${file}: ${doc.errors.map((e) => e.message).join('; ')}`)
      const value = doc.toJS() as K8sObject | null
      if (value !== null) out.push({ ...value, file })
    }
  }
  return out
}

/**
 * A container's environment as the kubelet makes it: `valueFrom.fieldRef` from `fields`, and
 * `$(NAME)` replaced by a variable defined earlier in the list (left as is otherwise, as Kubernetes does).
 */
export function k8sEnv(c: K8sContainer, fields: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const v of c.env ?? []) {
    if (v.valueFrom?.fieldRef !== undefined) {
      const field = fields[v.valueFrom.fieldRef.fieldPath]
      if (field === undefined)
        throw new Error(`env ${v.name}: no value for ${v.valueFrom.fieldRef.fieldPath}`)
      env[v.name] = field
      continue
    }
    env[v.name] = (v.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) =>
      Object.hasOwn(env, name) ? env[name]! : m,
    )
  }
  return env
}

/** A probe's port: a number, or the name of one of the container's ports. */
export function probePort(c: K8sContainer, port: number | string): number {
  if (typeof port === 'number') return port
  const named = c.ports?.find((p) => p.name === port)
  if (named === undefined) throw new Error(`container ${c.name}: no port named ${port}`)
  return named.containerPort
}

/** `/etc/meshgate/mesh.yaml` → the volume mounted over its directory. */
export function mountFor<M extends { mountPath?: string; containerPath?: string }>(
  mounts: M[] | undefined,
  file: string,
): M | undefined {
  return mounts?.find((m) => (m.mountPath ?? m.containerPath) === dirname(file))
}

export interface K8sConfigMap extends K8sObject {
  data: Record<string, string>
}

export interface K8sWorkload extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> }
    template: { metadata: { labels: Record<string, string> }; spec: K8sPodSpec }
  }
}

export interface K8sService extends K8sObject {
  spec: {
    clusterIP?: string
    selector: Record<string, string>
    ports: { port: number; targetPort: number | string }[]
  }
}

export interface K8sKinds {
  ConfigMap: K8sConfigMap
  Deployment: K8sWorkload
  DaemonSet: K8sWorkload
  Service: K8sService
}

/** The object of a kind (and name, if given); throws when there is none. */
export function findK8s<K extends keyof K8sKinds>(objects: K8sObject[], kind: K, name?: string): K8sKinds[K] {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
  if (found === undefined) throw new Error(`infra/k8s: no ${kind}${name === undefined ? '' : ` ${name}`}`)
  return found as unknown as K8sKinds[K]
}
