// Moved to proxy-core/http/http1-server.ts (the one HTTP edge); this path stays for existing imports.
export * from '../http/http1-server.ts'
