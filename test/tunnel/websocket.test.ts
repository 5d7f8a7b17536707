// WebSocket and other HTTP/1.1 upgrades through the sidecar as a real process: the `ws` package as
// client and servers, routed on the upgrade request (weights), tunnelled with an idle timeout, and
// the upstream's refusals passed back as ordinary responses.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import {
  type RecordingUpstream,
  startRecordingUpstream,
  startWsEcho,
  type WsEcho,
} from '../helpers/tunnel-peers.ts'

let a: WsEcho
let b: WsEcho
let refusing: RecordingUpstream
let sidecar: SidecarProcess
const files = meshDir()
let mesh: (chatTo: unknown) => unknown

beforeAll(async () => {
  a = await startWsEcho('a')
  b = await startWsEcho('b')
  refusing = await startRecordingUpstream(() => 'HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\nno')
  mesh = (chatTo) => ({
    version: 1,
    mesh: 'ws',
    services: {
      chat: {
        targets: { a: { http: a.url }, b: { http: b.url } },
        routes: [{ name: 'split', to: chatTo, retries: { attempts: 0 } }],
      },
      quiet: {
        targets: { a: { http: a.url } },
        routes: [{ name: 'short', to: 'a', idleTimeout: '300ms' }],
      },
      fn: { targets: { l: { lambda: 'chat-fn' } } },
      refusing: { targets: { r: { http: refusing.url } } },
    },
  })
  const configPath = files.write('mesh.json', mesh({ a: 90, b: 10 }))
  sidecar = await startSidecarProcess({ configPath, service: 'chat', app: a.url })
})

afterAll(async () => {
  await sidecar?.stop()
  await Promise.all([a?.close(), b?.close(), refusing?.close()])
  files.remove()
})

/** Opens a WebSocket through `base` with `Host: host`, sends `msg`, resolves with the first answer. */
function echoOnce(base: string, host: string, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http:', 'ws:')}/socket`, { headers: { host } })
    ws.once('open', () => ws.send(msg))
    ws.once('message', (data) => {
      resolve(data.toString())
      ws.close()
    })
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)))
    ws.once('error', reject)
  })
}

