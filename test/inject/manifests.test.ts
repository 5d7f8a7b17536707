// `meshgate inject FILE.yaml` gives, for every pod template, exactly what the webhook's patch gives for
// a pod made from that template; it leaves every other document as it was, its output is valid
// Kubernetes, injecting it again changes nothing, and a workload it refuses fails the whole run.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { answerReview, defaultSettings } from '../../proxy-core/inject/index.ts'
import { applyPatch } from './apply-patch.ts'
import { unknownFields, validateWorkload } from './k8s-schema.ts'
import { ROOT, runCli } from './run-cli.ts'
import { admissionReview, readDocs, workloadPods } from './workloads.ts'

const IMAGE = 'registry.example.com/meshgate-sidecar:0.1.0'
const FILES = [
  join(ROOT, 'infra', 'k8s', 'src', 'productpage.yaml'),
  join(import.meta.dirname, 'fixtures', 'orders.yaml'),
  join(import.meta.dirname, 'fixtures', 'batch.yaml'),
]
type Json = Record<string, unknown>

function at(o: unknown, path: string[]): unknown {
  return path.reduce<unknown>((v, k) => (v as Json | undefined)?.[k], o)
}

/** The pod the webhook makes of this one: its answer's patch, applied. */
function webhookResult(pod: unknown): Json {
  const answer = answerReview(JSON.stringify(admissionReview(pod)), defaultSettings(IMAGE))
  const patch = (answer.body.response as Json).patch
  if (typeof patch !== 'string') return pod as Json
  return applyPatch(pod, JSON.parse(Buffer.from(patch, 'base64').toString('utf8'))) as Json
}

describe('meshgate inject FILE.yaml', () => {
  for (const file of FILES) {
    it(`gives what the webhook gives: ${file.slice(ROOT.length + 1)}`, async () => {
      const input = readFileSync(file, 'utf8')
      const { code, stdout, stderr } = await runCli(['inject', '--image', IMAGE, file])
      expect(code, stderr).toBe(0)
      const before = readDocs(input)
      const after = readDocs(stdout)
      expect(after).toHaveLength(before.length)
      const pods = workloadPods(before)
      const workloads = new Set(pods.map((p) => p.workload))
      for (const [i, doc] of after.entries()) {
        const name = `${doc.kind}/${(doc.metadata as Json).name}`
        if (!workloads.has(name)) {
          expect(doc, `${name} is not a workload: unchanged`).toEqual(before[i])
          continue
        }
        expect(validateWorkload(doc), name).toBe(true)
        const { pod, templatePath } = pods.find((p) => p.workload === name)!
        const spec = at(doc, [...templatePath, 'spec'])
        expect(unknownFields(spec, 'PodSpec'), name).toEqual([])
        expect(spec, name).toEqual(webhookResult(pod).spec)
        // Everything outside the pod spec is as the team wrote it.
        const strip = (d: Json) => {
          const c = structuredClone(d)
          const parent = templatePath.length === 0 ? c : (at(c, templatePath) as Json)
          delete parent.spec
          return c
        }
        expect(strip(doc), name).toEqual(strip(before[i]!))
      }
      expect(stderr).toMatch(/injected \(service /)
      // Its own output again: the same text.
      const again = await runCli(['inject', '--image', IMAGE, '-'], stdout)
      expect(again.code).toBe(0)
      expect(again.stdout).toBe(stdout)
      expect(again.stderr).toMatch(/unchanged \(already-injected\)/)
    })
  }

  it('keeps the comments and layout of what it does not change', async () => {
    const file = join(import.meta.dirname, 'fixtures', 'orders.yaml')
    const { stdout } = await runCli(['inject', '--image', IMAGE, file])
    expect(stdout).toContain("# A team's service, as written before the mesh")
    expect(stdout).toContain('rollingUpdate: { maxSurge: 1, maxUnavailable: 0 }')
    // initContainers stays where it was; a new one would be put before containers.
    expect(stdout.indexOf('initContainers:')).toBeLessThan(stdout.indexOf('      containers:'))
  })

  it('fails the whole file, printing nothing, when one workload cannot be injected', async () => {
    const broken = `${readFileSync(FILES[1]!, 'utf8')}
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: proxyish }
spec:
  selector: { matchLabels: { app: proxyish } }
  template:
    metadata: { labels: { app: proxyish } }
    spec:
      containers:
        - name: app
          image: example/app
          ports: [{ containerPort: 15006 }]
`
    const r = await runCli(['inject', '--image', IMAGE, '-'], broken)
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/Deployment\/proxyish: port 15006 \(meshgate inbound\) is container app's/)
    const yaml = await runCli(['inject', '-'], 'a: [1, 2\n')
    expect(yaml.code).toBe(1)
    expect(yaml.stderr).toMatch(/document 1/)
    const missing = await runCli(['inject', join(ROOT, 'no-such.yaml')])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/cannot read/)
    const usage = await runCli(['inject', '--drain', 'soon', FILES[0]!])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/--drain: not a duration/)
  })
})
