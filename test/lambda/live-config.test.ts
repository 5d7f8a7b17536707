// mesh() reading its config from AppConfig through the real middy engine: through the extension API
// (the local AppConfig's agent port) and through AppConfigData with the real SDK client. The first
// invocation waits for the config; later ones start a check at most once per poll interval, in the
// background, and the invocation that starts it never waits for it (a gate holds the extension's
// answer while that invocation completes).

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import middy from '@middy/core'
import type { Context } from 'aws-lambda'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LocalAppConfig } from '../../proxy-core/dev/appconfig-local.ts'
import { mesh } from '../../proxy-core/lambda/index.ts'
import { validateEmf } from '../helpers/emf-spec.ts'
import { profile, startAppConfig } from '../helpers/local-appconfig.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

let local: LocalAppConfig
let blue: Upstream
let green: Upstream
const saved = { ...process.env }

/** The extension API with a gate in front: while closed, requests wait; counts what passed. */
interface Gate {
  url: string
  close(): void
  open(): void
  waiting(): number
  answered(): number
  stop(): Promise<void>
}
async function startGate(target: string): Promise<Gate> {
  let closed = false
  let answered = 0
  const queue: (() => void)[] = []
  const server: Server = createServer((req, res) => {
    const pass = async () => {
      const r = await fetch(`${target}${req.url}`)
      const body = await r.text()
      const headers: Record<string, string> = {}
      r.headers.forEach((v, k) => {
        headers[k] = v
      })
      delete headers['content-length']
      delete headers['transfer-encoding']
      answered++
      res.writeHead(r.status, headers).end(body)
    }
    if (closed) queue.push(() => void pass())
    else void pass()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      closed = true
    },
    open: () => {
      closed = false
      for (const go of queue.splice(0)) go()
    },
    waiting: () => queue.length,
    answered: () => answered,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  }
}

const meshTo = (target: 'blue' | 'green' | 'purple') =>
  JSON.stringify({
    version: 1,
    mesh: 'lambda-live',
    services: {
      reviews: {
        targets: { blue: { http: blue.url }, green: { http: green.url } },
        routes: [{ name: 'default', to: target }],
      },
    },
  })

function lambdaContext(): Context {
  return {
    functionName: 'productpage',
    awsRequestId: 'req',
    getRemainingTimeInMillis: () => 30_000,
  } as unknown as Context
}

/** A function that calls reviews once and answers with the upstream that served it. */
function handlerFor(config: string, env: Record<string, string>) {
  Object.assign(process.env, env)
  try {
    const h = middy(async (_e: unknown, context: Context) => {
      const r = await context.mesh.fetch('http://reviews/')
      return { statusCode: r.status, body: r.headers.get('x-upstream') ?? '' }
    }).use(mesh({ service: 'productpage', config }))
    return async () => (await h({}, lambdaContext())) as { statusCode: number; body: string }
  } finally {
    for (const k of Object.keys(env)) delete process.env[k]
  }
}

/** stdout lines written while `fn` runs (the middleware writes its logs there). */
async function withStdout<T>(fn: (lines: string[]) => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = []
  const write = process.stdout.write.bind(process.stdout)
  process.stdout.write = ((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean))
    return true
  }) as typeof process.stdout.write
  try {
    return { value: await fn(lines), lines }
  } finally {
    process.stdout.write = write
  }
}

const settle = (ms = 5) => new Promise((r) => setTimeout(r, ms))

beforeAll(async () => {
  local = await startAppConfig(1)
  blue = await startUpstream('blue')
  green = await startUpstream('green')
})
afterAll(async () => {
  await Promise.all([local.close(), blue.close(), green.close()])
  process.env = saved
})

