// What the numbers were measured on: CPU, memory, kernel and the versions of everything in the path.

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'

export interface Machine {
  cpu: string
  cores: number
  hypervisor: string | null
  /** The cpuidle driver, and whether the run held the cores out of deep idle (holdShallowIdle). */
  idle: string
  memoryGiB: number
  os: string
  kernel: string
  node: string
  nginx: string
  haproxy: string
  wrk: string
}

/** stdout and stderr together: nginx -v prints its version on stderr, wrk -v exits non-zero. */
function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return `${r.stdout ?? ''}${r.stderr ?? ''}`
}

function lscpuField(text: string, field: string): string | undefined {
  return new RegExp(`^${field}:\\s+(.+)$`, 'm').exec(text)?.[1]?.trim()
}

function cpuidleDriver(): string {
  try {
    return readFileSync('/sys/devices/system/cpu/cpuidle/current_driver', 'utf8').trim()
  } catch {
    return 'none'
  }
}

export function describeMachine(idleHeld: boolean): Machine {
  const lscpu = run('lscpu', [])
  let os = 'Linux'
  try {
    os = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os
  } catch {
    // No os-release: say Linux.
  }
  const nginx = /nginx\/(\S+)/.exec(run('nginx', ['-v']))?.[1] ?? 'unknown'
  const haproxy = /HAProxy version (\S+)/.exec(run('haproxy', ['-v']))?.[1] ?? 'unknown'
  // dpkg-query's own field syntax, not a template placeholder.
  const dpkgFormat = '-f=$' + '{Version}'
  const wrk =
    /^wrk (\S+)/m.exec(run('wrk', ['-v']))?.[1] ??
    (run('dpkg-query', ['-W', dpkgFormat, 'wrk']).trim() || 'unknown')
  const mhz = lscpuField(lscpu, 'CPU max MHz') ?? lscpuField(lscpu, 'CPU MHz')
  const model = lscpuField(lscpu, 'Model name') ?? cpus()[0]?.model ?? 'unknown'
  return {
    cpu: mhz === undefined ? model : `${model} @ ${Math.round(Number(mhz))} MHz`,
    cores: Number(lscpuField(lscpu, 'CPU\\(s\\)') ?? cpus().length),
    hypervisor: lscpuField(lscpu, 'Hypervisor vendor') ?? null,
    idle: `cpuidle ${cpuidleDriver()}, ${idleHeld ? 'held in its polling state for the run' : 'not held (needs root)'}`,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os,
    kernel: run('uname', ['-r']).trim(),
    node: process.version,
    nginx,
    haproxy,
    wrk,
  }
}

export function machineLine(m: Machine): string {
  const virt = m.hypervisor === null ? '' : ` (${m.hypervisor} VM)`
  return (
    `${m.cpu}, ${m.cores} vCPU${virt}, ${m.memoryGiB} GiB RAM; ${m.os}, kernel ${m.kernel}, ${m.idle}; ` +
    `Node ${m.node}, nginx ${m.nginx}, HAProxy ${m.haproxy}, wrk ${m.wrk}`
  )
}
