// Baselines: a bare Fastify listen (cold start) and a route answering a fixed body (HTTP).
// BODY_FILE: a JSON file whose content POST /v1/responses answers; SSE_FILE: the text it
// answers (as text/event-stream) when the request asks for `stream: true`.
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'

// Asked before its memory is read (SIGUSR2): collect garbage. Installed before anything can send it.
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.())

const body = process.env.BODY_FILE === undefined ? { ok: true } : JSON.parse(readFileSync(process.env.BODY_FILE, 'utf8')) as unknown
const sse = process.env.SSE_FILE === undefined ? 'data: [DONE]\n\n' : readFileSync(process.env.SSE_FILE, 'utf8')
const app = Fastify({ logger: false })
app.post('/v1/responses', async (request, reply) => {
  if ((request.body as { stream?: unknown } | null)?.stream === true) return await reply.type('text/event-stream').send(sse)
  return body
})
const url = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(`listening ${url}\n`)
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
