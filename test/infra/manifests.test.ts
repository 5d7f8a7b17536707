// The deployment files in infra/ agree with the sidecar: every flag and MESHGATE_* variable they use is
// one the sidecar reads (parseSidecarArgs accepts the container's args and env as given), the ports and
// probes are the listeners' ports, the mesh config in the ConfigMap passes the real loader, the image
// runs what `npm run build` produces, and the orchestration is right (a native sidecar in Kubernetes,
// the app waiting for a HEALTHY meshgate in ECS). They cannot run here; test/infra/image.test.ts runs
// the bundle the way they would start it.

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { build } from 'esbuild'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import type { MeshConfig } from '../../proxy-core/engine/types.ts'
import { parseSidecarArgs } from '../../proxy-core/sidecar/command.ts'
import type { SidecarOptions } from '../../proxy-core/sidecar/index.ts'
import {
  DEFAULT_ADMIN,
  DEFAULT_DRAIN_MS,
  DEFAULT_INBOUND,
  DEFAULT_OUTBOUND,
} from '../../proxy-core/sidecar/index.ts'
import { SIDECAR_BUNDLE, sidecarBuildOptions } from '../../scripts/build.ts'
import { exposed, last } from './dockerfile.ts'
import type { K8sContainer } from './specs.ts'
import {
  ecsEnv,
  findK8s,
  INFRA,
  imageFileSource,
  k8sEnv,
  probePort,
  ROOT,
  readImage,
  readK8s,
  readTaskDefinition,
} from './specs.ts'

const port = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1))
const host = (address: string) => address.slice(0, address.lastIndexOf(':'))

/** The listeners a sidecar started with these options binds. */
function effective(opts: SidecarOptions) {
  return {
    outbound: opts.outbound ?? DEFAULT_OUTBOUND,
    inbound: opts.inbound ?? DEFAULT_INBOUND,
    admin: opts.admin ?? DEFAULT_ADMIN,
    drainMs: opts.drainMs ?? DEFAULT_DRAIN_MS,
  }
}

function parsed(args: string[], env: Record<string, string>): SidecarOptions {
  const opts = parseSidecarArgs(args, env)
  if (opts === 'help') throw new Error('the container asks for --help')
  return opts
}

/** Every MESHGATE_* name the sidecar bundle's own sources mention: the variables it can read. */
let knownVariables: Set<string>
let mesh: MeshConfig
const k8sFiles = readdirSync(join(INFRA, 'k8s')).filter((f) => f.endsWith('.yaml'))
const k8s = readK8s(k8sFiles)
const configMap = findK8s(k8s, 'ConfigMap')

beforeAll(async () => {
  const result = await build({
    ...sidecarBuildOptions(join(ROOT, 'test-artifacts', 'unused.mjs')),
    write: false,
  })
  knownVariables = new Set()
  for (const input of Object.keys(result.metafile!.inputs)) {
    if (input.includes('node_modules/')) continue
    for (const m of readFileSync(join(ROOT, input), 'utf8').matchAll(/MESHGATE_[A-Z0-9_]+/g))
      knownVariables.add(m[0])
  }
  mesh = await loadConfigText(configMap.data['mesh.yaml']!, 'infra/k8s/configmap.yaml#mesh.yaml')
})

function unknownVariables(env: Record<string, string>): string[] {
  return Object.keys(env).filter((k) => k.startsWith('MESHGATE_') && !knownVariables.has(k))
}

