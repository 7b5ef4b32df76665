import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { echoAgent } from '../lib/index.js'
import { listen, watchSession } from './gateway-frames.js'
import { buildApp, gatedAgent, TOKEN } from './helpers.js'
import { eventProblem, schemaProblem } from './openresponses-schema.js'

type Frame = Record<string, any>

/** A WebSocket-mode client that checks every frame against the OpenAPI schemas as it arrives. */
class ResponsesClient {
  readonly frames: Frame[] = []
  #waiters: Array<{ match: (f: Frame) => boolean, resolve: (f: Frame) => void }> = []
  readonly closed: Promise<{ code: number, reason: string }>

  constructor (readonly socket: WebSocket, onProblem: (problem: string) => void) {
    socket.on('message', data => {
      const frame = JSON.parse(String(data)) as Frame
      // A protocol error has a `status`; an `error` inside a response's stream has a `sequence_number`.
      const problem = frame.type === 'error' && 'status' in frame ? schemaProblem('WebSocketErrorEvent', frame) : eventProblem(frame)
      if (problem !== undefined) onProblem(problem)
      this.frames.push(frame)
      this.#waiters = this.#waiters.filter(waiter => {
        if (!waiter.match(frame)) return true
        waiter.resolve(frame)
        return false
      })
    })
    this.closed = new Promise(resolve => socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })))
  }

  static async open (t: Test, app: FastifyInstance, options: { headers?: Record<string, string>, query?: string } = {}): Promise<ResponsesClient> {
    const port = (app.server.address() as { port: number }).port
    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/responses${options.query ?? ''}`, { headers: options.headers ?? { authorization: `Bearer ${TOKEN}` } })
    let ended = false
    // Every frame is checked as it arrives, for as long as the test runs.
    const client = new ResponsesClient(socket, problem => { if (!ended) t.fail(problem) })
    t.teardown(() => {
      ended = true
      socket.terminate()
    })
    await once(socket, 'open')
    return client
  }

  create (body: Record<string, unknown>): void {
    this.socket.send(JSON.stringify({ type: 'response.create', ...body }))
  }

  async next (match: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const seen = this.frames.find(match)
    if (seen !== undefined) return seen
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame; got ${JSON.stringify(this.frames.slice(-3)).slice(0, 500)}`)), timeoutMs)
      this.#waiters.push({ match, resolve: frame => { clearTimeout(timer); resolve(frame) } })
    })
  }

  /** The nth terminal frame (a response's last event, or a protocol error), counting from 1. */
  async settled (n: number): Promise<Frame> {
    const terminal = (f: Frame): boolean => ['response.completed', 'response.incomplete', 'response.failed'].includes(f.type) || (f.type === 'error' && 'status' in f)
    await this.next(() => this.frames.filter(terminal).length >= n)
    return this.frames.filter(terminal)[n - 1] as Frame
  }
}

t.test('two responses on one socket run one after the other; the second continues the first with store: false', async t => {
  const app = await buildApp(t, { agent: echoAgent({ delayMs: 5 }) })
  await listen(app)
  const client = await ResponsesClient.open(t, app)
  client.create({ model: 'openclaw', input: 'first answer here', store: false })
  const first = await client.settled(1)
  t.equal(first.type, 'response.completed')
  client.create({ model: 'openclaw', input: 'second', store: false, previous_response_id: first.response.id })
  const second = await client.settled(2)
  t.equal(second.type, 'response.completed')
  t.equal(second.response.previous_response_id, first.response.id)
  const created = client.frames.filter(f => f.type === 'response.created')
  t.equal(created.length, 2)
  t.ok(client.frames.indexOf(created[1] as Frame) > client.frames.indexOf(first), 'the second began after the first ended')
  const history = await app.sessionGateway.list()
  t.equal(history.rows.length, 1, 'both turns on one session, found through the connection cache')
  t.same(client.frames.filter(f => f.type === 'response.output_text.done').map(f => f.text), ['first answer here', 'second'])
})

t.test('frames sent together are answered in order, each in full', async t => {
  const app = await buildApp(t)
  await listen(app)
  const client = await ResponsesClient.open(t, app)
  client.create({ input: 'one' })
  client.socket.send('not json')
  client.create({ input: 'two' })
  await client.settled(3)
  t.same(client.frames.filter(f => f.type === 'response.completed' || (f.type === 'error' && 'status' in f)).map(f => f.type === 'error' ? 'error' : f.response.output[0].content[0].text),
    ['one', 'error', 'two'])
})

