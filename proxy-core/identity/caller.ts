// Who called: the verified token's names, and the mesh service they belong to. A Lambda function's
// token names the function (`lambda_source_function_arn`) as well as its role (`sub`); the function
// is the more specific, so it is looked up first: two functions sharing one execution role are still
// told apart when each is listed by name or ARN.

import type { MeshConfig } from '../engine/types.ts'
import type { VerifiedToken } from './verify.ts'

export interface Caller {
  /** The mesh service whose `principals` name this caller, if any. */
  readonly service: string | undefined
  /** The most specific principal: the function ARN, else the role ARN. */
  readonly principal: string
  /** Every name the caller goes by: function ARN, function name, role ARN. */
  readonly names: readonly string[]
}

/** `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` → NAME; undefined otherwise. */
export function functionName(arn: string): string | undefined {
  const parts = arn.split(':')
  return parts.length >= 7 && parts[2] === 'lambda' && parts[5] === 'function' ? parts[6] : undefined
}

const indexes = new WeakMap<MeshConfig, ReadonlyMap<string, string>>()

/**
 * principal → service, built once per config (normalize.ts has made each listed principal name one
 * service). A Lambda target's function is a principal of its service too, derived rather than
 * listed: `reviews: { targets: { v1: { lambda: reviews-v1 } } }` makes a token minted by reviews-v1
 * a call from reviews. A function that is a target of two services names neither (ambiguous), and
 * an explicit `principals` entry always wins.
 */
export function principalIndex(config: MeshConfig): ReadonlyMap<string, string> {
  let index = indexes.get(config)
  if (index === undefined) {
    const m = new Map<string, string>()
    const derived = new Map<string, string | null>()
    for (const svc of Object.values(config.services)) {
      for (const p of svc.principals ?? []) m.set(p, svc.name)
      for (const t of Object.values(svc.targets)) {
        if (t.kind !== 'lambda') continue
        const name = t.functionName.startsWith('arn:') ? functionName(t.functionName) : t.functionName
        for (const p of [t.functionName, name]) {
          if (p === undefined) continue
          const prev = derived.get(p)
          derived.set(p, prev === undefined || prev === svc.name ? svc.name : null)
        }
      }
    }
    for (const [p, service] of derived) if (service !== null && !m.has(p)) m.set(p, service)
    index = m
    indexes.set(config, index)
  }
  return index
}

export function callerOf(token: VerifiedToken, index: ReadonlyMap<string, string>): Caller {
  const names: string[] = []
  if (token.functionArn !== undefined) {
    const unqualified = token.functionArn.split(':').slice(0, 7).join(':')
    names.push(unqualified)
    const name = functionName(unqualified)
    if (name !== undefined) names.push(name)
  }
  names.push(token.subject)
  let service: string | undefined
  for (const n of names) {
    service = index.get(n)
    if (service !== undefined) break
  }
  return { service, principal: names[0]!, names }
}

/** Whether a rule's `from` entry names this caller: `*`, its service, or one of its names. */
export function callerMatches(from: readonly string[], caller: Caller | undefined): boolean {
  if (caller === undefined) return false
  for (const f of from) {
    if (f === '*' || f === caller.service || caller.names.includes(f)) return true
  }
  return false
}

/** The caller as logs and rate-limit keys name it: its service, else its principal. */
export function callerLabel(caller: Caller | undefined): string {
  return caller === undefined ? 'anonymous' : (caller.service ?? caller.principal)
}
