// A local AWS Cloud Map data plane that speaks what the real @aws-sdk/client-servicediscovery sends for
// DiscoverInstances: awsJson1_1 (`POST /`, `content-type: application/x-amz-json-1.1`,
// `x-amz-target: Route53AutoNaming_v20170314.DiscoverInstances`, SigV4 for service
// `servicediscovery`), answered with `{Instances, InstancesRevision}` and filtered the way the API
// reference describes (QueryParameters all must match; OptionalParameters apply only when some
// instance matches them too; HealthStatus HEALTHY / UNHEALTHY / ALL / HEALTHY_OR_ELSE_ALL; MaxResults
// default 100). The registry is set by the test; failures can be switched on. Errors use the
// awsJson1_1 shape (`__type` and `x-amzn-errortype`).

import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

export const CLOUDMAP_TARGET_PREFIX = 'Route53AutoNaming_v20170314.'
const MAX_BODY = 1 << 20

export type InstanceHealth = 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN'

export interface DiscoverCall {
  headers: IncomingHttpHeaders
  body: {
    NamespaceName?: unknown
    ServiceName?: unknown
    HealthStatus?: unknown
    QueryParameters?: Record<string, string>
    OptionalParameters?: Record<string, string>
    MaxResults?: unknown
  }
  /** The status this endpoint answered with. */
  status: number
}

export interface CloudMapError {
  status: number
  /** e.g. `RequestLimitExceeded`, `ServiceNotFound`, `InternalFailure`. */
  code: string
  message?: string
}

export interface CloudMapEndpoint {
  /** `http://127.0.0.1:PORT`: for `AWS_ENDPOINT_URL_SERVICEDISCOVERY` or the client's `endpoint`. */
  url: string
  /** Creates the namespace and service if new; replaces an instance with the same id. */
  register(
    namespace: string,
    service: string,
    instanceId: string,
    attributes: Record<string, string>,
    health?: InstanceHealth,
  ): void
  deregister(namespace: string, service: string, instanceId: string): void
  setHealth(namespace: string, service: string, instanceId: string, health: InstanceHealth): void
  /** A service with no health check: HealthStatus filters are ignored for it (the API reference). */
  setHealthChecked(namespace: string, service: string, checked: boolean): void
  /** Every DiscoverInstances call, answered or failed, in arrival order. */
  readonly calls: DiscoverCall[]
  /** While set, every call is answered with this error. */
  failWith(error: CloudMapError | undefined): void
  /** While true, calls are read and never answered (a stuck control plane). */
  hang(on: boolean): void
  close(): Promise<void>
}

export const THROTTLED: CloudMapError = { status: 400, code: 'RequestLimitExceeded', message: 'slow down' }
export const INTERNAL: CloudMapError = { status: 500, code: 'InternalFailure', message: 'boom' }

interface Service {
  healthChecked: boolean
  revision: number
  instances: Map<string, { attributes: Record<string, string>; health: InstanceHealth }>
}

function matchesAll(attributes: Record<string, string>, filter: Record<string, string> | undefined): boolean {
  for (const [k, v] of Object.entries(filter ?? {})) if (attributes[k] !== v) return false
  return true
}

