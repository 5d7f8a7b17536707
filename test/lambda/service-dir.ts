// A throwaway Serverless service directory for tests: the project's sources linked in, so that
// `serverless package` / `serverless offline` runs never write .serverless/, .esbuild/ or dist/ into
// the working tree and two runs never share a build folder.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')

const LINKED = ['node_modules', 'package.json', 'proxy-core', 'functions', 'infra', 'test', 'tsconfig.json']

export interface ServiceDir {
  dir: string
  remove(): void
}

export function createServiceDir(serverlessYml: string): ServiceDir {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-sls-'))
  for (const name of LINKED) symlinkSync(join(ROOT, name), join(dir, name))
  writeFileSync(join(dir, 'serverless.yml'), serverlessYml)
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}
