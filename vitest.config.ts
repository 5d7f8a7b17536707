import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  // The package's own name resolves to its sources in the tests (tsconfig.json's `paths` do the same
  // for the typecheck); the published `exports` point at dist/, which the repository never runs.
  resolve: {
    alias: [
      { find: /^meshgate$/, replacement: source('./proxy-core/index.ts') },
      { find: /^meshgate\/lambda$/, replacement: source('./proxy-core/lambda/index.ts') },
      { find: /^meshgate\/sidecar$/, replacement: source('./proxy-core/sidecar/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start real processes and bind real ports; two cores leave room for two workers.
    maxWorkers: 2,
  },
})
