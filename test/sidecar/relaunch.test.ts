import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { relaunchFor, SIDECAR_ENV, SIDECAR_NODE_FLAGS } from '../../proxy-core/sidecar/relaunch.ts'
import { meshDir, removeSidecarBundle, startSidecarProcess } from '../helpers/sidecar-process.ts'
import { readImage } from '../infra/specs.ts'

const ARGV = ['/usr/bin/node', '/opt/meshgate/meshgate-sidecar.mjs', '--service', 'a']

describe('relaunchFor', () => {
  it('adds the flags before node’s own and the variables to the environment, and marks the relaunch', () => {
    const to = relaunchFor(ARGV, ['--enable-source-maps'], { PATH: '/bin' })
    expect(to).toEqual({
      args: [
        '--max-semi-space-size=2',
        '--enable-source-maps',
        '/opt/meshgate/meshgate-sidecar.mjs',
        '--service',
        'a',
      ],
      env: { PATH: '/bin', MALLOC_ARENA_MAX: '2', MESHGATE_RELAUNCHED: '1' },
    })
  })

  it('keeps an operator’s own value of either, in any of its spellings', () => {
    for (const given of [
      '--max-semi-space-size=16',
      '--max_semi_space_size=16',
      '--max-semi-space-size 16',
    ]) {
      expect(relaunchFor(ARGV, [], { NODE_OPTIONS: `--enable-source-maps ${given}` })?.args).toEqual(
        ARGV.slice(1),
      )
    }
    expect(relaunchFor(ARGV, ['--max-semi-space-size=1'], {})?.args).toEqual([
      '--max-semi-space-size=1',
      ...ARGV.slice(1),
    ])
    expect(relaunchFor(ARGV, [], { MALLOC_ARENA_MAX: '8' })?.env.MALLOC_ARENA_MAX).toBe('8')
    expect(relaunchFor(ARGV, ['--max-semi-space-size=4'], { MALLOC_ARENA_MAX: '8' })).toBeUndefined()
  })

  it('never relaunches a relaunched process, nor one without a script', () => {
    expect(relaunchFor(ARGV, [], { MESHGATE_RELAUNCHED: '1' })).toBeUndefined()
    expect(relaunchFor(['/usr/bin/node'], ['-e', 'x'], {})).toBeUndefined()
  })

  it('are the settings the image sets, so the image never needs to relaunch', () => {
    const { env } = readImage()
    expect(env.NODE_OPTIONS?.split(/\s+/)).toEqual([...SIDECAR_NODE_FLAGS])
    for (const [name, value] of Object.entries(SIDECAR_ENV)) expect(env[name]).toBe(value)
  })
})

describe('a sidecar started without them', () => {
  const mesh = meshDir()
  const config = mesh.write('mesh.json', {
    version: 1,
    mesh: 'relaunch',
    services: {
      echo: { targets: { one: { http: 'http://127.0.0.1:9' } }, routes: [{ name: 'all', to: 'one' }] },
    },
  })
  afterAll(async () => {
    mesh.remove()
    await removeSidecarBundle()
  })

  function processOf(pid: number): { args: string[]; env: Map<string, string> } {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
    const env = new Map<string, string>()
    for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)) {
      const eq = kv.indexOf('=')
      env.set(kv.slice(0, eq), kv.slice(eq + 1))
    }
    return { args, env }
  }

  for (const entry of ['cli', 'bundle'] as const) {
    it(`runs with them in the same process (${entry})`, async () => {
      const sidecar = await startSidecarProcess({ configPath: config, service: 'echo', entry })
      try {
        // The PID the test spawned is the one serving: execve replaced the process, nothing forked.
        const { args, env } = processOf(sidecar.pid)
        expect(args[1]).toBe('--max-semi-space-size=2')
        expect(env.get('MALLOC_ARENA_MAX')).toBe('2')
        const ready = await fetch(`${sidecar.admin}/ready`)
        expect(ready.status).toBe(200)
      } finally {
        await sidecar.stop()
      }
    })
  }

  it('leaves an operator’s own settings alone', async () => {
    const sidecar = await startSidecarProcess({
      configPath: config,
      service: 'echo',
      env: { NODE_OPTIONS: '--max-semi-space-size=4', MALLOC_ARENA_MAX: '4' },
    })
    try {
      const { args, env } = processOf(sidecar.pid)
      expect(args).not.toContain('--max-semi-space-size=2')
      expect(env.get('MALLOC_ARENA_MAX')).toBe('4')
      expect(env.has('MESHGATE_RELAUNCHED')).toBe(false)
    } finally {
      await sidecar.stop()
    }
  })
})
