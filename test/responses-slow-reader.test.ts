import { once } from 'node:events'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import type { Agent } from '../lib/index.js'
import { listen } from './gateway-frames.js'
import { buildApp, TOKEN } from './helpers.js'

// OpenResponses streams to a reader that stops reading: past `responses.maxQueuedBytes`
// unread, the stream is cut off instead of held in memory (SSE closed, WebSocket mode
// closed 1008); the turn goes on, and the reader resumes by sequence number with nothing lost.

const auth = { authorization: `Bearer ${TOKEN}` }
// An answer far bigger than the network takes at once, streamed as a model would: 64
// deltas of 256 KiB, each in its own turn of the event loop.
const PIECE = 'x'.repeat(256 * 1024)
const ANSWER = PIECE.repeat(64)
const agent: Agent = {
  async * respond () {
    for (let i = 0; i < 64; i++) {
      await new Promise(resolve => setImmediate(resolve))
      yield { type: 'text', delta: PIECE }
    }
  }
}

async function slowApp (t: Test): Promise<FastifyInstance> {
  // Memory enough for the run's events (each delta carries the text so far), so the
  // resume is the stream first sent, event for event.
  const app = await buildApp(t, { agent, metrics: {}, maxReplayBytes: 1024 * 1024 * 1024, responses: { maxQueuedBytes: 64 * 1024 } })
  await listen(app)
  return app
}

/** Waits until the server has cut off `count` slow readers (its metric says so). */
async function cutOff (app: FastifyInstance, count: number): Promise<boolean> {
  const closes = async (): Promise<number> => {
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    return Number(/^session_gateway_slow_consumer_closes_total (\d+)$/m.exec(metrics)?.[1])
  }
  for (let i = 0; i < 1000 && await closes() < count; i++) await new Promise(resolve => setTimeout(resolve, 10))
  return await closes() === count
}

interface StreamEvent { type: string, sequence_number: number, response?: { id: string, status: string, output: Array<{ content: Array<{ text: string }> }> } }

/** The resume: `GET /responses/{id}?stream=true&starting_after=n`, once the turn is over. */
async function resume (app: FastifyInstance, id: string, after: number): Promise<{ events: StreamEvent[], done: boolean }> {
  const status = async (): Promise<string> => (await app.inject({ method: 'GET', url: `/v1/responses/${id}`, headers: auth })).json().status
  for (let i = 0; i < 1000 && await status() === 'in_progress'; i++) await new Promise(resolve => setTimeout(resolve, 10))
  const res = await app.inject({ method: 'GET', url: `/v1/responses/${id}?stream=true&starting_after=${after}`, headers: auth })
  const data = res.body.split('\n').filter(line => line.startsWith('data: ')).map(line => line.slice(6))
  return { events: data.filter(line => line !== '[DONE]').map(line => JSON.parse(line) as StreamEvent), done: data.at(-1) === '[DONE]' }
}

function checkWhole (t: Test, before: StreamEvent[], after: StreamEvent[]): void {
  const all = [...before, ...after]
  t.same(all.map(event => event.sequence_number), all.map((_, i) => i), 'every event once, in order, across the cut')
  const completed = all.at(-1)
  t.equal(completed?.type, 'response.completed')
  t.equal(completed?.response?.output[0]?.content[0]?.text.length, ANSWER.length, 'with the whole answer')
}

t.test('WebSocket mode: a reader that stops reading is closed with 1008, and resumes with GET', async t => {
  const app = await slowApp(t)
  const ws = new WebSocket(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/v1/responses`, { headers: auth })
  t.teardown(() => ws.terminate())
  const events: StreamEvent[] = []
  ws.on('message', (data: Buffer) => events.push(JSON.parse(String(data)) as StreamEvent))
  const closed = new Promise<[number, string]>(resolve => ws.once('close', (code, reason) => resolve([code, String(reason)])))
  await once(ws, 'open')
  ws.pause()
  ws.send(JSON.stringify({ type: 'response.create', input: 'go' }))
  t.ok(await cutOff(app, 1), 'the server let the reader go')
  ws.resume()
  t.same(await closed, [1008, 'slow consumer'], 'closed as a slow consumer')
  t.not(events.at(-1)?.type, 'response.completed', 'before the end of its response')

  const id = events[0]?.response?.id as string
  const rest = await resume(app, id, events.at(-1)?.sequence_number as number)
  t.ok(rest.done, 'the resumed stream ends with [DONE]')
  checkWhole(t, events, rest.events)
})

t.test('SSE: a reader that stops reading is disconnected, and resumes with GET', async t => {
  const app = await slowApp(t)
  const port = (app.server.address() as { port: number }).port
  const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/responses', headers: { ...auth, 'content-type': 'application/json' } })
  req.end(JSON.stringify({ input: 'go', stream: true }))
  const [res] = await once(req, 'response') as [IncomingMessage]
  res.pause()
  t.ok(await cutOff(app, 1), 'the server let the reader go')
  let body = ''
  res.setEncoding('utf8')
  res.on('data', (chunk: string) => { body += chunk })
  const ended = await new Promise<string>(resolve => {
    res.once('end', () => resolve('end'))
    res.once('error', () => resolve('error'))
    res.once('close', () => resolve('close'))
    res.resume()
  })
  t.not(ended, 'end', `the stream did not end cleanly (${ended})`)
  t.notOk(body.includes('[DONE]'), 'nor said it was done')

  // Whole events only: the cut may fall inside the last one.
  const events = body.split('\n\n').slice(0, -1).map(block => JSON.parse(block.split('\n').find(line => line.startsWith('data: '))?.slice(6) as string) as StreamEvent)
  const id = events[0]?.response?.id as string
  const rest = await resume(app, id, events.at(-1)?.sequence_number as number)
  t.ok(rest.done)
  checkWhole(t, events, rest.events)
})

t.test('a stream the log no longer holds is rebuilt from the transcript, and a resume into it is refused, not misplaced', async t => {
  const app = await buildApp(t, { maxReplayBytes: 1024 })
  const created = await app.inject({ method: 'POST', url: '/v1/responses', headers: auth, payload: { input: 'one two three four five' } })
  const id = created.json().id as string
  const stream = async (after?: number): Promise<{ statusCode: number, body: string, json: () => any }> =>
    await app.inject({ method: 'GET', url: `/v1/responses/${id}?stream=true${after === undefined ? '' : `&starting_after=${after}`}`, headers: auth })
  // Once the finished response has left memory, its stream is rebuilt (the log kept none of it).
  let refused = await stream(5)
  for (let i = 0; i < 500 && refused.statusCode === 200; i++) refused = await stream(5)
  t.equal(refused.statusCode, 409, 'a position inside the rebuilt stream would mean another event')
  t.match(refused.json(), { error: { code: 'stream_not_resumable', param: 'starting_after' } })
  const whole = await stream()
  t.equal(whole.statusCode, 200, 'from the start, it streams')
  t.match(whole.body, /"text":"one two three four five"[\s\S]*data: \[DONE\]/, 'the whole answer (in one delta), then the end')
  t.equal((await stream(1)).statusCode, 200, 'and after its first two events, which are the same in both')
})
