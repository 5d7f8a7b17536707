// What Istio and Gateway API imports share about Kubernetes: resource identity, cluster DNS names, and
// the Services given alongside (their ports fill in destinations that name none).
import { toName } from './draft.ts'
import {
  asList,
  asNumber,
  asObj,
  asString,
  isObj,
  lineOf,
  type Obj,
  type SourceDoc,
  type Value,
} from './reader.ts'
import { ImportError } from './report.ts'

export interface K8sResource {
  file: string
  line: number
  apiVersion: string
  group: string
  kind: string
  /** The line of `kind:`, for errors about the kind. */
  kindLine: number
  name: string
  namespace: string
  spec: Obj
  obj: Obj
}

/** Every Kubernetes object in the documents (`kind: List` unwrapped); anything else is an error. */
export function k8sResources(docs: SourceDoc[]): K8sResource[] {
  const out: K8sResource[] = []
  const add = (v: Value, file: string, fallbackLine: number) => {
    const obj = asObj(v)
    const line = lineOf(obj, undefined, fallbackLine)
    if (obj === undefined) throw new ImportError(file, line, 'expected a Kubernetes resource (a mapping)')
    const apiVersion = asString(obj.apiVersion)
    const kind = asString(obj.kind)
    if (apiVersion === undefined || kind === undefined) {
      throw new ImportError(file, line, 'not a Kubernetes resource: apiVersion and kind are required')
    }
    if (kind === 'List' || kind.endsWith('List')) {
      for (const item of asList(obj.items)) add(item, file, line)
      return
    }
    const meta = asObj(obj.metadata) ?? {}
    out.push({
      file,
      line,
      apiVersion,
      group: apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '',
      kind,
      kindLine: lineOf(obj, 'kind', line),
      name: asString(meta.name) ?? 'unnamed',
      namespace: asString(meta.namespace) ?? 'default',
      spec: asObj(obj.spec) ?? {},
      obj,
    })
  }
  for (const d of docs) add(d.value, d.file, d.line)
  return out
}

/** `reviews`, `reviews.prod`, `reviews.prod.svc.cluster.local` → the FQDN and whether it is in-cluster. */
export function clusterHost(
  host: string,
  namespace: string,
): { fqdn: string; short: string; inCluster: boolean } {
  const parts = host.split('.')
  if (parts.length === 1)
    return { fqdn: `${host}.${namespace}.svc.cluster.local`, short: host, inCluster: true }
  if (parts.length === 2) return { fqdn: `${host}.svc.cluster.local`, short: parts[0]!, inCluster: true }
  if (parts.length === 3 && parts[2] === 'svc')
    return { fqdn: `${host}.cluster.local`, short: parts[0]!, inCluster: true }
  if (host.endsWith('.svc.cluster.local')) return { fqdn: host, short: parts[0]!, inCluster: true }
  return { fqdn: host, short: toName(host), inCluster: false }
}

/** Service ports, keyed by `name.namespace`, from the `v1/Service` objects given alongside. */
export function servicePorts(resources: K8sResource[]): Map<string, number[]> {
  const ports = new Map<string, number[]>()
  for (const r of resources) {
    if (r.apiVersion !== 'v1' || r.kind !== 'Service') continue
    const list = asList(r.spec.ports)
      .map((p) => (isObj(p) ? asNumber(p.port) : undefined))
      .filter((p): p is number => p !== undefined)
    ports.set(`${r.name}.${r.namespace}`, list)
  }
  return ports
}

/** Kinds of plain Kubernetes that a mesh's files carry beside the mesh resources, and that say nothing about routing. */
export function isPlainKubernetes(r: K8sResource): boolean {
  return (
    r.group === '' ||
    ['apps', 'batch', 'policy', 'autoscaling', 'rbac.authorization.k8s.io', 'networking.k8s.io'].includes(
      r.group,
    ) ||
    (r.group.endsWith('.k8s.io') && r.group !== 'gateway.networking.k8s.io')
  )
}
