// The gRPC upstream of the HTTP/2 benchmark: a @grpc/grpc-js server with the test Echo service's Unary
// call (test/fixtures/grpc/echo.proto), on the port given as argv[2]. Prints `listening PORT`.

import { resolve } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

const proto = resolve(import.meta.dirname, '..', '..', 'test', 'fixtures', 'grpc', 'echo.proto')
const def = protoLoader.loadSync(proto, { keepCase: true, defaults: true })
const pkg = grpc.loadPackageDefinition(def) as unknown as {
  meshtest: { Echo: { service: grpc.ServiceDefinition } }
}
interface Msg {
  text: string
  n: number
}
const server = new grpc.Server()
server.addService(pkg.meshtest.Echo.service, {
  Unary(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
    cb(null, { text: call.request.text, n: call.request.n + 1 })
  },
})
server.bindAsync(
  `127.0.0.1:${process.argv[2] ?? '0'}`,
  grpc.ServerCredentials.createInsecure(),
  (err, port) => {
    if (err) throw err
    console.log(`listening ${port}`)
  },
)
process.on('SIGTERM', () => server.forceShutdown())
