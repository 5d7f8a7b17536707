// TLS between sidecars in what `meshgate inject` and the injector add (docs/tls.md): on Kubernetes the
// workload's cert-manager Secret as a volume of the sidecar and MESHGATE_TLS_DIR pointing at it; on
// ECS the directory an init-first container fills. Valid Kubernetes, and refusals with their reason.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { EcsTaskDefinition, K8sPodSpec } from '../../proxy-core/inject/index.ts'
import {
  defaultSettings,
  injectPod,
  injectTaskDefinition,
  SIDECAR_NAME,
} from '../../proxy-core/inject/index.ts'
import { unknownFields, validateWorkload } from './k8s-schema.ts'
import { ROOT, runCli } from './run-cli.ts'
import { readDocs } from './workloads.ts'

const IMAGE = 'registry.example.com/meshgate-sidecar:0.1.0'
type Json = Record<string, unknown>

function sidecarOf(spec: K8sPodSpec) {
  return spec.initContainers!.find((c) => c.name === SIDECAR_NAME)!
}

const pod = (annotations: Record<string, string> = {}) => ({
  metadata: { name: 'reviews-v1-abc', labels: { app: 'reviews' }, annotations },
  spec: { containers: [{ name: 'reviews', image: 'reviews:1', ports: [{ containerPort: 9080 }] }] },
})

describe('meshgate inject --mesh-tls-secret (Kubernetes)', () => {
  it("mounts each workload's Secret into the sidecar and points MESHGATE_TLS_DIR at it", async () => {
    const file = join(ROOT, 'infra', 'k8s', 'src', 'productpage.yaml')
    const r = await runCli(['inject', '--image', IMAGE, '--mesh-tls-secret', '{service}-mesh-tls', file])
    expect(r.code, r.stderr).toBe(0)
    const deployment = readDocs(r.stdout).find((d) => d.kind === 'Deployment')! as Json
    expect(validateWorkload(deployment)).toBe(true)
    const spec = ((deployment.spec as Json).template as Json).spec as K8sPodSpec
    expect(unknownFields(spec, 'PodSpec')).toEqual([])
    expect(spec.volumes).toContainEqual({
      name: 'meshgate-tls',
      secret: { secretName: 'productpage-mesh-tls' },
    })
    const sidecar = sidecarOf(spec)
    expect(sidecar.volumeMounts).toContainEqual({
      name: 'meshgate-tls',
      mountPath: '/etc/meshgate/tls',
      readOnly: true,
    })
    expect(sidecar.env).toContainEqual({ name: 'MESHGATE_TLS_DIR', value: '/etc/meshgate/tls' })
    // Only the sidecar reads the key.
    for (const c of spec.containers)
      expect(JSON.stringify(c.volumeMounts ?? [])).not.toContain('meshgate-tls')
  })

  it('takes a workload\'s own Secret from its annotation, or none with "off"', () => {
    const settings = { ...defaultSettings(IMAGE), tls: { dir: '/etc/meshgate/tls', secret: '{service}-tls' } }
    const own = injectPod(pod({ 'meshgate.io/tls-secret': 'reviews-cert' }).metadata, pod().spec, settings)
    expect(own.kind === 'injected' && own.spec.volumes).toContainEqual({
      name: 'meshgate-tls',
      secret: { secretName: 'reviews-cert' },
    })
    const off = injectPod(pod({ 'meshgate.io/tls-secret': 'off' }).metadata, pod().spec, settings)
    expect(off.kind).toBe('injected')
    if (off.kind !== 'injected') return
    expect(JSON.stringify(off.spec)).not.toContain('meshgate-tls')
    expect(JSON.stringify(sidecarOf(off.spec).env)).not.toContain('MESHGATE_TLS_DIR')
    // Without settings, the annotation alone turns it on, mounted at the default directory.
    const alone = injectPod(
      pod({ 'meshgate.io/tls-secret': 'reviews-cert' }).metadata,
      pod().spec,
      defaultSettings(IMAGE),
    )
    expect(alone.kind === 'injected' && sidecarOf(alone.spec).env).toContainEqual({
      name: 'MESHGATE_TLS_DIR',
      value: '/etc/meshgate/tls',
    })
  })

  it('refuses a Secret name that is not one, and a pod that already has the volume', () => {
    const settings = defaultSettings(IMAGE)
    expect(() =>
      injectPod(pod({ 'meshgate.io/tls-secret': 'Bad_Name' }).metadata, pod().spec, settings),
    ).toThrow(/meshgate.io\/tls-secret: not a Secret name/)
    const taken = { ...pod().spec, volumes: [{ name: 'meshgate-tls', emptyDir: {} }] }
    expect(() => injectPod(pod({ 'meshgate.io/tls-secret': 'x' }).metadata, taken, settings)).toThrow(
      /already has a volume named meshgate-tls/,
    )
  })
})

describe('meshgate inject --ecs --mesh-tls-dir', () => {
  const source = JSON.parse(
    readFileSync(join(ROOT, 'test', 'inject', 'fixtures', 'ecs-file-config.json'), 'utf8'),
  ) as EcsTaskDefinition & { volumes: Json[] }

  it('reads the files an init-first container writes into a task volume', () => {
    const td = structuredClone(source)
    td.volumes.push({ name: 'mesh-tls' })
    td.containerDefinitions[0]!.mountPoints!.push({
      sourceVolume: 'mesh-tls',
      containerPath: '/etc/meshgate/tls',
      readOnly: false,
    })
    const out = injectTaskDefinition(td, { ...defaultSettings(IMAGE), tls: { dir: '/etc/meshgate/tls' } })
    expect(out.kind).toBe('injected')
    if (out.kind !== 'injected') return
    const sidecar = out.taskDefinition.containerDefinitions.find((c) => c.name === 'meshgate')!
    expect(sidecar.environment).toContainEqual({ name: 'MESHGATE_TLS_DIR', value: '/etc/meshgate/tls' })
    expect(sidecar.mountPoints).toContainEqual({
      sourceVolume: 'mesh-tls',
      containerPath: '/etc/meshgate/tls',
      readOnly: true,
    })
  })

  it('refuses a directory nothing writes', () => {
    expect(() =>
      injectTaskDefinition(structuredClone(source), {
        ...defaultSettings(IMAGE),
        tls: { dir: '/etc/meshgate/tls' },
      }),
    ).toThrow(/MESHGATE_TLS_DIR \/etc\/meshgate\/tls: no meshgate.io\/init-first container mounts it/)
  })
})
