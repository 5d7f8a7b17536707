// Pods the way Kubernetes' controllers make them from the workloads in a manifest (the template's
// metadata and spec, an owner reference, a generated name), AdmissionReviews for them the way the API
// server sends them, and an HTTPS client for the webhook that trusts the test's certificate.

import { request } from 'node:https'
import { parseAllDocuments } from 'yaml'

type Json = Record<string, unknown>

export interface WorkloadPod {
  /** `Deployment/orders` */
  workload: string
  /** Where the pod template sits in its document. */
  templatePath: string[]
  pod: { apiVersion: 'v1'; kind: 'Pod'; metadata: Json; spec: Json }
}

const TEMPLATES: Record<string, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
}

function at(o: unknown, path: string[]): unknown {
  return path.reduce<unknown>((v, k) => (v as Json | undefined)?.[k], o)
}

export function readDocs(text: string): Json[] {
  return parseAllDocuments(text as string)
    .map((d) => d.toJS() as Json)
    .filter((d) => d !== null)
}

/** The pods the controllers would create: a Deployment's through a ReplicaSet with a template hash. */
export function workloadPods(docs: Json[]): WorkloadPod[] {
  const out: WorkloadPod[] = []
  for (const doc of docs) {
    const kind = doc.kind as string
    if (!Object.hasOwn(TEMPLATES, kind)) continue
    const meta = doc.metadata as Json
    const name = meta.name as string
    const template = structuredClone(at(doc, TEMPLATES[kind]!)) as Json
    const podMeta: Json = { ...((template.metadata as Json) ?? {}), namespace: meta.namespace ?? 'default' }
    if (kind === 'Deployment') {
      const hash = '7d9f8c6b5'
      podMeta.labels = { ...((podMeta.labels as Json) ?? {}), 'pod-template-hash': hash }
      podMeta.generateName = `${name}-${hash}-`
      podMeta.ownerReferences = [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-${hash}`, uid: 'u-rs', controller: true },
      ]
    } else if (kind === 'CronJob') {
      // The Job a CronJob makes is named after its scheduled minute since the epoch.
      podMeta.generateName = `${name}-29012345-`
      podMeta.ownerReferences = [
        { apiVersion: 'batch/v1', kind: 'Job', name: `${name}-29012345`, uid: 'u-job', controller: true },
      ]
    } else if (kind !== 'Pod') {
      podMeta.generateName = `${name}-`
      const apiVersion = kind === 'Job' ? 'batch/v1' : 'apps/v1'
      podMeta.ownerReferences = [{ apiVersion, kind, name, uid: 'u-owner', controller: true }]
    } else {
      Object.assign(podMeta, meta)
    }
    out.push({
      workload: `${kind}/${name}`,
      templatePath: TEMPLATES[kind]!,
      pod: { apiVersion: 'v1', kind: 'Pod', metadata: podMeta, spec: template.spec as Json },
    })
  }
  return out
}

let uids = 0
export function admissionReview(pod: unknown, overrides: Json = {}): Json {
  const namespace = ((pod as Json | undefined)?.metadata as Json | undefined)?.namespace ?? 'default'
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `705ab4f5-6393-11e8-b7cc-42010a8000${String(++uids).padStart(2, '0')}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        groups: ['system:serviceaccounts'],
      },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
      ...overrides,
    },
  }
}

export interface HttpsAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  /** The certificate the server presented (SHA-256 fingerprint). */
  fingerprint: string
}

/** One request on a fresh TLS connection (no agent), trusting `ca` only. */
export function httpsCall(
  port: number,
  ca: Buffer | string,
  opts: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        method: opts.method ?? 'POST',
        path: opts.path ?? '/mutate',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json', ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            fingerprint: (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256,
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** The response part of an answer, with the patch decoded. */
export function reviewResponse(a: HttpsAnswer): {
  uid: string
  allowed: boolean
  patch?: { op: string; path: string; value?: unknown }[]
  patchType?: string
  warnings?: string[]
} {
  const r = (JSON.parse(a.body) as Json).response as Json
  const out = { ...r } as ReturnType<typeof reviewResponse> & { patch?: unknown }
  if (typeof r.patch === 'string') out.patch = JSON.parse(Buffer.from(r.patch, 'base64').toString('utf8'))
  return out
}
