// The one piece of telemetry with I/O in Lambda: segment documents to the X-Ray daemon over UDP.
// node:dgram is loaded and the socket created on the first send, so a function that never samples
// pays nothing. A send never throws into the request path: failures are counted and dropped.

import type { Socket } from 'node:dgram'
import { encodeDaemonPacket } from './xray.ts'

export interface DaemonAddress {
  host: string
  port: number
}

export interface XRayEmitter {
  send(doc: object): void
  close(): void
  /** Datagrams handed to the socket, and documents lost (bad address, socket or send errors). */
  stats(): { sent: number; errors: number }
}

/** The daemon's default UDP listener. */
export const DEFAULT_DAEMON_ADDRESS = '127.0.0.1:2000'

function parseHostPort(value: string): DaemonAddress | undefined {
  let host: string
  let portText: string
  if (value.startsWith('[')) {
    // [::1]:2000
    const close = value.indexOf(']')
    if (close < 0 || value[close + 1] !== ':') return undefined
    host = value.slice(1, close)
    portText = value.slice(close + 2)
  } else {
    const colon = value.lastIndexOf(':')
    if (colon <= 0) return undefined
    host = value.slice(0, colon)
    portText = value.slice(colon + 1)
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined
  const port = Number(portText)
  if (port < 1 || port > 65535 || host.length === 0) return undefined
  return { host, port }
}

/**
 * `AWS_XRAY_DAEMON_ADDRESS` is either `host:port` (UDP and TCP on one address) or two space-separated
 * parts, `tcp:host:port udp:host:port`, in either order. Segments go over UDP: the `udp:` part wins.
 */
export function parseDaemonAddress(value: string): DaemonAddress | undefined {
  const parts = value.trim().split(/\s+/)
  const udp = parts.find((p) => p.toLowerCase().startsWith('udp:'))
  if (udp !== undefined) return parseHostPort(udp.slice(4))
  if (parts.length === 1 && parts[0] !== undefined && !parts[0].toLowerCase().startsWith('tcp:')) {
    return parseHostPort(parts[0])
  }
  return undefined
}

export function createXRayEmitter(
  address: string = process.env.AWS_XRAY_DAEMON_ADDRESS ?? DEFAULT_DAEMON_ADDRESS,
): XRayEmitter {
  const target = parseDaemonAddress(address)
  let socket: Socket | undefined
  let closed = false
  let sent = 0
  let errors = 0
  const onSent = (err: Error | null): void => {
    if (err) errors++
  }

  function open(host: string): Socket {
    const dgram = process.getBuiltinModule('node:dgram')
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
    // An unreachable daemon (ICMP port unreachable) surfaces here; it must not crash the process.
    s.on('error', () => {
      errors++
    })
    // Never keep a Lambda sandbox or a draining sidecar alive for telemetry.
    s.unref()
    return s
  }

  return {
    send(doc: object): void {
      if (closed || target === undefined) {
        errors++
        return
      }
      try {
        socket ??= open(target.host)
        socket.send(encodeDaemonPacket(doc), target.port, target.host, onSent)
        sent++
      } catch {
        errors++
      }
    },
    close(): void {
      closed = true
      if (socket !== undefined) {
        try {
          socket.close()
        } catch {
          // already closed
        }
        socket = undefined
      }
    },
    stats: () => ({ sent, errors }),
  }
}
