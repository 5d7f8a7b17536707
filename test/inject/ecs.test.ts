// `meshgate inject --ecs`: the task definition it prints is accepted by the real @aws-sdk/client-ecs
// RegisterTaskDefinition against a local endpoint that checks ECS's rules (and refuses broken ones,
// so its yes means something), and the registered task runs: its containers started as processes in
// one network namespace in the order its dependsOn and health checks give, with requests flowing in
// through the sidecar to the app and out of the app through the sidecar to another service.
// The run needs root for `ip netns` (as test/sidecar/netns.test.ts); without it the test fails and
// says so.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ECSClient, RegisterTaskDefinitionCommand } from '@aws-sdk/client-ecs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EcsTaskDefinition } from '../../proxy-core/inject/index.ts'
import { defaultSettings, injectTaskDefinition } from '../../proxy-core/inject/index.ts'
import type { EcsEndpoint } from '../helpers/ecs-endpoint.ts'
import { startEcsEndpoint, taskDefinitionProblem } from '../helpers/ecs-endpoint.ts'
import type { Netns } from '../infra/netns.ts'
import { createNetns, httpGetInNetns, removeStaleNetns } from '../infra/netns.ts'
import { ROOT, runCli } from './run-cli.ts'
import { runTask } from './task-runner.ts'

const IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/meshgate-sidecar:0.1.0'
// A task whose config is a file that an init container copies from S3 (the infra example reads AppConfig,
// which no local process here serves): it exercises dependsOn SUCCESS before the sidecar's HEALTHY.
const SOURCE = join(ROOT, 'test', 'inject', 'fixtures', 'ecs-file-config.json')
const TASK = join(import.meta.dirname, 'task')

let endpoint: EcsEndpoint
let ecs: ECSClient
let injected: EcsTaskDefinition

beforeAll(async () => {
  endpoint = await startEcsEndpoint()
  ecs = new ECSClient({
    endpoint: endpoint.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    maxAttempts: 1,
  })
  const r = await runCli(['inject', '--ecs', '--image', IMAGE, SOURCE])
  expect(r.code, r.stderr).toBe(0)
  injected = JSON.parse(r.stdout) as EcsTaskDefinition
})

afterAll(async () => {
  ecs?.destroy()
  await endpoint?.close()
})

async function register(td: unknown) {
  return ecs.send(new RegisterTaskDefinitionCommand(td as never))
}

