// Direct entry for the sidecar (`node proxy-core/sidecar/main.ts --config … --service …`), the same as
// `meshgate sidecar …`; the esbuild bundle for the sidecar image starts here.
import { runSidecarCommand } from './command.ts'
import { relaunchTuned } from './relaunch.ts'

relaunchTuned()
process.exitCode = await runSidecarCommand(process.argv.slice(2))
