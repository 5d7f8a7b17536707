// Files of the meshgate package itself, found by the package's own name (its `exports` list them), so
// the same lookup works from the sources in a checkout and from dist/ in an installed package.
import { readFileSync } from 'node:fs'

/** `package.json` or `mesh.schema.json` of this package, parsed. */
export function readPackageJson(file: 'package.json' | 'mesh.schema.json'): unknown {
  return JSON.parse(readFileSync(new URL(import.meta.resolve(`meshgate/${file}`)), 'utf8'))
}

/** This package's version, e.g. `0.1.0`. */
export function packageVersion(): string {
  return (readPackageJson('package.json') as { version: string }).version
}
