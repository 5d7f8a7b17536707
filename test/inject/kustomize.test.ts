// infra/k8s/injector, the Kustomize base: every resource valid against Kubernetes' schemas (cert-manager's
// two checked by their documented required fields), the pieces pointing at each other (webhook →
// Service → container port, Certificate → Secret → mount → --tls-dir, CA injection → Certificate),
// the selectors choosing the pods docs/kubernetes.md says they choose, and, where kubectl is
// installed (.ci/run installs Debian's), `kubectl kustomize` rendering exactly these resources.

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1'
import { describe, expect, it } from 'vitest'
import { parseCommandArgs, stringOpt } from '../../proxy-core/cli/args.ts'
import { INJECTOR_OPTIONS } from '../../proxy-core/inject/injector-command.ts'
import { settingsFromArgs } from '../../proxy-core/inject/settings-args.ts'
import { validatePod } from './k8s-schema.ts'
import { ROOT } from './run-cli.ts'
import { readDocs } from './workloads.ts'

type Json = Record<string, any>
const BASE = join(ROOT, 'infra', 'k8s', 'injector')
const kustomization = readDocs(readFileSync(join(BASE, 'kustomization.yaml'), 'utf8'))[0]!
const docs: Json[] = (kustomization.resources as string[]).flatMap((f) =>
  readDocs(readFileSync(join(BASE, f), 'utf8')),
)
const one = (kind: string) => {
  const found = docs.filter((d) => d.kind === kind)
  expect(found, kind).toHaveLength(1)
  return found[0]!
}

const MODELS: Record<string, (o: never) => { validate(): void }> = {
  Namespace: (o) => new Namespace(o),
  ServiceAccount: (o) => new ServiceAccount(o),
  Deployment: (o) => new Deployment(o),
  Service: (o) => new Service(o),
  PodDisruptionBudget: (o) => new PodDisruptionBudget(o),
  MutatingWebhookConfiguration: (o) => new MutatingWebhookConfiguration(o),
}

/** A label selector, evaluated as the API server does (matchLabels AND every matchExpression). */
function selects(selector: Json | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return true
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key)
    const ok =
      e.operator === 'In'
        ? has && e.values.includes(labels[e.key])
        : e.operator === 'NotIn'
          ? !has || !e.values.includes(labels[e.key])
          : e.operator === 'Exists'
            ? has
            : e.operator === 'DoesNotExist'
              ? !has
              : false
    if (!ok) return false
  }
  return true
}

/** The webhooks that would be called for a pod with these labels in a namespace with these. */
function calledFor(ns: Record<string, string>, pod: Record<string, string>): string[] {
  const mwc = one('MutatingWebhookConfiguration')
  return (mwc.webhooks as Json[])
    .filter((w) => selects(w.namespaceSelector, ns) && selects(w.objectSelector, pod))
    .map((w) => w.name as string)
}

function kubectl(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':'))
    if (existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl')
  return undefined
}

