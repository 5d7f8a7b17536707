// `host:port` flags (`127.0.0.1:15001`, `[::]:15006`, `:15000`, `15000`) to what net.Server.listen takes.

export interface ListenAddress {
  host: string
  port: number
}

/** Parses a listen address; an empty or missing host means all interfaces of IPv4 (`0.0.0.0`). */
export function parseListenAddress(value: string): ListenAddress {
  const text = value.trim()
  let host: string
  let port: string
  if (/^\d+$/.test(text)) {
    host = '0.0.0.0'
    port = text
  } else if (text.startsWith('[')) {
    const end = text.indexOf(']')
    if (end < 0 || text[end + 1] !== ':')
      throw new Error(`bad listen address ${JSON.stringify(value)}: want [v6]:port`)
    host = text.slice(1, end)
    port = text.slice(end + 2)
  } else {
    const colon = text.lastIndexOf(':')
    if (colon < 0) throw new Error(`bad listen address ${JSON.stringify(value)}: want host:port`)
    host = text.slice(0, colon) || '0.0.0.0'
    port = text.slice(colon + 1)
  }
  const n = Number(port)
  if (!/^\d+$/.test(port) || n > 65535) throw new Error(`bad listen address ${JSON.stringify(value)}: port`)
  return { host, port: n }
}

/** `host:port` as printed in the listening line, with brackets around IPv6 hosts. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** The address a listening server is bound to (port 0 resolved), formatted as above. */
export function boundAddress(server: import('node:net').Server): string {
  const bound = server.address()
  return bound !== null && typeof bound === 'object'
    ? formatAddress(bound.address, bound.port)
    : String(bound)
}

/** Starts `server` listening; resolves with the bound port, rejects on a listen error (EADDRINUSE...). */
export function listen(server: import('node:net').Server, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port }, () => {
      server.off('error', reject)
      const bound = server.address()
      resolve(bound !== null && typeof bound === 'object' ? bound.port : port)
    })
  })
}
