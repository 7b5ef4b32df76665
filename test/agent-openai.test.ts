import { once } from 'node:events'
import { Writable } from 'node:stream'
import type { LightMyRequestResponse } from 'fastify'
import OpenAI from 'openai'
import t from 'tap'
import WebSocket from 'ws'
import { openAIAgent, type OpenAIAgentOptions } from '../lib/index.js'
import { chatChunks, errorAnswer, responsesEvents, startFakeUpstream, writeSse, type FakeUpstream } from './fake-upstream.js'
import { GatewaySocket, listen } from './gateway-frames.js'
import { buildApp, TOKEN, user } from './helpers.js'
import { eventProblem, parseSse, schemaProblem } from './openresponses-schema.js'

// openAIAgent in front of a real (small) OpenAI-compatible server on 127.0.0.1: what a
// client of the gateway sees on every transport, and what the upstream was sent.

const KEY = 'sk-test-secret-4242424242'

function agentFor (upstream: FakeUpstream, options: Partial<OpenAIAgentOptions> = {}): ReturnType<typeof openAIAgent> {
  return openAIAgent({ baseURL: `${upstream.origin}/v1`, apiKey: KEY, model: 'fake-model', maxRetries: 0, ...options })
}

const post = async (app: Awaited<ReturnType<typeof buildApp>>, body: unknown, key = 'up'): Promise<LightMyRequestResponse> => await app.inject({
  method: 'POST',
  url: '/v1/responses',
  headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': key },
  payload: body as Record<string, unknown>
})

t.test('chat: text streams through HTTP JSON and SSE; the upstream gets the model, the key, the history and the instructions', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (request, res) => {
    const last = request.body.messages.at(-1).content as string
    await writeSse(res, chatChunks({ text: `you said ${last}`, usage: { input: 12, output: 3, cached: 4 } }))
  })
  const app = await buildApp(t, { agent: agentFor(upstream) })

  const first = await post(app, { model: 'openclaw', input: 'hello', instructions: 'Be brief.' })
  t.equal(first.statusCode, 200)
  const response = first.json()
  t.equal(schemaProblem('ResponseResource', response), undefined)
  t.equal(response.output[0].content[0].text, 'you said hello')
  t.match(response.usage, { input_tokens: 12, output_tokens: 3, total_tokens: 15, input_tokens_details: { cached_tokens: 4 } })

  const sent = upstream.requests[0]
  t.equal(sent?.path, '/v1/chat/completions')
  t.equal(sent?.headers.authorization, `Bearer ${KEY}`)
  t.same(sent?.body, {
    model: 'fake-model',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }],
    stream: true,
    stream_options: { include_usage: true }
  })

  const second = await post(app, { model: 'gpt-4o-mini', input: 'again', stream: true })
  const { events, problems } = parseSse(second.body)
  t.same(problems, [])
  t.equal(events.filter(e => e.type === 'response.output_text.delta').map(e => e.delta).join(''), 'you said again')
  t.equal(events.at(-1)?.type, 'response.completed')
  t.match(upstream.requests[1]?.body, {
    model: 'gpt-4o-mini', // a client's own model name overrides the default
    messages: [{ role: 'user', content: 'hello' }, { role: 'assistant', content: 'you said hello' }, { role: 'user', content: 'again' }]
  })
})

