// A small local ECS agent for tests: runs a task definition's containers as processes in one network
// namespace (awsvpc: one network stack per task), started in the order the agent would start them.
// A container starts when every `dependsOn` of it holds: START (the other started), HEALTHY (the
// other's `healthCheck` command, run as written, exited 0), COMPLETE / SUCCESS (the other exited, with
// 0 for SUCCESS). Task volumes are directories; a container's `mountPoints` map its container paths
// onto them in its arguments and environment. Images are mapped to local programs by the caller.
// Stopping goes in reverse start order, as ECS stops dependents before what they depend on.
//
// Health checks run back to back (a 100 ms pause), not at the definition's `interval`: the order is
// what is under test, and it does not depend on how often the check runs.

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { EcsContainer, EcsTaskDefinition } from '../../proxy-core/inject/index.ts'
import type { Netns, NetnsProcess } from '../infra/netns.ts'
import { runInNetns } from '../infra/netns.ts'

/** The node arguments (a script and its args) that stand for a container's image, or undefined. */
export type ImageMap = (c: EcsContainer, args: string[]) => string[] | undefined

export interface TaskEvent {
  container: string
  event: 'start' | 'healthy' | 'exit'
  code?: number | null
}

export interface RunningTask {
  readonly events: TaskEvent[]
  process(name: string): NetnsProcess
  /** Reverse start order, SIGTERM each and wait for it; the exit codes by container. */
  stop(): Promise<Record<string, number | null>>
}

/** How many health checks before a container counts as unhealthy (30 s of back-to-back checks). */
const MAX_HEALTH_CHECKS = 300
const HEALTH_PAUSE_MS = 100

export async function runTask(
  td: EcsTaskDefinition,
  opts: { ns: Netns; volumesDir: string; images: ImageMap; platformEnv: NodeJS.ProcessEnv },
): Promise<RunningTask> {
  if (td.networkMode !== 'awsvpc') throw new Error('this runner runs awsvpc tasks only')
  const events: TaskEvent[] = []
  const procs = new Map<string, NetnsProcess>()
  const healthy = new Set<string>()
  const exited = new Map<string, number | null>()
  const volumes = new Map<string, string>()
  for (const v of (td.volumes as { name: string }[] | undefined) ?? []) {
    const dir = join(opts.volumesDir, v.name)
    mkdirSync(dir, { recursive: true })
    volumes.set(v.name, dir)
  }

  const mapPaths = (c: EcsContainer) => {
    const mounts = (c.mountPoints ?? []).map((m) => ({
      from: m.containerPath!,
      to: volumes.get(m.sourceVolume!)!,
    }))
    return (v: string) => {
      for (const m of mounts)
        if (v === m.from || v.startsWith(`${m.from}/`)) return m.to + v.slice(m.from.length)
      return v
    }
  }

  const satisfied = (c: EcsContainer): boolean =>
    (c.dependsOn ?? []).every((d) => {
      if (d.condition === 'START') return procs.has(d.containerName)
      if (d.condition === 'HEALTHY') return healthy.has(d.containerName)
      if (d.condition === 'COMPLETE') return exited.has(d.containerName)
      return exited.get(d.containerName) === 0
    })
  const hopeless = (c: EcsContainer): string | undefined => {
    for (const d of c.dependsOn ?? []) {
      if (d.condition === 'SUCCESS' && exited.has(d.containerName) && exited.get(d.containerName) !== 0)
        return `${d.containerName} exited ${exited.get(d.containerName)}`
      if (d.condition === 'HEALTHY' && exited.has(d.containerName))
        return `${d.containerName} exited before it was healthy`
    }
    return undefined
  }

  let changed: () => void = () => {}
  const nextChange = () => new Promise<void>((r) => (changed = r))

  const checkHealth = async (c: EcsContainer, env: NodeJS.ProcessEnv) => {
    const [form, ...command] = c.healthCheck!.command
    const argv = form === 'CMD' ? command : ['sh', '-c', command.join(' ')]
    // `node` in the image is this machine's Node 24.
    if (argv[0] === 'node') argv[0] = process.execPath
    for (let i = 0; i < MAX_HEALTH_CHECKS && !exited.has(c.name); i++) {
      const r = await runInNetns(opts.ns.name, argv, env, 5000)
      if (r.code === 0) {
        healthy.add(c.name)
        events.push({ container: c.name, event: 'healthy' })
        changed()
        return
      }
      await new Promise((r) => setTimeout(r, HEALTH_PAUSE_MS))
    }
  }

  const start = (c: EcsContainer) => {
    const map = mapPaths(c)
    const args = ((c.command as string[] | undefined) ?? []).map(map)
    const script = opts.images(c, args)
    if (script === undefined) throw new Error(`no local program for image ${c.image}`)
    const env: NodeJS.ProcessEnv = { ...opts.platformEnv }
    for (const e of c.environment ?? []) env[e.name] = map(e.value)
    const p = opts.ns.node(script, env)
    procs.set(c.name, p)
    events.push({ container: c.name, event: 'start' })
    void p.exited.then((e) => {
      exited.set(c.name, e.code)
      events.push({ container: c.name, event: 'exit', code: e.code })
      changed()
    })
    if (c.healthCheck !== undefined) void checkHealth(c, env)
  }

  const pending = new Set(td.containerDefinitions.map((c) => c.name))
  const byName = new Map(td.containerDefinitions.map((c) => [c.name, c]))
  try {
    while (pending.size > 0) {
      const wake = nextChange()
      let started = false
      for (const name of [...pending]) {
        const c = byName.get(name)!
        const why = hopeless(c)
        if (why !== undefined) throw new Error(`container ${name} cannot start: ${why}`)
        if (!satisfied(c)) continue
        pending.delete(name)
        start(c)
        started = true
      }
      // An essential container that ends stops the task (ECS does the same).
      for (const [name, code] of exited)
        if (byName.get(name)!.essential !== false)
          throw new Error(`essential container ${name} exited (${code}):\n${procs.get(name)!.output()}`)
      if (!started) await wake
    }
  } catch (e) {
    for (const p of procs.values()) p.kill()
    throw e
  }

  const order = events.filter((e) => e.event === 'start').map((e) => e.container)
  return {
    events,
    process: (name) => procs.get(name)!,
    async stop() {
      const codes: Record<string, number | null> = {}
      for (const name of [...order].reverse()) {
        if (exited.has(name)) {
          codes[name] = exited.get(name)!
          continue
        }
        codes[name] = (await procs.get(name)!.stop()).code
      }
      return codes
    },
  }
}
