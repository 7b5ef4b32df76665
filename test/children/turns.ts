// A gateway process for the two-process test: `count` turns over four keys of its own
// (four lanes at once), on a file store shared with another process. Prints "done" when
// every turn has finished.
import Fastify from 'fastify'
import sessionGateway, { FileStore } from '../../lib/index.js'

const [dir, prefix, count] = process.argv.slice(2) as [string, string, string]
const app = Fastify()
// No fsync: faster turns overlap more with the other process's, which is the point here.
await app.register(sessionGateway, { auth: false, store: new FileStore({ dir, fsync: false }) })
await app.ready()
await Promise.all([0, 1, 2, 3].map(async lane => {
  for (let i = lane; i < Number(count); i += 4) {
    const ticket = await app.sessionGateway.send({
      sessionKey: `agent:main:${prefix}-${lane}`,
      agentId: 'main',
      input: [{ role: 'user', content: [{ type: 'text', text: `${prefix} turn ${i}` }], timestamp: Date.now() }]
    })
    const result = await ticket.result
    if (result.state !== 'final') throw new Error(`turn ${i} ended ${result.state}`)
  }
}))
await app.close()
process.stdout.write('done\n')