t.test('chat: the gateway protocol and WebSocket mode stream the same upstream answer, live', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (_request, res) => { await writeSse(res, chatChunks({ text: 'one two three four' }), { delayMs: 5 }) })
  const app = await buildApp(t, { agent: agentFor(upstream) })
  await listen(app)

  const client = await GatewaySocket.open(app)
  t.teardown(() => client.close())
  t.equal((await client.request('chat.send', { sessionKey: 'ws', message: 'hi', idempotencyKey: 'i1' })).ok, true)
  const final = await client.next(f => f.event === 'chat' && f.payload.state === 'final')
  const deltas = client.events('chat').filter(f => f.payload.state === 'delta')
  t.ok(deltas.length >= 2, 'the answer arrived in pieces, not at once')
  t.equal(deltas.map(f => f.payload.deltaText).join(''), 'one two three four')
  t.same(final.payload.message.content, [{ type: 'text', text: 'one two three four' }])
  t.same(client.problems, [])

  const port = (app.server.address() as { port: number }).port
  const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/responses`, { headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'ws' } })
  t.teardown(() => socket.terminate())
  await once(socket, 'open')
  const frames: Array<Record<string, any>> = []
  const completed = new Promise<void>(resolve => socket.on('message', data => {
    const frame = JSON.parse(String(data)) as Record<string, any>
    frames.push(frame)
    if (frame.type === 'response.completed') resolve()
  }))
  socket.send(JSON.stringify({ type: 'response.create', model: 'openclaw', input: 'over ws mode' }))
  await completed
  t.same(frames.map(eventProblem).filter(Boolean), [])
  t.equal(frames.filter(f => f.type === 'response.output_text.delta').map(f => f.delta).join(''), 'one two three four')
  t.equal(upstream.requests[1]?.body.messages.length, 3, 'the second turn carried the first (user, assistant) and its own input')
})

t.test('chat: a tool round trip with the official openai client, unchanged, through the gateway', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (request, res) => {
    const last = request.body.messages.at(-1)
    if (last.role === 'tool') {
      await writeSse(res, chatChunks({ text: `It is ${last.content as string}.` }))
    } else {
      await writeSse(res, chatChunks({ toolCalls: [{ id: 'call_up_1', name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' }] }))
    }
  })
  const app = await buildApp(t, { agent: agentFor(upstream) })
  await listen(app)
  const port = (app.server.address() as { port: number }).port
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: TOKEN, defaultHeaders: { 'x-openclaw-session-key': 'tools' }, maxRetries: 0 })
  const tools: OpenAI.Responses.Tool[] = [{
    type: 'function', name: 'get_weather', description: 'The weather in a city', strict: false,
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } } }
  }]

  const first = await openai.responses.create({ model: 'openclaw', input: 'Weather in Paris?', tools, tool_choice: 'auto' })
  const call = first.output.find(item => item.type === 'function_call')
  t.match(call, { call_id: 'call_up_1', name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' }, "the upstream's call id, its arguments assembled from their chunks")
  t.match(upstream.requests[0]?.body, {
    tools: [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object' }, strict: false } }],
    tool_choice: 'auto'
  })

  const answer = await openai.responses.create({
    model: 'openclaw',
    previous_response_id: first.id,
    input: [{ type: 'function_call_output', call_id: 'call_up_1', output: 'sunny' }],
    tools
  })
  t.equal(answer.output_text, 'It is sunny.')
  t.match(upstream.requests[1]?.body.messages, [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_up_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' } }] },
    { role: 'tool', tool_call_id: 'call_up_1', content: 'sunny' }
  ], 'the tool result reached the upstream in its own format, after its call')

  const forced = await openai.responses.create({ model: 'openclaw', input: 'x', tools, tool_choice: { type: 'function', name: 'get_weather' } })
  t.equal(forced.output[0]?.type, 'function_call')
  t.same(upstream.requests[2]?.body.tool_choice, { type: 'function', function: { name: 'get_weather' } })
})

t.test('history: bounded by messages and by characters, newest kept, tool calls never split from their results', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (_request, res) => { await writeSse(res, chatChunks({ text: 'ok' })) })
  const app = await buildApp(t, { agent: agentFor(upstream, { maxHistoryMessages: 4, maxHistoryChars: 40 }) })
  const gateway = app.sessionGateway
  const sessionKey = 'agent:main:long'
  // Ten turns of 10-character messages: 20 rows before the next turn.
  for (let i = 0; i < 10; i++) await (await gateway.send({ sessionKey, agentId: 'main', input: [user(`message ${String(i).padStart(2, '0')}`)] })).result
  await (await gateway.send({ sessionKey, agentId: 'main', input: [user('the newest')] })).result
  const messages = upstream.requests.at(-1)?.body.messages as Array<{ role: string, content: string }>
  t.same(messages.map(m => m.content), ['message 08', 'ok', 'message 09', 'ok', 'the newest'], 'four earlier messages (the bound), then the input')

  const tight = await buildApp(t, { agent: agentFor(upstream, { maxHistoryChars: 12 }) })
  await (await tight.sessionGateway.send({ sessionKey, agentId: 'main', input: [user('first words')] })).result
  await (await tight.sessionGateway.send({ sessionKey, agentId: 'main', input: [user('second')] })).result
  t.same((upstream.requests.at(-1)?.body.messages as Array<{ content: string }>).map(m => m.content), ['ok', 'second'], '12 characters hold "ok", not "first words" before it')

  const none = await buildApp(t, { agent: agentFor(upstream, { maxHistoryMessages: 0 }) })
  await (await none.sessionGateway.send({ sessionKey, agentId: 'main', input: [user('a')] })).result
  await (await none.sessionGateway.send({ sessionKey, agentId: 'main', input: [user('b')] })).result
  t.same(upstream.requests.at(-1)?.body.messages, [{ role: 'user', content: 'b' }])
})

t.test('history: an unanswered tool call and a result whose call was cut off are left out', async t => {
  const upstream = await startFakeUpstream(t)
  let calls = 0
  upstream.handle(async (_request, res) => {
    calls++
    await writeSse(res, calls === 1
      ? chatChunks({ toolCalls: [{ id: 'call_a', name: 'lookup', arguments: '{}' }], text: 'Let me look.' })
      : chatChunks({ text: 'fine' }))
  })
  const app = await buildApp(t, { agent: agentFor(upstream, { maxHistoryMessages: 1 }) })
  const tools = [{ type: 'function' as const, name: 'lookup', parameters: { type: 'object' } }]
  const sessionKey = 'agent:main:unanswered'
  await (await app.sessionGateway.send({ sessionKey, agentId: 'main', input: [user('find it')], tools })).result
  // The client never answers the call and writes again instead.
  await (await app.sessionGateway.send({ sessionKey, agentId: 'main', input: [user('never mind')], tools })).result
  t.same(upstream.requests[1]?.body.messages, [
    { role: 'assistant', content: 'Let me look.' },
    { role: 'user', content: 'never mind' }
  ], "the unanswered call is dropped, the assistant's text kept")

  const withResult = await buildApp(t, { agent: agentFor(upstream, { maxHistoryMessages: 1 }) })
  const key2 = 'agent:main:cut'
  calls = 0
  await (await withResult.sessionGateway.send({ sessionKey: key2, agentId: 'main', input: [user('find it')], tools })).result
  await (await withResult.sessionGateway.send({ sessionKey: key2, agentId: 'main', input: [{ role: 'toolResult', toolCallId: 'call_a', toolName: 'lookup', content: [{ type: 'text', text: 'found' }], isError: false, timestamp: Date.now() }], tools })).result
  await (await withResult.sessionGateway.send({ sessionKey: key2, agentId: 'main', input: [user('thanks')], tools })).result
  t.same(upstream.requests.at(-1)?.body.messages, [
    { role: 'assistant', content: 'fine' },
    { role: 'user', content: 'thanks' }
  ], 'a bound of one message keeps the newest answer; the result before it, whose call was cut, is not sent alone')
})

t.test('reasoning streams as a reasoning item and lands in the transcript as a thinking part', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (_request, res) => {
    await writeSse(res, chatChunks({ reasoning: 'The user greets me.', text: 'Hello!', usage: { input: 5, output: 9, reasoning: 4 } }, { reasoningField: upstream.requests.length === 1 ? 'reasoning_content' : 'reasoning' }))
  })
  const app = await buildApp(t, { agent: agentFor(upstream) })
  for (const key of ['think-1', 'think-2']) {
    const res = await post(app, { model: 'openclaw', input: 'hi', stream: true }, key)
    const { events, problems } = parseSse(res.body)
    t.same(problems, [])
    t.equal(events.filter(e => e.type === 'response.reasoning.delta').map(e => e.delta).join(''), 'The user greets me.')
    const final = events.at(-1)?.response
    t.match(final.output, [
      { type: 'reasoning', content: [{ type: 'reasoning_text', text: 'The user greets me.' }], summary: [] },
      { type: 'message', content: [{ type: 'output_text', text: 'Hello!' }] }
    ])
    t.equal(final.usage.output_tokens_details.reasoning_tokens, 4)
    const history = await app.sessionGateway.history(`agent:main:${key}`, { limit: 5 })
    t.same(history.entries.at(-1)?.message?.content, [{ type: 'thinking', thinking: 'The user greets me.' }, { type: 'text', text: 'Hello!' }])
  }
  // Reasoning is the model's own: it is not sent back on the next turn.
  await post(app, { model: 'openclaw', input: 'next' }, 'think-1')
  t.same(upstream.requests.at(-1)?.body.messages.slice(0, 2), [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Hello!' }])
})

t.test('finish_reason "length" ends the response incomplete; params and transformBody shape the request', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (_request, res) => { await writeSse(res, chatChunks({ text: 'cut short', finish: 'length' })) })
  const app = await buildApp(t, {
    agent: agentFor(upstream, {
      params: { temperature: 0.2, top_k: 5 },
      transformBody: (body, request) => ({ ...body, user: request.sessionKey, temperature: 0.3 }),
      headers: { 'x-provider-thing': 'yes' }
    })
  })
  const res = await post(app, { model: 'openclaw', input: 'long please', max_output_tokens: 16 })
  t.match(res.json(), { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } })
  t.match(upstream.requests[0]?.body, { temperature: 0.3, top_k: 5, user: 'agent:main:up', max_completion_tokens: 16 })
  t.equal(upstream.requests[0]?.headers['x-provider-thing'], 'yes')
})

/** A logger that keeps every line, to check what reaches the log. */
function capturedLogs (): { lines: string[], stream: Writable } {
  const lines: string[] = []
  return { lines, stream: new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } }) }
}

t.test('failures end the turn with state error and say what to check; the API key is in neither the error nor the log', async t => {
  const upstream = await startFakeUpstream(t)
  const logs = capturedLogs()
  const app = await buildApp(t, { agent: agentFor(upstream) }, { logger: { level: 'info', stream: logs.stream } })
  await listen(app)
  const client = await GatewaySocket.open(app)
  t.teardown(() => client.close())

  const cases: Array<{ name: string, handler: Parameters<FakeUpstream['handle']>[0], code: string, message: RegExp }> = [
    { name: '401', handler: (_r, res) => errorAnswer(res, 401, `Incorrect API key provided: ${KEY}`), code: 'FSG_UPSTREAM_REJECTED', message: /answered 401 Unauthorized: "Incorrect API key provided: \[redacted\]": check apiKey/ },
    { name: '404', handler: (_r, res) => errorAnswer(res, 404, 'The model `fake-model` does not exist'), code: 'FSG_UPSTREAM_REJECTED', message: /answered 404 Not Found: .*check baseURL/ },
    { name: '400', handler: (_r, res) => errorAnswer(res, 400, 'bad tools'), code: 'FSG_UPSTREAM_REJECTED', message: /answered 400 Bad Request: "bad tools": the upstream refused the request/ },
    { name: '429', handler: (_r, res) => errorAnswer(res, 429, 'slow down'), code: 'FSG_UPSTREAM_RATE_LIMITED', message: /answered 429 Too Many Requests: "slow down": the upstream is rate limiting/ },
    { name: '503', handler: (_r, res) => { res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>down</h1>') }, code: 'FSG_UPSTREAM_FAILED', message: /answered 503 Service Unavailable: "<h1>down<\/h1>": the upstream server failed/ },
    { name: 'not an event stream', handler: (_r, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{}') }, code: 'FSG_UPSTREAM_PROTOCOL', message: /content-type "application\/json", not an event stream/ },
    { name: 'not JSON', handler: async (_r, res) => { await writeSse(res, ['{"broken']) }, code: 'FSG_UPSTREAM_PROTOCOL', message: /an event that is not JSON: "\{"broken"/ },
    { name: 'error mid-stream', handler: async (_r, res) => { await writeSse(res, [...chatChunks({ text: 'partial answer' }).slice(0, 2), JSON.stringify({ error: { message: 'model overloaded' } })]) }, code: 'FSG_UPSTREAM_FAILED', message: /reported an error mid-stream: "model overloaded"/ },
    { name: 'ended early', handler: async (_r, res) => { await writeSse(res, chatChunks({ text: 'never finished' }, { finish: false, done: false })) }, code: 'FSG_UPSTREAM_PROTOCOL', message: /ended its stream before the answer finished/ },
    { name: 'content filter', handler: async (_r, res) => { await writeSse(res, chatChunks({ text: 'bad', finish: 'content_filter' })) }, code: 'FSG_UPSTREAM_FAILED', message: /content_filter/ }
  ]
  for (const [i, c] of cases.entries()) {
    upstream.handle(c.handler)
    await client.request('chat.send', { sessionKey: `fail-${i}`, message: 'hello', idempotencyKey: `f${i}` })
    const end = await client.next(f => f.event === 'chat' && f.payload.runId === `f${i}` && f.payload.state !== 'delta')
    t.equal(end.payload.state, 'error', c.name)
    t.match(end.payload.errorMessage, c.message, c.name)
    const history = await app.sessionGateway.history(`agent:main:fail-${i}`, { limit: 1 })
    t.match(history.entries[0]?.runError, { code: c.code }, `${c.name}: the row keeps the code`)
  }
  const partial = await app.sessionGateway.history('agent:main:fail-7', { limit: 1 })
  t.same(partial.entries[0]?.message?.content, [{ type: 'text', text: 'partial' }], 'text that went out before the failure is kept')
  t.same(client.problems, [])
  t.notOk(logs.lines.some(line => line.includes(KEY)), 'the key appears in no log line')
  t.ok(logs.lines.some(line => line.includes('FSG_UPSTREAM_REJECTED')), 'the failures were logged')
})

t.test('a server that cannot be reached, and one that goes silent, fail clearly', async t => {
  const upstream = await startFakeUpstream(t)
  const closedPort = await buildApp(t)
  await listen(closedPort)
  const deadOrigin = `http://127.0.0.1:${(closedPort.server.address() as { port: number }).port}`
  await closedPort.close()
  const app = await buildApp(t, {
    agent: openAIAgent({ baseURL: `${deadOrigin}/v1`, model: 'm', maxRetries: 0 })
  })
  const dead = await (await app.sessionGateway.send({ sessionKey: 'agent:main:dead', agentId: 'main', input: [user('hi')] })).result
  t.equal(dead.state, 'error')
  t.match(dead.error, { code: 'FSG_UPSTREAM_FAILED', message: /could not be reached or dropped the connection \(ECONNREFUSED\): check baseURL and that the server is running/ })

  upstream.handle(async (_request, res) => { await writeSse(res, chatChunks({ text: 'one two three' }), { stallAfter: 2 }) })
  const stalled = await buildApp(t, { agent: agentFor(upstream, { timeoutMs: 300 }) })
  const closed = upstream.nextAbandon()
  const result = await (await stalled.sessionGateway.send({ sessionKey: 'agent:main:stall', agentId: 'main', input: [user('hi')] })).result
  t.equal(result.state, 'error')
  t.match(result.error, { code: 'FSG_UPSTREAM_TIMEOUT', message: /sent nothing for 300 ms while we waited for its next event: check the server, or raise timeoutMs/ })
  t.equal(result.text, 'one', 'what streamed before the silence is kept')
  await closed
  t.equal(upstream.abandoned, 1, 'the silent request was closed')

  upstream.handle(() => {}) // never answers at all
  const silent = await (await stalled.sessionGateway.send({ sessionKey: 'agent:main:silent', agentId: 'main', input: [user('hi')] })).result
  t.match(silent.error, { code: 'FSG_UPSTREAM_TIMEOUT', message: /while we waited for its answer/ })
})

