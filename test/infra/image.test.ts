// The image's process, run the way the container platforms would start it: the bundle that
// `npm run build` makes, started as the Dockerfile's ENTRYPOINT with the image's ENV under the
// environment the ECS task definition and the Kubernetes Deployment set, each in a network namespace
// of its own (the task's or pod's network: the real default ports, no clash with the host). Then the
// health checks exactly as written (Docker's HEALTHCHECK, ECS's healthCheck command, the kubelet's
// httpGet probes from outside the pod) and the traffic paths (the app's HTTP_PROXY, the Service).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildSidecar } from '../../scripts/build.ts'
import { last } from './dockerfile.ts'
import type { Netns, NetnsProcess } from './netns.ts'
import { createNetns, httpGetInNetns, removeStaleNetns, runInNetns, vethLink } from './netns.ts'
import type { K8sContainer } from './specs.ts'
import { ecsEnv, findK8s, k8sEnv, probePort, ROOT, readImage, readK8s, readTaskDefinition } from './specs.ts'

const image = readImage()
const artifacts = join(ROOT, 'test-artifacts', `infra-${process.pid}`)
/** The image's file system, as far as the sidecar sees it: the bundle directory. */
const bundle = join(artifacts, basename(image.entrypoint[1]!))
const configDir = mkdtempSync(join(tmpdir(), 'meshgate-infra-'))
const POD_APP = join(ROOT, 'test', 'infra', 'pod-app.ts')
const namespaces: Netns[] = []

const k8s = readK8s(['configmap.yaml', 'productpage.yaml'])
const meshYaml = findK8s(k8s, 'ConfigMap').data['mesh.yaml']!

/** The command line the ENTRYPOINT runs, with this machine's node and the bundle built for the test. */
function entrypoint(args: string[] = []): string[] {
  const [node, file] = image.entrypoint
  expect(node).toBe('node')
  expect(file).toBe(`/opt/meshgate/${basename(bundle)}`)
  return [bundle, ...args]
}

/**
 * The container's environment: the image's ENV under the spec's (as Docker merges them), PATH for the
 * node binary, and the mesh config from a temp file. The specs read it from AppConfig
 * (MESHGATE_CONFIG=appconfig://…); the same document comes from a file here, where no AppConfig runs
 * inside the test's network namespace.
 */
function containerEnv(spec: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: '/tmp', ...image.env, ...spec }
  env.MESHGATE_CONFIG = join(configDir, 'mesh.yaml')
  return env
}

/** The health-check command of a spec (`["CMD", "node", "-e", …]` or Docker's exec form), run in `ns`. */
async function healthCheck(ns: Netns, command: string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  const argv = command[0] === 'CMD' ? command.slice(1) : command
  expect(argv[0]).toBe('node')
  const result = await runInNetns(ns.name, [process.execPath, ...argv.slice(1)], env)
  return result.code
}

function httpGet(ns: Netns, url: string, host?: string, proxy?: string) {
  return httpGetInNetns(ns.name, url, {
    ...(host === undefined ? {} : { host }),
    ...(proxy === undefined ? {} : { proxy }),
  })
}

beforeAll(async () => {
  removeStaleNetns()
  await buildSidecar(bundle)
  writeFileSync(join(configDir, 'mesh.yaml'), meshYaml)
})

afterAll(() => {
  for (const ns of namespaces) ns.remove()
  rmSync(artifacts, { recursive: true, force: true })
  rmSync(configDir, { recursive: true, force: true })
})

