// One HTTP GET from inside a network namespace, printed as one JSON line:
// `node http-get.ts URL [HOST_HEADER] [PROXY_HOST:PORT]` (an empty HOST_HEADER: the URL's). With a proxy, the request goes to the proxy
// in absolute form (`GET http://x/ HTTP/1.1`), as an app with HTTP_PROXY set sends it.
// A connection error prints `{"error": "<code>"}`; the exit code is 0 either way.
import { request } from 'node:http'

const [target, hostHeader, proxy] = process.argv.slice(2)
if (target === undefined) {
  process.stderr.write('usage: http-get.ts URL [HOST_HEADER] [PROXY_HOST:PORT]\n')
  process.exit(2)
}
const url = new URL(target)
const [proxyHost, proxyPort] = proxy === undefined ? [] : proxy.split(':')
const req = request(
  {
    host: proxyHost ?? url.hostname,
    port: Number(proxyPort ?? (url.port || 80)),
    path: proxy === undefined ? `${url.pathname}${url.search}` : url.href,
    headers: { host: hostHeader || url.host },
    timeout: 10_000,
  },
  (res) => {
    let body = ''
    res.setEncoding('utf8')
    res.on('data', (c: string) => {
      body += c
    })
    res.on('end', () => {
      process.stdout.write(`${JSON.stringify({ status: res.statusCode, headers: res.headers, body })}\n`)
    })
  },
)
req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })))
req.on('error', (err: NodeJS.ErrnoException) => {
  process.stdout.write(`${JSON.stringify({ error: err.code ?? err.message })}\n`)
})
req.end()
