// Bookinfo `reviews` on Lambda, one export per version (Istio's sample): v1 shows no stars, v2 black
// stars, v3 red stars; v2 and v3 ask `ratings` through the mesh. GET /reviews/{id}.
import middy from '@middy/core'
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda'
import { mesh } from '../../proxy-core/lambda/index.ts'

interface Review {
  reviewer: string
  text: string
  rating?: { stars?: number; color?: string; error?: string }
}

const texts: [string, string][] = [
  ['Reviewer1', 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!'],
  [
    'Reviewer2',
    'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.',
  ],
]

function reviews(version: 'v1' | 'v2' | 'v3', color?: 'black' | 'red') {
  return async function reviewsHandler(
    event: APIGatewayProxyEventV2,
    context: Context,
  ): Promise<APIGatewayProxyStructuredResultV2> {
    const id = event.rawPath.split('/').pop() ?? '0'
    const list: Review[] = texts.map(([reviewer, text]) => ({ reviewer, text }))
    if (color) {
      // Forward the user, so the mesh can route ratings per user too.
      const user = event.headers['end-user']
      const res = await context.mesh.fetch(`http://ratings/ratings/${id}`, {
        headers: user ? { 'end-user': user } : {},
      })
      if (res.ok) {
        const body = (await res.json()) as { ratings?: Record<string, number> }
        for (const r of list) r.rating = { stars: body.ratings?.[r.reviewer] ?? 0, color }
      } else {
        await res.body?.cancel()
        for (const r of list) r.rating = { error: 'Ratings service is currently unavailable' }
      }
    }
    const body = { id, podname: `reviews-${version}-lambda`, clustername: 'lambda', version, reviews: list }
    return {
      statusCode: 200,
      headers: { 'content-type': 'application/json', 'x-served-by': `reviews-${version}` },
      body: JSON.stringify(body),
    }
  }
}

export const v1 = middy(reviews('v1')).use(mesh({ service: 'reviews' }))
export const v2 = middy(reviews('v2', 'black')).use(mesh({ service: 'reviews' }))
export const v3 = middy(reviews('v3', 'red')).use(mesh({ service: 'reviews' }))
