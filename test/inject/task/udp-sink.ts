// The X-Ray daemon's socket for a task run on this machine: UDP on HOST:PORT, one line per datagram.
import { createSocket } from 'node:dgram'

const [host, port] = process.argv.slice(2)
const socket = createSocket('udp4')
socket.on('message', (m) => process.stdout.write(`segment ${m.length} bytes\n`))
socket.bind(Number(port), host, () => process.stdout.write(`daemon listening on ${port}/udp\n`))
