// The rollout controller on an EventBridge schedule (serverless.yml): one tick per invocation.
// Config: MESHGATE_CONFIG (the live config URL), MESHGATE_ROLLOUT_METRICS (default cloudwatch).
import { createRolloutHandler } from '../../proxy-core/rollout/index.ts'

export const handler = createRolloutHandler()
