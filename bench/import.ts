// How long `meshgate import` takes on a large mesh: 10 000 routes per source, written as files the way
// teams have them (Istio: 1 000 VirtualServices of 10 routes; App Mesh: a CloudFormation template with
// 10 000 AWS::AppMesh::Route resources; Gateway API: 1 000 HTTPRoutes of 10 rules), then read,
// translated and validated as the command does (output not written). Run with `node bench/import.ts`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ImportSource, importFiles } from '../proxy-core/import/index.ts'

const SERVICES = 1_000
const ROUTES_PER_SERVICE = 10

function istio(): string {
  const docs: string[] = []
  for (let s = 0; s < SERVICES; s++) {
    const http = []
    for (let r = 0; r < ROUTES_PER_SERVICE; r++) {
      http.push(`  - name: r${r}
    match:
    - uri: { prefix: /svc${s}/items${r} }
      headers: { x-user: { exact: u${r} } }
    retries: { attempts: 3, perTryTimeout: 1s, retryOn: 5xx }
    route:
    - destination: { host: svc${s}, subset: v1, port: { number: 8080 } }
      weight: 90
    - destination: { host: svc${s}, subset: v2, port: { number: 8080 } }
      weight: 10`)
    }
    docs.push(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: svc${s} }
spec:
  hosts: [svc${s}]
  http:
${http.join('\n')}`)
  }
  return docs.join('\n---\n')
}

function appmesh(): string {
  const out = [
    `AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  MeshName: { Type: String, Default: bench }
Resources:`,
  ]
  for (let s = 0; s < SERVICES; s++) {
    out.push(`  Router${s}:
    Type: AWS::AppMesh::VirtualRouter
    Properties:
      MeshName: !Ref MeshName
      VirtualRouterName: router${s}
      Spec: { Listeners: [{ PortMapping: { Port: 8080, Protocol: http } }] }
  Service${s}:
    Type: AWS::AppMesh::VirtualService
    Properties:
      MeshName: !Ref MeshName
      VirtualServiceName: !Sub 'svc${s}.\${MeshName}.local'
      Spec: { Provider: { VirtualRouter: { VirtualRouterName: !GetAtt Router${s}.VirtualRouterName } } }
  Node${s}:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: !Ref MeshName
      VirtualNodeName: node${s}
      Spec:
        Listeners: [{ PortMapping: { Port: 8080, Protocol: http } }]
        ServiceDiscovery: { DNS: { Hostname: !Sub 'node${s}.\${MeshName}.local' } }`)
    for (let r = 0; r < ROUTES_PER_SERVICE; r++) {
      out.push(`  Route${s}x${r}:
    Type: AWS::AppMesh::Route
    Properties:
      MeshName: !Ref MeshName
      VirtualRouterName: router${s}
      RouteName: route${r}
      Spec:
        Priority: ${r}
        HttpRoute:
          Match: { Prefix: /svc${s}/items${r}, Headers: [{ Name: x-user, Match: { Exact: u${r} } }] }
          Action: { WeightedTargets: [{ VirtualNode: node${s}, Weight: 1 }] }
          RetryPolicy: { MaxRetries: 2, PerRetryTimeout: { Unit: ms, Value: 1000 }, HttpRetryEvents: [server-error] }`)
    }
  }
  return out.join('\n')
}

function gatewayApi(): string {
  const docs: string[] = []
  for (let s = 0; s < SERVICES; s++) {
    const rules = []
    for (let r = 0; r < ROUTES_PER_SERVICE; r++) {
      rules.push(`  - matches:
    - path: { type: PathPrefix, value: /svc${s}/items${r} }
      headers: [{ name: x-user, value: u${r} }]
    backendRefs:
    - { name: svc${s}-v1, port: 8080, weight: 90 }
    - { name: svc${s}-v2, port: 8080, weight: 10 }`)
    }
    docs.push(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: svc${s} }
spec:
  parentRefs: [{ group: "", kind: Service, name: svc${s} }]
  rules:
${rules.join('\n')}`)
  }
  return docs.join('\n---\n')
}

const dir = mkdtempSync(join(tmpdir(), 'meshgate-bench-import-'))
try {
  const cases: [ImportSource, string][] = [
    ['istio', istio()],
    ['appmesh', appmesh()],
    ['gateway-api', gatewayApi()],
  ]
  console.log(`meshgate import, ${SERVICES * ROUTES_PER_SERVICE} routes per source (${process.version})`)
  for (const [source, text] of cases) {
    const file = join(dir, `${source}.yaml`)
    writeFileSync(file, text)
    const started = performance.now()
    const result = await importFiles(source, [file])
    const ms = performance.now() - started
    const routes = Object.values(result.config.services).reduce((n, s) => n + s.routes.length, 0)
    console.log(
      `${source.padEnd(12)} ${(text.length / 1e6).toFixed(1).padStart(5)} MB  ${routes} routes  ${(ms / 1000).toFixed(2)} s  (${result.report.lines.length} report lines)`,
    )
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
