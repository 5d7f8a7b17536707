// The dashboard in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core. The page shows every Bookinfo service on the graph; moving the canary's slider
// rewrites the running config, and the observed split follows under generated traffic.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ARTIFACTS, type Chromium, launchChromium } from '../helpers/chromium.ts'
import { type DevProcess, eventually, startDev } from './dev-process.ts'

describe('meshgate dev dashboard (Chromium)', () => {
  let dev: DevProcess | undefined
  let chromium: Chromium | undefined

  beforeAll(async () => {
    dev = await startDev(['--port', '0', '--dashboard', '0', '--traffic-rate', '50'])
    chromium = await launchChromium({ width: 1400, height: 1200 })
  }, 60_000)

  afterAll(async () => {
    await chromium?.close()
    await dev?.stop()
  })

  it('shows the graph, moves the canary with its slider, and the observed split follows', async () => {
    const page = await chromium!.context.newPage()
    await page.goto(dev!.dashboard)
    for (const service of ['gateway', 'productpage', 'details', 'reviews', 'ratings']) {
      await page.locator(`#graph .node[data-service="${service}"]`).waitFor({ timeout: 15_000 })
    }
    await expect(page.locator('#graph .node.mixed[data-service="reviews"]').count()).resolves.toBe(1)
    await expect(page.locator('#graph .node.lambda[data-service="details"]').count()).resolves.toBe(1)
    await expect(page.locator('#graph .node.container[data-service="ratings"]').count()).resolves.toBe(1)

    // The user's move: click the middle of the reviews/canary slider (v1 ↔ v3).
    const slider = page.locator('input.split[data-route="reviews/canary"]')
    await slider.waitFor({ timeout: 15_000 })
    const box = (await slider.boundingBox())!
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2)
    const v3 = Number(await slider.inputValue())
    expect(v3).toBeGreaterThan(35)
    expect(v3).toBeLessThan(65)

    // The running config follows (the same reload as a file change)...
    await eventually(
      async () => {
        const state = (await (await fetch(`${dev!.dashboard}/api/state`)).json()) as {
          services: { name: string; routes: { name: string; to: Record<string, number> }[] }[]
        }
        const to = state.services
          .find((s) => s.name === 'reviews')
          ?.routes.find((r) => r.name === 'canary')?.to
        return to?.v3 === v3 && to?.v1 === 100 - v3 ? to : undefined
      },
      10_000,
      'the new weights in the running config',
    )
    // ...and so does the observed split on the page, within a minute of generated traffic.
    const observed = await eventually(
      async () => {
        const row = page.locator('.route[data-route="reviews/canary"]')
        const text = (await row.locator('.observed-text').textContent()) ?? ''
        const total = Number(/\((\d+) req\)/.exec(text)?.[1] ?? 0)
        const pct = Number(await row.locator('.observed-pct[data-target="v3"]').textContent())
        return total >= 150 && Math.abs(pct - v3) < 15 ? { total, pct } : undefined
      },
      60_000,
      `the observed v3 share near ${v3}%`,
    )
    expect(Math.abs(observed.pct - v3)).toBeLessThan(15)

    await page.locator('#traces .trace').first().waitFor({ timeout: 10_000 })
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })
  }, 85_000)
})
