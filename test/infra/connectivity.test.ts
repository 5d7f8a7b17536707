// Every caller's path to a meshed workload lands on the workload's inbound listener (15006), never on
// the app's own port: in Kubernetes (each Service port, each dns:// target of the mesh config and the
// Service it names) and on ECS (the Cloud Map registration, the security groups, the mesh config's URLs
// for the namespace). The manifests are validated against the Kubernetes schemas (kubernetes-models)
// and the CloudFormation template against the lint in ./cloudformation.ts.

import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadConfigFile, loadConfigText } from '../../proxy-core/config/load.ts'
import type { MeshConfig, TargetConfig } from '../../proxy-core/engine/types.ts'
import { parseSidecarArgs } from '../../proxy-core/sidecar/command.ts'
import { DEFAULT_INBOUND } from '../../proxy-core/sidecar/index.ts'
import {
  type Cfn,
  type CfnObject,
  type CfnResource,
  evaluate,
  lintTemplate,
  parseTemplate,
  referencedResource,
} from './cloudformation.ts'
import type { K8sContainer, K8sObject, K8sService, K8sWorkload } from './specs.ts'
import { INFRA, k8sEnv, readInfra, readK8s } from './specs.ts'

type HttpTarget = Extract<TargetConfig, { kind: 'http' }>

const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1))

/** The sidecar's inbound port for this container's args and environment, as the sidecar parses them. */
function inboundPort(args: string[], env: Record<string, string>): number {
  const opts = parseSidecarArgs(args, env)
  if (opts === 'help') throw new Error('the container asks for --help')
  return portOf(opts.inbound ?? DEFAULT_INBOUND)
}

/** Every concrete endpoint of an HTTP target: `{ host, port }` of each URL, or of its dns:// name. */
function endpointsOf(t: HttpTarget): { host: string; port: number }[] {
  if (t.dns !== undefined) return [{ host: t.dns.host, port: t.dns.port }]
  return t.endpoints.map((e) => {
    const u = new URL(e)
    return { host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) }
  })
}

