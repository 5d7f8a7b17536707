// Another mesh service the task's app calls ("details"), on HOST:PORT inside the task's namespace.
import { createServer } from 'node:http'

const [host, port] = process.argv.slice(2)
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ service: 'details', url: req.url, host: req.headers.host }))
}).listen(Number(port), host, () => process.stdout.write(`details listening on ${port}\n`))
