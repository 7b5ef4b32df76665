// An OpenAI-compatible upstream that answers at once: POST /v1/chat/completions streams a
// short answer (five words, finish, usage, [DONE]) with no model behind it, so what a
// benchmark measures in front of it is the gateway. `listening <url>` on stdout.
import { createServer } from 'node:http'

const base = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'bench' }
const chunk = (delta: unknown, finish: string | null = null): string => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
const answer = [
  chunk({ role: 'assistant', content: '' }),
  ...['an', ' answer', ' from', ' the', ' upstream'].map(word => chunk({ content: word })),
  chunk({}, 'stop'),
  `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 } })}\n\n`,
  'data: [DONE]\n\n'
].join('')

const server = createServer((req, res) => {
  req.resume()
  req.once('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end(answer)
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening http://127.0.0.1:${(server.address() as { port: number }).port}\n`)
})
process.once('SIGTERM', () => { server.close(() => process.exit(0)); server.closeAllConnections() })