describe('infra/docker/Dockerfile', () => {
  const image = readImage()

  it('builds in a node:24-slim stage with npm ci and npm run build, and runs on node:24-slim', () => {
    const buildStage = image.stages.find((s) => s.name === 'build')!
    expect(buildStage.image).toBe('node:24-slim')
    const runs = buildStage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.rest)
    expect(runs.some((r) => /\bnpm ci\b/.test(r))).toBe(true)
    expect(runs.some((r) => /\bnpm run build\b/.test(r))).toBe(true)
    expect(image.runtime.image).toBe('node:24-slim')
    expect(image.stages.length).toBeGreaterThanOrEqual(2)
  })

  it('carries only the bundle, and its ENTRYPOINT runs the file scripts/build.ts writes', () => {
    const copies = image.runtime.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    expect(copies).toHaveLength(1)
    expect(copies[0]!.flags.from).toBe('build')
    expect(image.entrypoint).toHaveLength(2)
    expect(image.entrypoint[0]).toBe('node')
    expect(imageFileSource(image, image.entrypoint[1]!)).toBe(SIDECAR_BUNDLE)
  })

  it('runs as a user that is not root', () => {
    const user = last(image.runtime, 'USER')?.rest.trim()
    expect(user).toBeDefined()
    const [name] = user!.split(':')
    expect(['root', '0', '']).not.toContain(name)
  })

  it('exposes exactly the listeners of the sidecar defaults', () => {
    const ports = exposed(image.runtime)
    expect(ports.every((p) => p.protocol === 'tcp')).toBe(true)
    expect(ports.map((p) => p.port).sort()).toEqual(
      [port(DEFAULT_OUTBOUND), port(DEFAULT_INBOUND), port(DEFAULT_ADMIN)].sort(),
    )
  })

  it('checks health with node fetch on /ready at the admin address', () => {
    const hc = last(image.runtime, 'HEALTHCHECK')!
    expect(hc.exec?.[0]).toBe('node')
    const script = hc.exec!.join(' ')
    expect(script).toContain('/ready')
    expect(script).toContain('MESHGATE_ADMIN')
    expect(script).toContain(DEFAULT_ADMIN)
    expect(script).not.toMatch(/\bcurl\b|\bwget\b/)
  })

  it('sets the small young generation and only variables the sidecar reads', () => {
    expect(image.env.NODE_OPTIONS).toContain('--max-semi-space-size=2')
    expect(unknownVariables(image.env)).toEqual([])
    const opts = parsed([], { ...image.env, MESHGATE_SERVICE: 'productpage' })
    expect(opts.configPath).toBe(image.env.MESHGATE_CONFIG)
  })
})

describe('infra/ecs/task-definition.json', () => {
  const task = readTaskDefinition()
  const byName = (name: string) => task.containerDefinitions.find((c) => c.name === name)
  const meshgate = task.containerDefinitions.find((c) => c.image.includes('meshgate-sidecar'))!
  const xray = task.containerDefinitions.find((c) =>
    c.image.startsWith('public.ecr.aws/xray/aws-xray-daemon'),
  )!
  const app = byName('productpage')!
  const env = ecsEnv(meshgate)

  it('has the app, meshgate and the X-Ray daemon in one awsvpc task', () => {
    expect(task.networkMode).toBe('awsvpc')
    expect(meshgate).toBeDefined()
    expect(meshgate.essential).toBe(true)
    expect(xray).toBeDefined()
    expect(app).toBeDefined()
  })

  it('starts meshgate with variables and flags the sidecar accepts', () => {
    expect(unknownVariables(env)).toEqual([])
    const opts = parsed(meshgate.command ?? [], env)
    expect(Object.keys(mesh.services)).toContain(opts.service)
    expect(opts.app).toBeDefined()
    const listeners = effective(opts)
    // The inbound listener is the task's way in; its port is published.
    expect(meshgate.portMappings?.map((p) => p.containerPort)).toContain(port(listeners.inbound))
    expect(host(listeners.inbound)).toBe('0.0.0.0')
    // Longer than the drain, or ECS kills the sidecar mid-drain.
    expect((meshgate.stopTimeout ?? 30) * 1000).toBeGreaterThan(listeners.drainMs)
  })

  it("health-checks meshgate on /ready at its admin address, and the app waits until it's HEALTHY", () => {
    const listeners = effective(parsed(meshgate.command ?? [], env))
    const hc = meshgate.healthCheck!
    expect(hc.command[0]).toBe('CMD')
    expect(hc.command.slice(1).join(' ')).toContain(`http://${listeners.admin}/ready`)
    expect(app.dependsOn).toContainEqual({ containerName: meshgate.name, condition: 'HEALTHY' })
  })

  it("points the app's HTTP_PROXY at the outbound listener and keeps ECS endpoints direct", () => {
    const listeners = effective(parsed(meshgate.command ?? [], env))
    const appEnv = ecsEnv(app)
    expect(appEnv.HTTP_PROXY).toBe(`http://${listeners.outbound}`)
    expect(host(listeners.outbound)).toBe('127.0.0.1')
    // Credentials and metadata: never through the mesh (the sidecar would answer unknown_service).
    expect(appEnv.NO_PROXY?.split(',')).toEqual(expect.arrayContaining(['169.254.170.2', '169.254.169.254']))
    // The app is reached through meshgate only.
    expect(app.portMappings ?? []).toEqual([])
    const appUrl = new URL(parsed(meshgate.command ?? [], env).app!)
    expect(appUrl.hostname).toBe('127.0.0.1')
  })

  it('sends traces to the X-Ray daemon in the task', () => {
    const udp = xray.portMappings?.find((p) => p.protocol === 'udp')
    expect(udp?.containerPort).toBe(2000)
    expect(env.AWS_XRAY_DAEMON_ADDRESS).toBe(`127.0.0.1:${udp!.containerPort}`)
  })

  it('reads the mesh config from AppConfig: no init container, no config volume', () => {
    expect(env.MESHGATE_CONFIG).toMatch(/^appconfig:\/\/[^/]+\/[^/]+\/[^/]+$/)
    expect(env.AWS_REGION).toBeTruthy()
    expect(task.containerDefinitions.map((c) => c.name).sort()).toEqual([
      'meshgate',
      'productpage',
      'xray-daemon',
    ])
    expect(meshgate.dependsOn ?? []).toEqual([])
    expect(meshgate.mountPoints ?? []).toEqual([])
    expect(task.volumes ?? []).toEqual([])
  })
})