describe('meshgate inject --ecs, registered', () => {
  it('is accepted by RegisterTaskDefinition, and ECS stores what was sent', async () => {
    const out = await register(injected)
    expect(out.taskDefinition?.taskDefinitionArn).toMatch(/:task-definition\/bookinfo-productpage:1$/)
    expect(out.taskDefinition?.status).toBe('ACTIVE')
    const names = out.taskDefinition!.containerDefinitions!.map((c) => c.name)
    expect(names).toEqual(['mesh-config', 'meshgate', 'xray-daemon', 'productpage'])
    const sidecar = out.taskDefinition!.containerDefinitions![1]!
    expect(sidecar.healthCheck?.command?.slice(0, 2)).toEqual(['CMD', 'node'])
    expect(sidecar.portMappings).toEqual([
      { name: 'mesh-inbound', containerPort: 15006, protocol: 'tcp', appProtocol: 'http' },
    ])
    expect(out.taskDefinition!.containerDefinitions![3]!.dependsOn).toEqual([
      { containerName: 'meshgate', condition: 'HEALTHY' },
    ])
    // The SDK sent the task as ECS's wire form; the endpoint kept it field for field.
    expect(endpoint.registered.at(-1)!.containerDefinitions).toEqual(injected.containerDefinitions)
  })

  it('is refused when its shape is broken, so the acceptance above is a check', async () => {
    const spoil: [string, (td: any) => void, RegExp][] = [
      [
        'duplicate names',
        (td) => {
          td.containerDefinitions[3].name = 'meshgate'
        },
        /Duplicate container name/,
      ],
      [
        'a dependsOn to nowhere',
        (td) => {
          td.containerDefinitions[3].dependsOn[0].containerName = 'mesh'
        },
        /not a container/,
      ],
      [
        'SUCCESS on an essential container',
        (td) => {
          td.containerDefinitions[1].dependsOn[0].condition = 'SUCCESS'
          td.containerDefinitions[0].essential = true
        },
        /essential/,
      ],
      [
        'HEALTHY without a health check',
        (td) => {
          delete td.containerDefinitions[1].healthCheck
        },
        /HEALTHY needs a health check/,
      ],
      [
        'an unknown condition',
        (td) => {
          td.containerDefinitions[3].dependsOn[0].condition = 'READY'
        },
        /condition READY/,
      ],
      [
        'a port out of range',
        (td) => {
          td.containerDefinitions[1].portMappings[0].containerPort = 70000
        },
        /containerPort/,
      ],
      [
        'a cycle',
        (td) => {
          td.containerDefinitions[1].dependsOn.push({ containerName: 'productpage', condition: 'START' })
        },
        /cycle/,
      ],
      [
        'bridge on Fargate',
        (td) => {
          td.networkMode = 'bridge'
        },
        /awsvpc/,
      ],
    ]
    for (const [what, change, reason] of spoil) {
      const td = structuredClone(injected) as any
      change(td)
      await expect(register(td), what).rejects.toMatchObject({
        name: 'ClientException',
        message: expect.stringMatching(reason),
      })
    }
  })

  it('refuses to inject what ECS could not run', () => {
    const source = JSON.parse(readFileSync(SOURCE, 'utf8'))
    const settings = defaultSettings(IMAGE)
    const bridge = { ...source, networkMode: 'bridge' }
    expect(() => injectTaskDefinition(bridge, settings)).toThrow(/awsvpc/)
    const small = { ...source, memory: '256' }
    expect(() => injectTaskDefinition(small, settings)).toThrow(/more than the task's memory 256/)
    const noVolume = structuredClone(source)
    delete noVolume.containerDefinitions[1].dockerLabels['meshgate.io/init-first']
    expect(() => injectTaskDefinition(noVolume, settings)).toThrow(/s3:\/\/ or appconfig:\/\//)
    // A live-config source needs no copy container and no volume.
    const live = structuredClone(noVolume)
    live.containerDefinitions[1].dockerLabels['meshgate.io/config'] =
      's3://bookinfo-mesh-config/bookinfo/mesh.yaml'
    const out = injectTaskDefinition(live, settings)
    expect(out.kind).toBe('injected')
    if (out.kind !== 'injected') return
    const sidecar = out.taskDefinition.containerDefinitions.find((c) => c.name === 'meshgate')!
    expect(sidecar.mountPoints).toBeUndefined()
    expect(sidecar.dependsOn).toBeUndefined()
    expect(taskDefinitionProblem(out.taskDefinition)).toBeUndefined()
    // Injected twice: the same task.
    expect(injectTaskDefinition(out.taskDefinition, settings)).toMatchObject({
      kind: 'unchanged',
      reason: 'already-injected',
    })
  })
})

describe('meshgate inject --ecs, run', () => {
  let ns: Netns
  let dir: string

  beforeAll(() => {
    removeStaleNetns()
    ns = createNetns('ecs-task')
    dir = mkdtempSync(join(tmpdir(), 'meshgate-ecs-task-'))
  })
  afterAll(() => {
    ns?.remove()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('starts the containers in dependsOn and health order, and traffic flows through the sidecar', async () => {
    const registered = (await register(injected)).taskDefinition as EcsTaskDefinition
    // The platform around the task: S3 with the mesh config in it, the service the app calls.
    const mesh = join(dir, 'mesh.yaml')
    writeFileSync(
      mesh,
      [
        'version: 1',
        'mesh: bookinfo',
        'services:',
        '  productpage:',
        '    targets: { v1: { http: http://127.0.0.1:9080 } }',
        '  details:',
        '    targets: { v1: { http: http://127.0.0.1:9500 } }',
        '',
      ].join('\n'),
    )
    const copy = registered.containerDefinitions[0]!.command as string[]
    const [bucket, ...key] = copy[2]!.slice('s3://'.length).split('/')
    const s3 = ns.node(
      [join(TASK, 's3-server.ts'), '127.0.0.1:4569', join(dir, 's3'), bucket!, key.join('/'), mesh],
      {
        PATH: process.env.PATH,
      },
    )
    await s3.waitForLine(/^ready$/, 20_000)
    const details = ns.node([join(TASK, 'details.ts'), '127.0.0.1', '9500'], { PATH: process.env.PATH })
    await details.waitForLine(/listening/)

    const task = await runTask(registered, {
      ns,
      volumesDir: join(dir, 'volumes'),
      platformEnv: {
        PATH: process.env.PATH,
        // What the ECS agent gives a task: a region and the task role's credentials (here, S3's).
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
        AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:4569',
        // No CloudWatch in this namespace.
        MESHGATE_CLOUDWATCH: 'off',
      },
      images: (c, args) => {
        if (c.image.startsWith('public.ecr.aws/aws-cli/')) return [join(TASK, 'aws-s3-cp.ts'), ...args]
        if (c.image === IMAGE) return [join(ROOT, 'bin', 'meshgate.js'), 'sidecar', ...args]
        if (c.image.startsWith('public.ecr.aws/xray/'))
          return [join(TASK, 'udp-sink.ts'), '127.0.0.1', '2000']
        if (c.name === 'productpage') return [join(TASK, 'app.ts'), '9080', 'details']
        return undefined
      },
    })
    try {
      const seq = task.events.map(
        (e) => `${e.container}:${e.event}${e.code === undefined ? '' : `:${e.code}`}`,
      )
      const at = (s: string) => {
        expect(seq, s).toContain(s)
        return seq.indexOf(s)
      }
      // The config copy ends (exit 0) before meshgate starts; the app starts only once meshgate is
      // healthy; the daemon has no dependencies and starts with meshgate's turn.
      expect(at('mesh-config:exit:0')).toBeLessThan(at('meshgate:start'))
      expect(at('meshgate:healthy')).toBeLessThan(at('productpage:start'))
      await task.process('productpage').waitForLine(/app listening/)
      // In through the sidecar's inbound listener, out through its outbound one, to details.
      const res = await httpGetInNetns(ns.name, 'http://127.0.0.1:15006/productpage')
      expect(res.error).toBeUndefined()
      expect(res.status, `${res.body}\n${task.process('meshgate').output()}`).toBe(200)
      const body = JSON.parse(res.body!)
      expect(body.proxy).toBe('http://127.0.0.1:15001')
      expect(body.next.status).toBe(200)
      expect(JSON.parse(body.next.body)).toMatchObject({ service: 'details', url: '/details/0' })
      // `details` has no DNS name and listens on 9500, not 80: only the sidecar's route reaches it.
    } finally {
      const codes = await task.stop()
      // The sidecar drains and exits 0 on SIGTERM, after the app (reverse start order).
      expect(codes.meshgate).toBe(0)
      await s3.stop()
      await details.stop()
    }
  })
})
