// The controller's view of the live config: read the document, publish a new version of it. Over the
// control module's stores (AppConfig: a hosted version deployed AllAtOnce, since the rollout itself is
// the gradual part; S3: the object). Another caller (meshgate dev) can hand in a store of its own.
import { createAppConfigStore } from '../control/appconfig-store.ts'
import { type LiveConfigUrl, parseLiveConfigUrl } from '../control/config-url.ts'
import { readLive } from '../control/live-config.ts'
import { checkDocument, type MeshDocument, renderDocument } from '../control/mesh-document.ts'
import { createS3Store } from '../control/s3-store.ts'

export interface LiveStore {
  /** For messages: the URL. */
  readonly name: string
  read(): Promise<{ doc: MeshDocument; version: string }>
  /**
   * Validates, publishes, and returns the new version's name. With `basedOn` (the version the
   * document was read at), refuses with LiveConflictError when someone published since.
   */
  publish(doc: MeshDocument, description: string, basedOn?: string): Promise<string>
}

/** The live config moved on since it was read: read it again and decide again. */
export class LiveConflictError extends Error {}

export function createLiveStore(urlText: string): LiveStore {
  const url: LiveConfigUrl = parseLiveConfigUrl(urlText)
  return {
    name: url.url,
    read: () => readLive(url),
    async publish(doc, description, basedOn) {
      await checkDocument(doc, `${url.url} (rollout)`)
      // A person's publish or shift between our read and this write must not be overwritten. (On
      // AppConfig, two writers racing past this check still meet Latest-Version-Number.)
      if (basedOn !== undefined) {
        const now = (await readLive(url)).version
        if (now !== basedOn)
          throw new LiveConflictError(`${url.url} changed since it was read (${basedOn}, now ${now})`)
      }
      const content = renderDocument(doc)
      if (url.kind === 'appconfig') {
        const r = await (await createAppConfigStore(url)).publish(content, {
          strategy: 'AppConfig.AllAtOnce',
          description,
        })
        return `version ${r.version}`
      }
      const r = await (await createS3Store(url)).put(content)
      return `ETag ${r.etag}`
    },
  }
}