describe('infra/k8s', () => {
  const image = readImage()
  const deployment = findK8s(k8s, 'Deployment')
  const pod = deployment.spec.template.spec
  const meshgate = pod.initContainers?.find((c) => c.image.includes('meshgate-sidecar')) as K8sContainer
  const app = pod.containers[0]!
  const env = k8sEnv(meshgate, { 'status.hostIP': '10.0.0.10' })
  const opts = parsed(meshgate.args ?? [], env)
  const listeners = effective(opts)

  it('parses, every object in a namespace', () => {
    expect(k8sFiles.length).toBeGreaterThanOrEqual(2)
    for (const o of k8s) {
      expect(o.apiVersion, o.file).toBeTruthy()
      expect(o.metadata.name, o.file).toBeTruthy()
      expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe('bookinfo')
    }
  })

  it('carries a mesh config in the ConfigMap that the real loader accepts', () => {
    expect(mesh.mesh).toBe('bookinfo')
    expect(Object.keys(mesh.services)).toContain(opts.service)
  })

  it('runs meshgate as a native sidecar: an init container with restartPolicy Always', () => {
    expect(meshgate).toBeDefined()
    expect(meshgate.restartPolicy).toBe('Always')
    expect(pod.containers.map((c) => c.name)).not.toContain(meshgate.name)
    expect((pod.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThan(listeners.drainMs)
  })

  it('starts meshgate with variables and flags the sidecar accepts, reading the config from AppConfig', () => {
    expect(unknownVariables(env)).toEqual([])
    expect(env.MESHGATE_CONFIG).toMatch(/^appconfig:\/\/[^/]+\/[^/]+\/[^/]+$/)
    expect(env.AWS_REGION).toBeTruthy()
    // The ConfigMap is the file-source alternative, not mounted by default.
    expect(meshgate.volumeMounts ?? []).toEqual([])
  })

  it('probes /ready on the admin port, bound where the kubelet reaches it', () => {
    for (const probe of [meshgate.startupProbe, meshgate.readinessProbe]) {
      expect(probe?.httpGet?.path).toBe('/ready')
      expect(probePort(meshgate, probe!.httpGet!.port)).toBe(port(listeners.admin))
    }
    // Probes come from the node, not from inside the pod: loopback would fail them.
    expect(host(listeners.admin)).toBe('0.0.0.0')
    const ports = meshgate.ports?.map((p) => p.containerPort)
    expect(ports).toContain(port(listeners.inbound))
    expect(ports).toContain(port(listeners.admin))
  })

  it("runs as the image's non-root user", () => {
    const uid = Number(last(image.runtime, 'USER')!.rest.trim().split(':')[0])
    expect(meshgate.securityContext?.runAsNonRoot).toBe(true)
    expect(meshgate.securityContext?.runAsUser).toBe(uid)
  })

  it("passes inbound traffic to the app's port and the app's calls to the outbound listener", () => {
    const appUrl = new URL(opts.app!)
    expect(appUrl.hostname).toBe('127.0.0.1')
    expect(app.ports?.map((p) => p.containerPort)).toContain(Number(appUrl.port))
    const appEnv = k8sEnv(app, {})
    expect(appEnv.HTTP_PROXY).toBe(`http://${listeners.outbound}`)
  })

  // The Services in front of the pods and the mesh's targets: test/infra/connectivity.test.ts.

  it('has an X-Ray daemon on every node where AWS_XRAY_DAEMON_ADDRESS points', () => {
    const ds = findK8s(k8s, 'DaemonSet')
    const daemon = ds.spec.template.spec.containers[0]!
    expect(daemon.image).toMatch(/^public\.ecr\.aws\/xray\/aws-xray-daemon:/)
    const udp = daemon.ports?.find((p) => p.protocol === 'UDP')
    expect(udp?.hostPort).toBe(2000)
    expect(env.AWS_XRAY_DAEMON_ADDRESS).toBe(`10.0.0.10:${udp!.hostPort}`)
  })
})
