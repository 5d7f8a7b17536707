// How a Bookinfo container calls the mesh: plain HTTP to its sidecar's outbound listener with
// `Host: <service>`, forwarding the headers that must follow a request through the mesh (the user, for
// per-user routes, and the trace context), as Istio's Bookinfo services do.
import type { IncomingHttpHeaders } from 'node:http'
import { Agent, request } from 'node:http'

/** Headers copied from the inbound request to every outbound call. */
export const PROPAGATED_HEADERS = ['end-user', 'x-request-id', 'x-amzn-trace-id', 'traceparent', 'tracestate']

export interface MeshReply {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

export interface MeshClient {
  /** GET `http://<service><path>` through the sidecar. A failed call resolves with status 0. */
  get(service: string, path: string, from: IncomingHttpHeaders): Promise<MeshReply>
  close(): void
}

/** `outbound` is the sidecar's `host:port` (MESHGATE_OUTBOUND in a container spec). */
export function createMeshClient(outbound: string): MeshClient {
  const colon = outbound.lastIndexOf(':')
  const host = outbound.slice(0, colon).replace(/^\[|\]$/g, '')
  const port = Number(outbound.slice(colon + 1))
  const agent = new Agent({ keepAlive: true })
  return {
    get(service, path, from) {
      const headers: Record<string, string> = { host: service }
      for (const name of PROPAGATED_HEADERS) {
        const v = from[name]
        if (typeof v === 'string') headers[name] = v
      }
      return new Promise((resolve) => {
        const req = request({ host, port, path, method: 'GET', headers, agent }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          )
          res.on('error', (err) => resolve({ status: 0, headers: {}, body: String(err) }))
        })
        req.on('error', (err) => resolve({ status: 0, headers: {}, body: String(err) }))
        req.end()
      })
    },
    close: () => agent.destroy(),
  }
}
