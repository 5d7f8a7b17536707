// `meshgate injector`: the admission webhook as a process. JSON lines on stdout (listening, TLS
// reloads, refusals); SIGTERM closes the listener and lets requests in flight finish.

import { join } from 'node:path'
import type { OptionSpec } from '../cli/args.ts'
import { parseCommandArgs, stringOpt, UsageError } from '../cli/args.ts'
import { SETTINGS_OPTIONS, SETTINGS_USAGE, settingsFromArgs } from './settings-args.ts'
import { startInjector } from './webhook.ts'

export const usage = `usage: meshgate injector [--tls-dir DIR | --tls-cert FILE --tls-key FILE] [--listen 0.0.0.0:8443] [settings]
The Kubernetes mutating admission webhook (POST /mutate, GET /healthz), HTTPS only.
  --tls-dir DIR        holds tls.crt and tls.key, as cert-manager writes them (MESHGATE_INJECTOR_TLS_DIR)
  --listen HOST:PORT   where to listen (0.0.0.0:8443)
The certificate files are watched: a renewed certificate is served to new connections, no restart.

${SETTINGS_USAGE}`

/** The injector's flags: its own and the sidecar settings that `meshgate inject` takes too. */
export const INJECTOR_OPTIONS: OptionSpec = {
  ...SETTINGS_OPTIONS,
  'tls-dir': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  listen: { type: 'string' },
}

export async function run(args: string[]): Promise<number> {
  const p = parseCommandArgs(args, INJECTOR_OPTIONS, { maxPositionals: 0 })
  const dir = stringOpt(p, 'tls-dir') ?? process.env.MESHGATE_INJECTOR_TLS_DIR
  const certFile = stringOpt(p, 'tls-cert') ?? (dir === undefined ? undefined : join(dir, 'tls.crt'))
  const keyFile = stringOpt(p, 'tls-key') ?? (dir === undefined ? undefined : join(dir, 'tls.key'))
  if (certFile === undefined || keyFile === undefined)
    throw new UsageError('--tls-dir (or --tls-cert and --tls-key) is required')
  const listen = stringOpt(p, 'listen') ?? '0.0.0.0:8443'
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen)
  if (!m || Number(m[2]) > 65535)
    throw new UsageError(`--listen: want HOST:PORT, not ${JSON.stringify(listen)}`)
  const settings = settingsFromArgs(p, process.env)
  const out = (line: string) => process.stdout.write(`${line}\n`)
  let injector: Awaited<ReturnType<typeof startInjector>>
  try {
    injector = await startInjector({
      host: m[1]!.replace(/^\[|\]$/g, ''),
      port: Number(m[2]),
      certFile,
      keyFile,
      settings,
      log: out,
    })
  } catch (e) {
    process.stderr.write(`meshgate injector: cannot start: ${(e as Error).message}\n`)
    return 1
  }
  return new Promise<number>((done) => {
    const stop = () => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      void injector.close().then(() => done(0))
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
}