t.test('a continuation from another socket is not found; that socket goes on working', async t => {
  const app = await buildApp(t)
  await listen(app)
  const a = await ResponsesClient.open(t, app)
  a.create({ input: 'private', store: false })
  const made = await a.settled(1)
  const b = await ResponsesClient.open(t, app)
  b.create({ input: 'me too', store: false, previous_response_id: made.response.id })
  t.match(await b.settled(1), { type: 'error', status: 400, error: { code: 'previous_response_not_found', param: 'previous_response_id' } })
  b.create({ input: 'fresh start' })
  t.equal((await b.settled(2)).type, 'response.completed')
})

t.test('a function_call_output that answers no call fails, and evicts the response it continued', async t => {
  const app = await buildApp(t)
  await listen(app)
  const client = await ResponsesClient.open(t, app)
  const tools = [{ type: 'function', name: 'lookup' }]
  client.create({ input: 'find it', tools, tool_choice: 'required', store: false })
  const called = await client.settled(1)
  const call = called.response.output[0]
  client.create({ previous_response_id: called.response.id, input: [{ type: 'function_call_output', call_id: 'call_wrong', output: 'x' }], store: false })
  t.match(await client.settled(2), { type: 'error', error: { param: 'input[0].call_id' } })
  client.create({ previous_response_id: called.response.id, input: [{ type: 'function_call_output', call_id: call.call_id, output: 'x' }], store: false })
  t.match(await client.settled(3), { type: 'error', error: { code: 'previous_response_not_found' } }, 'the failed continuation evicted it')
  client.create({ input: 'still usable' })
  t.equal((await client.settled(4)).type, 'response.completed')
})

t.test('a continuation whose run fails evicts what it continued too', async t => {
  let calls = 0
  const app = await buildApp(t, {
    agent: {
      async * respond () {
        calls++
        if (calls === 2) throw new Error('boom')
        yield { type: 'text', delta: 'ok' }
      }
    }
  })
  await listen(app)
  const client = await ResponsesClient.open(t, app)
  client.create({ input: 'one', store: false })
  const first = await client.settled(1)
  client.create({ input: 'two', store: false, previous_response_id: first.response.id })
  t.equal((await client.settled(2)).type, 'response.failed')
  client.create({ input: 'three', store: false, previous_response_id: first.response.id })
  t.match(await client.settled(3), { type: 'error', error: { code: 'previous_response_not_found' } })
})

t.test('a WebSocket-mode turn is part of the session and streams live to a gateway watcher', async t => {
  const app = await buildApp(t)
  await listen(app)
  const watcher = await watchSession(t, app, 'ws-mode')
  const client = await ResponsesClient.open(t, app, { headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'ws-mode' } })
  client.create({ input: 'seen from afar' })
  const done = await client.settled(1)
  const final = await watcher.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.equal(final.payload.runId, done.response.id)
  t.equal(final.payload.message.content[0].text, 'seen from afar')
  const { entries } = await app.sessionGateway.history('agent:main:ws-mode', { limit: 5 })
  t.equal(entries.length, 2)
})

t.test('the session: a user per frame, a key in the query, a compaction item as input', async t => {
  const app = await buildApp(t)
  await listen(app)
  const client = await ResponsesClient.open(t, app, { query: `?token=${TOKEN}&sessionKey=by-query`, headers: {} })
  client.create({ input: 'by query' })
  await client.settled(1)
  client.create({ input: 'by user', user: 'ann' })
  await client.settled(2)
  const keys = (await app.sessionGateway.list()).rows.map(row => row.key).sort()
  t.same(keys, ['agent:main:by-query'], 'the upgrade key wins over user, as on HTTP')

  const plain = await ResponsesClient.open(t, app)
  plain.create({ input: 'as ann', user: 'ann' })
  await plain.settled(1)
  t.ok((await app.sessionGateway.list()).rows.some(row => row.key === 'agent:main:openresponses-user:ann'))
  const compacted = await app.inject({ method: 'POST', url: '/v1/responses/compact', headers: { authorization: `Bearer ${TOKEN}` }, payload: { model: 'm', input: 'remember' } })
  plain.create({ input: [compacted.json().output.at(-1), { role: 'user', content: 'go on' }] })
  t.equal((await plain.settled(2)).type, 'response.completed')
})

