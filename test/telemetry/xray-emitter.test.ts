import { createSocket, type Socket } from 'node:dgram'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createXRayEmitter,
  parseDaemonAddress,
  type XRayEmitter,
} from '../../proxy-core/telemetry/xray-emitter.ts'

describe('parseDaemonAddress', () => {
  it('reads host:port and the tcp:/udp: pair', () => {
    expect(parseDaemonAddress('127.0.0.1:2000')).toEqual({ host: '127.0.0.1', port: 2000 })
    expect(parseDaemonAddress('xray.local:3000')).toEqual({ host: 'xray.local', port: 3000 })
    expect(parseDaemonAddress('tcp:127.0.0.1:2000 udp:127.0.0.2:2001')).toEqual({
      host: '127.0.0.2',
      port: 2001,
    })
    expect(parseDaemonAddress('udp:10.0.0.1:2002 tcp:10.0.0.1:2000')).toEqual({
      host: '10.0.0.1',
      port: 2002,
    })
    expect(parseDaemonAddress('[::1]:2000')).toEqual({ host: '::1', port: 2000 })
  })

  it('refuses what it cannot use', () => {
    for (const bad of [
      '',
      'localhost',
      ':2000',
      '127.0.0.1:0',
      '127.0.0.1:70000',
      'tcp:127.0.0.1:2000',
      'a:b',
    ]) {
      expect(parseDaemonAddress(bad), bad).toBeUndefined()
    }
  })
})

describe('createXRayEmitter', () => {
  let server: Socket | undefined
  let emitter: XRayEmitter | undefined
  afterEach(() => {
    emitter?.close()
    server?.close()
    emitter = undefined
    server = undefined
  })

  async function listen(): Promise<{ port: number; next: () => Promise<string> }> {
    const s = createSocket('udp4')
    server = s
    const queue: string[] = []
    const waiters: ((m: string) => void)[] = []
    s.on('message', (msg) => {
      const w = waiters.shift()
      if (w) w(msg.toString('utf8'))
      else queue.push(msg.toString('utf8'))
    })
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
    const { port } = s.address() as AddressInfo
    return {
      port,
      next: () => {
        const m = queue.shift()
        return m !== undefined ? Promise.resolve(m) : new Promise((resolve) => waiters.push(resolve))
      },
    }
  }

  it('sends one datagram per document: header line, newline, JSON', async () => {
    const daemon = await listen()
    emitter = createXRayEmitter(`tcp:127.0.0.1:1 udp:127.0.0.1:${daemon.port}`)
    const doc = { name: 'reviews', id: '70de5b6f19ff9a0a', trace_id: '1-5759e988-bd862e3fe1be46a994272793' }
    emitter.send(doc)
    emitter.send({ ...doc, id: '70de5b6f19ff9a0b' })
    const first = await daemon.next()
    const second = await daemon.next()
    const [header, body] = first.split('\n')
    expect(header).toBe('{"format":"json","version":1}')
    expect(JSON.parse(body!)).toEqual(doc)
    expect(JSON.parse(second.split('\n')[1]!).id).toBe('70de5b6f19ff9a0b')
    expect(emitter.stats()).toEqual({ sent: 2, errors: 0 })
  })

  it('never throws: bad address, oversized datagram, use after close', async () => {
    const bad = createXRayEmitter('not an address')
    expect(() => bad.send({})).not.toThrow()
    expect(bad.stats().errors).toBe(1)
    bad.close()

    const daemon = await listen()
    emitter = createXRayEmitter(`127.0.0.1:${daemon.port}`)
    // Over the 64 KB a UDP datagram can carry: the send fails in its callback, counted.
    emitter.send({ big: 'x'.repeat(70_000) })
    emitter.send({ ok: true })
    expect(JSON.parse((await daemon.next()).split('\n')[1]!)).toEqual({ ok: true })
    await new Promise((r) => setImmediate(r))
    expect(emitter.stats().errors).toBeGreaterThanOrEqual(1)
    emitter.close()
    expect(() => emitter!.send({ late: true })).not.toThrow()
  })
})
