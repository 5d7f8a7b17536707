// The monthly AWS AppConfig bill for the live config of a fleet: sidecars polling AppConfigData and
// Lambda containers polling through the AppConfig Agent Lambda extension, at the default poll
// interval. A model, not a measurement: the inputs are printed beside the numbers.
//
//   node bench/appconfig-cost.ts [--sidecars 1000] [--lambdas 1000] [--poll 45] [--deployments 60]
//                                [--lambda-lifetime-hours 2] [--sidecar-restarts 1]
//
// Prices: AWS AppConfig (a capability of Systems Manager), us-east-1 and every commercial region:
//   $0.0000002 per configuration request via API calls (StartConfigurationSession and every
//   GetLatestConfiguration, empty answers included), and $0.0008 per configuration received (an
//   answer that carries the configuration). Source: https://aws.amazon.com/systems-manager/pricing/
//   (AWS AppConfig section), quoted in AWS re:Post answer
//   https://repost.aws/questions/QUevHYubJ-TESBPlUxRyujmg; looked up 2026-12-04 in stored copies
//   (the pricing page itself could not be opened from this machine).
import { parseArgs } from 'node:util'

export const PRICE = {
  perRequest: 0.0000002,
  perConfigurationReceived: 0.0008,
  source:
    'https://aws.amazon.com/systems-manager/pricing/ (AWS AppConfig), quoted in https://repost.aws/questions/QUevHYubJ-TESBPlUxRyujmg',
  lookedUp: '2026-12-04',
} as const

/** 730 hours: the month AWS's pricing pages and calculator use. */
export const SECONDS_PER_MONTH = 730 * 3600

export interface FleetInputs {
  sidecars: number
  lambdas: number
  /** Seconds between polls (MESHGATE_CONFIG_POLL / AWS_APPCONFIG_EXTENSION_POLL_INTERVAL_SECONDS): 45, AppConfig's default. */
  pollSeconds: number
  /** Deployments a month; each reaches every live client once. */
  deployments: number
  /** How long a Lambda execution environment lives before Lambda replaces it (an assumption: AWS publishes no figure). */
  lambdaLifetimeHours: number
  /** How often each sidecar (task, pod) starts in a month. */
  sidecarRestarts: number
}

export interface PartCost {
  requests: number
  received: number
  requestCost: number
  receivedCost: number
  total: number
}

function part(requests: number, received: number): PartCost {
  const requestCost = requests * PRICE.perRequest
  const receivedCost = received * PRICE.perConfigurationReceived
  return { requests, received, requestCost, receivedCost, total: requestCost + receivedCost }
}

export function monthlyCost(f: FleetInputs): { sidecars: PartCost; lambdas: PartCost; total: number } {
  const pollsPerClient = SECONDS_PER_MONTH / f.pollSeconds
  // A sidecar: one session per start (StartConfigurationSession + its first GetLatestConfiguration,
  // which receives the config), then one poll per interval; a deployment is received once.
  const sidecarSessions = f.sidecars * f.sidecarRestarts
  const sidecars = part(
    f.sidecars * pollsPerClient + sidecarSessions,
    sidecarSessions + f.sidecars * f.deployments,
  )
  // A Lambda container: the extension polls while the environment runs; this counts every interval
  // of the month, the upper bound of a container that is never frozen. Each new environment opens a
  // session and receives the config once (AWS_APPCONFIG_EXTENSION_PREFETCH_LIST fetches it at init).
  const environments = f.lambdas * (730 / f.lambdaLifetimeHours)
  const lambdas = part(f.lambdas * pollsPerClient + environments, environments + f.lambdas * f.deployments)
  return { sidecars, lambdas, total: sidecars.total + lambdas.total }
}

const usd = (n: number) => `$${n.toFixed(2)}`
const count = (n: number) => Math.round(n).toLocaleString('en-US')

function main(): void {
  const { values } = parseArgs({
    options: {
      sidecars: { type: 'string', default: '1000' },
      lambdas: { type: 'string', default: '1000' },
      poll: { type: 'string', default: '45' },
      deployments: { type: 'string', default: '60' },
      'lambda-lifetime-hours': { type: 'string', default: '2' },
      'sidecar-restarts': { type: 'string', default: '1' },
    },
  })
  const f: FleetInputs = {
    sidecars: Number(values.sidecars),
    lambdas: Number(values.lambdas),
    pollSeconds: Number(values.poll),
    deployments: Number(values.deployments),
    lambdaLifetimeHours: Number(values['lambda-lifetime-hours']),
    sidecarRestarts: Number(values['sidecar-restarts']),
  }
  for (const [k, v] of Object.entries(f))
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k}: expected a positive number, got ${v}`)
  const c = monthlyCost(f)
  const row = (name: string, p: PartCost) =>
    `${name.padEnd(18)} ${count(p.requests).padStart(14)} ${usd(p.requestCost).padStart(10)} ${count(p.received).padStart(12)} ${usd(p.receivedCost).padStart(10)} ${usd(p.total).padStart(10)}`
  console.log('AWS AppConfig, monthly (730 h), live mesh config')
  console.log(
    `inputs: ${f.sidecars} sidecars, ${f.lambdas} Lambda containers, poll ${f.pollSeconds} s, ${f.deployments} deployments/month, ` +
      `Lambda environments live ${f.lambdaLifetimeHours} h, ${f.sidecarRestarts} sidecar start(s)/month`,
  )
  console.log(
    `prices: $${PRICE.perRequest.toFixed(7)} per request, $${PRICE.perConfigurationReceived} per configuration received (${PRICE.source}; looked up ${PRICE.lookedUp})`,
  )
  console.log(
    `${''.padEnd(18)} ${'requests'.padStart(14)} ${'cost'.padStart(10)} ${'received'.padStart(12)} ${'cost'.padStart(10)} ${'total'.padStart(10)}`,
  )
  console.log(row('sidecars', c.sidecars))
  console.log(row('Lambda containers', c.lambdas))
  console.log(
    `${'total'.padEnd(18)} ${''.padStart(14)} ${''.padStart(10)} ${''.padStart(12)} ${''.padStart(10)} ${usd(c.total).padStart(10)}`,
  )
  console.log(
    'Lambda polls are an upper bound (a frozen environment does not poll); configurations received dominate: ' +
      'each deployment and each new Lambda environment costs $0.0008 per client.',
  )
}

if (import.meta.main) main()