t.test('bad frames get error events and the connection stays usable', async t => {
  const app = await buildApp(t, { maxPayload: 4096 })
  await listen(app)
  const client = await ResponsesClient.open(t, app)
  client.socket.send(JSON.stringify({ type: 'response.cancel' }))
  client.socket.send(JSON.stringify({ type: 'response.create', input: 'x', stream: true }))
  client.socket.send(JSON.stringify({ type: 'response.create', input: 'x', background: true }))
  client.socket.send(JSON.stringify({ type: 'response.create', input: 'x', surprise: 1 }))
  client.socket.send(Buffer.from('binary'), { binary: true })
  client.socket.send('[]')
  client.create({ input: 'fine' })
  await client.settled(7)
  t.same(client.frames.filter(f => f.type === 'error').map(f => [f.status, f.error.param]), [
    [400, 'type'], [400, 'stream'], [400, 'background'], [400, 'surprise'], [400, 'type'], [400, 'type']
  ])
  t.equal(client.frames.at(-1)?.type, 'response.completed')
})

t.test('maxPayload: a frame of exactly maxPayload bytes is answered; one byte more closes with 1009', async t => {
  const app = await buildApp(t, { maxPayload: 4096 })
  await listen(app)
  const client = await ResponsesClient.open(t, app)
  const frame = (bytes: number): string => {
    const padded = (input: string): string => JSON.stringify({ type: 'response.create', input })
    return padded('x'.repeat(bytes - padded('').length))
  }
  client.socket.send(frame(4096))
  await client.settled(1)
  t.equal(client.frames.at(-1)?.type, 'response.completed', '4096 bytes')
  client.socket.send(frame(4097))
  t.equal((await client.closed).code, 1009, '4097 bytes')
})

t.test('authentication at the upgrade: no token, no socket', async t => {
  const app = await buildApp(t)
  await listen(app)
  const plain = await app.inject({ method: 'GET', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(plain.statusCode, 405, 'a GET without an upgrade is told what the path takes')
  t.equal(plain.headers.allow, 'POST')
  t.match(plain.json().error, { code: 'method_not_allowed', type: 'invalid_request_error' })
  const port = (app.server.address() as { port: number }).port
  const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/responses`)
  socket.on('error', () => {})
  const [, response] = await once(socket, 'unexpected-response') as [unknown, { statusCode: number }]
  t.equal(response.statusCode, 401)
  socket.terminate()
})

t.test('an old connection is told websocket_connection_limit_reached, after its running response ends', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent, responses: { websocketMaxAgeMs: 100 } })
  await listen(app)
  const client = await ResponsesClient.open(t, app)
  client.create({ input: 'slow' })
  await agent.waitStarted(1)
  await new Promise(resolve => setTimeout(resolve, 150))
  t.notOk(client.frames.some(f => f.type === 'error'), 'not while a response runs')
  agent.release()
  const limit = await client.settled(2)
  t.match(limit, { type: 'error', error: { code: 'websocket_connection_limit_reached' } })
  t.same(await client.closed, { code: 1000, reason: 'websocket_connection_limit_reached' })

  const idle = await ResponsesClient.open(t, app)
  t.match(await idle.settled(1), { type: 'error', error: { code: 'websocket_connection_limit_reached' } })
})

t.test('WebSocket mode can be turned off; shutdown closes its sockets with 1012', async t => {
  const off = await buildApp(t, { responses: { websocket: false } })
  await listen(off)
  const port = (off.server.address() as { port: number }).port
  const refused = new WebSocket(`ws://127.0.0.1:${port}/v1/responses`, { headers: { authorization: `Bearer ${TOKEN}` } })
  refused.on('error', () => {})
  const [, response] = await once(refused, 'unexpected-response') as [unknown, { statusCode: number }]
  t.equal(response.statusCode, 404)
  refused.terminate()

  const app = await buildApp(t)
  await listen(app)
  const client = await ResponsesClient.open(t, app)
  await app.close()
  t.equal((await client.closed).code, 1012)
})
