// The edge function behind API Gateway (HTTP API `$default`, payload v2; REST API v1 and ALB events
// work too): routes outside traffic by the config's gateway routes. Config: MESHGATE_CONFIG.
export { gatewayHandler as handler } from '../../proxy-core/lambda/index.ts'
