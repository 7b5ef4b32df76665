// N in-process turns through the public API (memory store, echo agent): what one turn costs the hub.
import Fastify from 'fastify'
const lib = process.env.LIB as string
const { default: sessionGateway, MemoryStore, echoAgent } = await import(lib)
const app = Fastify()
await app.register(sessionGateway, { auth: false, store: new MemoryStore(), agent: echoAgent() })
await app.ready()
const gw = app.sessionGateway
const N = Number(process.env.N ?? 2000)
const t0 = performance.now()
for (let i = 0; i < N; i++) {
  const key = `agent:main:s${i % 50}`
  const ticket = await gw.send({ sessionKey: key, agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: 'hello there big world' }], timestamp: Date.now() }], idempotencyKey: `k${i}` })
  await ticket.result
}
console.log(JSON.stringify({ perTurnMs: (performance.now() - t0) / N }))
await app.close()
