// The upstream end of a connection that switched protocols: what the HTTP/1.1 client hands back with
// a 101 (engine/types.ts `Upgraded`), for the sidecar to tunnel. A plain socket, paused, and the bytes
// that came after the 101's head in the same read, which belong to the new protocol.

import type { Socket } from 'node:net'
import type { Upgraded } from '../engine/types.ts'

export class SocketUpgrade implements Upgraded {
  readonly protocol: string
  readonly endpoint: string
  readonly socket: Socket
  /** Bytes after the 101 head: the first of the new protocol, to pass on before anything else. */
  readonly head: Buffer | undefined
  route?: string
  target?: string
  idleTimeout?: number

  constructor(protocol: string, endpoint: string, socket: Socket, head: Buffer | undefined) {
    this.protocol = protocol
    this.endpoint = endpoint
    this.socket = socket
    this.head = head
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/**
 * The protocol of a 101's `Upgrade` field if it is one the request asked for (RFC 9110 §7.8: the
 * server switches to one of those), else undefined: an upstream that switches to something else, or
 * says 101 without saying to what, is not followed.
 */
export function agreedProtocol(asked: string, answered: string | string[] | undefined): string | undefined {
  if (typeof answered !== 'string') return undefined
  const offered = new Set(asked.split(',').map((p) => p.trim().toLowerCase()))
  const chosen = answered.trim()
  // One protocol in the answer: a list would be a stack (RFC 9110 §7.8), which no tunnel here speaks.
  if (chosen === '' || chosen.includes(',')) return undefined
  return offered.has(chosen.toLowerCase()) ? chosen : undefined
}
