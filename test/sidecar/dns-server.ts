// A tiny authoritative DNS server on loopback UDP for discovery tests: A and AAAA answers from a
// table the test edits, NXDOMAIN for unknown names, SERVFAIL on demand. Just enough of RFC 1035.

import { createSocket } from 'node:dgram'
import { isIPv6 } from 'node:net'

export interface DnsServer {
  /** `127.0.0.1:PORT`, for Resolver.setServers / MESHGATE_DNS_SERVERS. */
  readonly address: string
  /** Replace the records of `name` (both families; each address picks its own). */
  set(name: string, addresses: string[]): void
  /** While true, every query is answered SERVFAIL. */
  failing: boolean
  queries(): number
  close(): Promise<void>
}

const TYPE_A = 1
const TYPE_AAAA = 28

function ipv6Bytes(addr: string): Buffer {
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g || '0', 16), i * 2)
  })
  return out
}

export async function startDnsServer(): Promise<DnsServer> {
  const records = new Map<string, string[]>()
  let count = 0
  const socket = createSocket('udp4')
  const server: DnsServer = {
    address: '',
    failing: false,
    set(name, addresses) {
      records.set(name.toLowerCase(), addresses)
    },
    queries: () => count,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  }

  socket.on('message', (msg, peer) => {
    count++
    if (msg.length < 17) return
    const id = msg.readUInt16BE(0)
    // QNAME: length-prefixed labels up to a zero byte.
    let off = 12
    const labels: string[] = []
    while (off < msg.length && msg[off]! > 0) {
      labels.push(msg.subarray(off + 1, off + 1 + msg[off]!).toString('ascii'))
      off += 1 + msg[off]!
    }
    off++
    const qtype = msg.readUInt16BE(off)
    const question = msg.subarray(12, off + 4)
    const name = labels.join('.').toLowerCase()
    const known = records.get(name)
    let rcode = 0
    const answers: Buffer[] = []
    if (server.failing) rcode = 2
    else if (known === undefined) rcode = 3
    else {
      for (const addr of known) {
        const v6 = isIPv6(addr)
        if ((qtype === TYPE_A && v6) || (qtype === TYPE_AAAA && !v6)) continue
        const data = v6 ? ipv6Bytes(addr) : Buffer.from(addr.split('.').map(Number))
        const rr = Buffer.alloc(12)
        rr.writeUInt16BE(0xc00c, 0) // pointer to the name in the question
        rr.writeUInt16BE(qtype, 2)
        rr.writeUInt16BE(1, 4) // IN
        rr.writeUInt32BE(1, 6) // TTL 1 s
        rr.writeUInt16BE(data.length, 10)
        answers.push(rr, data)
      }
    }
    const header = Buffer.alloc(12)
    header.writeUInt16BE(id, 0)
    header.writeUInt16BE(0x8400 | rcode, 2) // response, authoritative
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(answers.length / 2, 6)
    socket.send(Buffer.concat([header, question, ...answers]), peer.port, peer.address)
  })
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r))
  ;(server as { address: string }).address = `127.0.0.1:${socket.address().port}`
  return server
}
