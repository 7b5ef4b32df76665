import { once } from 'node:events'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import { MemoryStore } from '../lib/index.js'
import type { SessionEvent } from '../lib/index.js'
import { ResponseStream, requestFields } from '../lib/transports/responses/response-stream.js'
import { buildApp, gatedAgent, namedPrincipals, TOKEN } from './helpers.js'
import { eventProblem, parseSse, schemaProblem } from './openresponses-schema.js'

const AUTH = { authorization: `Bearer ${TOKEN}` }

async function post (app: FastifyInstance, payload: unknown, url = '/v1/responses', headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url, headers: { ...AUTH, 'content-type': 'application/json', ...headers }, payload: payload as string })
}

t.test('the response stream on its own: fed hub events, it can be replayed whole after the end', async t => {
  const stream = new ResponseStream('resp_unit', requestFields({}, 'm'))
  const base = { sessionKey: 'k', epoch: 'e', at: 0 }
  const entry = { type: 'message', id: 'x', parentId: null, timestamp: '', message: { role: 'assistant' as const, content: [], stopReason: 'stop' as const, timestamp: 0 } }
  const events: SessionEvent[] = [
    { ...base, seq: 1, type: 'run.delta', runId: 'resp_other', delta: 'not ours', text: 'not ours' },
    { ...base, seq: 2, type: 'session.reset', deleted: false },
    { ...base, seq: 3, type: 'run.started', runId: 'resp_unit' },
    { ...base, seq: 4, type: 'run.delta', runId: 'resp_unit', delta: 'hi', text: 'hi' },
    { ...base, seq: 5, type: 'run.finished', runId: 'resp_unit', state: 'final', entry }
  ]
  for (const event of events) stream.onHubEvent(event)
  stream.onHubEvent({ ...base, seq: 6, type: 'run.delta', runId: 'resp_unit', delta: 'late', text: 'hilate' })
  const replayed: string[] = []
  let ended = false
  const stop = stream.subscribe(-1, event => replayed.push(event.type), () => { ended = true })
  stop() // nothing left to stop: harmless
  t.same(replayed, ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed'], 'only its own run, nothing after the end')
  t.ok(ended)
  for (const event of stream.events) t.equal(eventProblem(JSON.parse(event.json)), undefined)
  t.equal(schemaProblem('ResponseResource', stream.response()), undefined)
})

t.test('a body nested more than 64 levels deep is a 400, over HTTP and in WebSocket mode; 64 levels are served', async t => {
  const app = await buildApp(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  /** A JSON value `levels` objects deep. */
  const nest = (levels: number): string => '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1)
  // Each places its innermost object at `depth`: the body is level 1.
  const bodies = (depth: number): Record<string, string> => ({
    'tools[0].parameters': `{"input":"x","tools":[{"type":"function","name":"f","parameters":${nest(depth - 3)}}],"tool_choice":"none"}`,
    'text.format': `{"input":"x","text":{"format":{"type":"text","x":${nest(depth - 3)}}}}`,
    tool_choice: `{"input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"f","x":${nest(depth - 2)}}}`
  })
  for (const [field, body] of Object.entries(bodies(64))) t.equal((await post(app, body)).statusCode, 200, `${field}: 64 levels`)
  for (const depth of [65, 100_000]) {
    for (const [field, body] of Object.entries(bodies(depth))) {
      const res = await post(app, body)
      t.equal(res.statusCode, 400, `${field}: ${depth} levels`)
      t.match(res.json(), { error: { type: 'invalid_request_error', param: 'body', message: 'The request body is nested more than 64 levels deep.' } })
    }
  }
  const address = app.server.address() as { port: number }
  const socket = new WebSocket(`ws://127.0.0.1:${address.port}/v1/responses`, { headers: AUTH })
  t.teardown(() => socket.close())
  await once(socket, 'open')
  socket.send(`{"type":"response.create",${(bodies(65).tool_choice as string).slice(1)}`)
  const [data] = await once(socket, 'message') as [Buffer]
  t.match(JSON.parse(String(data)), { type: 'error', status: 400, error: { param: 'body', message: /nested more than 64 levels/ } })
})

t.test('compaction: tool results and long conversations are digested; forged items refused', async t => {
  const app = await buildApp(t)
  const tools = [{ type: 'function', name: 'lookup' }]
  const called = (await post(app, { input: 'q', tools, tool_choice: 'required' })).json()
  const answered = (await post(app, { previous_response_id: called.id, input: [{ type: 'function_call_output', call_id: called.output[0].call_id, output: 'the answer' }] })).json()
  const long = 'word '.repeat(8000)
  const res = await post(app, {
    model: 'm',
    previous_response_id: answered.id,
    input: [{ role: 'user', content: [{ type: 'input_text', text: long }, { type: 'input_image', image_url: 'https://example.com/i.png' }] }]
  }, '/v1/responses/compact')
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(schemaProblem('CompactResource', body), undefined)
  t.same(body.output.at(-2).content.map((part: { type: string }) => part.type), ['input_text'], 'kept user messages keep their text')
  const digestOf = (item: { encrypted_content: string }): string => JSON.parse(Buffer.from(item.encrypted_content.slice(6), 'base64url').toString()).digest
  const digest = digestOf(body.output.at(-1))
  t.ok(digest.startsWith('…'), 'a long conversation keeps its newest part')
  t.ok(digest.length <= 32_001)

  const short = (await post(app, { model: 'm', previous_response_id: answered.id }, '/v1/responses/compact')).json()
  t.match(digestOf(short.output.at(-1)), /tool lookup: the answer/)

  const forge = (content: string): Promise<LightMyRequestResponse> => post(app, { input: [{ type: 'compaction', encrypted_content: content }, { role: 'user', content: 'x' }] })
  t.equal((await forge('fsgc1.!!!')).json().error.param, 'input[0].encrypted_content')
  t.equal((await forge(`fsgc1.${Buffer.from('{"digest":5}').toString('base64url')}`)).statusCode, 400)
  t.equal((await post(app, '"a string"', '/v1/responses/compact')).json().error.param, 'body')
})

t.test('odd but valid input shapes; odd invalid ones name their field', async t => {
  const app = await buildApp(t)
  const res = await post(app, { input: [{ type: 'function_call', call_id: 'c1', name: 'f', arguments: '{}' }, { type: 'function_call_output', call_id: 'c1', output: 'r' }, { type: null, id: 'ref_1' }] })
  t.equal(res.statusCode, 200, 'a call that opens the input, an output, a reference with a null type')
  t.equal((await post(app, { input: [{}] })).json().error.param, 'input[0].type')
  t.equal((await post(app, { input: [7] })).json().error.param, 'input[0]')
  t.equal((await post(app, { input: 'x', include: ['everything'] })).json().error.param, 'include[0]')
  t.equal((await post(app, { input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'output_text', text: 'x' }] }] })).json().error.param, 'input[0].output[0].type')
})