t.test('retries: only before the first output, honouring Retry-After, up to maxRetries', async t => {
  const upstream = await startFakeUpstream(t)
  let attempts = 0
  upstream.handle(async (_request, res) => {
    attempts++
    if (attempts === 1) errorAnswer(res, 429, 'busy', { 'retry-after-ms': '10' })
    else if (attempts === 2) errorAnswer(res, 500, 'oops', { 'retry-after': '0' })
    else if (attempts === 3) res.destroy() // the connection breaks before any output
    else await writeSse(res, chatChunks({ text: 'made it' }))
  })
  const app = await buildApp(t, { agent: agentFor(upstream, { maxRetries: 3 }) })
  const ok = await (await app.sessionGateway.send({ sessionKey: 'agent:main:retry', agentId: 'main', input: [user('hi')] })).result
  t.equal(ok.state, 'final')
  t.equal(ok.text, 'made it')
  t.equal(attempts, 4)

  attempts = 0
  upstream.handle(async (_request, res) => { attempts++; errorAnswer(res, 502, 'bad gateway', { 'retry-after': '0' }) })
  const spent = await (await app.sessionGateway.send({ sessionKey: 'agent:main:retry', agentId: 'main', input: [user('hi')] })).result
  t.equal(attempts, 4, 'one try and three retries')
  t.match(spent.error?.message, /answered 502/)

  attempts = 0
  upstream.handle(async (_request, res) => { attempts++; errorAnswer(res, 400, 'no') })
  await (await app.sessionGateway.send({ sessionKey: 'agent:main:retry', agentId: 'main', input: [user('hi')] })).result
  t.equal(attempts, 1, 'a 400 is not retried')

  attempts = 0
  upstream.handle(async (_request, res) => { attempts++; errorAnswer(res, 429, 'come back tomorrow', { 'retry-after': '86400' }) })
  const later = await (await app.sessionGateway.send({ sessionKey: 'agent:main:retry', agentId: 'main', input: [user('hi')] })).result
  t.equal(attempts, 1, 'a Retry-After longer than a turn should wait is not waited for')
  t.match(later.error, { code: 'FSG_UPSTREAM_RATE_LIMITED' })

  attempts = 0
  upstream.handle(async (_request, res) => { attempts++; await writeSse(res, chatChunks({ text: 'some words then a break' }), { dropAfter: 3, delayMs: 20 }) })
  const broken = await (await app.sessionGateway.send({ sessionKey: 'agent:main:retry', agentId: 'main', input: [user('hi')] })).result
  t.equal(attempts, 1, 'once text went out, a failure is not retried')
  t.equal(broken.state, 'error')
  t.equal(broken.text, 'some words')
})

