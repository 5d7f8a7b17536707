// Bookinfo `details` on Lambda: GET /details/{id}, answered for API Gateway v2 events.
import middy from '@middy/core'
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda'
import { mesh } from '../../proxy-core/lambda/index.ts'

async function details(event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> {
  const id = Number(event.rawPath.split('/').pop())
  if (!Number.isInteger(id)) {
    return {
      statusCode: 400,
      headers: { 'content-type': 'application/json' },
      body: '{"error":"please provide numeric product id"}',
    }
  }
  const book = {
    id,
    author: 'William Shakespeare',
    year: 1595,
    type: 'paperback',
    pages: 200,
    publisher: 'PublisherA',
    language: 'English',
    'ISBN-10': '1234567890',
    'ISBN-13': '123-1234567890',
    servedBy: 'details-lambda',
  }
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(book) }
}

export const handler = middy(details).use(mesh({ service: 'details' }))
