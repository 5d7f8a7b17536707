// Issue 23, through a real sidecar process on both listeners: an upstream (or app) that sends an
// interim response (103 Early Hints, 100 Continue) and then the final response, split into two
// writes at every byte offset. Every response must arrive intact: the sidecar's client once kept a
// view of its shared read buffer for the half-read final head, and the next read overwrote it.

import { Agent } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshDir, type SidecarProcess, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { type RawUpstream, startRawUpstream } from '../http/raw-peer.ts'
import { send } from './client.ts'

const INTERIM: Record<string, string> = {
  '103': 'HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n',
  '100': 'HTTP/1.1 100 Continue\r\n\r\n',
}
const FINAL =
  'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-final: intact\r\ncontent-length: 5\r\n\r\nhello'

let upstream: RawUpstream
let sidecar: SidecarProcess
const files = meshDir()

beforeAll(async () => {
  // `/KIND/OFFSET`: the interim response of KIND and the final one, cut in two at OFFSET.
  upstream = await startRawUpstream(async (req, socket) => {
    const [, kind = '', offset = '0'] = req.target.split('/')
    const bytes = Buffer.from(INTERIM[kind]! + FINAL, 'latin1')
    const cut = Number(offset)
    socket.write(bytes.subarray(0, cut))
    // A few ms between the writes: the sidecar reads the first part before the second arrives.
    await sleep(3)
    socket.write(bytes.subarray(cut))
  })
  const configPath = files.write('mesh.json', {
    version: 1,
    mesh: 'edge',
    services: {
      up: {
        targets: { v1: { http: upstream.url } },
        // No retry: a corrupted head must show as the failure it is, not be papered over.
        routes: [{ name: 'default', to: 'v1', retries: { attempts: 0 } }],
        outlierDetection: { consecutive5xx: 0 },
      },
    },
  })
  sidecar = await startSidecarProcess({ configPath, service: 'up', app: upstream.url })
})

afterAll(async () => {
  await sidecar?.stop()
  await upstream?.close()
  files.remove()
})

describe.each(['outbound', 'inbound'] as const)(
  'an interim response then the final head, on the %s listener',
  (listener) => {
    it.each(Object.keys(INTERIM))(
      'arrives intact when split at every byte offset after a %s',
      async (kind) => {
        const total = INTERIM[kind]!.length + FINAL.length
        const agent = new Agent({ keepAlive: true, maxSockets: 1 })
        try {
          const broken: string[] = []
          for (let cut = 1; cut < total; cut++) {
            const base = listener === 'outbound' ? sidecar.outbound : sidecar.inbound!
            const reply = await send(base, {
              path: `/${kind}/${cut}`,
              agent,
              ...(listener === 'outbound' ? { host: 'up' } : {}),
            })
            if (reply.status !== 200 || reply.body !== 'hello' || reply.headers['x-final'] !== 'intact') {
              broken.push(`${cut}: ${reply.status} ${reply.body}`)
            }
          }
          expect(broken).toEqual([])
        } finally {
          agent.destroy()
        }
      },
    )
  },
)
