// Writes mesh.schema.json from the validator's own schema (proxy-core/config/mesh-schema.ts).
// `npm run schema`; a test fails when the committed file is out of date.
import { writeFileSync } from 'node:fs'
import { meshJsonSchema } from '../proxy-core/config/mesh-schema.ts'

const out = new URL('../mesh.schema.json', import.meta.url)
writeFileSync(out, `${JSON.stringify(meshJsonSchema(), null, 2)}\n`)
console.log(`wrote ${out.pathname}`)
