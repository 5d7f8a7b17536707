// One TLS (or deliberately not TLS) connection from inside a network namespace, printed as one JSON line.
//   node tls-probe.ts tls HOST:PORT CA [CERT KEY]   a handshake; prints the server's serial, the
//                                                   negotiated ALPN, or the error that stopped it
//   node tls-probe.ts raw HOST:PORT HEX             sends the bytes HEX spells, prints what
//                                                   came back and who closed the connection
//   node tls-probe.ts silent HOST:PORT              connects and sends nothing; prints who closed
// Every probe gives up after 10 s (`closedBy: "probe"`); the exit code is 0 either way.
import { readFileSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'

const [mode, address, ...rest] = process.argv.slice(2)
if (mode === undefined || address === undefined) {
  process.stderr.write('usage: tls-probe.ts tls|raw|silent HOST:PORT ...\n')
  process.exit(2)
}
const colon = address.lastIndexOf(':')
const host = address.slice(0, colon)
const port = Number(address.slice(colon + 1))
const LIMIT_MS = 10_000

function print(value: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(value)}\n`)
  process.exit(0)
}

if (mode === 'tls') {
  const [ca, cert, key] = rest
  const socket = tlsConnect({
    host,
    port,
    ca: readFileSync(ca!),
    ...(cert === undefined ? {} : { cert: readFileSync(cert), key: readFileSync(key!) }),
    // It speaks HTTP/1.1 once connected, so that is all it offers (a listener would pick h2 first).
    ALPNProtocols: ['http/1.1'],
    checkServerIdentity: () => undefined,
  })
  const timer = setTimeout(() => print({ error: 'timeout' }), LIMIT_MS)
  socket.on('secureConnect', () => {
    const peer = socket.getPeerCertificate()
    // A server that wants a client certificate refuses a missing one after the handshake (TLS 1.3):
    // a request shows whether the connection is really usable.
    socket.write('GET / HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n')
    let reply = ''
    socket.on('data', (c: Buffer) => {
      reply += c.toString('latin1')
    })
    socket.on('close', () => {
      clearTimeout(timer)
      print({
        serial: peer.serialNumber,
        alpn: socket.alpnProtocol,
        status: Number(reply.slice(9, 12)) || null,
      })
    })
  })
  socket.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(timer)
    print({ error: err.code ?? err.message })
  })
} else {
  const socket = netConnect({ host, port })
  let reply = ''
  let closedBy = 'server'
  const timer = setTimeout(() => {
    closedBy = 'probe'
    socket.destroy()
  }, LIMIT_MS)
  socket.on('connect', () => {
    if (mode === 'raw') socket.write(Buffer.from(rest[0] ?? '', 'hex'))
  })
  socket.on('data', (c: Buffer) => {
    reply += c.toString('latin1')
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    clearTimeout(timer)
    // The first bytes only: a TLS alert is binary, a 400 would be text.
    print({ closedBy, reply: reply.slice(0, 64) })
  })
}
