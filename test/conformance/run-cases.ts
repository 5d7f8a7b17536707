// Registers the shared cases against one runtime's runner.
import { expect, it } from 'vitest'
import { type ConformanceReply, cases, type Runner, stickyUsers } from './cases.ts'

export function runConformance(runner: () => Runner): void {
  for (const c of cases) {
    it(c.name, async () => {
      const replies: ConformanceReply[] = []
      for (let i = 0; i < (c.repeat ?? 1); i++) replies.push(await runner()(c.request))
      c.expect(replies)
    })
  }

  it('sticky users land on the targets the shared hash assigns', async () => {
    const assigned: Record<string, unknown> = {}
    for (const user of stickyUsers) {
      const r = await runner()({ service: 'reviews', path: '/sticky', headers: { 'x-user': user } })
      assigned[user] = r.json?.upstream
    }
    // Recorded once from the engine; both runtimes must agree with it (and so with each other).
    expect(assigned).toMatchInlineSnapshot(`
      {
        "alice": "v3",
        "bob": "v3",
        "carol": "v2",
        "dave": "v1",
        "erin": "v3",
        "frank": "v2",
        "grace": "v3",
        "heidi": "v3",
      }
    `)
  })
}
