// Moved to proxy-core/http/limits.ts (the one HTTP edge); this path stays for existing imports.
export * from '../http/limits.ts'
