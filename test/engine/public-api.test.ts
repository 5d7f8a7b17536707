// The package's core entry point, imported by its name as a user would (`meshgate`, DESIGN's public
// imports): load a config, compile it, route a request through an in-memory invoker.

import { ConfigError, compileMesh, createMemoryInvoker, createMeshRuntime, loadConfig } from 'meshgate'
import { describe, expect, it } from 'vitest'

const MESH = JSON.stringify({
  version: 1,
  mesh: 'shop',
  services: { cart: { targets: { v1: { http: 'http://cart:8080' } }, routes: [{ name: 'all', to: 'v1' }] } },
})

describe("import from 'meshgate'", () => {
  it('loads, compiles and runs a mesh', async () => {
    const config = await loadConfig(MESH)
    const http = createMemoryInvoker((req) => ({ status: 200, headers: {}, body: `cart ${req.path}` }))
    const runtime = createMeshRuntime(compileMesh(config), { invokers: { http, lambda: http } })
    const res = await runtime.handle('cart', { method: 'GET', path: '/items', headers: {}, body: null })
    expect(res.status).toBe(200)
    expect(res.body).toBe('cart /items')
    expect(http.calls).toHaveLength(1)
  })

  it('refuses an invalid config with a ConfigError', async () => {
    await expect(
      loadConfig(JSON.stringify({ version: 1, mesh: 'shop', services: {} })),
    ).rejects.toBeInstanceOf(ConfigError)
  })
})
