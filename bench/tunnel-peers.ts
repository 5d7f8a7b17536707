// The upstream of bench/tunnels.ts, as a process of its own (pinned beside the proxies): a WebSocket
// echo server (the `ws` package) and a TCP echo server. Prints `ready WSPORT TCPPORT` when both listen.

import { createServer } from 'node:net'
import { WebSocketServer } from 'ws'

const [wsPort, tcpPort] = process.argv.slice(2).map(Number) as [number, number]
const wss = new WebSocketServer({ host: '127.0.0.1', port: wsPort, perMessageDeflate: false })
wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })))
const tcp = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  socket.on('error', () => {})
  socket.pipe(socket)
})
let ready = 0
const up = () => {
  if (++ready === 2) console.log(`ready ${wsPort} ${tcpPort}`)
}
wss.once('listening', up)
tcp.listen(tcpPort, '127.0.0.1', up)
process.on('SIGTERM', () => process.exit(0))
