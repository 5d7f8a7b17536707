// Reading the live config back, from whichever source a URL names: the document, and a line
// saying which version it is.
import { createAppConfigStore, LiveConfigError } from './appconfig-store.ts'
import type { LiveConfigUrl } from './config-url.ts'
import { type MeshDocument, parseDocument } from './mesh-document.ts'
import { createS3Store } from './s3-store.ts'

export interface LiveDocument {
  doc: MeshDocument
  /** `version 3 (label v3)`, or `ETag "abc…"`. */
  version: string
}

export async function readLive(url: LiveConfigUrl): Promise<LiveDocument> {
  if (url.kind === 'appconfig') {
    const live = await (await createAppConfigStore(url)).live()
    if (!live)
      throw new LiveConfigError(
        `nothing is deployed at ${url.url} yet (meshgate publish FILE --to ${url.url})`,
      )
    return {
      doc: await parseDocument(live.content, url.url),
      version: `version ${live.version}${live.label ? ` (label ${live.label})` : ''}`,
    }
  }
  const live = await (await createS3Store(url)).live()
  if (!live) throw new LiveConfigError(`no object at ${url.url} yet (meshgate publish FILE --to ${url.url})`)
  return { doc: await parseDocument(live.content, url.url), version: `ETag ${live.etag}` }
}