describe('the image in an ECS task (awsvpc: one network for the task)', () => {
  const task = readTaskDefinition()
  const meshgate = task.containerDefinitions.find((c) => c.name === 'meshgate')!
  const app = task.containerDefinitions.find((c) => c.name === 'productpage')!
  let ns: Netns
  let sidecar: NetnsProcess
  const env = containerEnv(ecsEnv(meshgate))

  beforeAll(async () => {
    ns = createNetns('ecs')
    namespaces.push(ns)
    sidecar = ns.node(entrypoint(meshgate.command), env)
    await sidecar.waitForLine(/"event":"listening"/)
  })

  it('listens where the task definition says', async () => {
    const listening = JSON.parse(await sidecar.waitForLine(/"event":"listening"/)) as Record<string, string>
    expect(listening).toMatchObject({
      service: env.MESHGATE_SERVICE,
      outbound: env.MESHGATE_OUTBOUND,
      inbound: env.MESHGATE_INBOUND,
      admin: env.MESHGATE_ADMIN,
    })
  })

  it("passes ECS's healthCheck and the image's HEALTHCHECK", async () => {
    expect(await healthCheck(ns, meshgate.healthCheck!.command, env)).toBe(0)
    expect(await healthCheck(ns, last(image.runtime, 'HEALTHCHECK')!.exec!, env)).toBe(0)
    const ready = await httpGet(ns, `http://${env.MESHGATE_ADMIN}/ready`)
    expect(ready.status).toBe(200)
  })

  it("takes the app's HTTP_PROXY requests and refuses hosts outside the mesh", async () => {
    const proxy = new URL(ecsEnv(app).HTTP_PROXY!).host
    const r = await httpGet(ns, 'http://not-in-the-mesh.invalid/x', undefined, proxy)
    expect(r.error).toBeUndefined()
    expect(r.status).toBe(404)
    expect(r.headers?.['x-meshgate-error']).toBe('unknown_service')
  })

  it('drains on SIGTERM, exits 0, and then fails the health check', async () => {
    const ended = await sidecar.stop()
    expect(ended).toEqual({ code: 0, signal: null })
    expect(await healthCheck(ns, meshgate.healthCheck!.command, env)).not.toBe(0)
  })
})

describe('the image as a native sidecar in a Kubernetes pod', () => {
  const deployment = findK8s(k8s, 'Deployment')
  const service = findK8s(k8s, 'Service')
  const pod = deployment.spec.template.spec
  const meshgate = pod.initContainers!.find((c) => c.name === 'meshgate') as K8sContainer
  // The pod's network and the node's, linked as the CNI would: the kubelet probes from the node side.
  const NODE_IP = '10.78.0.1'
  const POD_IP = '10.78.0.2'
  const env = containerEnv({
    ...k8sEnv(meshgate, { 'status.hostIP': NODE_IP }),
    KUBERNETES_SERVICE_HOST: '10.100.0.1',
  })
  let podNs: Netns
  let nodeNs: Netns
  let sidecar: NetnsProcess

  beforeAll(async () => {
    podNs = createNetns('pod')
    namespaces.push(podNs)
    nodeNs = createNetns('node')
    namespaces.push(nodeNs)
    vethLink(nodeNs, 'veth-pod', `${NODE_IP}/24`, podNs, 'eth0', `${POD_IP}/24`)
    const appUrl = new URL(env.MESHGATE_APP!)
    const app = podNs.node([POD_APP, 'productpage', appUrl.host], { PATH: process.env.PATH })
    await app.waitForLine(/"event":"listening"/)
    sidecar = podNs.node(entrypoint(meshgate.args), env)
    await sidecar.waitForLine(/"event":"listening"/)
  })

  it('answers the startup and readiness probes from the node', async () => {
    for (const probe of [meshgate.startupProbe!, meshgate.readinessProbe!]) {
      const r = await httpGet(
        nodeNs,
        `http://${POD_IP}:${probePort(meshgate, probe.httpGet!.port)}${probe.httpGet!.path}`,
      )
      expect(r.status).toBe(200)
    }
    expect(await healthCheck(podNs, last(image.runtime, 'HEALTHCHECK')!.exec!, env)).toBe(0)
  })

  it("takes the Service's traffic on the inbound port and passes it to the app", async () => {
    const targetPort = probePort(meshgate, service.spec.ports[0]!.targetPort)
    const r = await httpGet(nodeNs, `http://${POD_IP}:${targetPort}/productpage`, 'productpage')
    expect(r.status).toBe(200)
    const seen = JSON.parse(r.body!) as { app: string; url: string; headers: Record<string, string> }
    expect(seen.app).toBe('productpage')
    expect(seen.url).toBe('/productpage')
    expect(seen.headers['x-forwarded-for']).toBe(NODE_IP)
    expect(seen.headers['x-amzn-trace-id']).toMatch(/^Root=1-/)
  })

  it('keeps the outbound listener inside the pod', async () => {
    const outboundPort = Number(env.MESHGATE_OUTBOUND!.split(':')[1])
    const r = await httpGet(nodeNs, `http://${POD_IP}:${outboundPort}/`, 'productpage')
    expect(r.error).toBe('ECONNREFUSED')
  })

  it('drains on SIGTERM and exits 0', async () => {
    expect(await sidecar.stop()).toEqual({ code: 0, signal: null })
  })
})