t.test('abort closes the upstream request at once, on every transport', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (_request, res) => { await writeSse(res, chatChunks({ text: 'a b c d e f g h i j k l m n o p' }), { delayMs: 50 }) })
  const app = await buildApp(t, { agent: agentFor(upstream) })
  await listen(app)

  const client = await GatewaySocket.open(app)
  t.teardown(() => client.close())
  await client.request('chat.send', { sessionKey: 'abort', message: 'go', idempotencyKey: 'a1' })
  await client.next(f => f.event === 'chat' && f.payload.state === 'delta')
  const abandoned = upstream.nextAbandon()
  await client.request('chat.abort', { sessionKey: 'abort', runId: 'a1' })
  await abandoned
  t.equal((await client.next(f => f.event === 'chat' && f.payload.state === 'aborted')).payload.runId, 'a1')

  // Shutdown stops the running turn the same way.
  await client.request('chat.send', { sessionKey: 'abort', message: 'go', idempotencyKey: 'a2' })
  await client.next(f => f.event === 'chat' && f.payload.runId === 'a2' && f.payload.state === 'delta')
  const closing = upstream.nextAbandon()
  await app.close()
  await closing
  t.equal(upstream.abandoned, 2)

  // And an OpenResponses cancel does too.
  const other = await buildApp(t, { agent: agentFor(upstream) })
  await listen(other)
  const port = (other.server.address() as { port: number }).port
  const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: TOKEN, maxRetries: 0 })
  const stream = await openai.responses.create({ model: 'openclaw', input: 'go', stream: true })
  let id = ''
  for await (const event of stream) {
    if (event.type === 'response.created') id = event.response.id
    if (event.type === 'response.output_text.delta') break
  }
  const cancelled = upstream.nextAbandon()
  await other.inject({ method: 'POST', url: `/v1/responses/${id}/cancel`, headers: { authorization: `Bearer ${TOKEN}` } })
  await cancelled
  t.equal(upstream.abandoned, 3, 'each abort closed its upstream request')
})

