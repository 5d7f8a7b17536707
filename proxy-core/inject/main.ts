// Direct entry for the webhook (`node proxy-core/inject/main.ts --tls-dir …`), the same as
// `meshgate injector …`: an esbuild bundle of it runs in the meshgate image beside the sidecar's.
import { UsageError } from '../cli/args.ts'
import { run, usage } from './injector-command.ts'

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(`${usage}\n`)
} else {
  try {
    process.exitCode = await run(args)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    process.stderr.write(`meshgate injector: ${e.message}\n\n${usage}\n`)
    process.exitCode = 2
  }
}
