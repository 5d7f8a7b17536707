// Compile a validated MeshConfig once into frozen lookup structures: route tables per service and for
// the gateway, weighted pickers and retry policies per route. Nothing here holds per-request or
// per-endpoint state; that lives in the runtime.
import { createRetryPolicy, type RetryPolicy } from './retry-policy.ts'
import { createRouteTable, type RouteTable } from './route-table.ts'
import type { GatewayRouteConfig, MeshConfig, RouteConfig, ServiceConfig } from './types.ts'
import { createWeightedPicker, type WeightedPicker } from './weighted.ts'

export interface CompiledRoute extends RouteConfig {
  readonly service: string
  readonly picker: WeightedPicker
  readonly retry: RetryPolicy
}

export interface CompiledService {
  readonly name: string
  readonly config: ServiceConfig
  readonly routes: RouteTable<CompiledRoute>
}

export interface CompiledMesh {
  readonly config: MeshConfig
  readonly services: ReadonlyMap<string, CompiledService>
  readonly gateway: RouteTable<GatewayRouteConfig>
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

export function compileMesh(config: MeshConfig): CompiledMesh {
  deepFreeze(config)
  const services = new Map<string, CompiledService>()
  for (const svc of Object.values(config.services)) {
    const routes = svc.routes.map(
      (r): CompiledRoute =>
        Object.freeze({
          ...r,
          service: svc.name,
          picker: createWeightedPicker(r.to),
          retry: createRetryPolicy(r.retries),
        }),
    )
    services.set(svc.name, Object.freeze({ name: svc.name, config: svc, routes: createRouteTable(routes) }))
  }
  return Object.freeze({ config, services, gateway: createRouteTable(config.gateway.routes) })
}
