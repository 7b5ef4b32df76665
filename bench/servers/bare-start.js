// The cold-start and idle-memory baseline: a bare Fastify app, plain JavaScript run by
// plain `node` as `npm start` runs the example, logging as the example does, with one
// route answering POST /v1/responses. Prints `listening <url>`.
import Fastify from 'fastify'

const app = Fastify({ logger: true })
app.post('/v1/responses', async () => ({ object: 'response', status: 'completed' }))
const url = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(`listening ${url}\n`)
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
