// Headless Chromium for the dashboard tests: Debian's /usr/bin/chromium driven by playwright-core,
// with the launch flags that work on these machines (shared/TOOLCHAIN.md). Never skipped: CI installs
// the package (apt-get install -y chromium), and a missing browser fails the test with that hint.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { BrowserContext } from 'playwright-core'
import { chromium } from 'playwright-core'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
]

/** Where the tests leave their screenshots. */
export const ARTIFACTS = resolve(import.meta.dirname, '..', '..', 'test-artifacts')

export interface Chromium {
  readonly context: BrowserContext
  close(): Promise<void>
}

/** A browser with a throwaway profile; `close()` ends it and removes the profile. */
export async function launchChromium(viewport: { width: number; height: number }): Promise<Chromium> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with \`apt-get install -y chromium\``)
  }
  const profile = mkdtempSync(join(tmpdir(), 'meshgate-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport,
  })
  return {
    context,
    async close() {
      await context.close()
      await context.browser()?.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}