t.test('resuming a live stream from the start, without starting_after', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const running = post(app, { input: 'x' }, '/v1/responses', { 'x-openclaw-session-key': 'resume-all' })
  await agent.waitStarted(1)
  const id = (await app.sessionGateway.history('agent:main:resume-all', { limit: 1 })).entries[0]?.runId as string
  const resumed = app.inject({ method: 'GET', url: `/v1/responses/${id}?stream=true`, headers: AUTH })
  await new Promise(resolve => setTimeout(resolve, 20))
  agent.release()
  const { events, problems } = parseSse((await resumed).body)
  t.same(problems, [])
  t.equal(events[0]?.type, 'response.created')
  t.equal(events.at(-1)?.type, 'response.completed')
  await running
})

t.test('store failures: a record that cannot be kept is logged; a history that cannot be read is a 500', async t => {
  const store = new MemoryStore()
  const lines: string[] = []
  const { Writable } = await import('node:stream')
  const app = await buildApp(t, { store }, { logger: { level: 'error', stream: new Writable({ write (chunk, _e, done) { lines.push(String(chunk)); done() } }) } })
  store.putRecord = async () => { throw new Error('disk full') }
  const body = (await post(app, { input: 'x' })).json()
  t.equal(body.status, 'completed', 'the answer still reaches its client')
  await new Promise(resolve => setTimeout(resolve, 20))
  t.ok(lines.some(line => line.includes('a response could not be stored')))
  t.equal((await app.inject({ method: 'GET', url: `/v1/responses/${body.id as string}`, headers: AUTH })).statusCode, 404)

  await post(app, { input: 'x' }, '/v1/responses', { 'x-openclaw-session-key': 'k' })
  store.read = async () => { throw new Error('disk gone') }
  const failed = await post(app, { input: [{ type: 'function_call_output', call_id: 'c', output: 'x' }] }, '/v1/responses', { 'x-openclaw-session-key': 'k' })
  t.equal(failed.statusCode, 500)
  t.match(failed.json().error, { type: 'server_error', code: 'server_error', message: 'The server had an error while processing your request.' })
  t.notMatch(failed.body, /disk gone/, 'the cause stays in the log')
})

