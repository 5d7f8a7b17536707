// A tiny app for "pods" in network namespaces: `node pod-app.ts NAME HOST:PORT [NEXT_SERVICE OUTBOUND]`.
// Answers every request with JSON: its name, the request's method, url and headers, and, when a next
// service is named, that service's answer, fetched through the pod's own outbound sidecar the way a
// mesh app does it (`Host: <service>`, the incoming trace header passed on).
import { createServer, request } from 'node:http'

const [name, listen, next, outbound] = process.argv.slice(2)
if (name === undefined || listen === undefined) {
  process.stderr.write('usage: pod-app.ts NAME HOST:PORT [NEXT_SERVICE OUTBOUND_HOST:PORT]\n')
  process.exit(2)
}
const colon = listen.lastIndexOf(':')

function callNext(path: string, traceId: string | undefined): Promise<unknown> {
  const [host, port] = outbound!.split(':')
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        path,
        headers: { host: next!, ...(traceId === undefined ? {} : { 'x-amzn-trace-id': traceId }) },
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => {
          body += c
        })
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode, body: JSON.parse(body) as unknown })
          } catch {
            resolve({ status: res.statusCode, body })
          }
        })
      },
    )
    req.on('error', reject)
    req.end()
  })
}

const server = createServer((req, res) => {
  void (async () => {
    for await (const _ of req) {
      // Drain the body; only the headers matter here.
    }
    const trace = req.headers['x-amzn-trace-id']
    const downstream =
      next === undefined
        ? undefined
        : await callNext(req.url ?? '/', typeof trace === 'string' ? trace : undefined)
    const body = JSON.stringify({
      app: name,
      method: req.method,
      url: req.url,
      headers: req.headers,
      downstream,
    })
    res.writeHead(200, { 'content-type': 'application/json', 'x-app': name })
    res.end(body)
  })().catch((err: unknown) => {
    res.writeHead(500, { 'content-type': 'text/plain' })
    res.end(String(err))
  })
})
server.listen(Number(listen.slice(colon + 1)), listen.slice(0, colon), () => {
  process.stdout.write(`${JSON.stringify({ event: 'listening', app: name, address: listen })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
