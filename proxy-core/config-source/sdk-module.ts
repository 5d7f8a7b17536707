// A lazily imported AWS SDK client module, as it arrives: its named exports under type stripping, but
// only a `default` export when a bundle keeps the CommonJS build in a chunk of its own (the sidecar
// bundle splits them out: scripts/build.ts).

export function sdkModule<T extends object>(mod: T, probe: keyof T): T {
  if (probe in mod) return mod
  const fallback = (mod as { default?: T }).default
  if (fallback !== undefined && probe in fallback) return fallback
  throw new TypeError(`the AWS SDK module has no ${String(probe)}`)
}
