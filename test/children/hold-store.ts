// A gateway process on a file store, for the one-process-per-directory test. Prints
// "ready <pid>" once it serves and holds the directory until its stdin closes, then
// closes cleanly. If the store refuses to open, prints "refused <message>" and exits 2.
import Fastify from 'fastify'
import sessionGateway, { FileStore, isGatewayError } from '../../lib/index.js'

const [dir] = process.argv.slice(2) as [string]
const app = Fastify()
try {
  await app.register(sessionGateway, { auth: false, store: new FileStore({ dir }) })
  await app.ready()
} catch (err) {
  if (!isGatewayError(err)) throw err
  process.stdout.write(`refused ${err.code} ${err.message}\n`)
  process.exit(2)
}
const ticket = await app.sessionGateway.send({
  sessionKey: `agent:main:process-${process.pid}`,
  agentId: 'main',
  input: [{ role: 'user', content: [{ type: 'text', text: `from ${process.pid}` }], timestamp: Date.now() }]
})
await ticket.result
process.stdout.write(`ready ${process.pid}\n`)
process.stdin.resume()
process.stdin.once('end', () => {
  app.close().then(() => process.exit(0), () => process.exit(1))
})
