// Sidecar injection: one decision about what meshgate looks like beside a workload (pod.ts for
// Kubernetes, ecs.ts for ECS, both from settings.ts), and the three ways to apply it: the admission
// webhook (webhook.ts), `meshgate inject` of manifests (manifests.ts) and of a task definition.

export type { EcsContainer, EcsInjectOutcome, EcsTaskDefinition } from './ecs.ts'
export { ECS_SIDECAR_NAME, injectTaskDefinition, readyCheckCommand } from './ecs.ts'
export { formatJson } from './json-format.ts'
export type { PatchOp } from './json-patch.ts'
export { diff, escapePointerToken, pointer } from './json-patch.ts'
export type { InjectedManifests } from './manifests.ts'
export { injectManifests } from './manifests.ts'
export type { InjectOutcome, K8sContainer, K8sPod, K8sPodSpec } from './pod.ts'
export { hasSidecar, injectPod, SIDECAR_NAME } from './pod.ts'
export type { InjectSettings, SidecarResources } from './settings.ts'
export { ANNOTATIONS, DEFAULT_PORTS, defaultSettings, InjectError } from './settings.ts'
export type { Injector, InjectorOptions } from './webhook.ts'
export { answerReview, MAX_REVIEW_BYTES, startInjector } from './webhook.ts'