describe('infra/k8s/injector', () => {
  it('has exactly the resources of an injector, each valid', () => {
    expect(docs.map((d) => d.kind).sort()).toEqual(
      [
        'Certificate',
        'Deployment',
        'Issuer',
        'MutatingWebhookConfiguration',
        'Namespace',
        'PodDisruptionBudget',
        'Service',
        'ServiceAccount',
      ].sort(),
    )
    for (const d of docs) {
      const make = MODELS[d.kind]
      if (make !== undefined) expect(() => make(d as never).validate(), d.kind).not.toThrow()
      if (d.kind !== 'Namespace' && d.kind !== 'MutatingWebhookConfiguration')
        expect(d.metadata.namespace, d.kind).toBe(kustomization.namespace)
    }
    // cert-manager.io/v1: an Issuer has one issuer type; a Certificate needs secretName and issuerRef.
    const issuer = one('Issuer')
    expect(issuer.apiVersion).toBe('cert-manager.io/v1')
    expect(Object.keys(issuer.spec)).toEqual(['selfSigned'])
    const cert = one('Certificate')
    expect(cert.apiVersion).toBe('cert-manager.io/v1')
    expect(cert.spec.issuerRef).toEqual({ name: issuer.metadata.name, kind: 'Issuer' })
    expect(typeof cert.spec.secretName).toBe('string')
  })

  it('runs two replicas of a pod that meets the restricted profile, kept by a PodDisruptionBudget', () => {
    const deployment = one('Deployment')
    expect(deployment.spec.replicas).toBe(2)
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: deployment.spec.template.metadata,
      spec: deployment.spec.template.spec,
    }
    expect(() => validatePod(pod)).not.toThrow()
    const c = pod.spec.containers[0]
    expect(pod.spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    })
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: true,
    })
    const pdb = one('PodDisruptionBudget')
    expect(selects(pdb.spec.selector, pod.metadata.labels)).toBe(true)
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas)
    // No API access is needed, so none is granted: no Role, no token.
    expect(docs.some((d) => /Role/.test(d.kind))).toBe(false)
    expect(one('ServiceAccount').automountServiceAccountToken).toBe(false)
    expect(pod.spec.serviceAccountName).toBe(one('ServiceAccount').metadata.name)
  })

  it('wires webhook → Service → port, and Certificate → Secret → mount → --tls-dir', () => {
    const deployment = one('Deployment')
    const spec = deployment.spec.template.spec
    const container = spec.containers[0]
    const args = parseCommandArgs(container.args, INJECTOR_OPTIONS, { maxPositionals: 0 })
    // The sidecar settings the injector is given parse as the command would parse them.
    const settings = settingsFromArgs(args, {})
    const configMap = readDocs(readFileSync(join(ROOT, 'infra', 'k8s', 'configmap.yaml'), 'utf8'))[0]!
    expect(settings.configMap).toBe((configMap.metadata as Json).name)
    const listenPort = Number(stringOpt(args, 'listen')!.split(':').at(-1))
    const service = one('Service')
    const cert = one('Certificate')
    for (const w of one('MutatingWebhookConfiguration').webhooks as Json[]) {
      expect(w.clientConfig.service).toEqual({
        name: service.metadata.name,
        namespace: service.metadata.namespace,
        path: '/mutate',
        port: service.spec.ports[0].port,
      })
      expect(w.failurePolicy).toBe('Ignore')
      expect(w.sideEffects).toBe('None')
      expect(w.admissionReviewVersions).toEqual(['v1'])
      expect(w.rules).toEqual([
        {
          operations: ['CREATE'],
          apiGroups: [''],
          apiVersions: ['v1'],
          resources: ['pods'],
          scope: 'Namespaced',
        },
      ])
    }
    const port = container.ports.find((p: Json) => p.name === service.spec.ports[0].targetPort)
    expect(port.containerPort).toBe(listenPort)
    expect(selects({ matchLabels: service.spec.selector }, deployment.spec.template.metadata.labels)).toBe(
      true,
    )
    // The certificate names the Service as the API server calls it.
    expect(cert.spec.dnsNames).toContain(`${service.metadata.name}.${service.metadata.namespace}.svc`)
    const volume = spec.volumes.find((v: Json) => v.secret?.secretName === cert.spec.secretName)
    const mount = container.volumeMounts.find((m: Json) => m.name === volume.name)
    expect(mount.mountPath).toBe(stringOpt(args, 'tls-dir'))
    expect(one('MutatingWebhookConfiguration').metadata.annotations['cert-manager.io/inject-ca-from']).toBe(
      `${cert.metadata.namespace}/${cert.metadata.name}`,
    )
  })

  it('sends the pods docs/kubernetes.md says it sends, and never its own', () => {
    const enabled = { 'meshgate.io/inject': 'enabled', 'kubernetes.io/metadata.name': 'shop' }
    const plain = { 'kubernetes.io/metadata.name': 'shop' }
    expect(calledFor(enabled, { app: 'orders' })).toEqual(['namespace.inject.meshgate.io'])
    expect(calledFor(enabled, { app: 'orders', 'meshgate.io/inject': 'false' })).toEqual([])
    expect(calledFor(enabled, { 'meshgate.io/inject': 'true' })).toEqual(['namespace.inject.meshgate.io'])
    expect(calledFor(plain, { app: 'orders' })).toEqual([])
    expect(calledFor(plain, { 'meshgate.io/inject': 'true' })).toEqual(['pod.inject.meshgate.io'])
    const own = one('Namespace').metadata.labels
    expect(
      calledFor(
        { ...own, 'kubernetes.io/metadata.name': 'meshgate-system' },
        { 'meshgate.io/inject': 'true' },
      ),
    ).toEqual([])
    expect(
      calledFor({ 'kubernetes.io/metadata.name': 'kube-system' }, { 'meshgate.io/inject': 'true' }),
    ).toEqual([])
  })

  it('renders with kubectl kustomize into these same resources (where kubectl is installed)', () => {
    const bin = kubectl()
    // Without kubectl only the direct checks above stand; .ci/run installs it.
    if (bin === undefined) return
    const rendered = readDocs(execFileSync(bin, ['kustomize', BASE], { encoding: 'utf8', timeout: 60_000 }))
    // Kustomize before v3 also writes the namespace onto cluster-scoped objects; the API server ignores it.
    const clusterScoped = new Set(['Namespace', 'MutatingWebhookConfiguration'])
    const key = (d: Json) => `${d.kind}/${d.metadata.name}`
    const byKey = (list: Json[]) => new Map(list.map((d) => [key(d), d]))
    const want = byKey(docs)
    const got = byKey(rendered)
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort())
    for (const [k, d] of got) {
      const w = want.get(k)!
      const g = structuredClone(d)
      if (clusterScoped.has(g.kind)) delete g.metadata.namespace
      expect(g, k).toEqual(w)
    }
  })
})
