// Bookinfo `reviews` as a container (the v3 of the demo: red stars). Same answer as the Lambda
// versions in ../reviews.ts, so a canary can move between Lambda and containers unnoticed by callers.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import type { MeshClient } from './mesh-client.ts'

export interface ReviewsOptions {
  version: string
  /** Star colour; none: no call to ratings (v1). */
  color?: 'black' | 'red'
  /** The instance's name, e.g. `reviews-v3-a`. */
  instance: string
  mesh: MeshClient
}

const texts: [string, string][] = [
  ['Reviewer1', 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!'],
  [
    'Reviewer2',
    'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.',
  ],
]

interface Review {
  reviewer: string
  text: string
  rating?: { stars?: number; color?: string; error?: string }
}

export function createReviewsApp(opts: ReviewsOptions): RequestListener {
  return async function reviews(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0]!
    const m = /^\/reviews\/(\d+)$/.exec(path)
    if (!m) {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"error":"please ask for /reviews/{id}"}')
      return
    }
    const id = m[1]!
    const list: Review[] = texts.map(([reviewer, text]) => ({ reviewer, text }))
    if (opts.color) {
      const r = await opts.mesh.get('ratings', `/ratings/${id}`, req.headers)
      let ratings: Record<string, number> | undefined
      if (r.status === 200) {
        try {
          ratings = (JSON.parse(r.body) as { ratings?: Record<string, number> }).ratings
        } catch {
          // an unreadable answer counts as unavailable
        }
      }
      for (const rv of list) {
        rv.rating = ratings
          ? { stars: ratings[rv.reviewer] ?? 0, color: opts.color }
          : { error: 'Ratings service is currently unavailable' }
      }
    }
    const body = {
      id,
      podname: opts.instance,
      clustername: 'container',
      version: opts.version,
      reviews: list,
    }
    res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': `reviews-${opts.version}` })
    res.end(JSON.stringify(body))
  }
}
