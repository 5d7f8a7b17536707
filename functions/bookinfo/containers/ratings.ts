// Bookinfo `ratings` as a container: GET /ratings/{id} → the stars each reviewer gave.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'

export interface RatingsOptions {
  /** The instance's name, e.g. `ratings`, shown in answers. */
  instance: string
}

export function createRatingsApp(opts: RatingsOptions): RequestListener {
  return function ratings(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0]!
    const m = /^\/ratings\/(\d+)$/.exec(path)
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-served-by': opts.instance })
      res.end(JSON.stringify(body))
    }
    if (path === '/health') return json(200, { status: 'Ratings is healthy' })
    if (!m) return json(404, { error: 'please ask for /ratings/{id}' })
    json(200, { id: Number(m[1]), ratings: { Reviewer1: 5, Reviewer2: 4 }, podname: opts.instance })
  }
}
