// The hand-written examples in infra/ are outputs of `meshgate inject` of a short input, so they cannot
// drift from what the injector does. When this fails, regenerate them from the repository root with
// the command its message prints:
//
//   node bin/meshgate.js inject K8S_FLAGS… infra/k8s/src/productpage.yaml > infra/k8s/productpage.yaml
//   node bin/meshgate.js inject --ecs ECS_FLAGS… infra/ecs/src/productpage.json > infra/ecs/task-definition.json
//
// The comparison is of the parsed documents: comments and layout are free.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT, runCli } from './run-cli.ts'
import { readDocs } from './workloads.ts'

const IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/meshgate-sidecar:0.1.0'
/** The live config (docs/live-config.md): every example reads AppConfig, none a copied file. */
const CONFIG = 'appconfig://bookinfo/prod/mesh'
const K8S_FLAGS = [
  '--image',
  IMAGE,
  '--config',
  CONFIG,
  '--env',
  'MESHGATE_CLOUDWATCH_NAMESPACE=meshgate',
  '--env',
  'AWS_REGION=us-east-1',
]
const ECS_FLAGS = [
  '--image',
  IMAGE,
  '--config',
  CONFIG,
  '--env',
  'MESHGATE_CLOUDWATCH_NAMESPACE=meshgate',
  '--env',
  'AWS_REGION=us-east-1',
]

const regenerate = (args: string[], out: string) =>
  `regenerate: node bin/meshgate.js ${args.join(' ')} > ${out}`

describe('infra/ examples are meshgate inject output', () => {
  it('infra/k8s/productpage.yaml = meshgate inject infra/k8s/src/productpage.yaml', async () => {
    const args = ['inject', ...K8S_FLAGS, 'infra/k8s/src/productpage.yaml']
    const r = await runCli(args)
    expect(r.code, r.stderr).toBe(0)
    const checkedIn = readDocs(readFileSync(join(ROOT, 'infra', 'k8s', 'productpage.yaml'), 'utf8'))
    expect(checkedIn, regenerate(args, 'infra/k8s/productpage.yaml')).toEqual(readDocs(r.stdout))
  })

  it('infra/ecs/task-definition.json = meshgate inject --ecs infra/ecs/src/productpage.json', async () => {
    const args = ['inject', '--ecs', ...ECS_FLAGS, 'infra/ecs/src/productpage.json']
    const r = await runCli(args)
    expect(r.code, r.stderr).toBe(0)
    const checkedIn = JSON.parse(readFileSync(join(ROOT, 'infra', 'ecs', 'task-definition.json'), 'utf8'))
    expect(checkedIn, regenerate(args, 'infra/ecs/task-definition.json')).toEqual(JSON.parse(r.stdout))
  })
})
