// Kubernetes' own schemas for the tests: kubernetes-models' validators (types, required fields,
// enums), plus what they let through: a field name Kubernetes does not know. Those the API server
// drops (with a warning) or refuses, so a misspelt `restartPolicy` would pass validate() and still
// leave a pod without its sidecar semantics. The field names come from kubernetes-models' own
// declarations of each type.

import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1'
import { CronJob, Job } from 'kubernetes-models/batch/v1'
import { Pod } from 'kubernetes-models/v1'

const MODELS = dirname(createRequire(import.meta.url).resolve('kubernetes-models/package.json'))
const known = new Map<string, Set<string>>()

/** The field names of a core/v1 type, from its declaration file. */
function fieldsOf(type: string): Set<string> {
  let fields = known.get(type)
  if (fields === undefined) {
    const text = readFileSync(join(MODELS, 'v1', `${type}.d.ts`), 'utf8')
    // The interface's own members, one level in (nested maps such as `requests` hold any key).
    const start = text.indexOf('export interface')
    const body = text.slice(start, text.indexOf('\n}', start))
    fields = new Set([...body.matchAll(/^ {4}"([A-Za-z0-9]+)"\??:/gm)].map((m) => m[1]!))
    if (fields.size === 0) throw new Error(`no fields read for ${type}`)
    known.set(type, fields)
  }
  return fields
}

/** Which type each field of the types we produce holds (arrays hold that type per element). */
const NESTED: Record<string, Record<string, string>> = {
  PodSpec: {
    initContainers: 'Container',
    containers: 'Container',
    volumes: 'Volume',
    securityContext: 'PodSecurityContext',
  },
  Container: {
    env: 'EnvVar',
    ports: 'ContainerPort',
    startupProbe: 'Probe',
    readinessProbe: 'Probe',
    livenessProbe: 'Probe',
    securityContext: 'SecurityContext',
    volumeMounts: 'VolumeMount',
    resources: 'ResourceRequirements',
    lifecycle: 'Lifecycle',
  },
  Probe: { httpGet: 'HTTPGetAction' },
  EnvVar: { valueFrom: 'EnvVarSource' },
  EnvVarSource: { fieldRef: 'ObjectFieldSelector' },
  Volume: { configMap: 'ConfigMapVolumeSource' },
  ConfigMapVolumeSource: { items: 'KeyToPath' },
  SecurityContext: { capabilities: 'Capabilities', seccompProfile: 'SeccompProfile' },
}

/** Every field name in `value` that its core/v1 type does not have, as paths. */
export function unknownFields(value: unknown, type: string, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => unknownFields(v, type, `${path}[${i}]`))
  if (value === null || typeof value !== 'object') return []
  const fields = fieldsOf(type)
  const out: string[] = []
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) out.push(`${path}.${k}`)
    const nested = NESTED[type]?.[k]
    if (nested !== undefined) out.push(...unknownFields(v, nested, `${path}.${k}`))
  }
  return out
}

/** Throws with the reasons when the pod is not one the API server would take as written. */
export function validatePod(pod: unknown): void {
  new Pod(pod as ConstructorParameters<typeof Pod>[0]).validate()
  const extra = unknownFields((pod as { spec: unknown }).spec, 'PodSpec', 'spec')
  if (extra.length > 0) throw new Error(`fields Kubernetes does not know: ${extra.join(', ')}`)
}

const WORKLOADS: Record<string, (o: never) => { validate(): void }> = {
  Deployment: (o) => new Deployment(o),
  StatefulSet: (o) => new StatefulSet(o),
  DaemonSet: (o) => new DaemonSet(o),
  Job: (o) => new Job(o),
  CronJob: (o) => new CronJob(o),
  Pod: (o) => new Pod(o),
}

/** A workload document (apps/v1, batch/v1, v1 Pod) validated as its kind; other kinds are skipped. */
export function validateWorkload(doc: { kind?: string }): boolean {
  const make = doc.kind === undefined ? undefined : WORKLOADS[doc.kind]
  if (make === undefined) return false
  make(doc as never).validate()
  return true
}
