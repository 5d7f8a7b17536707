// The app container of a task run on this machine: `node app.ts PORT NEXT_SERVICE`. GET /productpage
// calls http://NEXT_SERVICE/details/0 through HTTP_PROXY in absolute form, as curl, Python requests
// and Go's net/http do. (Node's own fetch with NODE_USE_ENV_PROXY=1 tunnels with CONNECT instead,
// which the sidecar's outbound listener does not take: docs/ecs.md.) Binds 127.0.0.1 only: the
// task's way in is the sidecar.
import { createServer, request } from 'node:http'

const [port, next] = process.argv.slice(2)
const proxy = new URL(process.env.HTTP_PROXY!)

function callNext(): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = `http://${next}/details/0`
    const req = request(
      { host: proxy.hostname, port: Number(proxy.port), path: target, headers: { host: next } },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

createServer(async (req, res) => {
  if (req.url === '/health') return res.end('ok')
  try {
    const upstream = await callNext()
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ app: 'productpage', proxy: process.env.HTTP_PROXY, next: upstream }))
  } catch (e) {
    res.writeHead(502)
    res.end(String(e))
  }
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`app listening on ${port}\n`))
