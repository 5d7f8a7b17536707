// A lazily imported module (the `yaml` parser, an AWS SDK client) as it arrives: its named exports
// under type stripping, but only a `default` export when a bundle keeps a CommonJS build in a chunk of
// its own (the sidecar bundle splits them out: scripts/build.ts). One check for every lazy import.

export function lazyModule<T extends object>(mod: T, probe: keyof T): T {
  if (probe in mod) return mod
  const fallback = (mod as { default?: T }).default
  if (fallback !== undefined && probe in fallback) return fallback
  throw new TypeError(`the lazily loaded module has no ${String(probe)}`)
}
