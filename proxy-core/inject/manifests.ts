// `meshgate inject FILE.yaml`: every pod template in a multi-document manifest gets the sidecar, the
// way `istioctl kube-inject` does it, through the same injectPod the webhook uses. The change is
// written into the parsed YAML documents operation by operation (the webhook's JSONPatch, applied to
// the template), so comments, key order and everything else in the file stay as they were.

import type { Document } from 'yaml'
import { isMap, isScalar, parseAllDocuments } from 'yaml'
import { diffSegments } from './json-patch.ts'
import { injectPod } from './pod.ts'
import type { InjectSettings } from './settings.ts'
import { InjectError } from './settings.ts'

type Json = Record<string, unknown>

/** Where each workload kind keeps its pod template (metadata + spec). */
const TEMPLATE_PATH: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
}

export interface InjectedManifests {
  text: string
  /** One line per workload: `Deployment/productpage: injected (service productpage)`, … */
  report: string[]
}

function at(obj: unknown, path: readonly (string | number)[]): unknown {
  let v = obj
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Json)[k] : undefined
  return v
}

/** A new `initContainers` goes before `containers`, where a reader looks for it (and kubectl prints it). */
function initContainersFirst(spec: unknown): void {
  if (!isMap(spec)) return
  const index = (key: string) => spec.items.findIndex((p) => (isScalar(p.key) ? p.key.value : p.key) === key)
  const inits = index('initContainers')
  const containers = index('containers')
  if (inits < 0 || containers < 0 || inits < containers) return
  const [pair] = spec.items.splice(inits, 1)
  spec.items.splice(containers, 0, pair!)
}

/** Injects into one object (and into the items of a `List`), editing `doc` in place. */
function injectObject(
  doc: Document,
  obj: unknown,
  base: (string | number)[],
  settings: InjectSettings,
  report: string[],
): void {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return
  const o = obj as Json
  const kind = typeof o.kind === 'string' ? o.kind : ''
  if (kind.endsWith('List') && Array.isArray(o.items)) {
    for (const [i, item] of o.items.entries())
      injectObject(doc, item, [...base, 'items', i], settings, report)
    return
  }
  if (!Object.hasOwn(TEMPLATE_PATH, kind)) return
  const name = String(at(o, ['metadata', 'name']) ?? '')
  const label = `${kind}/${name}`
  const path = [...base, ...TEMPLATE_PATH[kind]!]
  const template = at(o, TEMPLATE_PATH[kind]!)
  let outcome: ReturnType<typeof injectPod>
  try {
    outcome = injectPod(
      at(template, ['metadata']),
      at(template, ['spec']),
      settings,
      kind === 'Pod' ? undefined : name,
    )
  } catch (e) {
    if (e instanceof InjectError) throw new InjectError(`${label}: ${e.message}`)
    throw e
  }
  if (outcome.kind === 'unchanged') {
    report.push(`${label}: unchanged (${outcome.reason})`)
    return
  }
  for (const op of diffSegments(at(template, ['spec']), outcome.spec, [...path, 'spec'])) {
    if (op.op === 'remove') doc.deleteIn(op.segments)
    else doc.setIn(op.segments, doc.createNode(op.value))
  }
  initContainersFirst(doc.getIn([...path, 'spec'], true))
  report.push(`${label}: injected (service ${outcome.service})`)
}

/** The manifest with the sidecar in every workload; InjectError (naming the document) if any refuses. */
export function injectManifests(text: string, settings: InjectSettings): InjectedManifests {
  const docs = parseAllDocuments(text, { prettyErrors: true })
  if (!Array.isArray(docs)) return { text, report: [] }
  const report: string[] = []
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) throw new InjectError(`document ${i + 1}: ${doc.errors[0]!.message}`)
    injectObject(doc, doc.toJS(), [], settings, report)
  })
  return { text: docs.map((d) => d.toString({ lineWidth: 0 })).join(''), report }
}