export async function startCloudMapEndpoint(): Promise<CloudMapEndpoint> {
  const namespaces = new Map<string, Map<string, Service>>()
  const calls: DiscoverCall[] = []
  let failure: CloudMapError | undefined
  let hanging = false

  const serviceOf = (namespace: string, service: string, create: boolean): Service | undefined => {
    let ns = namespaces.get(namespace)
    if (ns === undefined && create) {
      ns = new Map()
      namespaces.set(namespace, ns)
    }
    let svc = ns?.get(service)
    if (svc === undefined && create && ns !== undefined) {
      svc = { healthChecked: true, revision: 0, instances: new Map() }
      ns.set(service, svc)
    }
    return svc
  }

  function discover(body: DiscoverCall['body']): { status: number; json: object } {
    const invalid = (message: string) => ({ status: 400, json: { __type: 'InvalidInput', message } })
    if (typeof body.NamespaceName !== 'string' || body.NamespaceName === '')
      return invalid('NamespaceName is required')
    if (typeof body.ServiceName !== 'string' || body.ServiceName === '')
      return invalid('ServiceName is required')
    const health = body.HealthStatus ?? 'ALL'
    if (!['HEALTHY', 'UNHEALTHY', 'ALL', 'HEALTHY_OR_ELSE_ALL'].includes(health as string))
      return invalid(`bad HealthStatus ${String(health)}`)
    const max = body.MaxResults ?? 100
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > 1000)
      return invalid('MaxResults must be 1 to 1000')
    const ns = namespaces.get(body.NamespaceName)
    if (ns === undefined)
      return { status: 400, json: { __type: 'NamespaceNotFound', message: 'no such namespace' } }
    const svc = ns.get(body.ServiceName)
    if (svc === undefined)
      return { status: 400, json: { __type: 'ServiceNotFound', message: 'no such service' } }

    let found = [...svc.instances].filter(([, i]) => matchesAll(i.attributes, body.QueryParameters))
    const preferred = found.filter(([, i]) => matchesAll(i.attributes, body.OptionalParameters))
    if (preferred.length > 0) found = preferred
    if (svc.healthChecked && health !== 'ALL') {
      const healthy = found.filter(([, i]) => i.health === 'HEALTHY')
      if (health === 'HEALTHY') found = healthy
      else if (health === 'UNHEALTHY') found = found.filter(([, i]) => i.health === 'UNHEALTHY')
      else if (healthy.length > 0) found = healthy
    }
    return {
      status: 200,
      json: {
        Instances: found.slice(0, max).map(([id, i]) => ({
          InstanceId: id,
          NamespaceName: body.NamespaceName,
          ServiceName: body.ServiceName,
          HealthStatus: i.health,
          Attributes: i.attributes,
        })),
        InstancesRevision: svc.revision,
      },
    }
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    let size = 0
    const reply = (status: number, json: object) => {
      const type = (json as { __type?: string }).__type
      res.writeHead(status, {
        'content-type': 'application/x-amz-json-1.1',
        'x-amzn-requestid': `req-${calls.length}`,
        ...(type === undefined ? {} : { 'x-amzn-errortype': type }),
      })
      res.end(JSON.stringify(json))
    }
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) req.destroy()
      else chunks.push(c)
    })
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '')
      if (req.method !== 'POST' || req.url !== '/' || !target.startsWith(CLOUDMAP_TARGET_PREFIX)) {
        reply(400, { __type: 'UnknownOperationException', message: `no target ${target}` })
        return
      }
      if (req.headers['content-type'] !== 'application/x-amz-json-1.1') {
        reply(400, { __type: 'SerializationException', message: 'want application/x-amz-json-1.1' })
        return
      }
      const auth = String(req.headers.authorization ?? '')
      if (
        !/^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/[a-z0-9-]+\/servicediscovery\/aws4_request,/.test(auth)
      ) {
        reply(403, {
          __type: 'MissingAuthenticationTokenException',
          message: 'no SigV4 for servicediscovery',
        })
        return
      }
      let body: DiscoverCall['body']
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        reply(400, { __type: 'SerializationException', message: 'bad JSON' })
        return
      }
      if (hanging) {
        calls.push({ headers: req.headers, body, status: 0 })
        return
      }
      const op = target.slice(CLOUDMAP_TARGET_PREFIX.length)
      if (op !== 'DiscoverInstances') {
        reply(400, { __type: 'UnknownOperationException', message: `not served here: ${op}` })
        return
      }
      const answer =
        failure === undefined
          ? discover(body)
          : {
              status: failure.status,
              json: { __type: failure.code, message: failure.message ?? failure.code },
            }
      calls.push({ headers: req.headers, body, status: answer.status })
      reply(answer.status, answer.json)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    register(namespace, service, instanceId, attributes, health = 'HEALTHY') {
      const svc = serviceOf(namespace, service, true)!
      svc.instances.set(instanceId, { attributes: { ...attributes }, health })
      svc.revision++
    },
    deregister(namespace, service, instanceId) {
      const svc = serviceOf(namespace, service, false)
      if (svc?.instances.delete(instanceId)) svc.revision++
    },
    setHealth(namespace, service, instanceId, health) {
      const instance = serviceOf(namespace, service, false)?.instances.get(instanceId)
      if (instance === undefined) throw new Error(`no instance ${instanceId}`)
      // Health changes leave InstancesRevision alone (the API reference).
      instance.health = health
    },
    setHealthChecked(namespace, service, checked) {
      serviceOf(namespace, service, true)!.healthChecked = checked
    },
    calls,
    failWith(error) {
      failure = error
    },
    hang(on) {
      hanging = on
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
