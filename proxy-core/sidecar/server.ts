// One HTTP/1.1 listener of the sidecar (outbound, inbound or admin): node's server with the header
// limits, malformed requests answered with a 4xx instead of a dropped socket, and the bookkeeping a
// graceful drain needs (requests in flight, open connections, stop accepting without cutting anyone off).

import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { Socket } from 'node:net'
import { Server as NetServer } from 'node:net'
import { type ErrorCode, ErrorCodes } from '../engine/errors.ts'
import type { Listener } from '../http/http1-server.ts'
import { KEEP_ALIVE_TIMEOUT, MAX_HEADER_BYTES, MAX_HEADER_COUNT } from '../http/limits.ts'
import { refusalText } from '../http/refusal.ts'
import type { ListenAddress } from './listen-address.ts'
import { boundAddress, listen as listenOn } from './listen-address.ts'

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>

export type { Listener }

/** What node's parser reported → the refusal's code in the error table. */
function refusalCode(err: Error & { code?: string }): ErrorCode {
  if (err.code === 'HPE_HEADER_OVERFLOW') return ErrorCodes.headersTooLarge
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return ErrorCodes.requestTimeout
  return ErrorCodes.badRequest
}

/** Starts a listener; resolves once it is bound. `onError` hears of errors a handler failed to answer. */
export async function listen(
  at: ListenAddress,
  handler: RequestHandler,
  onError: (err: unknown) => void = () => {},
): Promise<Listener> {
  const sockets = new Set<Socket>()
  let inFlight = 0
  let lastActivity = performance.now()
  const server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT,
      // Uploads of any size stream through: no bound on the whole request, only on its headers (60 s).
      requestTimeout: 0,
      // Writes of small responses go out at once, not after Nagle's delay.
      noDelay: true,
    },
    (req, res) => {
      inFlight++
      lastActivity = performance.now()
      res.once('close', () => {
        inFlight--
        lastActivity = performance.now()
      })
      handler(req, res).catch((err: unknown) => {
        // Handlers answer their own errors; reaching here is a bug, and the connection cannot be trusted.
        onError(err)
        if (!res.headersSent) {
          res.statusCode = 500
          res.end()
        } else res.destroy()
      })
    },
  )
  // node stores at most this many header lines; one more than the limit lets the handler see the excess.
  server.maxHeadersCount = MAX_HEADER_COUNT + 1
  const refusals: Record<string, number> = Object.create(null)
  const refuse = (socket: Socket, code: ErrorCode) => {
    refusals[code] = (refusals[code] ?? 0) + 1
    socket.end(refusalText(code), 'latin1')
  }
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    // A reset peer, or a response already on its way: nothing sensible can be written any more.
    const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
      ?.headersSent
    if (err.code === 'ECONNRESET' || !socket.writable || started === true) socket.destroy()
    else refuse(socket, refusalCode(err))
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  // CONNECT would make the sidecar a tunnel to anywhere: never.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    refuse(socket, ErrorCodes.methodNotAllowed)
  })

  await listenOn(server, at.port, at.host)
  const address = boundAddress(server)
  let accepting = true

  return {
    address,
    inFlight: () => inFlight,
    lastActivity: () => lastActivity,
    connections: () => sockets.size,
    refusals: () => ({ ...refusals }),
    // Node's server here is the admin listener's: it never switches protocols.
    tunnels: () => 0,
    handshakeFailures: () => null,
    plaintextConnections: () => 0,
    stopAccepting() {
      if (!accepting) return
      accepting = false
      // net.Server's close, not http.Server's: the latter also drops idle keep-alive connections at
      // once, racing any request a client is writing on one right now.
      NetServer.prototype.close.call(server)
    },
    closeIdle() {
      server.closeIdleConnections()
    },
    close() {
      accepting = false
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        for (const s of sockets) s.destroy()
      })
    },
  }
}
