// A local Amazon ECS endpoint for RegisterTaskDefinition, speaking what the real @aws-sdk/client-ecs
// sends (awsJson1_1): POST /, `content-type: application/x-amz-json-1.1`,
// `x-amz-target: AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition`, the input as JSON. It
// checks the task definition the way ECS's API does before accepting it (the rules below, from the
// ECS API reference's ContainerDefinition, ContainerDependency, PortMapping and HealthCheck pages),
// and answers like ECS: the definition with its ARN, revision and status, or a 400
// `ClientException` naming the first problem. No signature check: any credentials pass.

import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

export const ECS_TARGET_PREFIX = 'AmazonEC2ContainerServiceV20141113.'

type Json = Record<string, any>

export interface EcsEndpoint {
  /** `http://127.0.0.1:<port>`: the client's `endpoint`. */
  url: string
  /** Every task definition registered, as ECS stored it. */
  readonly registered: Json[]
  close(): Promise<void>
}

const NAME = /^[A-Za-z0-9_-]{1,255}$/
const CONDITIONS = ['START', 'COMPLETE', 'SUCCESS', 'HEALTHY']
/** Fargate's task sizes: CPU units → the memory (MiB) each allows. */
const FARGATE_SIZES: Record<string, (m: number) => boolean> = {
  '256': (m) => [512, 1024, 2048].includes(m),
  '512': (m) => m >= 1024 && m <= 4096 && m % 1024 === 0,
  '1024': (m) => m >= 2048 && m <= 8192 && m % 1024 === 0,
  '2048': (m) => m >= 4096 && m <= 16384 && m % 1024 === 0,
  '4096': (m) => m >= 8192 && m <= 30720 && m % 1024 === 0,
}

const int = (v: unknown, min: number, max: number) =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max

/** The first reason ECS would refuse this RegisterTaskDefinition input, or undefined. */
export function taskDefinitionProblem(td: Json): string | undefined {
  if (typeof td.family !== 'string' || !NAME.test(td.family))
    return 'Family contains invalid characters or is missing (up to 255 letters, numbers, hyphens and underscores)'
  const containers = td.containerDefinitions
  if (!Array.isArray(containers) || containers.length === 0) return 'Container definitions must not be empty'
  if (containers.length > 10) return 'Too many containers: a task definition holds at most 10'
  const mode = td.networkMode ?? 'bridge'
  if (!['bridge', 'host', 'awsvpc', 'none'].includes(mode)) return `Invalid networkMode ${mode}`
  const compat: string[] = td.requiresCompatibilities ?? []
  if (compat.includes('FARGATE')) {
    if (mode !== 'awsvpc') return 'Fargate requires networkMode awsvpc'
    const fits = FARGATE_SIZES[String(td.cpu)]
    if (fits === undefined || !fits(Number(td.memory)))
      return `Invalid CPU or memory value specified for Fargate: ${td.cpu}/${td.memory}`
  }
  const volumes = new Set((td.volumes ?? []).map((v: Json) => v.name))
  const names = new Map<string, Json>()
  for (const c of containers) {
    if (typeof c.name !== 'string' || !NAME.test(c.name))
      return `Container name ${JSON.stringify(c.name)} is invalid`
    if (names.has(c.name)) return `Duplicate container name: ${c.name}`
    if (typeof c.image !== 'string' || c.image === '') return `Container ${c.name}: image is required`
    names.set(c.name, c)
  }
  if (!containers.some((c: Json) => c.essential !== false))
    return 'At least one essential container is required'
  const portNames = new Set<string>()
  let totalMemory = 0
  let totalCpu = 0
  for (const c of containers) {
    const where = `Container ${c.name}`
    for (const e of c.environment ?? [])
      if (typeof e.name !== 'string' || typeof e.value !== 'string')
        return `${where}: environment entries need a name and a value`
    for (const p of c.portMappings ?? []) {
      if (!int(p.containerPort, 1, 65535)) return `${where}: containerPort ${p.containerPort} is invalid`
      if (p.protocol !== undefined && !['tcp', 'udp'].includes(p.protocol))
        return `${where}: protocol ${p.protocol} is invalid`
      if (mode === 'awsvpc' && p.hostPort !== undefined && p.hostPort !== p.containerPort)
        return `${where}: in awsvpc mode hostPort must equal containerPort`
      if (p.appProtocol !== undefined) {
        if (!['http', 'http2', 'grpc'].includes(p.appProtocol))
          return `${where}: appProtocol ${p.appProtocol} is invalid`
        if (p.name === undefined) return `${where}: a port mapping with appProtocol needs a name`
      }
      if (p.name !== undefined) {
        if (portNames.has(p.name)) return `Duplicate port mapping name: ${p.name}`
        portNames.add(p.name)
      }
    }
    for (const m of c.mountPoints ?? [])
      if (!volumes.has(m.sourceVolume))
        return `${where}: mountPoint sourceVolume ${m.sourceVolume} is not a task volume`
    if (c.healthCheck !== undefined) {
      const h = c.healthCheck
      if (!Array.isArray(h.command) || !['CMD', 'CMD-SHELL'].includes(h.command[0]) || h.command.length < 2)
        return `${where}: healthCheck command must start with CMD or CMD-SHELL`
      if (h.interval !== undefined && !int(h.interval, 5, 300))
        return `${where}: healthCheck interval must be 5-300`
      if (h.timeout !== undefined && !int(h.timeout, 2, 60))
        return `${where}: healthCheck timeout must be 2-60`
      if (h.retries !== undefined && !int(h.retries, 1, 10))
        return `${where}: healthCheck retries must be 1-10`
      if (h.startPeriod !== undefined && !int(h.startPeriod, 0, 300))
        return `${where}: healthCheck startPeriod must be 0-300`
    }
    if (c.stopTimeout !== undefined && !int(c.stopTimeout, 2, 120))
      return `${where}: stopTimeout must be 2-120`
    if (c.memory !== undefined && c.memoryReservation !== undefined && c.memory < c.memoryReservation)
      return `${where}: memory must be at least memoryReservation`
    for (const d of c.dependsOn ?? []) {
      if (!CONDITIONS.includes(d.condition)) return `${where}: dependsOn condition ${d.condition} is invalid`
      const target = names.get(d.containerName)
      if (target === undefined)
        return `${where}: dependsOn names ${d.containerName}, which is not a container`
      if (d.containerName === c.name) return `${where}: a container cannot depend on itself`
      if ((d.condition === 'COMPLETE' || d.condition === 'SUCCESS') && target.essential !== false)
        return `${where}: ${d.condition} cannot be set on the essential container ${target.name}`
      if (d.condition === 'HEALTHY' && target.healthCheck === undefined)
        return `${where}: HEALTHY needs a health check on ${target.name}`
    }
    totalMemory += c.memoryReservation ?? c.memory ?? 0
    totalCpu += c.cpu ?? 0
  }
  if (td.memory !== undefined && totalMemory > Number(td.memory))
    return `The containers reserve more memory than the task's ${td.memory}`
  if (td.cpu !== undefined && totalCpu > Number(td.cpu))
    return `The containers ask for more CPU than the task's ${td.cpu}`
  // No cycles: ECS must be able to order the start.
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (n: string): boolean => {
    if (state.get(n) === 'done') return true
    if (state.get(n) === 'visiting') return false
    state.set(n, 'visiting')
    for (const d of names.get(n)!.dependsOn ?? []) if (!visit(d.containerName)) return false
    state.set(n, 'done')
    return true
  }
  for (const n of names.keys()) if (!visit(n)) return 'Container dependencies form a cycle'
  return undefined
}

