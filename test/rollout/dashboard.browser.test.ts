// The dev dashboard following a rollout to its end, in a real browser (Debian's Chromium through
// playwright-core): `meshgate dev` runs a mesh whose reviews route carries a rollout block (the Lambda
// reviews-v1 replaced by the container reviews-v3); the Rollouts panel shows each step, both targets'
// numbers over the step's window, and the decision log, up to the promotion.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DevProcess, eventually, startDev } from '../dev/dev-process.ts'
import { ARTIFACTS, type Chromium, launchChromium } from '../helpers/chromium.ts'

const FIXTURE = 'test/rollout/fixtures/dev-rollout.yaml'

describe('meshgate dev dashboard: a rollout (Chromium)', () => {
  let dev: DevProcess | undefined
  let chromium: Chromium | undefined

  beforeAll(async () => {
    // No traffic until the page is up: the rollout waits at step 1 for its requests.
    dev = await startDev([FIXTURE, '--port', '0', '--dashboard', '0', '--traffic-rate', '40', '--no-traffic'])
    chromium = await launchChromium({ width: 1400, height: 1400 })
  }, 60_000)

  afterAll(async () => {
    await chromium?.close()
    await dev?.stop()
  })

  it('shows the step, both targets and the decisions, up to the promotion', async () => {
    const page = await chromium!.context.newPage()
    await page.goto(dev!.dashboard)
    const card = page.locator('.rollout[data-service="reviews"][data-route="migrate"]')
    await card.waitFor({ timeout: 20_000 })
    await page.locator('.rollout[data-phase="progressing"][data-step="1"]').waitFor({ timeout: 20_000 })
    // The user switches the traffic on in the header; the rollout moves from here.
    await page.locator('#traffic-on').check()
    // Watch the card as the page updates it: the steps it passes through, with numbers in each.
    const seen: { step: string; phase: string; canary: string; stable: string }[] = []
    const final = await eventually(
      async () => {
        const phase = (await card.getAttribute('data-phase')) ?? ''
        const step = (await card.getAttribute('data-step')) ?? ''
        const canary = (await card.locator('.w-canary td').textContent()) ?? ''
        const stable = (await card.locator('.w-stable td').textContent()) ?? ''
        const last = seen[seen.length - 1]
        if (
          !last ||
          last.step !== step ||
          last.phase !== phase ||
          ((last.canary !== canary || last.stable !== stable) && /\d+ req/.test(canary + stable))
        )
          seen.push({ step, phase, canary, stable })
        return phase === 'promoted' ? phase : undefined
      },
      60_000,
      'the rollout to be promoted on the page',
    )
    expect(final).toBe('promoted')
    const progressing = seen.filter((s) => s.phase === 'progressing')
    // It showed the rollout at work: steps 1 and 2 of 3, and the canary's and stable's numbers.
    expect(new Set(progressing.map((s) => s.step))).toEqual(new Set(['1', '2']))
    expect(progressing.some((s) => /[1-9]\d* req · [\d.]+% errors · p99 [\d.]+ ?m?s/.test(s.canary))).toBe(
      true,
    )
    expect(progressing.some((s) => /[1-9]\d* req/.test(s.stable))).toBe(true)
    const decisions = await card.locator('.decisions li b').allTextContents()
    expect(decisions).toEqual(['complete', 'promote', 'start'])
    await expect(card.locator('.weight').textContent()).resolves.toBe('canary 100%')
    // The running config agrees: everything to the container.
    const state = (await (await fetch(`${dev!.dashboard}/api/state`)).json()) as {
      services: { name: string; routes: { name: string; to: Record<string, number> }[] }[]
    }
    expect(state.services.find((s) => s.name === 'reviews')!.routes[0]!.to).toEqual({ v1: 0, v3: 100 })
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-rollout.png'), fullPage: true })
  }, 100_000)
})
