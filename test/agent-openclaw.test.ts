import t from 'tap'
import { openClawAgent, type OpenClawAgentOptions } from '../lib/index.js'
import { startFakeOpenClaw, OPENCLAW_TOKEN, type FakeOpenClaw } from './fake-openclaw.js'
import { GatewaySocket, listen } from './gateway-frames.js'
import { buildApp, TOKEN, user } from './helpers.js'
import { parseSse } from './openresponses-schema.js'

// openClawAgent in front of an OpenClaw-like gateway on 127.0.0.1: the same session key
// upstream, only the new input sent, the stream passed through, abort and errors clear.

function agentFor (openclaw: FakeOpenClaw, options: Partial<OpenClawAgentOptions> = {}): ReturnType<typeof openClawAgent> {
  return openClawAgent({ url: openclaw.origin, token: OPENCLAW_TOKEN, ...options })
}

t.test('a turn streams through under the same canonical key; OpenClaw keeps the conversation, so only new input is sent', async t => {
  const openclaw = await startFakeOpenClaw(t)
  openclaw.streamOptions = { delayMs: 2 }
  const app = await buildApp(t, { agent: agentFor(openclaw) })
  await listen(app)
  const client = await GatewaySocket.open(app)
  t.teardown(() => client.close())

  await client.request('chat.send', { sessionKey: 'Portal-42', message: 'hello', idempotencyKey: 'c1' })
  const first = await client.next(f => f.event === 'chat' && f.payload.runId === 'c1' && f.payload.state === 'final')
  t.equal(first.payload.message.content[0].text, 'echo: hello (turn 1 of agent:main:portal-42)')
  t.ok(client.events('chat').filter(f => f.payload.runId === 'c1' && f.payload.state === 'delta').length > 3, 'the answer streamed word by word')
  t.same(client.problems, [])

  const sent = openclaw.requests[0]
  t.equal(sent?.headers['x-openclaw-session-key'], 'agent:main:portal-42', 'the canonical key, as OpenClaw would make it')
  t.equal(sent?.headers['x-openclaw-agent-id'], 'main')
  t.equal(sent?.headers.authorization, `Bearer ${OPENCLAW_TOKEN}`)
  t.same(sent?.body, { model: 'openclaw/main', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] }], stream: true })

  // The same session over HTTP: OpenClaw continues its own session; only the new message goes.
  const res = await app.inject({
    method: 'POST',
    url: '/v1/responses',
    headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'portal-42' },
    payload: { model: 'openclaw', input: 'and again', stream: true }
  })
  const { events, problems } = parseSse(res.body)
  t.same(problems, [])
  t.equal(events.at(-1)?.response.output[0].content[0].text, 'echo: and again (turn 2 of agent:main:portal-42)')
  t.same(openclaw.requests[1]?.body.input, [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'and again' }] }])
  t.same(openclaw.sessions.get('agent:main:portal-42'), ['hello', 'and again'])

  const history = await app.sessionGateway.history('agent:main:portal-42', { limit: 10 })
  t.same(history.entries.map(e => e.message?.role), ['user', 'assistant', 'user', 'assistant'], 'our transcript mirrors the turns')
})

t.test('agents map to OpenClaw ids, and the key follows', async t => {
  const openclaw = await startFakeOpenClaw(t)
  const app = await buildApp(t, { agent: agentFor(openclaw, { agents: { support: 'main' } }), agents: ['support'], defaultAgentId: 'support' })
  const result = await (await app.sessionGateway.send({ sessionKey: 'agent:support:ticket-9', agentId: 'support', input: [user('help')] })).result
  t.equal(result.state, 'final')
  t.equal(openclaw.requests[0]?.headers['x-openclaw-session-key'], 'agent:main:ticket-9')
  t.equal(openclaw.requests[0]?.headers['x-openclaw-agent-id'], 'main')
  t.equal(openclaw.requests[0]?.body.model, 'openclaw/main')

  const global = await (await app.sessionGateway.send({ sessionKey: 'global', agentId: 'support', input: [user('hi')] })).result
  t.equal(global.state, 'final')
  t.equal(openclaw.requests[1]?.headers['x-openclaw-session-key'], 'global', '"global" stays global')

  const unmapped = await buildApp(t, { agent: agentFor(openclaw), agents: ['other'], defaultAgentId: 'other' })
  const refused = await (await unmapped.sessionGateway.send({ sessionKey: 'agent:other:x', agentId: 'other', input: [user('hi')] })).result
  t.equal(refused.state, 'error')
  t.match(refused.error, { code: 'FSG_UPSTREAM_REJECTED', message: /answered 400 Bad Request: "Unknown agent "other"": OpenClaw refused the turn; check that it has this agent/ })
})

