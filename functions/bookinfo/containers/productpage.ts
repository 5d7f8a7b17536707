// Bookinfo `productpage` as a container: GET /productpage renders the book with its details and
// reviews, both fetched through the sidecar. The page names the version and runtime that answered each
// part, so routing changes show up on the page itself.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import type { MeshClient, MeshReply } from './mesh-client.ts'

export interface ProductpageOptions {
  instance: string
  mesh: MeshClient
}

interface Details {
  author?: string
  year?: number
  type?: string
  pages?: number
  publisher?: string
  language?: string
  'ISBN-10'?: string
  'ISBN-13'?: string
  servedBy?: string
}
interface Reviews {
  podname?: string
  clustername?: string
  version?: string
  reviews?: { reviewer: string; text: string; rating?: { stars?: number; color?: string; error?: string } }[]
}

const CSS = `body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;justify-content:space-between}
main{max-width:960px;margin:24px auto;padding:0 24px}
h1{font-size:28px;margin:0 0 8px}.summary{color:#4a5263}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:24px;margin-top:24px}
section{background:#fff;border-radius:8px;padding:16px 20px;box-shadow:0 1px 2px #0002}
dt{font-weight:600;float:left;width:110px}dd{margin:0 0 6px 110px}
blockquote{margin:0 0 14px;padding-left:12px;border-left:3px solid #d6dae2}
.stars{font-size:20px;letter-spacing:2px}.stars-black{color:#111}.stars-red{color:#d0312d}
.served{font-size:12px;color:#6b7385;margin-top:10px}.error{color:#b3261e}`

function esc(s: unknown): string {
  return String(s ?? '').replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  )
}

function parse<T>(r: MeshReply): T | undefined {
  if (r.status !== 200) return undefined
  try {
    return JSON.parse(r.body) as T
  } catch {
    return undefined
  }
}

function renderDetails(r: MeshReply): string {
  const d = parse<Details>(r)
  if (!d) return `<p class="error">Sorry, product details are currently unavailable (${r.status}).</p>`
  const rows: [string, unknown][] = [
    ['Type', d.type],
    ['Pages', d.pages],
    ['Publisher', d.publisher],
    ['Language', d.language],
    ['ISBN-10', d['ISBN-10']],
    ['ISBN-13', d['ISBN-13']],
  ]
  return (
    `<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('')}</dl>` +
    `<div class="served">served by ${esc(d.servedBy ?? 'details')}</div>`
  )
}

function renderReviews(r: MeshReply): string {
  const rv = parse<Reviews>(r)
  if (!rv) return `<p class="error">Sorry, product reviews are currently unavailable (${r.status}).</p>`
  const items = (rv.reviews ?? []).map((x) => {
    let stars = ''
    if (x.rating?.error) stars = `<div class="error">${esc(x.rating.error)}</div>`
    else if (x.rating?.stars !== undefined) {
      const n = Math.max(0, Math.min(5, x.rating.stars))
      const color = x.rating.color === 'red' ? 'red' : 'black'
      stars = `<div class="stars stars-${color}" title="${n} stars">${'★'.repeat(n)}${'☆'.repeat(5 - n)}</div>`
    }
    return `<blockquote><p>${esc(x.text)}</p><small>— ${esc(x.reviewer)}</small>${stars}</blockquote>`
  })
  return (
    items.join('') +
    `<div class="served" data-reviews-version="${esc(rv.version)}">reviews-${esc(rv.version)} served by ` +
    `${esc(rv.podname)} (${esc(rv.clustername)})</div>`
  )
}

export function createProductpageApp(opts: ProductpageOptions): RequestListener {
  return async function productpage(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0]!
    if (path === '/static/bookinfo.css') {
      res.writeHead(200, { 'content-type': 'text/css; charset=utf-8' })
      res.end(CSS)
      return
    }
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"status":"Productpage is healthy"}')
      return
    }
    if (path !== '/productpage' && path !== '/productpage/') {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('not found: try /productpage\n')
      return
    }
    const [details, reviews] = await Promise.all([
      opts.mesh.get('details', '/details/0', req.headers),
      opts.mesh.get('reviews', '/reviews/0', req.headers),
    ])
    const user = typeof req.headers['end-user'] === 'string' ? req.headers['end-user'] : undefined
    const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bookinfo · The Comedy of Errors</title>
<link rel="stylesheet" href="/static/bookinfo.css"></head>
<body><header><strong>BookInfo Sample</strong><span>${user ? `signed in as ${esc(user)}` : 'not signed in'}</span></header>
<main>
<h1>The Comedy of Errors</h1>
<p class="summary">Wikipedia Summary: The Comedy of Errors is one of William Shakespeare's early plays. It is his shortest and one of his most farcical comedies.</p>
<div class="cols">
<section id="details"><h2>Book Details</h2>${renderDetails(details)}</section>
<section id="reviews"><h2>Book Reviews</h2>${renderReviews(reviews)}</section>
</div>
<p class="served">productpage served by ${esc(opts.instance)} (container)</p>
</main></body></html>
`
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'x-served-by': opts.instance })
    res.end(html)
  }
}
