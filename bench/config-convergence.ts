// How long a fleet takes to route by a new config version: issue 15's fleet (test/helpers/fleet.ts,
// the same harness as test/fleet/fleet.test.ts): sidecar processes (half through AppConfigData, half
// through the agent API) and Lambda containers (real middy handlers in worker threads, through the
// extension API) on one profile of the local AppConfig, under a steady request rate. Each round runs
// `meshgate publish` with `reviews` flipped between the `blue` and `green` upstreams; an instance has
// converged at the send time of its first request routed by the new version, counted from the moment
// AppConfig answered StartDeployment. Prints p50/p90/p99/max per kind of instance against the poll
// interval.
//
// Run: npx node bench/config-convergence.ts [--sidecars 20] [--lambdas 10] [--rate 200] [--poll 1s]
//      [--rounds 6]
// A time is known to within the gap between two requests to one instance (instances / rate seconds):
// the resolution is printed with the results.

import { availableParallelism, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { parseDuration } from '../proxy-core/config/duration.ts'
import { type FleetInstance, POLL_JITTER, percentile, startFleet, switches } from '../test/helpers/fleet.ts'
import { type Outcome, pacedLoad } from '../test/helpers/paced-load.ts'

const { values } = parseArgs({
  options: {
    sidecars: { type: 'string', default: '20' },
    lambdas: { type: 'string', default: '10' },
    rate: { type: 'string', default: '200' },
    poll: { type: 'string', default: '1s' },
    rounds: { type: 'string', default: '6' },
  },
})
const count = (name: string, v: string, min: number) => {
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: want an integer ≥ ${min}, got ${v}`)
  return n
}
const SIDECARS = count('sidecars', values.sidecars, 0)
const LAMBDAS = count('lambdas', values.lambdas, 0)
const RATE = count('rate', values.rate, 1)
const ROUNDS = count('rounds', values.rounds, 1)
const POLL_MS = parseDuration(values.poll)
if (POLL_MS === undefined || POLL_MS < 10)
  throw new Error(`--poll: want a duration ≥ 10ms, got ${values.poll}`)
if (SIDECARS + LAMBDAS === 0) throw new Error('no instances')
/** A round waits at most this long for every instance: three intervals, then it is reported as missed. */
const ROUND_LIMIT_MS = POLL_MS * 3 + 5_000
/** Load runs this long before each publish, so every instance is warm and on the old version. */
const SETTLE_MS = 1_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const log = (line: string) => process.stdout.write(`${line}\n`)

const startedAt = performance.now()
const fleet = await startFleet({
  url: 'appconfig://convergence/prod/mesh',
  sidecars: SIDECARS,
  lambdas: LAMBDAS,
  pollMs: POLL_MS,
})
log(
  `fleet up: ${SIDECARS} sidecars (${Math.ceil(SIDECARS / 2)} AppConfigData SDK, ${Math.floor(SIDECARS / 2)} agent API), ` +
    `${LAMBDAS} Lambda containers (extension API) in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`,
)

const instances = fleet.instances
const kindOf = new Map(instances.map((i) => [i.id, i.kind === 'lambda' ? 'lambda' : `sidecar (${i.via})`]))
const samples = new Map<FleetInstance['kind'] | 'sdk' | 'agent', number[]>()
let missed = 0
const failures = new Map<string, number>()
let requests = 0
try {
  let color: 'blue' | 'green' = 'blue'
  for (let round = 1; round <= ROUNDS; round++) {
    color = color === 'blue' ? 'green' : 'blue'
    const want = color
    const isNew = (o: Outcome) => o.upstream === want
    // Each round under its own load, bounded: at most a minute of requests beyond the round's limit.
    const load = pacedLoad(instances, RATE, Math.ceil((RATE * (ROUND_LIMIT_MS + 60_000)) / 1000))
    let got: ReturnType<typeof switches> = []
    try {
      await sleep(SETTLE_MS)
      const published = await fleet.publish(
        fleet.meshJson({ [want]: 100, [want === 'blue' ? 'green' : 'blue']: 0 }),
      )
      const deadline = published.deployedAt + ROUND_LIMIT_MS
      got = switches(instances, load.outcomes, published.deployedAt, isNew)
      while (got.some((s) => s.ms === undefined) && performance.now() < deadline) {
        await sleep(20)
        got = switches(instances, load.outcomes, published.deployedAt, isNew)
      }
    } finally {
      const outcomes = await load.stop()
      requests += outcomes.length
      for (const o of outcomes) {
        if (o.status === 200) continue
        const why = `${kindOf.get(o.target)}: ${o.status === 0 ? (o.error ?? 'no answer').slice(0, 120) : `HTTP ${o.status}`}`
        failures.set(why, (failures.get(why) ?? 0) + 1)
      }
    }
    for (const s of got) {
      if (s.ms === undefined) {
        missed++
        continue
      }
      const kind = s.instance.kind === 'lambda' ? 'lambda' : s.instance.via
      samples.set(kind, [...(samples.get(kind) ?? []), s.ms])
    }
    const ms = got.flatMap((s) => (s.ms === undefined ? [] : [s.ms])).sort((a, b) => a - b)
    log(
      `round ${round}: all to ${want}: ${ms.length}/${instances.length} converged, ` +
        `max ${ms.length > 0 ? Math.round(ms.at(-1)!) : '-'} ms`,
    )
  }
} finally {
  await fleet.close()
}
const failedRequests = [...failures.values()].reduce((a, b) => a + b, 0)

const resolutionMs = (instances.length / RATE) * 1000
log('')
log(
  `convergence after a publish (ms from StartDeployment to the first request routed by the new version), ` +
    `poll ${POLL_MS} ms ±${POLL_JITTER * 100}% (so at most ${Math.round(POLL_MS * (1 + POLL_JITTER))} ms of waiting), ` +
    `${RATE} req/s over ${instances.length} instances (one request per instance every ${Math.round(resolutionMs)} ms), ${ROUNDS} rounds`,
)
const row = (name: string, xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return `| ${name} | 0 | – | – | – | – | – |`
  const cells = [50, 90, 99].map((p) => Math.round(percentile(s, p)))
  const max = Math.round(s.at(-1)!)
  return `| ${name} | ${s.length} | ${cells.join(' | ')} | ${max} | ${(max / POLL_MS).toFixed(2)} |`
}
log('| instances | samples | p50 | p90 | p99 | max | max / poll |')
log('|---|---:|---:|---:|---:|---:|---:|')
log(row('sidecars, AppConfigData SDK', samples.get('sdk') ?? []))
log(row('sidecars, agent API', samples.get('agent') ?? []))
log(row('Lambda containers, extension API', samples.get('lambda') ?? []))
log(row('**all**', [...samples.values()].flat()))
log('')
log(
  `never converged within ${ROUND_LIMIT_MS} ms: ${missed}; failed requests: ${failedRequests} of ${requests}; ` +
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${availableParallelism()} cores`,
)
for (const [why, n] of [...failures].sort((a, b) => b[1] - a[1]).slice(0, 8)) log(`  ${n} × ${why}`)
if (missed > 0 || failedRequests > 0) process.exitCode = 1
