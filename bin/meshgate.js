#!/usr/bin/env node
// The CLI runs the TypeScript sources directly: Node 24 strips types natively, so no build step is needed.
import '../proxy-core/cli/main.ts'