t.test('the Responses API upstream: input items, text, reasoning, calls, usage, incomplete and failed', async t => {
  const upstream = await startFakeUpstream(t)
  let script: Parameters<typeof responsesEvents> = [{ text: 'hello there', reasoning: 'think', usage: { input: 7, output: 2, cached: 1, reasoning: 1 } }]
  upstream.handle(async (_request, res) => { await writeSse(res, responsesEvents(...script)) })
  const app = await buildApp(t, { agent: agentFor(upstream, { api: 'responses' }) })

  const first = (await post(app, { model: 'openclaw', input: 'hi', instructions: 'Be kind.' }, 'api')).json()
  t.match(first.output, [{ type: 'reasoning', content: [{ text: 'think' }] }, { type: 'message', content: [{ text: 'hello there' }] }])
  t.match(first.usage, { input_tokens: 7, output_tokens: 2, input_tokens_details: { cached_tokens: 1 }, output_tokens_details: { reasoning_tokens: 1 } })
  t.equal(upstream.requests[0]?.path, '/v1/responses')
  t.same(upstream.requests[0]?.body, {
    model: 'fake-model',
    input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] }],
    stream: true,
    instructions: 'Be kind.',
    store: false
  })

  script = [{ toolCalls: [{ id: 'call_r', name: 'lookup', arguments: '{"q":"x"}' }] }]
  const tools = [{ type: 'function', name: 'lookup', description: 'Finds things', parameters: { type: 'object', properties: { q: { type: 'string' } } } }]
  const called = (await post(app, { model: 'openclaw', input: 'look it up', tools, tool_choice: 'required' }, 'api')).json()
  t.match(called.output, [{ type: 'function_call', call_id: 'call_r', name: 'lookup', arguments: '{"q":"x"}' }])
  t.match(upstream.requests[1]?.body, { tools: [{ type: 'function', name: 'lookup', description: 'Finds things', strict: false }], tool_choice: 'required' })

  script = [{ text: 'done' }]
  await post(app, { model: 'openclaw', previous_response_id: called.id, input: [{ type: 'function_call_output', call_id: 'call_r', output: 'result' }] }, 'api')
  t.same(upstream.requests[2]?.body.input.slice(-3), [
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'look it up' }] },
    { type: 'function_call', call_id: 'call_r', name: 'lookup', arguments: '{"q":"x"}' },
    { type: 'function_call_output', call_id: 'call_r', output: 'result' }
  ])
  t.same(upstream.requests[2]?.body.input[1], { type: 'message', role: 'assistant', content: 'hello there' })

  script = [{ text: 'cut' }, { terminal: 'incomplete' }]
  t.match((await post(app, { model: 'openclaw', input: 'x', max_output_tokens: 16 }, 'api')).json(), { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } })
  t.equal(upstream.requests[3]?.body.max_output_tokens, 16)

  script = [{ text: 'partial' }, { terminal: 'failed' }]
  t.match((await post(app, { model: 'openclaw', input: 'x' }, 'api')).json(), { status: 'failed', error: { code: 'upstream_failed', message: /mid-stream: "the model crashed"/ } })

  script = [{ text: 'no end' }, { terminal: false }]
  t.match((await post(app, { model: 'openclaw', input: 'x' }, 'api')).json(), { status: 'failed', error: { code: 'upstream_protocol', message: /no response.completed/ } })
})