describe('WebSocket through the sidecar', () => {
  it('splits upgrades by the route weights (90/10 over 400 upgrades)', async () => {
    const total = 400
    const seen = { a: 0, b: 0 }
    let next = 0
    const worker = async () => {
      while (next < total) {
        const i = next++
        const answer = await echoOnce(sidecar.outbound, 'chat', `m${i}`)
        const [server, echoed] = answer.split(':')
        expect(echoed).toBe(`m${i}`)
        seen[server as 'a' | 'b']++
      }
    }
    await Promise.all(Array.from({ length: 16 }, worker))
    expect(seen.a + seen.b).toBe(total)
    // Binomial(400, 0.1): mean 40, sd 6; ±3.5 sd.
    expect(seen.b).toBeGreaterThanOrEqual(19)
    expect(seen.b).toBeLessThanOrEqual(61)
  })

  it('carries many messages both ways on one tunnel, in order', async () => {
    const ws = new WebSocket(`${sidecar.outbound.replace('http:', 'ws:')}/socket`, {
      headers: { host: 'quiet' },
    })
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const got: string[] = []
    const all = new Promise<void>((resolve) =>
      ws.on('message', (d) => {
        got.push(d.toString())
        if (got.length === 200) resolve()
      }),
    )
    for (let i = 0; i < 200; i++) ws.send(`${i}:${'x'.repeat(i * 50)}`)
    await all
    expect(got.map((m) => Number(m.split(':')[1]))).toEqual(Array.from({ length: 200 }, (_, i) => i))
    ws.close()
  })

  it('closes a tunnel idle for its route idleTimeout, after the traffic it carried', async () => {
    const events: string[] = []
    const ws = new WebSocket(`${sidecar.outbound.replace('http:', 'ws:')}/socket`, {
      headers: { host: 'quiet' },
    })
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
    ws.once('open', () => {
      events.push('open')
      ws.send('hello')
    })
    ws.on('message', (d) => events.push(`message ${d.toString()}`))
    ws.on('close', () => events.push('close'))
    const code = await closed
    expect(events).toEqual(['open', 'message a:hello', 'close'])
    // No close frame: the sidecar cut the idle connection (1006, abnormal closure), not the server.
    expect(code).toBe(1006)
    const line = await sidecar.waitForLine(/"type":"tunnel".*"route":"short".*"reason":"idle_timeout"/)
    const entry = JSON.parse(line)
    expect(entry).toMatchObject({
      listener: 'outbound',
      protocol: 'websocket',
      service: 'quiet',
      target: 'a',
    })
    expect(entry.bytesReceived).toBeGreaterThan(0)
    expect(entry.bytesSent).toBeGreaterThan(0)
  })

  it('passes the upgrade through the inbound listener to the app', async () => {
    expect(await echoOnce(sidecar.inbound!, 'chat', 'in')).toBe('a:in')
  })

  it('answers an upgrade routed to a Lambda target with 501 upgrade_not_supported', async () => {
    const res = await new Promise<{ status: number; error: string | undefined }>((resolve, reject) => {
      const ws = new WebSocket(`${sidecar.outbound.replace('http:', 'ws:')}/`, { headers: { host: 'fn' } })
      ws.once('unexpected-response', (_req, r) => {
        resolve({ status: r.statusCode ?? 0, error: r.headers['x-meshgate-error'] as string | undefined })
        r.resume()
        ws.terminate()
      })
      ws.once('open', () => reject(new Error('a Lambda target took an upgrade')))
      ws.once('error', () => {})
    })
    expect(res).toEqual({ status: 501, error: 'upgrade_not_supported' })
  })

  it("passes the upstream's refusal back as an ordinary response", async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve) => {
      const ws = new WebSocket(`${sidecar.outbound.replace('http:', 'ws:')}/`, {
        headers: { host: 'refusing' },
      })
      ws.once('unexpected-response', (_req, r) => {
        let body = ''
        r.on('data', (d) => {
          body += d
        })
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }))
      })
      ws.once('error', () => {})
    })
    expect(res).toEqual({ status: 403, body: 'no' })
  })

  it('keeps an open tunnel through a reload; new upgrades use the new routes', async () => {
    const ws = new WebSocket(`${sidecar.outbound.replace('http:', 'ws:')}/socket`, {
      headers: { host: 'chat' },
    })
    const answers: string[] = []
    ws.on('message', (d) => answers.push(d.toString()))
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    ws.send('before')
    await new Promise<void>((resolve) => ws.once('message', () => resolve()))
    const server = answers[0]!.split(':')[0]
    files.write('mesh.json', mesh('b'))
    await sidecar.waitForLine(/config reloaded/, 10_000)
    ws.send('after')
    await new Promise<void>((resolve) => ws.once('message', () => resolve()))
    // The same tunnel, to the same server, across the swap.
    expect(answers).toEqual([`${server}:before`, `${server}:after`])
    ws.close()
    for (let i = 0; i < 20; i++) expect(await echoOnce(sidecar.outbound, 'chat', `n${i}`)).toBe(`b:n${i}`)
  })

  it('counts tunnels with bytes each way in /metrics, with bounded labels', async () => {
    const text = await (await fetch(`${sidecar.admin}/metrics`)).text()
    const opened =
      /meshgate_tunnel_connections_total\{mesh="ws",service="chat",target="a",protocol="websocket"\} (\d+)/.exec(
        text,
      )
    expect(Number(opened?.[1])).toBeGreaterThan(300)
    expect(text).toMatch(
      /meshgate_tunnel_sent_bytes_total\{mesh="ws",service="quiet",target="a",protocol="websocket"\} [1-9]/,
    )
    expect(text).toMatch(
      /meshgate_tunnel_idle_timeouts_total\{mesh="ws",service="quiet",target="a",protocol="websocket"\} 1/,
    )
  })
})
