// mesh.schema.json is generated from the validator's own schema; these tests keep the committed file
// current and check that a JSON Schema validator (ajv) agrees with ours on valid and invalid files.
import { readFileSync } from 'node:fs'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { ConfigError, loadConfigText } from '../../proxy-core/config/load.ts'
import { meshJsonSchema } from '../../proxy-core/config/mesh-schema.ts'

const committed = JSON.parse(readFileSync('mesh.schema.json', 'utf8'))
const ajv = new Ajv2020({ allErrors: true, strict: false })
ajv.addFormat('regex', true)
const validate = ajv.compile(committed)
const bookinfo = readFileSync('infra/examples/bookinfo.yaml', 'utf8')

async function ours(doc: unknown): Promise<boolean> {
  try {
    await loadConfigText(JSON.stringify(doc), 'doc.json')
    return true
  } catch (e) {
    if (e instanceof ConfigError) return false
    throw e
  }
}

describe('mesh.schema.json', () => {
  it('is up to date with the validator (npm run schema)', () => {
    expect(committed).toEqual(meshJsonSchema())
  })

  it('accepts the Bookinfo example, as the validator does', async () => {
    const doc = parse(bookinfo)
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true)
    expect(await ours(doc)).toBe(true)
  })

  // biome-ignore lint/suspicious/noExplicitAny: mutations reach into an untyped parsed document
  const broken: [string, (d: any) => void][] = [
    ['wrong version', (d) => (d.version = 2)],
    ['bad mesh name', (d) => (d.mesh = 'Bad Name')],
    ['unknown top-level key', (d) => (d.extra = true)],
    ['numeric duration', (d) => (d.defaults.timeout = 5)],
    ['duration without unit', (d) => (d.services.reviews.routes[1].timeout = '5')],
    ['percent over 100', (d) => (d.services.ratings.routes[0].fault.delay.percent = 150)],
    ['negative weight', (d) => (d.services.reviews.routes[1].to.v1 = -1)],
    ['both lambda and http', (d) => (d.services.details.targets.v1.http = 'http://x:1')],
    ['neither lambda nor http', (d) => (d.services.details.targets.v1 = {})],
    ['two path kinds', (d) => (d.gateway.routes[0].match.path.exact = '/x')],
    ['unknown load balancer', (d) => (d.services.reviews.targets.v3.loadBalancer = 'random')],
    ['unknown retry condition', (d) => d.defaults.retries.on.push('sometimes')],
    ['typo in a route key', (d) => (d.services.reviews.routes[0].too = 'v1')],
    ['no services', (d) => (d.services = {})],
  ]
  for (const [name, mutate] of broken) {
    it(`rejects: ${name}, as the validator does`, async () => {
      const doc = parse(bookinfo)
      mutate(doc)
      expect(validate(doc)).toBe(false)
      expect(await ours(doc)).toBe(false)
    })
  }
})
