// No input crashes an import: random resources of every kind each source knows, with random specs
// (real field names mixed with junk values), either translate into a config the loader accepts or are
// refused with an ImportError naming a file and line. Any other exception is a bug.

import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseAllDocuments, stringify } from 'yaml'
import { ImportError, type ImportSource, importDocuments } from '../../proxy-core/import/index.ts'
import { readDocuments } from '../../proxy-core/import/reader.ts'
import { fixture } from './translated-mesh.ts'

const FIELDS = [
  'hosts',
  'http',
  'match',
  'route',
  'destination',
  'host',
  'subset',
  'port',
  'number',
  'weight',
  'uri',
  'prefix',
  'exact',
  'regex',
  'headers',
  'retries',
  'attempts',
  'retryOn',
  'timeout',
  'fault',
  'abort',
  'delay',
  'mirror',
  'rewrite',
  'subsets',
  'labels',
  'trafficPolicy',
  'outlierDetection',
  'connectionPool',
  'rules',
  'matches',
  'path',
  'type',
  'value',
  'backendRefs',
  'name',
  'filters',
  'parentRefs',
  'kind',
  'listeners',
  'portMapping',
  'serviceDiscovery',
  'dns',
  'hostname',
  'awsCloudMap',
  'routes',
  'httpRoute',
  'action',
  'weightedTargets',
  'virtualNodeRef',
  'provider',
  'virtualRouter',
  'virtualRouterRef',
  'virtualNode',
  'retryPolicy',
  'maxRetries',
  'perRetryTimeout',
  'unit',
  'priority',
  'target',
  'virtualService',
  'virtualServiceRef',
  'gateways',
  'method',
  'queryParams',
  'timeouts',
  'request',
  'retry',
]
const scalar = fc.oneof(
  fc.constantFrom(
    '/',
    '/a',
    'reviews',
    'v1',
    '5xx,reset',
    '10s',
    'Exact',
    'PathPrefix',
    'RegularExpression',
    '(',
    'ms',
    's',
  ),
  fc.integer({ min: -5, max: 200 }),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 6 }),
)
const { tree } = fc.letrec((tie) => ({
  tree: fc.oneof({ maxDepth: 5, depthIdentifier: 'tree' }, scalar, tie('list'), tie('map')),
  list: fc.array(tie('tree'), { maxLength: 3 }),
  map: fc.dictionary(fc.constantFrom(...FIELDS), tie('tree'), { maxKeys: 5 }),
}))
const spec = fc.dictionary(fc.constantFrom(...FIELDS), tree, { maxKeys: 6 })

/** The fixtures as plain values: the starting points that mutations break in random places. */
const SEEDS: Record<ImportSource, unknown[]> = {
  istio: load('istio/bookinfo.yaml'),
  'gateway-api': load('gateway-api/store.yaml'),
  appmesh: load('appmesh/colorapp-k8s.yaml'),
}
function load(name: string): unknown[] {
  return parseAllDocuments(readFileSync(fixture(...name.split('/')), 'utf8')).map((d) => d.toJS())
}

/** Every path into `v` (objects and arrays), for mutations to pick from. */
function paths(
  v: unknown,
  at: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  out.push(at)
  if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) paths(x, [...at, Array.isArray(v) ? Number(k) : k], out)
  return out
}
function mutate(docs: unknown[], muts: { pick: number; value: unknown; remove: boolean }[]): unknown[] {
  const copy = structuredClone(docs)
  for (const m of muts) {
    const all = paths(copy).filter((p) => p.length > 1)
    const p = all[m.pick % all.length]!
    let node = copy as unknown as Record<string | number, unknown>
    for (const seg of p.slice(0, -1)) node = node[seg] as Record<string | number, unknown>
    const last = p.at(-1)!
    if (m.remove && !Array.isArray(node)) delete node[last]
    else node[last] = m.value
  }
  return copy
}
const mutations = fc.array(fc.record({ pick: fc.nat(), value: fc.oneof(tree, spec), remove: fc.boolean() }), {
  minLength: 1,
  maxLength: 3,
})

let translated = 0
async function survives(source: ImportSource, text: string): Promise<void> {
  try {
    const docs = readDocuments('fuzz.yaml', text)
    await importDocuments(source, docs, ['fuzz.yaml'])
    translated++
  } catch (e) {
    if (!(e instanceof ImportError)) throw e
    expect(e.message).toMatch(/^fuzz\.yaml:\d+: /)
  }
}

describe('no input crashes an import', () => {
  for (const source of ['istio', 'gateway-api', 'appmesh'] as const) {
    it(`${source}: its fixture, broken in up to three random places`, async () => {
      translated = 0
      await fc.assert(
        fc.asyncProperty(mutations, async (muts) => {
          const text = mutate(SEEDS[source], muts)
            .map((d) => stringify(d, { aliasDuplicateObjects: false }))
            .join('---\n')
          await survives(source, text)
        }),
        { numRuns: 300 },
      )
      // Most broken files still translate (with report lines): the property is not vacuous.
      expect(translated).toBeGreaterThan(100)
    })
  }

  it('appmesh CloudFormation templates', async () => {
    const types = ['VirtualService', 'VirtualRouter', 'VirtualNode', 'Route', 'GatewayRoute'].map(
      (t) => `AWS::AppMesh::${t}`,
    )
    const resource = fc.record({
      Type: fc.constantFrom(...types),
      Properties: fc.record(
        {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation Fn::Sub string
          MeshName: fc.constantFrom('m', { Ref: 'P' }, { Ref: 'Missing' }, { 'Fn::Sub': '${P}-x' }),
          VirtualRouterName: fc.constantFrom('r', { 'Fn::GetAtt': ['R0', 'VirtualRouterName'] }),
          VirtualNodeName: fc.constantFrom('n'),
          VirtualServiceName: fc.constantFrom('s.local'),
          RouteName: fc.constantFrom('route'),
          Spec: spec,
        },
        { requiredKeys: ['Spec'] },
      ),
    })
    await fc.assert(
      fc.asyncProperty(fc.array(resource, { minLength: 1, maxLength: 4 }), async (list) => {
        const template = {
          AWSTemplateFormatVersion: '2010-09-09',
          Parameters: { P: { Type: 'String', Default: 'p' } },
          Resources: Object.fromEntries(list.map((r, i) => [`R${i}`, r])),
        }
        await survives('appmesh', stringify(template))
      }),
      { numRuns: 300 },
    )
  })
})
