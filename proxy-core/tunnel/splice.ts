// Two sockets joined into one tunnel: an upgraded HTTP/1.1 connection (WebSocket...) or a TCP
// service's connection. Bytes go both ways as they come, with backpressure: a side whose peer does
// not read is paused, so the sidecar holds at most a socket's write buffer (its high-water mark plus
// one read) per direction, never a whole stream. Half-close is carried: a FIN from one side ends
// the other side's writing once what was sent before it is through, and the tunnel stays open the
// other way until that side finishes too. A reset or error on either side destroys both. No byte
// either way for `idleTimeout` closes both.

import type { Socket } from 'node:net'

export const TunnelEndReasons = {
  /** Both sides finished (FIN each way). */
  closed: 'closed',
  /** One side reset or failed; the other was cut. */
  reset: 'reset',
  idleTimeout: 'idle_timeout',
  /** The sidecar cut it (shutdown). */
  shutdown: 'shutdown',
} as const
export type TunnelEndReason = (typeof TunnelEndReasons)[keyof typeof TunnelEndReasons]

export interface TunnelResult {
  /** Bytes from the client (downstream), to the upstream: Envoy's BYTES_RECEIVED. */
  readonly bytesReceived: number
  /** Bytes to the client, from the upstream: Envoy's BYTES_SENT. */
  readonly bytesSent: number
  readonly reason: TunnelEndReason
}

export interface SpliceOptions {
  /** ms without a byte either way before both sides close; 0 for none. */
  idleTimeout: number
  /** Called once, when both sockets have closed. */
  onEnd(result: TunnelResult): void
}

export interface Tunnel {
  /** Cut both sides now. */
  destroy(): void
  /** Bytes so far each way. */
  bytes(): { received: number; sent: number }
}

/**
 * Joins `client` and `upstream`, both paused. `clientHead` (bytes the client sent ahead) goes to the
 * upstream first, `upstreamHead` to the client.
 */
export function splice(
  client: Socket,
  upstream: Socket,
  clientHead: Buffer | undefined,
  upstreamHead: Buffer | undefined,
  opts: SpliceOptions,
): Tunnel {
  let received = 0
  let sent = 0
  let reason: TunnelEndReason | undefined
  let closed = 0
  // Each side keeps writing after its peer's FIN until its own data is through (RFC 9293 half-close).
  client.allowHalfOpen = true
  upstream.allowHalfOpen = true

  const cut = (why: TunnelEndReason) => {
    reason ??= why
    client.destroy()
    upstream.destroy()
  }
  const pump = (from: Socket, to: Socket, count: (n: number) => void) => {
    from.on('data', (chunk: Buffer) => {
      count(chunk.length)
      if (!to.write(chunk)) from.pause()
    })
    to.on('drain', () => from.resume())
    from.on('end', () => to.end())
  }
  pump(client, upstream, (n) => {
    received += n
  })
  pump(upstream, client, (n) => {
    sent += n
  })
  const onClose = (side: Socket, other: Socket) => () => {
    // Closed without a FIN read or its own writes finished: a reset, or destroyed; the other side
    // cannot be finished cleanly any more.
    if (!side.readableEnded || !side.writableFinished) {
      reason ??= TunnelEndReasons.reset
      other.destroy()
    }
    if (++closed === 2) opts.onEnd({ bytesReceived: received, bytesSent: sent, reason: reason ?? 'closed' })
  }
  client.on('error', () => cut(TunnelEndReasons.reset))
  upstream.on('error', () => cut(TunnelEndReasons.reset))
  client.once('close', onClose(client, upstream))
  upstream.once('close', onClose(upstream, client))
  if (opts.idleTimeout > 0) {
    // The client's socket sees every byte of the tunnel (it reads one way and writes the other), and
    // node resets a socket's timer on both: one timer serves both directions.
    client.setTimeout(opts.idleTimeout)
    client.on('timeout', () => cut(TunnelEndReasons.idleTimeout))
  }
  if (upstreamHead !== undefined) {
    sent += upstreamHead.length
    client.write(upstreamHead)
  }
  if (clientHead !== undefined) {
    received += clientHead.length
    upstream.write(clientHead)
  }
  client.resume()
  upstream.resume()
  return {
    destroy: () => cut(TunnelEndReasons.shutdown),
    bytes: () => ({ received, sent }),
  }
}