export async function startEcsEndpoint(): Promise<EcsEndpoint> {
  const registered: Json[] = []
  const revisions = new Map<string, number>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const reply = (status: number, body: Json) => {
        res.writeHead(status, {
          'content-type': 'application/x-amz-json-1.1',
          'x-amzn-requestid': `req-${registered.length}`,
        })
        res.end(JSON.stringify(body))
      }
      const fail = (type: string, message: string) => reply(400, { __type: type, message })
      const target = String(req.headers['x-amz-target'] ?? '')
      if (
        req.method !== 'POST' ||
        !String(req.headers['content-type']).startsWith('application/x-amz-json-1.1')
      )
        return fail('SerializationException', 'want POST with application/x-amz-json-1.1')
      if (target !== `${ECS_TARGET_PREFIX}RegisterTaskDefinition`)
        return fail('UnknownOperationException', `unsupported operation ${target}`)
      let input: Json
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        return fail('SerializationException', 'the body is not JSON')
      }
      const problem = taskDefinitionProblem(input)
      if (problem !== undefined) return fail('ClientException', problem)
      const revision = (revisions.get(input.family) ?? 0) + 1
      revisions.set(input.family, revision)
      const { tags, ...definition } = input
      const stored = {
        ...definition,
        taskDefinitionArn: `arn:aws:ecs:us-east-1:123456789012:task-definition/${input.family}:${revision}`,
        revision,
        status: 'ACTIVE',
        compatibilities: ['EC2', ...(input.networkMode === 'awsvpc' ? ['FARGATE'] : [])],
        registeredAt: Date.now() / 1000,
        registeredBy: 'arn:aws:iam::123456789012:root',
      }
      registered.push(stored)
      reply(200, { taskDefinition: stored, tags: tags ?? [] })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    registered,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