t.test('bad options are refused when the agent is made, naming the option', async t => {
  t.throws(() => openAIAgent({} as OpenAIAgentOptions), { code: 'FSG_INVALID_OPTION', message: /"openAIAgent.model": a model name/ })
  t.throws(() => openAIAgent({ model: 'm', baseURL: 'ftp://x' }), { message: /"openAIAgent.baseURL": an http\(s\) URL/ })
  t.throws(() => openAIAgent({ model: 'm', api: 'soap' as 'chat' }), { message: /"openAIAgent.api": "chat" or "responses"/ })
  t.throws(() => openAIAgent({ model: 'm', maxRetries: -1 }), { message: /"openAIAgent.maxRetries"/ })
  t.throws(() => openAIAgent({ model: 'm', surprise: 1 } as OpenAIAgentOptions), { message: /"openAIAgent.surprise": no such option/ })
  t.throws(() => openAIAgent(null as unknown as OpenAIAgentOptions), { message: /"openAIAgent": an options object/ })
})

t.test('images and files reach each API in its own shape, and count toward the history bound', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (_request, res) => { await writeSse(res, _request.path.endsWith('/responses') ? responsesEvents({ text: 'seen' }) : chatChunks({ text: 'seen' })) })
  const png = Buffer.alloc(300, 7).toString('base64')
  const input = [{
    type: 'message',
    role: 'user',
    content: [
      { type: 'input_text', text: 'look' },
      { type: 'input_image', image_url: `data:image/png;base64,${png}` },
      { type: 'input_image', image_url: 'https://example.com/cat.jpg' },
      { type: 'input_file', file_data: 'JVBERi0=', filename: 'a.pdf' },
      { type: 'input_file', file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'b.pdf' },
      { type: 'input_file', file_url: 'https://example.com/c.pdf' },
      { type: 'input_file', file_url: 'https://example.com/d.txt', filename: 'd.txt' },
      { type: 'input_file', file_data: 'QUJD' },
      { type: 'input_image', image_url: null }
    ]
  }]
  const chat = await buildApp(t, { agent: agentFor(upstream, { maxHistoryChars: 100 }) })
  t.equal((await post(chat, { model: 'openclaw', input }, 'media')).statusCode, 200)
  t.same(upstream.requests[0]?.body.messages[0].content, [
    { type: 'text', text: 'look' },
    { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
    { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
    { type: 'file', file: { file_data: 'data:application/octet-stream;base64,JVBERi0=', filename: 'a.pdf' } },
    { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'b.pdf' } },
    { type: 'text', text: '[file: https://example.com/c.pdf]' },
    { type: 'text', text: '[file d.txt: https://example.com/d.txt]' },
    { type: 'file', file: { file_data: 'data:application/octet-stream;base64,QUJD' } }
  ], 'an image with neither data nor a link is not sent')
  await post(chat, { model: 'openclaw', input: 'and now?' }, 'media')
  t.same(upstream.requests[1]?.body.messages.map((m: { role: string }) => m.role), ['assistant', 'user'], "the image's 400 characters of data do not fit a 100-character bound")

  const responses = await buildApp(t, { agent: agentFor(upstream, { api: 'responses' }) })
  await post(responses, { model: 'openclaw', input }, 'media')
  t.same(upstream.requests[2]?.body.input[0].content, [
    { type: 'input_text', text: 'look' },
    { type: 'input_image', image_url: `data:image/png;base64,${png}` },
    { type: 'input_image', image_url: 'https://example.com/cat.jpg' },
    { type: 'input_file', file_data: 'data:application/octet-stream;base64,JVBERi0=', filename: 'a.pdf' },
    { type: 'input_file', file_data: 'data:application/pdf;base64,JVBERi0=', filename: 'b.pdf' },
    { type: 'input_file', file_url: 'https://example.com/c.pdf' },
    { type: 'input_file', file_url: 'https://example.com/d.txt', filename: 'd.txt' },
    { type: 'input_file', file_data: 'data:application/octet-stream;base64,QUJD', filename: 'attachment' }
  ])

  // A gateway attachment carries base64 and maybe no type: an image is taken for a PNG.
  await (await chat.sessionGateway.send({ sessionKey: 'agent:main:attach', agentId: 'main', input: [{ role: 'user', content: [{ type: 'image', data: 'iVBORw0=' }], timestamp: Date.now() }] })).result
  t.same(upstream.requests.at(-1)?.body.messages.at(-1).content, [{ type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0=' } }])
})

t.test('odd streams: an error event, a JSON value that is not an object, Retry-After as a date, and the other ways a Responses stream ends', async t => {
  const upstream = await startFakeUpstream(t)
  const app = await buildApp(t, { agent: agentFor(upstream, { maxRetries: 1 }) })
  const run = async (key: string): Promise<Awaited<Awaited<ReturnType<typeof app.sessionGateway.send>>['result']>> =>
    await (await app.sessionGateway.send({ sessionKey: `agent:main:${key}`, agentId: 'main', input: [user('hi')] })).result

  upstream.handle(async (_request, res) => { await writeSse(res, [['error', JSON.stringify({ code: 'overloaded' })]]) })
  t.match((await run('event-error')).error, { code: 'FSG_UPSTREAM_FAILED', message: /mid-stream: "\{"code":"overloaded"\}"/ })

  upstream.handle(async (_request, res) => { await writeSse(res, ['[1,2]']) })
  t.match((await run('array')).error, { code: 'FSG_UPSTREAM_PROTOCOL', message: /an event that is not a JSON object: "\[1,2\]"/ })

  let tries = 0
  upstream.handle(async (_request, res) => {
    if (tries++ === 0) return errorAnswer(res, 503, 'later', { 'retry-after': new Date(Date.now() - 1000).toUTCString() })
    await writeSse(res, chatChunks({ text: 'after the date' }))
  })
  t.equal((await run('date')).text, 'after the date', 'a Retry-After date in the past means retry now')

  const responses = await buildApp(t, { agent: agentFor(upstream, { api: 'responses' }) })
  const runResponses = async (key: string): Promise<Awaited<Awaited<ReturnType<typeof app.sessionGateway.send>>['result']>> =>
    await (await responses.sessionGateway.send({ sessionKey: `agent:main:${key}`, agentId: 'main', input: [user('hi')] })).result
  upstream.handle(async (_request, res) => {
    await writeSse(res, [['response.incomplete', JSON.stringify({ type: 'response.incomplete', response: { incomplete_details: { reason: 'content_filter' } } })]])
  })
  t.match((await runResponses('filtered')).error, { code: 'FSG_UPSTREAM_FAILED', message: /left the answer incomplete \(content_filter\)/ })
  upstream.handle(async (_request, res) => { await writeSse(res, [['error', JSON.stringify({ type: 'error', error: { message: 'quota exceeded' } })]]) })
  t.match((await runResponses('error-event')).error, { code: 'FSG_UPSTREAM_FAILED', message: /mid-stream: "quota exceeded"/ })
  upstream.handle(async (_request, res) => { await writeSse(res, [['response.failed', JSON.stringify({ type: 'response.failed', response: {} })]]) })
  t.match((await runResponses('failed-bare')).error, { message: /mid-stream: "the response failed"/ })
})

t.test('an agent that yields reasoning that is not a string ends its run with FSG_AGENT_PROTOCOL; empty reasoning is skipped', async t => {
  const app = await buildApp(t, {
    agent: {
      async * respond (request) {
        yield { type: 'reasoning', delta: '' }
        if (request.input.length > 1) yield { type: 'reasoning', delta: 42 as unknown as string }
        yield { type: 'text', delta: 'fine' }
      }
    }
  })
  const ok = await (await app.sessionGateway.send({ sessionKey: 'agent:main:r', agentId: 'main', input: [user('one')] })).result
  t.same(ok.message.content, [{ type: 'text', text: 'fine' }], 'no thinking part for empty reasoning')
  const bad = await (await app.sessionGateway.send({ sessionKey: 'agent:main:r', agentId: 'main', input: [user('one'), user('two')] })).result
  t.match(bad.error, { code: 'FSG_AGENT_PROTOCOL', message: 'a reasoning output without a string delta' })
})

t.test('the fetch option carries every request; the default base URL is OpenAI\'s', async t => {
  const seen: string[] = []
  const agent = openAIAgent({
    model: 'gpt-4o-mini',
    fetch: async (url, init) => {
      seen.push(`${String(url)} ${String((init?.headers as Record<string, string>).authorization)}`)
      return new Response(chatChunks({ text: 'from a custom fetch' }).map(data => `data: ${data}\n\n`).join(''), { headers: { 'content-type': 'text/event-stream' } })
    }
  })
  const app = await buildApp(t, { agent })
  const result = await (await app.sessionGateway.send({ sessionKey: 'agent:main:f', agentId: 'main', input: [user('hi')] })).result
  t.equal(result.text, 'from a custom fetch')
  t.same(seen, ['https://api.openai.com/v1/chat/completions undefined'], 'no key, no authorization header')
})

t.test('unusual but legal chunks and bodies: no choices, a second choice, bare tools, calls without ids, usage without details', async t => {
  const upstream = await startFakeUpstream(t)
  const base = { id: 'c', object: 'chat.completion.chunk', model: 'm' }
  upstream.handle(async (request, res) => {
    if (request.path.endsWith('/responses')) {
      await writeSse(res, [
        ['response.output_item.done', JSON.stringify({ type: 'response.output_item.done', item: { type: 'function_call', name: 'bare', arguments: '' } })],
        ['response.completed', JSON.stringify({ type: 'response.completed', response: { usage: { input_tokens: 3, output_tokens: 'many' } } })]
      ])
      return
    }
    await writeSse(res, [
      JSON.stringify({ ...base }),
      JSON.stringify({ ...base, choices: [{ index: 1, delta: { content: 'not this one' } }] }),
      JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: 'yes' } }] }),
      JSON.stringify({ ...base, choices: [{ delta: { tool_calls: [{ function: { name: 'bare' } }] } }] }),
      JSON.stringify({ ...base, choices: [{ index: 0, finish_reason: 'tool_calls' }] }),
      JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 2 } })
    ])
  })
  const tools = [{ type: 'function' as const, name: 'bare' }]
  const chat = await buildApp(t, { agent: agentFor(upstream) })
  const result = await (await chat.sessionGateway.send({ sessionKey: 'agent:main:odd', agentId: 'main', input: [user('hi')], tools, toolChoice: { type: 'function', name: 'bare' } })).result
  t.equal(result.text, 'yes', 'only the first choice is the answer')
  t.match(result.toolCalls, [{ name: 'bare', arguments: {} }], 'a call without an id or arguments gets an id of ours and {}')
  t.match(result.toolCalls[0]?.id, /^call_/)
  t.same(result.usage, { inputTokens: 2, outputTokens: 0 })
  t.same(upstream.requests[0]?.body.tools, [{ type: 'function', function: { name: 'bare', parameters: { type: 'object', properties: {} } } }])

  const responses = await buildApp(t, { agent: agentFor(upstream, { api: 'responses' }) })
  const other = await (await responses.sessionGateway.send({ sessionKey: 'agent:main:odd', agentId: 'main', input: [user('hi')], tools, toolChoice: { type: 'function', name: 'bare' } })).result
  t.match(other.toolCalls, [{ name: 'bare', arguments: {} }])
  t.same(other.usage, { inputTokens: 3, outputTokens: 0 }, 'a count that is not a number counts as 0')
  t.same(upstream.requests[1]?.body.tools, [{ type: 'function', name: 'bare', parameters: { type: 'object', properties: {} }, strict: false }])
  t.same(upstream.requests[1]?.body.tool_choice, { type: 'function', name: 'bare' })
})

