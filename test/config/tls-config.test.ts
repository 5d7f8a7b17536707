// The `tls` block of an http target (docs/tls.md): what loads, how it turns discovered endpoints into
// https ones, and the message each contradiction gets.

import { describe, expect, it } from 'vitest'
import { loadConfigText } from '../../proxy-core/config/load.ts'
import { configProblems, pathAndMessage } from './problems.ts'

function mesh(target: unknown): string {
  return JSON.stringify({ version: 1, mesh: 'm', services: { web: { targets: { v1: target } } } })
}

function problemsOf(target: unknown): Promise<string[]> {
  return configProblems(mesh(target), 'mesh.json', pathAndMessage)
}

async function targetOf(target: unknown) {
  return (await loadConfigText(mesh(target), 'mesh.json')).services.web!.targets.v1!
}

describe('target tls', () => {
  it('loads https URLs with the block as written, and without one', async () => {
    expect(await targetOf({ http: 'https://reviews:15006' })).toMatchObject({
      endpoints: ['https://reviews:15006'],
    })
    const t = await targetOf({
      http: ['https://10.0.0.1:15006', 'https://10.0.0.2:15006'],
      tls: { mode: 'mutual', sni: 'reviews.bookinfo', subjectAltNames: ['spiffe://bookinfo/reviews'] },
    })
    expect(t).toMatchObject({
      endpoints: ['https://10.0.0.1:15006', 'https://10.0.0.2:15006'],
      tls: { mode: 'mutual', sni: 'reviews.bookinfo', subjectAltNames: ['spiffe://bookinfo/reviews'] },
    })
  })

  it('makes dns:// and cloudmap:// endpoints https', async () => {
    expect(await targetOf({ http: 'dns://reviews.local:15006', tls: {} })).toMatchObject({
      dns: { host: 'reviews.local', port: 15006, protocol: 'https' },
    })
    expect(await targetOf({ http: 'dns://reviews.local:15006' })).toMatchObject({
      dns: { protocol: 'http' },
    })
    expect(await targetOf({ http: 'cloudmap://bookinfo.local/reviews', tls: {} })).toMatchObject({
      cloudMap: { protocol: 'https' },
    })
  })

  it('refuses an http:// URL beside a tls block, a Lambda target with one, and unknown values', async () => {
    expect(await problemsOf({ http: ['https://a:1', 'http://b:2'], tls: {} })).toEqual([
      'services.web.targets.v1.http[1]: the target has a tls block: write its URL as https://b:2',
    ])
    expect(await problemsOf({ lambda: 'reviews', tls: {} })).toEqual([
      'services.web.targets.v1.tls: tls applies only to http targets',
    ])
    const bad = await problemsOf({ http: 'https://a:1', tls: { mode: 'strict', subjectAltNames: [] } })
    expect(bad).toHaveLength(2)
    expect(bad[0]).toMatch(/^services\.web\.targets\.v1\.tls\.mode: .*mutual.*simple/)
    expect(bad[1]).toMatch(/^services\.web\.targets\.v1\.tls\.subjectAltNames: /)
  })
})
