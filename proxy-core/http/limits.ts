// The sidecar's limits on what a client may send, in one place so the README and the tests agree.

/**
 * Request line plus headers, in bytes: 16 KiB, node's own default and the size most proxies accept
 * (nginx's large_client_header_buffers is 4 × 8 KiB, Envoy's default is 60 KiB). Past it: 431.
 */
export const MAX_HEADER_BYTES = 16 * 1024

/** Header lines per request: 100, Envoy's `max_headers_count` default. Past it: 431. */
export const MAX_HEADER_COUNT = 100

/**
 * Request bodies with a Content-Length up to this many bytes are read into memory first, so the
 * pipeline can retry or mirror them: 64 KiB. Larger or chunked bodies stream through in constant
 * memory and are sent once (a failed attempt is not retried, the same as Envoy past its buffer limit).
 */
export const MAX_BUFFERED_BODY = 64 * 1024

/**
 * Idle keep-alive connections from the app stay open this long, in ms: 60 s, longer than the idle
 * timeouts of common HTTP clients (node's agent: 5 s, undici: 4 s), so the client, not the sidecar,
 * closes an idle connection and never races a request against our close.
 */
export const KEEP_ALIVE_TIMEOUT = 60_000
