// The live config's control side (DESIGN.md "Live config"): the publish, shift and status commands
// (CLI modules, { usage, run }), and the same operations for in-process callers such as `meshgate
// dev`'s weight slider: open a store for a URL, shift a document's weights, publish its JSON.
export { appConfigMeshSchema } from './appconfig-schema.ts'
export {
  type AppConfigStore,
  createAppConfigStore,
  DEFAULT_STRATEGY,
  LiveConfigError,
} from './appconfig-store.ts'
export { type LiveConfigUrl, parseLiveConfigUrl } from './config-url.ts'
export { type MeshDocument, parseDocument, readMeshFile, renderDocument } from './mesh-document.ts'
export * as publishCommand from './publish-command.ts'
export { createS3Store, type S3Store } from './s3-store.ts'
export * as shiftCommand from './shift-command.ts'
export * as statusCommand from './status-command.ts'
export { describeChanges, shiftWeights, type WeightChange } from './weights.ts'
