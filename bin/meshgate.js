#!/usr/bin/env node
// The `meshgate` command. Plain JavaScript that Node 14.8 and later parse: the Node version is checked
// before anything of meshgate loads, so an old Node gets one line saying what to do, not a stack trace
// from the first TypeScript file or Node 24 API.
//
// Then one of two entries, by what is on disk: a checkout of the repository has the TypeScript sources
// (Node 24 strips their types; no build step), the published package has only dist/ (compiled at
// prepack; `files` in package.json leaves the sources out).
import { existsSync } from 'node:fs'

/** 24: the runtime meshgate is built and tested on (Lambda's nodejs24.x, the sidecar image). */
const NODE_MAJOR = 24

const major = Number(process.versions.node.split('.')[0])
if (!(major >= NODE_MAJOR)) {
  process.stderr.write(
    `meshgate needs Node.js ${NODE_MAJOR} or newer, this is ${process.version}: install it from https://nodejs.org/ (or \`nvm install ${NODE_MAJOR}\`, or \`npm i -D node@${NODE_MAJOR}\` in your project)\n`,
  )
  process.exit(1)
}

const source = new URL('../proxy-core/cli/main.ts', import.meta.url)
await import(
  existsSync(source) ? source.href : new URL('../dist/proxy-core/cli/main.js', import.meta.url).href
)