t.test('more refusals: an empty body, an unknown id, another principal\'s running response, odd arguments', async t => {
  const agent = gatedAgent()
  const verify = namedPrincipals('alice', 'bob')
  // Access to a response is access to its session: here bob may touch no session.
  const app = await buildApp(t, { agent, auth: { verify }, authorize: ({ principal }) => principal.id === 'alice' })
  const as = (who: string): Record<string, string> => ({ authorization: `Bearer ${who}` })
  const empty = await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...as('alice'), 'content-type': 'application/json' }, payload: '' })
  t.match(empty.json().error, { code: 'invalid_json', type: 'invalid_request_error' })
  const wrongLength = await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...as('alice'), 'content-type': 'application/json', 'content-length': '2' }, payload: '{"input":"x"}' })
  t.equal(wrongLength.statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: '/v1/responses/not-a-response-id', headers: as('alice') })).statusCode, 404)

  const running = app.inject({ method: 'POST', url: '/v1/responses', headers: { ...as('alice'), 'content-type': 'application/json' }, payload: { input: 'mine', reasoning: { summary: 'auto' } } })
  await agent.waitStarted(1)
  const id = (await app.sessionGateway.list()).rows[0]?.key as string
  const runId = (await app.sessionGateway.history(id, { limit: 1 })).entries[0]?.runId as string
  t.equal((await app.inject({ method: 'GET', url: `/v1/responses/${runId}`, headers: as('bob') })).statusCode, 404, 'a running response is not there for whoever may not read its session')
  agent.release()
  t.match((await running).json(), { reasoning: { effort: null, summary: 'auto' } })

  const args = await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...as('alice'), 'content-type': 'application/json' }, payload: { input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: '[1]' }] } })
  t.equal(args.json().error.param, 'input[0].arguments')
  const noImage = app.inject({ method: 'POST', url: '/v1/responses', headers: { ...as('alice'), 'content-type': 'application/json' }, payload: { input: [{ role: 'user', content: [{ type: 'input_image', image_url: null }, { type: 'input_text', text: 'x' }] }] } })
  await agent.waitStarted(2)
  agent.release()
  t.equal((await noImage).statusCode, 200, 'an image part without a URL is kept as an empty image')
})

t.test('a session reset or a gateway shutdown ends a running response incomplete, with the reason', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const reset = post(app, { input: 'x' }, '/v1/responses', { 'x-openclaw-session-key': 'reset-me' })
  await agent.waitStarted(1)
  await app.sessionGateway.reset('agent:main:reset-me')
  t.match((await reset).json(), { status: 'incomplete', incomplete_details: { reason: 'session_reset' } })

  const closing = post(app, { input: 'x', stream: true }, '/v1/responses', { 'x-openclaw-session-key': 'closing' })
  await agent.waitStarted(2)
  await app.sessionGateway.close()
  const { events } = parseSse((await closing).body)
  t.match(events.at(-1), { type: 'response.incomplete', response: { incomplete_details: { reason: 'interrupted' } } })
})

t.test('a call id is found among transcript rows OpenClaw wrote, whatever else is there', async t => {
  const store = new MemoryStore()
  await store.ensure('agent:main:mixed', 'main')
  await store.append('agent:main:mixed', [
    { type: 'custom', id: 'c0000001', parentId: null, timestamp: new Date().toISOString() },
    { type: 'message', id: 'm0000001', parentId: 'c0000001', timestamp: new Date().toISOString(), message: { role: 'assistant', content: [{ type: 'toolCall', id: 'call_old', name: 'lookup', arguments: {} }], stopReason: 'toolUse', timestamp: 1 } }
  ])
  const app = await buildApp(t, { store })
  const res = await post(app, { input: [{ type: 'function_call_output', call_id: 'call_old', output: 'found' }] }, '/v1/responses', { 'x-openclaw-session-key': 'mixed' })
  t.equal(res.json().output[0].content[0].text, 'lookup: found')
})
