// Moved to proxy-core/http/header-policy.ts (the one HTTP edge); this path stays for existing imports.
export * from '../http/header-policy.ts'
