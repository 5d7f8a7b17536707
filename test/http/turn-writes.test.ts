import { once } from 'node:events'
import { createServer, type Server, Socket } from 'node:net'
import { afterEach, expect, it } from 'vitest'
import { writeAtTurnEnd } from '../../proxy-core/http/turn-writes.ts'

let server: Server | undefined
const sockets: Socket[] = []

afterEach(async () => {
  for (const s of sockets) s.destroy()
  sockets.length = 0
  if (server !== undefined) await new Promise((resolve) => server!.close(resolve))
  server = undefined
})

/** `count` connected client sockets on loopback, and what the server side of each has received. */
async function connections(count: number): Promise<{ clients: Socket[]; received: string[] }> {
  const received: string[] = []
  const accepted: Socket[] = []
  server = createServer((s) => {
    const i = accepted.push(s) - 1
    received[i] = ''
    sockets.push(s)
    s.setEncoding('latin1')
    s.on('data', (d: string) => {
      received[i] += d
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const clients: Socket[] = []
  for (let i = 0; i < count; i++) {
    const c = new Socket()
    sockets.push(c)
    c.connect(port, '127.0.0.1')
    await once(c, 'connect')
    // Accepted in order: wait for the server side of this one before the next connects.
    while (accepted.length <= i) await new Promise((r) => setImmediate(r))
    clients.push(c)
  }
  return { clients, received }
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((r) => setTimeout(r, 2))
  expect(check()).toBe(true)
}

it('holds the writes of one turn until its end, then sends each socket its bytes in order', async () => {
  const { clients, received } = await connections(2)
  const [a, b] = clients as [Socket, Socket]
  writeAtTurnEnd(a, 'a1 ')
  writeAtTurnEnd(b, 'b1 ')
  // Twice on one socket in the turn (pipelined requests), and a plain write after: all in order.
  writeAtTurnEnd(a, 'a2 ')
  a.write('a3')
  // Nothing has left yet: a plain write to a connected idle socket would have gone out at once.
  expect(a.writableLength).toBe(8)
  expect(b.writableLength).toBe(3)
  await new Promise((r) => setImmediate(r))
  expect(a.writableLength).toBe(0)
  expect(b.writableLength).toBe(0)
  expect(a.writableCorked).toBe(0)
  await until(() => received[0] === 'a1 a2 a3' && received[1] === 'b1 ')
  // The next turn holds its writes again.
  writeAtTurnEnd(b, 'b2')
  expect(b.writableLength).toBe(2)
  await until(() => received[1] === 'b1 b2')
})

it('a socket destroyed before the turn ends is let go without an error', async () => {
  const { clients } = await connections(1)
  const c = clients[0]!
  const errors: unknown[] = []
  c.on('error', (e) => errors.push(e))
  writeAtTurnEnd(c, 'never sent')
  c.destroy()
  await new Promise((r) => setImmediate(r))
  await new Promise((r) => setTimeout(r, 10))
  expect(errors).toEqual([])
  expect(c.destroyed).toBe(true)
})