t.test('error bodies in the shapes servers use, and failures before any answer', async t => {
  const upstream = await startFakeUpstream(t)
  const app = await buildApp(t, { agent: agentFor(upstream, { maxEventChars: 1024 }) })
  const run = async (key: string): Promise<{ code?: string, message?: string }> =>
    (await (await app.sessionGateway.send({ sessionKey: `agent:main:${key}`, agentId: 'main', input: [user('hi')] })).result).error ?? {}

  upstream.handle((_r, res) => { res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"model \'llama9\' not found"}') })
  t.match(await run('ollama'), { message: /answered 404 Not Found: "model 'llama9' not found"/ }, "Ollama's {error: string}")
  upstream.handle((_r, res) => { res.writeHead(422, { 'content-type': 'application/json' }).end('{"message":"unknown field"}') })
  t.match(await run('message'), { message: /answered 422 Unprocessable Entity: "unknown field"/ }, '{message}')
  upstream.handle((_r, res) => { res.writeHead(400, { 'content-type': 'application/json' }).end('{"detail":"nope"}') })
  t.match(await run('detail'), { message: /answered 400 Bad Request: "\{"detail":"nope"\}"/ }, 'any other JSON is quoted whole')
  upstream.handle((_r, res) => { res.socket?.end('HTTP/1.1 418 \r\ncontent-length: 0\r\nconnection: close\r\n\r\n') })
  t.match(await run('bare'), { code: 'FSG_UPSTREAM_REJECTED', message: /answered 418: the upstream refused/ }, 'a status with no reason phrase and no body')
  upstream.handle((_r, res) => { res.writeHead(200).end('hello') })
  t.match(await run('untyped'), { code: 'FSG_UPSTREAM_PROTOCOL', message: /with content-type "none", not an event stream/ })
  upstream.handle((_r, res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }).write(`data: ${'x'.repeat(2000)}`) })
  t.match(await run('huge'), { code: 'FSG_UPSTREAM_PROTOCOL', message: /sent more than 1024 characters without finishing an event \(maxEventChars\)/ })

  let tries = 0
  upstream.handle(async (_r, res) => {
    if (tries++ === 0) return errorAnswer(res, 503, 'soon', { 'retry-after': 'when it suits me' })
    await writeSse(res, chatChunks({ text: 'backed off' }))
  })
  const patient = await buildApp(t, { agent: agentFor(upstream, { maxRetries: 1 }) })
  t.equal((await (await patient.sessionGateway.send({ sessionKey: 'agent:main:garbled', agentId: 'main', input: [user('hi')] })).result).text, 'backed off', 'an unreadable Retry-After falls back to backoff')

  for (const [thrown, shown] of [[new Error('proxy refused'), 'proxy refused'], ['a plain string', 'a plain string']] as const) {
    const failing = await buildApp(t, { agent: openAIAgent({ model: 'm', maxRetries: 0, fetch: async () => { throw thrown } }) })
    const result = await (await failing.sessionGateway.send({ sessionKey: 'agent:main:f', agentId: 'main', input: [user('hi')] })).result
    t.match(result.error, { code: 'FSG_UPSTREAM_FAILED', message: `could not be reached or dropped the connection (${shown})` })
  }

  const responses = await buildApp(t, { agent: agentFor(upstream, { api: 'responses' }) })
  const runResponses = async (key: string): Promise<{ code?: string, message?: string }> =>
    (await (await responses.sessionGateway.send({ sessionKey: `agent:main:${key}`, agentId: 'main', input: [user('hi')] })).result).error ?? {}
  upstream.handle(async (_r, res) => { await writeSse(res, ['[DONE]']) })
  t.match(await runResponses('done-early'), { code: 'FSG_UPSTREAM_PROTOCOL', message: /no response.completed/ })
  upstream.handle(async (_r, res) => { await writeSse(res, [['error', JSON.stringify({ type: 'error', code: 'rate_limit_exceeded', message: 'flat shape' })]]) })
  t.match(await runResponses('flat-error'), { message: /mid-stream: "flat shape"/ }, "OpenAI's flat error event")
})
