// The config of tcp services and tunnels: what loads (defaults and their sources), and each refusal
// with its FILE:LINE:COL, path and message.

import { describe, expect, it } from 'vitest'
import { formatProblem, loadConfigText } from '../../proxy-core/config/load.ts'
import { configProblems } from './problems.ts'

function problems(yaml: string): Promise<string[]> {
  return configProblems(yaml, 'mesh.yaml', formatProblem)
}

describe('tcp services in the config', () => {
  it('loads a tcp service with its defaults: connect 5s, idle 1h; upgrade routes idle 5m', async () => {
    const config = await loadConfigText(
      [
        'version: 1',
        'mesh: m',
        'services:',
        '  db:',
        '    listener: { protocol: tcp, port: 5432 }',
        '    targets:',
        '      primary: { tcp: 10.0.0.1:5432 }',
        '      replica: { tcp: [10.0.0.2:5432, "[::1]:5433"] }',
        '      found: { tcp: dns://db.internal:5432 }',
        '    routes:',
        '      - { to: { primary: 90, replica: 10 }, retries: { attempts: 1 } }',
        '  chat:',
        '    targets: { v1: { http: http://chat:8080 } }',
        '    routes:',
        '      - { name: ws, to: v1, idleTimeout: 30s }',
        '      - { name: rest, to: v1 }',
      ].join('\n'),
      'mesh.yaml',
    )
    const db = config.services.db!
    expect(db.listener).toEqual({ protocol: 'tcp', port: 5432, connectTimeout: 5_000 })
    expect(db.routes[0]).toMatchObject({ idleTimeout: 3_600_000, retries: { attempts: 1 } })
    expect(db.targets.primary).toMatchObject({ kind: 'http', endpoints: ['tcp://10.0.0.1:5432'] })
    expect(db.targets.replica).toMatchObject({ endpoints: ['tcp://10.0.0.2:5432', 'tcp://[::1]:5433'] })
    expect(db.targets.found).toMatchObject({
      endpoints: [],
      dns: { host: 'db.internal', port: 5432, protocol: 'tcp' },
    })
    expect(config.services.chat!.routes.map((r) => r.idleTimeout)).toEqual([30_000, 300_000])
  })

  it('refuses Lambda and http targets in a tcp service, tcp targets elsewhere', async () => {
    expect(
      await problems(
        [
          'version: 1',
          'mesh: m',
          'services:',
          '  db:',
          '    listener: { protocol: tcp, port: 5432 }',
          '    targets:',
          '      fn: { lambda: db-fn }',
          '      web: { http: http://x:80 }',
          '  api:',
          '    targets:',
          '      v1: { tcp: 10.0.0.1:80 }',
        ].join('\n'),
      ),
    ).toEqual([
      'mesh.yaml:7:13: services.db.targets.fn.lambda: a tcp service cannot have Lambda targets: a function answers one event at a time, not a connection',
      'mesh.yaml:8:14: services.db.targets.web.http: the targets of a tcp service are tcp: host:port (http: is for HTTP services)',
      'mesh.yaml:11:13: services.api.targets.v1.tcp: tcp targets belong to a tcp service: give the service listener: { protocol: tcp, port: N }',
    ])
  })

  it('refuses duplicate, privileged and reserved ports', async () => {
    const svc = (name: string, port: number) => [
      `  ${name}:`,
      `    listener: { protocol: tcp, port: ${port} }`,
      '    targets: { t: { tcp: 10.0.0.1:1 } }',
    ]
    expect(
      await problems(
        [
          'version: 1',
          'mesh: m',
          'services:',
          ...svc('one', 6000),
          ...svc('two', 6000),
          ...svc('low', 80),
          ...svc('mine', 15001),
        ].join('\n'),
      ),
    ).toEqual([
      'mesh.yaml:8:38: services.two.listener.port: port 6000 is already the listener of service "one"',
      'mesh.yaml:11:38: services.low.listener.port: port 80 is privileged (below 1024): the sidecar runs as an unprivileged user; pick 1024 or above',
      "mesh.yaml:14:38: services.mine.listener.port: port 15001 is one of the sidecar's own ports (15000, 15001, 15006)",
    ])
  })

  it('refuses L7-only keys on a tcp route, and a second route', async () => {
    expect(
      await problems(
        [
          'version: 1',
          'mesh: m',
          'services:',
          '  db:',
          '    listener: { protocol: tcp, port: 5432 }',
          '    targets: { a: { tcp: 10.0.0.1:5432 } }',
          '    routes:',
          '      - to: a',
          '        match: { path: { prefix: / } }',
          '        timeout: 1s',
          '        retries: { attempts: 2, on: [5xx] }',
          '        headers: { request: { set: { x: y } } }',
          '      - to: a',
        ].join('\n'),
      ),
    ).toEqual([
      'mesh.yaml:9:9: services.db.routes[0].match: match applies to HTTP routes only; a tcp route has name, to, retries.attempts and idleTimeout',
      'mesh.yaml:10:9: services.db.routes[0].timeout: timeout applies to HTTP routes only; a tcp route has name, to, retries.attempts and idleTimeout',
      'mesh.yaml:11:33: services.db.routes[0].retries.on: retries.on applies to HTTP routes only; a tcp route retries the connect alone (retries.attempts)',
      'mesh.yaml:12:9: services.db.routes[0].headers: headers applies to HTTP routes only; a tcp route has name, to, retries.attempts and idleTimeout',
      'mesh.yaml:13:9: services.db.routes[1]: a tcp service has one route: a connection carries no request to match on',
    ])
  })

  it('refuses a tcp target address without a valid port', async () => {
    const out = await problems(
      [
        'version: 1',
        'mesh: m',
        'services:',
        '  db:',
        '    listener: { protocol: tcp, port: 5432 }',
        '    targets: { a: { tcp: 10.0.0.1:99999 }, b: { tcp: "10.0.0.1" } }',
      ].join('\n'),
    )
    expect(out).toHaveLength(2)
    expect(out[1]).toMatch(/^mesh\.yaml:6:\d+: services\.db\.targets\.b\.tcp: expected host:port/)
    expect(out[0]).toMatch(
      /^mesh\.yaml:6:\d+: services\.db\.targets\.a\.tcp: the port must be 1 to 65535, got 99999$/,
    )
  })
})
