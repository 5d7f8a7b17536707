// A service's receiver policy, compiled once per config: its authorization (allow rules with their
// matches compiled by the route table's matcher, so a rule's path reads exactly as a route's does),
// and its rate limit. Frozen data; the decision is a pure function of it and the request.

import { createRouteTable, type RouteTable } from '../engine/route-table.ts'
import type {
  AuthorizationConfig,
  AuthorizationRuleConfig,
  HeaderMap,
  MeshConfig,
  RateLimitConfig,
} from '../engine/types.ts'
import { type Caller, callerMatches } from './caller.ts'

interface CompiledRule {
  readonly name: string
  readonly from: readonly string[]
  readonly match: RouteTable<AuthorizationRuleConfig>
}

export interface CompiledAuthorization {
  readonly mode: AuthorizationConfig['mode']
  readonly default: AuthorizationConfig['default']
  readonly rules: readonly CompiledRule[]
}

export interface ServicePolicy {
  readonly service: string
  /** Undefined: every caller, with or without a token. */
  readonly authorization: CompiledAuthorization | undefined
  readonly rateLimit: RateLimitConfig | undefined
  /** What a token for this service must carry in `aud`. */
  readonly audience: string | undefined
}

/** The rule that decided, and whether it allows. `default` when no rule matched. */
export interface AuthorizationDecision {
  readonly allowed: boolean
  readonly rule: string
}

export const DEFAULT_RULE = 'default'

export function decide(
  authz: CompiledAuthorization,
  caller: Caller | undefined,
  method: string,
  path: string,
  headers: HeaderMap,
): AuthorizationDecision {
  for (const r of authz.rules) {
    if (callerMatches(r.from, caller) && r.match.match(method, path, headers) !== undefined)
      return { allowed: true, rule: r.name }
  }
  return { allowed: authz.default === 'allow' && caller !== undefined, rule: DEFAULT_RULE }
}

const compiled = new WeakMap<MeshConfig, Map<string, ServicePolicy | undefined>>()

/** The policy of `service` under `config`; undefined when it has neither authorization nor rate limit. */
export function policyFor(config: MeshConfig, service: string, audienceOf: (s: string) => string) {
  let byService = compiled.get(config)
  if (byService === undefined) {
    byService = new Map()
    compiled.set(config, byService)
  }
  if (byService.has(service)) return byService.get(service)
  const svc = config.services[service]
  const authz =
    svc?.authorization ?? (config.authorization && svc ? { ...config.authorization, rules: [] } : undefined)
  const policy: ServicePolicy | undefined =
    authz === undefined && svc?.rateLimit === undefined
      ? undefined
      : Object.freeze({
          service,
          authorization:
            authz === undefined
              ? undefined
              : Object.freeze({
                  mode: authz.mode,
                  default: authz.default,
                  rules: authz.rules.map((r) =>
                    Object.freeze({ name: r.name, from: r.from, match: createRouteTable([r]) }),
                  ),
                }),
          rateLimit: svc?.rateLimit,
          audience: config.identity === undefined ? undefined : audienceOf(service),
        })
  byService.set(service, policy)
  return policy
}