describe('mesh() with a live AppConfig source', () => {
  it('checks in the background through the extension: the invocation that checks does not wait', async () => {
    const url = 'appconfig://lambda-ext/prod/mesh'
    const store = await profile(url)
    await store.publish(meshTo('blue'), {})
    const gate = await startGate(local.agentUrl)
    try {
      const invoke = handlerFor(url, { MESHGATE_APPCONFIG_AGENT: gate.url, MESHGATE_CONFIG_POLL: '1ms' })
      expect(await invoke()).toEqual({ statusCode: 200, body: 'blue' })
      expect(gate.answered()).toBe(1)

      await store.publish(meshTo('green'), {})
      gate.close()
      await settle() // past the 1 ms poll interval
      // This invocation starts the check, which the gate holds: it still completes, on blue.
      expect(await invoke()).toEqual({ statusCode: 200, body: 'blue' })
      expect(gate.waiting()).toBe(1)
      // No second check while one runs.
      await settle()
      expect(await invoke()).toEqual({ statusCode: 200, body: 'blue' })
      expect(gate.waiting()).toBe(1)

      gate.open()
      while (gate.answered() < 2) await settle()
      let seen = ''
      for (let i = 0; i < 100 && seen !== 'green'; i++) {
        await settle()
        seen = (await invoke()).body
      }
      expect(seen).toBe('green')
    } finally {
      gate.open()
      await gate.stop()
    }
  })

  it('checks at most once per poll interval', async () => {
    const url = 'appconfig://lambda-once/prod/mesh'
    const store = await profile(url)
    await store.publish(meshTo('blue'), {})
    const gate = await startGate(local.agentUrl)
    try {
      const invoke = handlerFor(url, { MESHGATE_APPCONFIG_AGENT: gate.url, MESHGATE_CONFIG_POLL: '1h' })
      for (let i = 0; i < 20; i++) expect((await invoke()).body).toBe('blue')
      expect(gate.answered()).toBe(1)
    } finally {
      await gate.stop()
    }
  })

  it('reads through AppConfigData with the SDK when there is no extension, and logs a refusal', async () => {
    const url = 'appconfig://lambda-sdk/prod/mesh'
    const store = await profile(url)
    await store.publish(meshTo('blue'), {})
    const invoke = handlerFor(url, { MESHGATE_APPCONFIG_AGENT: 'off', MESHGATE_CONFIG_POLL: '1ms' })
    const sessions = () => local.requests.filter((r) => r.operation === 'StartConfigurationSession').length
    const before = sessions()
    expect((await invoke()).body).toBe('blue')
    expect(sessions()).toBe(before + 1)

    // Valid for AppConfig's schema, refused by meshgate: `purple` is no target of reviews.
    await store.publish(meshTo('purple'), {})
    // Until the refusal is logged: the check runs beside the invocations, so the endpoint may have
    // answered before the container has built (and refused) the version.
    const { lines } = await withStdout(async (seen) => {
      for (let i = 0; i < 400 && !seen.some((l) => l.includes('config reload refused')); i++) {
        await settle()
        expect((await invoke()).body).toBe('blue')
      }
    })
    const refusal = lines.map((l) => JSON.parse(l)).find((l) => l.type === 'config')
    expect(refusal?.message).toMatch(
      /^config reload refused \(version \S+ from appconfig:\/\/lambda-sdk\/prod\/mesh\), still serving/,
    )
    expect(refusal?.message).toMatch(/purple/)
  })

  it('counts reloads, refusals and staleness on the one EMF line of an invocation', async () => {
    const url = 'appconfig://lambda-emf/prod/mesh'
    const store = await profile(url)
    await store.publish(meshTo('blue'), {})
    const invoke = handlerFor(url, { MESHGATE_APPCONFIG_AGENT: local.agentUrl, MESHGATE_CONFIG_POLL: '1ms' })
    /** One invocation: its answer and its EMF documents (each checked against the spec). */
    const once = async () => {
      const { value, lines } = await withStdout(() => invoke())
      const emf = lines.filter((l) => l.startsWith('{"_aws"')).map(validateEmf)
      return { body: value.body, emf }
    }
    const totals = { ConfigReloads: 0, ConfigRejected: 0 }
    let stale: number | undefined
    /** Invokes (each past the 1 ms poll interval) until `done`, adding up the config counters. */
    const until = async (done: () => boolean, want: string) => {
      for (let i = 0; i < 400 && !done(); i++) {
        await settle()
        const r = await once()
        expect(r.body).toBe(want)
        // At most one line per invocation (each touches one route series), and it carries the counters.
        expect(r.emf.length).toBeLessThanOrEqual(1)
        for (const doc of r.emf) {
          totals.ConfigReloads += doc.ConfigReloads as number
          totals.ConfigRejected += doc.ConfigRejected as number
          stale = doc.ConfigStale as number
          expect(doc.FunctionName).toBe('productpage')
        }
      }
      expect(done()).toBe(true)
    }

    const first = await once()
    expect(first.body).toBe('blue')
    expect(first.emf).toHaveLength(1)
    expect(first.emf[0]).toMatchObject({ ColdStart: 1, ConfigReloads: 0, ConfigRejected: 0, ConfigStale: 0 })
    const fnDirective = (
      first.emf[0]!._aws as { CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string }[] }[] }
    ).CloudWatchMetrics.find((d) => d.Metrics.some((m) => m.Name === 'ConfigReloads'))
    expect(fnDirective?.Dimensions).toEqual([['FunctionName']])
    expect(fnDirective?.Metrics.map((m) => m.Name)).toEqual([
      'ColdStart',
      'ConfigReloads',
      'ConfigRejected',
      'ConfigStale',
    ])

    // A new version: counted once, on the line of an invocation after the swap.
    await store.publish(meshTo('green'), {})
    let green = false
    for (let i = 0; i < 400 && !green; i++) {
      await settle()
      const r = await once()
      for (const doc of r.emf) totals.ConfigReloads += doc.ConfigReloads as number
      green = r.body === 'green'
    }
    expect(green).toBe(true)
    await until(() => totals.ConfigReloads === 1, 'green')

    // A version meshgate refuses: ConfigRejected 1, and it keeps routing to green.
    await store.publish(meshTo('purple'), {})
    await until(() => totals.ConfigRejected === 1, 'green')

    // The extension unreachable: three missed checks make the config stale; it keeps serving.
    local.setUnavailable(true)
    try {
      await until(() => stale === 1, 'green')
    } finally {
      local.setUnavailable(false)
    }
    // Reachable again: the next lines say 0, by itself, with no reload counted.
    await until(() => stale === 0, 'green')
    expect(totals).toEqual({ ConfigReloads: 1, ConfigRejected: 1 })
  })

  it('fails the first invocation fast when the extension cannot be reached, naming the source, and retries on the next', async () => {
    const url = 'appconfig://lambda-down/prod/mesh'
    const store = await profile(url)
    await store.publish(meshTo('blue'), {})
    const invoke = handlerFor(url, { MESHGATE_APPCONFIG_AGENT: local.agentUrl, MESHGATE_CONFIG_POLL: '1h' })
    local.setUnavailable(true)
    try {
      await expect(invoke()).rejects.toThrow(
        /^appconfig:\/\/lambda-down\/prod\/mesh: cannot read the mesh config: the AppConfig agent at http:\/\/127\.0\.0\.1:\d+: /,
      )
    } finally {
      local.setUnavailable(false)
    }
    // Nothing was cached as broken: the next invocation reads the config and routes.
    expect(await invoke()).toEqual({ statusCode: 200, body: 'blue' })
  })
})