t.test("OpenClaw's own tool calls (whole items, no argument deltas) reach the client; results go back as input", async t => {
  const openclaw = await startFakeOpenClaw(t)
  const app = await buildApp(t, { agent: agentFor(openclaw) })
  const tools = [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }]
  const post = async (body: Record<string, unknown>): Promise<Record<string, any>> => (await app.inject({
    method: 'POST', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'tools' }, payload: body
  })).json()
  const first = await post({ model: 'openclaw', input: 'weather in Paris?', tools })
  t.match(first.output, [{ type: 'function_call', call_id: '6ad7131a0', name: 'get_weather', arguments: '{"city":"Paris"}' }])
  t.match(openclaw.requests[0]?.body.tools, [{ type: 'function', name: 'get_weather', strict: false }])
  const second = await post({ model: 'openclaw', previous_response_id: first.id, input: [{ type: 'function_call_output', call_id: '6ad7131a0', output: 'sunny' }], tools })
  t.equal(second.status, 'completed')
  t.same(openclaw.requests[1]?.body.input, [{ type: 'function_call_output', call_id: '6ad7131a0', output: 'sunny' }])
})

t.test('abort closes the request to OpenClaw, which is how OpenClaw is told to stop', async t => {
  const openclaw = await startFakeOpenClaw(t)
  openclaw.streamOptions = { delayMs: 40 }
  const app = await buildApp(t, { agent: agentFor(openclaw) })
  await listen(app)
  const client = await GatewaySocket.open(app)
  t.teardown(() => client.close())
  await client.request('chat.send', { sessionKey: 'stop-me', message: 'a long message to echo back slowly', idempotencyKey: 's1' })
  await client.next(f => f.event === 'chat' && f.payload.state === 'delta')
  const abandoned = openclaw.nextAbandon()
  t.match((await client.request('chat.abort', { sessionKey: 'stop-me' })).payload, { aborted: true, runIds: ['s1'] })
  await abandoned
  const end = await client.next(f => f.event === 'chat' && f.payload.runId === 's1' && f.payload.state !== 'delta')
  t.equal(end.payload.state, 'aborted')
})

t.test('failures say what to check, never show the token, and a turn OpenClaw may have seen is not sent twice', async t => {
  const openclaw = await startFakeOpenClaw(t)
  // sessions: false, so the turn itself meets the wrong token (not the import before it; see openclaw-sessions.test.ts).
  const wrong = await buildApp(t, { agent: agentFor(openclaw, { token: 'not-the-token-xyz', sessions: false }) })
  const denied = await (await wrong.sessionGateway.send({ sessionKey: 'agent:main:x', agentId: 'main', input: [user('hi')] })).result
  t.match(denied.error, { code: 'FSG_UPSTREAM_REJECTED', message: /\/v1\/responses answered 401 Unauthorized: "Unauthorized": check token/ })
  t.notMatch(denied.error?.message, /not-the-token-xyz/)
  const anonymous = await buildApp(t, { agent: openClawAgent({ url: `${openclaw.origin}/`, sessions: false }) })
  const none = await (await anonymous.sessionGateway.send({ sessionKey: 'agent:main:x', agentId: 'main', input: [user('hi')] })).result
  t.match(none.error, { code: 'FSG_UPSTREAM_REJECTED', message: /answered 401/ }, 'no token, no authorization header')

  const app = await buildApp(t, { agent: agentFor(openclaw, { maxRetries: 2 }) })
  openclaw.streamOptions = { dropAfter: 2, delayMs: 5 } // the connection breaks after OpenClaw took the turn
  const dropped = await (await app.sessionGateway.send({ sessionKey: 'agent:main:once', agentId: 'main', input: [user('only once')] })).result
  t.equal(dropped.state, 'error')
  t.match(dropped.error, { code: 'FSG_UPSTREAM_FAILED', message: /dropped the connection/ })
  t.same(openclaw.sessions.get('agent:main:once'), ['only once'], 'not retried: OpenClaw holds the message once')

  let refusals = 0
  openclaw.streamOptions = {}
  const original = openclaw.requests.length
  openclaw.handle((_request, res) => {
    refusals++
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' }).end('{"error":{"message":"restarting"}}')
  })
  const unavailable = await (await app.sessionGateway.send({ sessionKey: 'agent:main:busy', agentId: 'main', input: [user('hi')] })).result
  t.equal(refusals, 3, 'a refusal (OpenClaw did not take the turn) is retried')
  t.equal(openclaw.requests.length - original, 3)
  t.match(unavailable.error, { code: 'FSG_UPSTREAM_FAILED', message: /answered 503 Service Unavailable: "restarting"/ })
})

t.test('bad options are refused when the agent is made', async t => {
  t.throws(() => openClawAgent({} as OpenClawAgentOptions), { code: 'FSG_INVALID_OPTION', message: /"openClawAgent.url": the OpenClaw gateway's http\(s\) URL/ })
  t.throws(() => openClawAgent({ url: 'http://x', agents: { main: 'Bad Id' } }), { message: /"openClawAgent.agents.main": an object mapping/ })
})
