// The baseline for the WebSocket round trip: a bare @fastify/websocket route that answers
// the same handshake and, for each chat.send, the same frames a one-word turn produces
// (ack, session.message, delta, session.message, final), with no session logic at all.
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'

// Asked before its memory is read (SIGUSR2): collect garbage. Installed before anything can send it.
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.())

const app = Fastify({ logger: false })
await app.register(websocket)
app.get('/gateway', { websocket: true }, socket => {
  let seq = 0
  const event = (name: string, payload: unknown): void => socket.send(JSON.stringify({ type: 'event', event: name, payload, seq: ++seq }))
  socket.on('message', data => {
    const frame = JSON.parse(String(data)) as { id: string, method: string, params: Record<string, unknown> }
    if (frame.method === 'connect') {
      socket.send(JSON.stringify({ type: 'res', id: frame.id, ok: true, payload: { type: 'hello-ok', protocol: 4, server: { version: '0', connId: randomUUID() } } }))
      return
    }
    const runId = String(frame.params.idempotencyKey)
    const sessionKey = `agent:main:${String(frame.params.sessionKey)}`
    const text = String(frame.params.message)
    const now = Date.now()
    socket.send(JSON.stringify({ type: 'res', id: frame.id, ok: true, payload: { runId, status: 'started' } }))
    event('session.message', { sessionKey, messageId: 'abcd0001', message: { role: 'user', content: [{ type: 'text', text }], timestamp: now }, runId, messageSeq: 1, cursor: `${runId}:1` })
    event('chat', { runId, sessionKey, state: 'delta', deltaText: text, message: { role: 'assistant', content: [{ type: 'text', text }], timestamp: now }, seq: 1 })
    const answer = { role: 'assistant', content: [{ type: 'text', text }], stopReason: 'stop', usage: { input: 1, output: 1, totalTokens: 2 }, timestamp: now }
    event('session.message', { sessionKey, messageId: 'abcd0002', message: answer, runId, messageSeq: 4, cursor: `${runId}:4` })
    event('chat', { runId, sessionKey, state: 'final', message: answer, stopReason: 'stop', usage: answer.usage, seq: 2 })
  })
  socket.send(JSON.stringify({ type: 'event', event: 'connect.challenge', payload: { nonce: randomUUID(), ts: Date.now() } }))
})
const url = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(`listening ${url}\n`)
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