function httpEndpoints(mesh: MeshConfig) {
  return Object.values(mesh.services).flatMap((svc) =>
    Object.values(svc.targets)
      .filter((t): t is HttpTarget => t.kind === 'http')
      .flatMap((t) => endpointsOf(t).map((e) => ({ ...e, service: svc.name, target: t.name }))),
  )
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

const k8sFiles = readdirSync(join(INFRA, 'k8s')).filter((f) => f.endsWith('.yaml'))
const k8s = readK8s(k8sFiles)

interface MeshedPod {
  workload: K8sWorkload
  labels: Record<string, string>
  containers: K8sContainer[]
  service: string
  inbound: number
}

const meshedPods: MeshedPod[] = k8s
  .filter((o) => o.kind === 'Deployment')
  .flatMap((o) => {
    const workload = o as unknown as K8sWorkload
    const pod = workload.spec.template.spec
    const sidecar = pod.initContainers?.find((c) => c.image.includes('meshgate-sidecar'))
    if (sidecar === undefined) return []
    const env = k8sEnv(sidecar, { 'status.hostIP': '10.0.0.10' })
    return [
      {
        workload,
        labels: workload.spec.template.metadata.labels,
        containers: [...(pod.initContainers ?? []), ...pod.containers],
        service: env.MESHGATE_SERVICE!,
        inbound: inboundPort(sidecar.args ?? [], env),
      },
    ]
  })

const services = k8s.filter((o) => o.kind === 'Service') as unknown as K8sService[]

const selects = (svc: K8sService, pod: MeshedPod) =>
  Object.entries(svc.spec.selector).every(([k, v]) => pod.labels[k] === v)

/** A Service's targetPort in a pod: a number, or the name of a port of one of its containers. */
function containerPort(pod: MeshedPod, targetPort: number | string): number | undefined {
  if (typeof targetPort === 'number') return targetPort
  for (const c of pod.containers) {
    const p = c.ports?.find((x) => x.name === targetPort)
    if (p !== undefined) return p.containerPort
  }
  return undefined
}

/** kind → the kubernetes-models class that validates it against the Kubernetes OpenAPI schema. */
async function modelFor(o: K8sObject): Promise<{ validate(): void }> {
  const core = await import('kubernetes-models/v1')
  const apps = await import('kubernetes-models/apps/v1')
  const key = `${o.apiVersion}/${o.kind}`
  const classes: Record<string, new (data: never) => { validate(): void }> = {
    'v1/Service': core.Service,
    'v1/ServiceAccount': core.ServiceAccount,
    'v1/ConfigMap': core.ConfigMap,
    'apps/v1/Deployment': apps.Deployment,
    'apps/v1/DaemonSet': apps.DaemonSet,
  }
  const Model = classes[key]
  if (Model === undefined) throw new Error(`no schema here for ${key}`)
  const { file: _file, ...data } = o as K8sObject & { file?: string }
  return new Model(data as never)
}

describe('infra/k8s: every caller lands on the inbound listener', () => {
  let mesh: MeshConfig
  beforeAll(async () => {
    const cm = k8s.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> }
    mesh = await loadConfigText(cm.data['mesh.yaml']!, 'infra/k8s/configmap.yaml#mesh.yaml')
  })

  it('validates every object against the Kubernetes schemas (kubernetes-models)', async () => {
    expect(k8s.length).toBeGreaterThan(5)
    for (const o of k8s) {
      const model = await modelFor(o)
      expect(() => model.validate(), `${o.file}: ${o.kind} ${o.metadata.name}`).not.toThrow()
    }
  })

  it('has a meshed Deployment for every container service of the mesh config', () => {
    expect(meshedPods.map((p) => p.workload.metadata.name).sort()).toEqual([
      'productpage',
      'ratings',
      'reviews-v3',
    ])
    for (const p of meshedPods) expect(Object.keys(mesh.services)).toContain(p.service)
  })

  it('sends every port of every Service in front of a meshed pod to its inbound listener', () => {
    let checked = 0
    for (const svc of services) {
      for (const pod of meshedPods.filter((p) => selects(svc, p))) {
        for (const sp of svc.spec.ports) {
          expect(containerPort(pod, sp.targetPort), `${svc.metadata.name}:${sp.port}`).toBe(pod.inbound)
          checked++
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(meshedPods.length)
  })

  it("lets a ClusterIP Service's port 9080 reach the inbound listener, for callers outside the mesh", () => {
    const productpage = services.find((s) => s.metadata.name === 'productpage')!
    expect(productpage.spec.clusterIP).toBeUndefined()
    const pod = meshedPods.find((p) => p.service === 'productpage')!
    expect(productpage.spec.ports.map((p) => [p.port, containerPort(pod, p.targetPort)])).toEqual([
      [9080, pod.inbound],
    ])
  })

  it('resolves every in-cluster target of the mesh config to pods of that service, at their inbound port', () => {
    const inCluster = httpEndpoints(mesh).filter((e) => e.host.endsWith('.svc.cluster.local'))
    expect(inCluster.length).toBe(meshedPods.length)
    for (const e of inCluster) {
      const where = `${e.service}.${e.target}: ${e.host}:${e.port}`
      const [name, namespace] = e.host.split('.') as [string, string]
      const svc = services.find((s) => s.metadata.name === name && s.metadata.namespace === namespace)
      expect(svc, where).toBeDefined()
      const pods = meshedPods.filter((p) => selects(svc!, p))
      expect(pods.length, where).toBeGreaterThan(0)
      for (const pod of pods) {
        // The pods behind the name are this mesh service's, each with its sidecar.
        expect(pod.service, where).toBe(e.service)
        if (svc!.spec.clusterIP === 'None') {
          // Headless: DNS answers pod addresses and nothing remaps the port, so the URL's port is the
          // port the caller connects to in the pod.
          expect(e.port, where).toBe(pod.inbound)
        } else {
          const sp = svc!.spec.ports.find((p) => p.port === e.port)
          expect(sp, where).toBeDefined()
          expect(containerPort(pod, sp!.targetPort), where).toBe(pod.inbound)
        }
      }
    }
  })
})

// ---------------------------------------------------------------------------------------------
// ECS (CloudFormation)

const template = parseTemplate(readInfra('cloudformation/bookinfo-ecs.yaml'))
const resources = template.Resources
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type)
const props = (r: CfnResource | undefined) => (r?.Properties ?? {}) as CfnObject
const resourceOf = (v: Cfn | undefined) => {
  const id = referencedResource(v)
  return id === undefined ? undefined : resources[id]
}

interface EcsContainerDef {
  Name: string
  Image: Cfn
  Environment?: { Name: string; Value: Cfn }[]
  PortMappings?: { ContainerPort: number; Protocol?: string }[]
  Command?: string[]
}

describe('infra/cloudformation/bookinfo-ecs.yaml: every caller lands on the inbound listener', () => {
  const [[, ecsService]] = ofType('AWS::ECS::Service') as [[string, CfnResource]]
  const task = resourceOf(props(ecsService).TaskDefinition)!
  const containers = props(task).ContainerDefinitions as unknown as EcsContainerDef[]
  const sidecar = containers.find((c) => JSON.stringify(c.Image).includes('SidecarImage'))!
  const env = Object.fromEntries(
    (sidecar.Environment ?? []).map((e) => [e.Name, String(evaluate(template, e.Value))]),
  )
  const inbound = inboundPort(sidecar.Command ?? [], env)
  const app = new URL(env.MESHGATE_APP!)

  it('passes the lint: known types, required and known properties, every Ref and GetAtt resolves', () => {
    expect(lintTemplate(template)).toEqual([])
    expect(
      ofType('AWS::ServiceDiscovery::PrivateDnsNamespace').length *
        ofType('AWS::ECS::TaskDefinition').length *
        ofType('AWS::EC2::SecurityGroup').length,
    ).toBeGreaterThan(0)
  })

  it("registers each task in Cloud Map at the sidecar's inbound port, with SRV records for it", () => {
    const registries = props(ecsService).ServiceRegistries as unknown as CfnObject[]
    expect(registries).toHaveLength(1)
    const reg = registries[0]!
    expect(reg.ContainerName).toBe(sidecar.Name)
    expect(reg.ContainerPort).toBe(inbound)
    expect(sidecar.PortMappings?.map((p) => p.ContainerPort)).toContain(inbound)
    const discovery = resourceOf(reg.RegistryArn)!
    expect(discovery.Type).toBe('AWS::ServiceDiscovery::Service')
    const records = (props(discovery).DnsConfig as CfnObject).DnsRecords as CfnObject[]
    expect(records.map((r) => r.Type).sort()).toEqual(['A', 'SRV'])
    expect(props(discovery).Name).toBe(env.MESHGATE_SERVICE)
  })

  it('publishes no port of the app: it is reached only through the sidecar', () => {
    for (const c of containers.filter((c) => c !== sidecar)) {
      const tcp = (c.PortMappings ?? []).filter((p) => (p.Protocol ?? 'tcp') === 'tcp')
      expect(tcp, c.Name).toEqual([])
    }
    expect(app.hostname).toBe('127.0.0.1')
  })

  it("opens the tasks' security group on the inbound port only, to the mesh's Lambda functions and tasks", () => {
    const vpc = props(ecsService).NetworkConfiguration as { AwsvpcConfiguration: CfnObject }
    const groups = (vpc.AwsvpcConfiguration.SecurityGroups as Cfn[]).map(referencedResource)
    expect(groups).toHaveLength(1)
    const rules = ofType('AWS::EC2::SecurityGroupIngress')
      .map(([, r]) => props(r))
      .filter((p) => referencedResource(p.GroupId) === groups[0])
    expect(rules.length).toBeGreaterThan(0)
    for (const rule of rules)
      expect([rule.IpProtocol, rule.FromPort, rule.ToPort]).toEqual(['tcp', inbound, inbound])
    const sources = rules.map((r) => referencedResource(r.SourceSecurityGroupId)).sort()
    const lambdaGroup = referencedResource(template.Outputs!.LambdaSecurityGroupId!.Value)
    expect(sources).toEqual([lambdaGroup, groups[0]].sort())
    expect(props(resources[groups[0]!]).SecurityGroupIngress).toBeUndefined()
  })

  it("names the registered port in the mesh config's URLs for the namespace", async () => {
    const namespace = resourceOf(
      props(resourceOf((props(ecsService).ServiceRegistries as CfnObject[])[0]!.RegistryArn)).NamespaceId,
    )!
    const domain = String(evaluate(template, props(namespace).Name!))
    expect(domain).toBe('bookinfo.local')
    const mesh = await loadConfigFile(join(INFRA, 'examples', 'bookinfo.yaml'))
    const inNamespace = httpEndpoints(mesh).filter((e) => e.host.endsWith(`.${domain}`))
    expect(inNamespace.length).toBeGreaterThan(0)
    for (const e of inNamespace) expect(e.port, `${e.service}.${e.target}: ${e.host}`).toBe(inbound)
    // This stack's service is in the mesh config under its Cloud Map name.
    const registered = `${env.MESHGATE_SERVICE}.${domain}`
    expect(inNamespace.filter((e) => e.host === registered).map((e) => e.service)).toEqual([
      env.MESHGATE_SERVICE,
    ])
    expect(evaluate(template, template.Outputs!.ProductpageUrl!.Value)).toBe(
      `http://${registered}:${inbound}`,
    )
  })
})
