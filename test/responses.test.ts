import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { echoAgent, FileStore, MemoryStore, type Agent } from '../lib/index.js'
import { GatewaySocket, listen, watchSession } from './gateway-frames.js'
import { buildApp, gatedAgent, namedPrincipals, TOKEN } from './helpers.js'
import { parseSse, schemaProblem } from './openresponses-schema.js'

const AUTH = { authorization: `Bearer ${TOKEN}` }
const KEY = 'agent:main:http'

async function post (app: FastifyInstance, payload: unknown, headers: Record<string, string> = {}, url = '/v1/responses'): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'POST', url, headers: { ...AUTH, 'content-type': 'application/json', ...headers }, payload: payload as string })
}

/** A JSON response object, checked against the schema. */
function response (t: Test, res: LightMyRequestResponse): Record<string, any> {
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  const body = res.json()
  t.equal(schemaProblem('ResponseResource', body), undefined, 'the response object matches ResponseResource')
  return body
}

/** An SSE answer's events, with every framing rule and every event checked. */
function streamed (t: Test, res: LightMyRequestResponse): Array<Record<string, any>> {
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  t.match(res.headers['content-type'], /^text\/event-stream/)
  const { events, problems } = parseSse(res.body)
  t.same(problems, [], 'every event is well framed and matches its schema')
  return events
}

/** An error answer: its status and OpenResponses' error object. */
function refused (t: Test, res: LightMyRequestResponse, status: number, match: Record<string, unknown>): void {
  t.equal(res.statusCode, status, res.body.slice(0, 300))
  const { error } = res.json()
  t.match(error, match)
  t.same(Object.keys(error).slice(0, 4).sort(), ['code', 'message', 'param', 'type'], 'the error object has every key')
}

t.test('a plain call: a complete response object, and the session key to continue with', async t => {
  const app = await buildApp(t)
  const res = await post(app, { model: 'openclaw', input: 'hello big world' })
  const body = response(t, res)
  t.match(body, {
    object: 'response',
    status: 'completed',
    model: 'openclaw',
    output: [{ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'hello big world', annotations: [] }] }],
    usage: { input_tokens: 3, output_tokens: 3, total_tokens: 6, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } },
    error: null,
    incomplete_details: null
  })
  t.match(body.id, /^resp_[0-9a-f]{32}$/)
  t.match(res.headers['x-openclaw-session-key'], /^agent:main:openresponses:/, 'a fresh session, named in the answer')

  const keyed = await post(app, { input: 'again' }, { 'x-openclaw-session-key': KEY })
  t.equal(keyed.headers['x-openclaw-session-key'], KEY)
  t.equal(response(t, keyed).model, 'openclaw/main', 'the model names the agent when the request named none')
})

t.test('sampling and other request fields are echoed back', async t => {
  const app = await buildApp(t)
  const body = response(t, await post(app, {
    input: 'x',
    temperature: 0.2,
    top_p: 0.9,
    presence_penalty: 0.5,
    frequency_penalty: 0.25,
    top_logprobs: 3,
    parallel_tool_calls: false,
    truncation: 'auto',
    service_tier: 'flex',
    store: true,
    metadata: { ticket: 'T-1' },
    reasoning: { effort: 'low' },
    text: { format: { type: 'text' }, verbosity: 'low' },
    max_tool_calls: 2,
    safety_identifier: 'user-7',
    prompt_cache_key: 'cache-7',
    instructions: 'be brief',
    include: ['message.output_text.logprobs']
  }))
  t.match(body, {
    temperature: 0.2, top_p: 0.9, presence_penalty: 0.5, frequency_penalty: 0.25, top_logprobs: 3,
    parallel_tool_calls: false, truncation: 'auto', service_tier: 'flex', store: true, metadata: { ticket: 'T-1' },
    reasoning: { effort: 'low', summary: null }, text: { format: { type: 'text' }, verbosity: 'low' },
    max_tool_calls: 2, safety_identifier: 'user-7', prompt_cache_key: 'cache-7', instructions: 'be brief'
  })
})

t.test('streaming: the events in the order the specification gives, each framed alone, ending [DONE]', async t => {
  const app = await buildApp(t)
  const events = streamed(t, await post(app, { input: 'one two three', stream: true }, { 'x-openclaw-session-key': KEY }))
  t.same(events.map(e => e.type), [
    'response.created', 'response.in_progress',
    'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
    'response.completed'
  ])
  t.same(events.filter(e => e.type === 'response.output_text.delta').map(e => e.delta), ['one', ' two', ' three'])
  const final = events.at(-1)?.response
  t.equal(final.output[0].content[0].text, 'one two three')
  t.equal(final.output[0].id, events[2]?.item.id, 'the streamed item is the final one')
})

t.test('every input item type is accepted and lands in the transcript as OpenClaw rows', async t => {
  const app = await buildApp(t)
  const compacted = await post(app, { model: 'openclaw', input: [{ role: 'user', content: 'long ago' }, { role: 'assistant', content: 'indeed' }] }, {}, '/v1/responses/compact')
  t.equal(compacted.statusCode, 200)
  t.equal(schemaProblem('CompactResource', compacted.json()), undefined, 'the compaction matches CompactResource')
  const compaction = compacted.json().output.find((item: { type: string }) => item.type === 'compaction')

  const res = await post(app, {
    instructions: 'top',
    input: [
      compaction,
      { type: 'message', role: 'system', content: 'system says' },
      { type: 'message', role: 'developer', content: [{ type: 'input_text', text: 'developer says' }] },
      { type: 'message', role: 'user', content: 'plain words' },
      {
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'look' },
          { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' },
          { type: 'input_image', image_url: 'https://example.com/cat.png' },
          { type: 'input_file', filename: 'a.txt', file_data: 'aGVsbG8=' },
          { type: 'input_file', file_url: 'https://example.com/a.pdf' }
        ]
      },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'earlier answer', annotations: [], logprobs: [] }, { type: 'refusal', refusal: 'not that' }], status: 'completed', id: 'msg_old' },
      { type: 'function_call', call_id: 'call_1', name: 'lookup', arguments: '{"q":"x"}', status: 'completed', id: 'fc_old' },
      { role: 'assistant', content: 'typeless message' },
      { type: 'function_call', call_id: 'call_2', name: 'other', arguments: '{}' },
      { type: 'function_call_output', call_id: 'call_1', output: 'found x' },
      { type: 'function_call_output', call_id: 'call_2', output: [{ type: 'input_text', text: 'other result' }] },
      { type: 'reasoning', summary: [{ type: 'summary_text', text: 'thinking' }], id: 'rs_1' },
      { type: 'item_reference', id: 'msg_old' },
      { id: 'msg_typeless_reference' }
    ]
  }, { 'x-openclaw-session-key': KEY })
  response(t, res)
  const { entries } = await app.sessionGateway.history(KEY, { limit: 50 })
  t.same(entries.map(entry => entry.message?.role), ['user', 'user', 'assistant', 'assistant', 'toolResult', 'toolResult', 'assistant'],
    'function calls join the assistant message before them')
  t.match(entries[1]?.message, { content: [{ type: 'text', text: 'look' }, { type: 'image', mimeType: 'image/png', data: 'iVBORw0KGgo=' }, { type: 'image', url: 'https://example.com/cat.png' }, { type: 'file', filename: 'a.txt', data: 'aGVsbG8=' }, { type: 'file', url: 'https://example.com/a.pdf' }] })
  t.match(entries[2]?.message, { role: 'assistant', stopReason: 'toolUse', content: [{ text: 'earlier answer' }, { text: 'not that' }, { type: 'toolCall', id: 'call_1', name: 'lookup', arguments: { q: 'x' } }] })
  t.match(entries[3]?.message, { role: 'assistant', content: [{ text: 'typeless message' }, { type: 'toolCall', id: 'call_2', name: 'other' }] })
  t.match(entries[4]?.message, { role: 'toolResult', toolCallId: 'call_1', toolName: 'lookup', content: [{ text: 'found x' }] })
  t.match(entries[5]?.message, { toolName: 'other', content: [{ text: 'other result' }] })
})

t.test('the agent gets the instructions: the request\'s, system and developer messages, and compacted history', async t => {
  const heard: Array<string | undefined> = []
  const agent: Agent = { async * respond (request) { heard.push(request.instructions); yield { type: 'text', delta: 'ok' } } }
  const app = await buildApp(t, { agent })
  const compacted = (await post(app, { model: 'm', input: 'remember the cat' }, {}, '/v1/responses/compact')).json()
  response(t, await post(app, { instructions: 'top', input: [{ role: 'system', content: 'sys' }, compacted.output.at(-1), { role: 'user', content: 'go' }] }))
  t.match(heard[0], /^top\n\nsys\n\nEarlier in this conversation \(compacted\):\nuser: remember the cat$/)
})

t.test('tools: a function call, then its output continued by previous_response_id', async t => {
  const app = await buildApp(t)
  const tools = [{ type: 'function', name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }]
  const first = response(t, await post(app, { input: 'Oslo', tools, tool_choice: 'required' }))
  t.match(first.output, [{ type: 'function_call', name: 'get_weather', arguments: '{"city":"Oslo"}', status: 'completed', call_id: /^call_/ }])
  t.match(first.tools, [{ type: 'function', name: 'get_weather', strict: null }])
  const call = first.output[0]

  const streamedCall = streamed(t, await post(app, { input: 'Bergen', tools, stream: true }))
  t.same(streamedCall.map(e => e.type), [
    'response.created', 'response.in_progress', 'response.output_item.added',
    'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done', 'response.completed'
  ])

  const second = response(t, await post(app, { previous_response_id: first.id, input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21°C' }], tools }))
  t.equal(second.previous_response_id, first.id)
  t.equal(second.output[0].content[0].text, 'get_weather: sunny, 21°C', 'the answer used the tool result, matched to its call in the session')

  const orphan = await post(app, { previous_response_id: first.id, input: [{ type: 'function_call_output', call_id: 'call_nobody', output: 'x' }] })
  refused(t, orphan, 400, { param: 'input[0].call_id', type: 'invalid_request_error' })
})

t.test('tool_choice: allowed_tools narrows what the agent may call; a name not offered is refused', async t => {
  const offered: string[][] = []
  const agent: Agent = {
    async * respond (request) {
      offered.push(request.tools.map(tool => tool.name))
      yield { type: 'function_call', name: request.tools[0]?.name ?? 'none', arguments: {} }
    }
  }
  const app = await buildApp(t, { agent })
  const tools = ['a', 'b', 'c'].map(name => ({ type: 'function', name }))
  const body = response(t, await post(app, { input: 'x', tools, tool_choice: { type: 'allowed_tools', tools: [{ type: 'function', name: 'b' }], mode: 'required' } }))
  t.same(offered, [['b']])
  t.match(body.tool_choice, { type: 'allowed_tools', mode: 'required', tools: [{ name: 'b' }] })
  t.match(body.output, [{ type: 'function_call', name: 'b' }])
  refused(t, await post(app, { input: 'x', tools, tool_choice: { type: 'allowed_tools', tools: [{ type: 'function', name: 'z' }] } }), 400, { param: 'tool_choice.tools[0].name' })
  refused(t, await post(app, { input: 'x', tools, tool_choice: { type: 'function', name: 'z' } }), 400, { param: 'tool_choice.name' })
  refused(t, await post(app, { input: 'x', tool_choice: 'required' }), 400, { param: 'tool_choice' })
  response(t, await post(app, { input: 'x', tools, tool_choice: { type: 'allowed_tools', tools: [{ type: 'function', name: 'c' }] } }))
  t.same(offered.at(-1), ['c'], 'mode defaults to auto')
})

t.test('max_output_tokens: a cut answer is incomplete, and says why', async t => {
  const app = await buildApp(t)
  const words = Array.from({ length: 20 }, (_, i) => `w${i}`).join(' ')
  const body = response(t, await post(app, { input: words, max_output_tokens: 16 }))
  t.match(body, { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, max_output_tokens: 16, completed_at: null })
  t.equal(body.output[0].status, 'incomplete')
  const events = streamed(t, await post(app, { input: words, max_output_tokens: 16, stream: true }))
  t.equal(events.at(-1)?.type, 'response.incomplete')
})

t.test('a run that fails mid-stream: an error event, then response.failed', async t => {
  const agent: Agent = { async * respond () { yield { type: 'text', delta: 'partial' }; throw new Error('the model went away') } }
  const app = await buildApp(t, { agent })
  const events = streamed(t, await post(app, { input: 'x', stream: true }))
  t.same(events.slice(-3).map(e => e.type), ['response.output_item.done', 'error', 'response.failed'])
  t.match(events.at(-2), { error: { type: 'server_error', code: 'agent_failed', message: 'the model went away', param: null } })
  t.match(events.at(-1)?.response, { status: 'failed', error: { code: 'agent_failed' }, output: [{ status: 'incomplete' }] })
  const json = response(t, await post(app, { input: 'x' }))
  t.match(json, { status: 'failed', error: { code: 'agent_failed', message: 'the model went away' } })
})

t.test('previous_response_id: the same session, across a restart, and only for who may use that session', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-responses-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const verify = namedPrincipals('alice', 'bob')
  // Access to a response is access to its session, through authorize: bob may use none of alice's.
  const authorize = ({ principal }: { principal: { id: string } }): boolean => principal.id === 'alice'
  const first = await buildApp(t, { store: new FileStore({ dir }), auth: { verify }, authorize })
  const alice = { authorization: 'Bearer alice' }
  const one = await post(first, { input: 'first' }, alice)
  const key = one.headers['x-openclaw-session-key']
  const two = response(t, await post(first, { input: 'second', previous_response_id: one.json().id }, alice))
  t.equal((await post(first, { input: 'x', previous_response_id: two.id }, alice)).headers['x-openclaw-session-key'], key, 'the same session all along')
  await first.close()

  const second = await buildApp(t, { store: new FileStore({ dir }), auth: { verify }, authorize })
  const three = await post(second, { input: 'after the restart', previous_response_id: two.id }, alice)
  response(t, three)
  t.equal(three.headers['x-openclaw-session-key'], key, 'the record survived the restart')
  const { entries } = await second.sessionGateway.history(key as string, { limit: 20 })
  t.same(entries.filter(e => e.message?.role === 'user').map(e => (e.message?.content[0] as { text: string }).text), ['first', 'second', 'x', 'after the restart'])

  refused(t, await post(second, { input: 'mine now', previous_response_id: two.id }, { authorization: 'Bearer bob' }), 400, { code: 'previous_response_not_found', param: 'previous_response_id' })
  refused(t, await post(second, { input: 'x', previous_response_id: 'resp_doesnotexist' }, alice), 400, { code: 'previous_response_not_found' })
  refused(t, await post(second, { input: 'x', previous_response_id: two.id }, { ...alice, 'x-openclaw-session-key': 'elsewhere' }), 400, { param: 'previous_response_id', code: 'session_mismatch' })
  t.equal((await second.inject({ method: 'GET', url: `/v1/responses/${two.id as string}`, headers: { authorization: 'Bearer bob' } })).statusCode, 404, 'and bob cannot read it')
})

t.test('store: false keeps no record to continue from once it is done', async t => {
  const app = await buildApp(t)
  const body = response(t, await post(app, { input: 'ephemeral', store: false }))
  t.equal(body.store, false)
  await new Promise(resolve => setTimeout(resolve, 10))
  refused(t, await post(app, { input: 'x', previous_response_id: body.id }), 400, { code: 'previous_response_not_found' })
  t.equal((await app.inject({ method: 'GET', url: `/v1/responses/${body.id as string}`, headers: AUTH })).statusCode, 404)
})

t.test('bad requests get their own clear error, and none of them touches the store', async t => {
  const store = new MemoryStore()
  const app = await buildApp(t, {
    store,
    responses: { bodyLimit: 2048 },
    busy: 'reject',
    agent: gatedAgent(),
    authorize: ({ sessionKey }) => !sessionKey.includes('secret')
  })
  const sessions = async (): Promise<number> => (await store.list({ limit: 100 })).rows.length

  refused(t, await post(app, '{"input": "x",'), 400, { type: 'invalid_request_error', code: 'invalid_json' })
  refused(t, await post(app, { input: 5 }), 400, { param: 'input', code: 'invalid_value' })
  refused(t, await post(app, { input: 'x', temperature: 'hot' }), 400, { param: 'temperature' })
  refused(t, await post(app, { input: 'x', conversation: 'c1' }), 400, { param: 'conversation', code: 'unknown_parameter', message: /Unknown parameter: 'conversation'/ })
  refused(t, await post(app, { input: [{ type: 'message', role: 'user', content: [{ type: 'output_text', text: 'no' }] }] }), 400, { param: 'input[0].content[0].type' })
  refused(t, await post(app, { input: [{ type: 'web_search_call' }] }), 400, { param: 'input[0].type' })
  refused(t, await post(app, { input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: 'not json' }] }), 400, { param: 'input[0].arguments' })
  refused(t, await post(app, { input: [{ type: 'function_call', call_id: 'c', name: 'f' }] }), 400, { param: 'input[0].arguments', code: 'missing_required_parameter' })
  refused(t, await post(app, { input: [{ type: 'compaction', encrypted_content: 'forged' }] }), 400, { param: 'input[0].encrypted_content' })
  refused(t, await post(app, { input: 'x', tools: [{ type: 'web_search' }] }), 400, { param: 'tools[0].type' })
  refused(t, await post(app, { input: 'x', tools: [{ type: 'function', name: 'bad name' }] }), 400, { param: 'tools[0].name' })
  refused(t, await post(app, { input: [] }), 400, { param: 'input' })
  refused(t, await post(app, {}), 400, { param: 'input', code: 'missing_required_parameter' })
  refused(t, await post(app, [1, 2]), 400, { param: 'body' })
  refused(t, await post(app, { input: 'x', background: true }), 400, { param: 'background' })
  refused(t, await post(app, { input: 'x'.repeat(4000) }), 413, { code: 'request_too_large' })
  refused(t, await app.inject({ method: 'POST', url: '/v1/responses', headers: { 'content-type': 'application/json' }, payload: '{"input":"x"}' }), 401, { type: 'authentication_error' })
  refused(t, await app.inject({ method: 'POST', url: '/v1/responses', headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' }, payload: '{"input":"x"}' }), 401, { type: 'authentication_error' })
  refused(t, await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...AUTH, 'content-type': 'text/plain' }, payload: 'x' }), 400, { param: 'body', code: 'invalid_type' })
  refused(t, await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...AUTH, 'content-type': 'application/xml' }, payload: '<x/>' }), 415, { code: 'unsupported_media_type' })
  refused(t, await post(app, { input: 'x' }, { 'x-openclaw-session-key': 'secret-stuff' }), 403, { type: 'permission_error', code: 'forbidden' })
  refused(t, await post(app, { input: 'x' }, { 'x-openclaw-session-key': 'subagent:x' }), 400, { code: 'reserved_session_key' })
  refused(t, await post(app, { input: 'x', model: 'openclaw/Bad Agent' }), 400, { code: 'invalid_agent_id' })
  t.equal(await sessions(), 0, 'no session was created by any of them')
})

t.test('a busy session under busy: reject answers 409 with the running response id', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { busy: 'reject', agent })
  const first = post(app, { input: 'slow' }, { 'x-openclaw-session-key': 'busy' })
  await agent.waitStarted(1)
  const store = app.sessionGateway.store
  const before = (await store.read('agent:main:busy', { limit: 50 })).entries.length
  const second = await post(app, { input: 'me too' }, { 'x-openclaw-session-key': 'busy' })
  refused(t, second, 409, { code: 'session_busy', running_response_id: /^resp_/ })
  t.equal(second.headers['x-openclaw-session-key'], 'agent:main:busy', 'the refusal names the session too')
  t.equal((await store.read('agent:main:busy', { limit: 50 })).entries.length, before, 'the refused turn wrote nothing')
  agent.release()
  const done = response(t, await first)
  t.equal(second.json().error.running_response_id, done.id)
})

t.test('GET returns a response; cancel stops a running one, whatever transport watches it', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  await listen(app)
  const watcher = await GatewaySocket.open(app)
  t.teardown(() => watcher.close())
  await watcher.request('sessions.messages.subscribe', { key: 'cancel-me' })
  const pending = post(app, { input: 'never finished', stream: true }, { 'x-openclaw-session-key': 'cancel-me' })
  await agent.waitStarted(1)
  const runId = (await watcher.next(f => f.event === 'session.message')).payload.runId as string
  t.match(runId, /^resp_/, 'the run id is the response id, on every transport')

  const during = await app.inject({ method: 'GET', url: `/v1/responses/${runId}`, headers: AUTH })
  t.match(response(t, during), { id: runId, status: 'in_progress' })
  const cancelled = await app.inject({ method: 'POST', url: `/v1/responses/${runId}/cancel`, headers: AUTH })
  t.equal(cancelled.headers['x-openclaw-session-key'], 'agent:main:cancel-me')
  t.match(response(t, cancelled), { status: 'incomplete', incomplete_details: { reason: 'cancelled' } })
  const events = streamed(t, await pending)
  t.equal(events.at(-1)?.type, 'response.incomplete')
  const aborted = await watcher.next(f => f.event === 'chat' && f.payload.state === 'aborted')
  t.equal(aborted.payload.runId, runId, 'the gateway watcher saw the same run end')
  await new Promise(resolve => setTimeout(resolve, 10))
  const after = await app.inject({ method: 'GET', url: `/v1/responses/${runId}`, headers: AUTH })
  t.match(response(t, after), { status: 'incomplete' })
  t.match(response(t, await app.inject({ method: 'POST', url: `/v1/responses/${runId}/cancel`, headers: AUTH })), { status: 'incomplete' }, 'cancelling a finished one changes nothing')
  t.equal((await app.inject({ method: 'GET', url: '/v1/responses/resp_unknown', headers: AUTH })).statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url: '/v1/responses/resp_unknown/cancel', headers: AUTH })).statusCode, 404)

  // And the other way round: a gateway client aborts a turn an HTTP client started.
  const other = post(app, { input: 'stop me' }, { 'x-openclaw-session-key': 'cancel-me' })
  await agent.waitStarted(2)
  const id = (await watcher.next(f => f.event === 'session.message' && f.payload.runId !== runId)).payload.runId as string
  t.match((await watcher.request('chat.abort', { sessionKey: 'cancel-me', runId: id })).payload, { aborted: true })
  t.match(response(t, await other), { id, status: 'incomplete', incomplete_details: { reason: 'cancelled' } })
})

t.test('an HTTP turn streams live to a gateway watcher, and the hub reads the same transcript', async t => {
  const app = await buildApp(t)
  await listen(app)
  const watcher = await watchSession(t, app, 'shared')
  const body = response(t, await post(app, { input: 'across transports' }, { 'x-openclaw-session-key': 'shared' }))
  const final = await watcher.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.equal(final.payload.runId, body.id)
  t.same(watcher.frames.filter(f => f.event === 'chat' && f.payload.state === 'delta').map(f => f.payload.deltaText), ['across', ' transports'])
  const { entries } = await app.sessionGateway.history('agent:main:shared', { limit: 10 })
  t.same(entries.map(e => [e.message?.role, (e.message?.content[0] as { text: string }).text]), [['user', 'across transports'], ['assistant', 'across transports']])
})

t.test('compact: 400 without a model; the user messages and one compaction item', async t => {
  const app = await buildApp(t)
  refused(t, await post(app, { input: 'x' }, {}, '/v1/responses/compact'), 400, { param: 'model', code: 'missing_required_parameter' })
  refused(t, await post(app, { model: 'm', input: 'x', stream: true }, {}, '/v1/responses/compact'), 400, { param: 'stream', code: 'unknown_parameter' })
  refused(t, await post(app, 'nope', {}, '/v1/responses/compact'), 400, {})
  const first = response(t, await post(app, { input: 'before compaction' }))
  const res = await post(app, { model: 'm', previous_response_id: first.id, input: 'and this' }, {}, '/v1/responses/compact')
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(schemaProblem('CompactResource', body), undefined)
  t.match(body, { object: 'response.compaction', output: [{ role: 'user', content: [{ text: 'before compaction' }] }, { role: 'user', content: [{ text: 'and this' }] }, { type: 'compaction', encrypted_content: /^fsgc1\./ }] })
  refused(t, await post(app, { model: 'm', previous_response_id: 'resp_nope' }, {}, '/v1/responses/compact'), 400, { code: 'previous_response_not_found' })
})

t.test('the responses API can be moved or turned off', async t => {
  const moved = await buildApp(t, { responses: { prefix: '/api' } })
  t.equal((await post(moved, { input: 'x' }, {}, '/api/responses')).statusCode, 200)
  t.equal((await post(moved, { input: 'x' })).statusCode, 404)
  const off = await buildApp(t, { responses: false })
  t.equal((await post(off, { input: 'x' })).statusCode, 404)
})

t.test('Idempotency-Key: a retry gets the first response, in the same session, and no second turn', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const once = { 'idempotency-key': 'retry-1' }
  const first = post(app, { input: 'only once' }, once)
  await agent.waitStarted(1)
  const retry = post(app, { input: 'only once', stream: true }, once)
  await new Promise(resolve => setTimeout(resolve, 20))
  agent.release()
  const body = response(t, await first)
  const events = streamed(t, await retry)
  t.equal(events.at(-1)?.response.id, body.id, 'the retry streamed the first response')
  t.equal(agent.started.length, 1, 'one turn')
  const key = (await first).headers['x-openclaw-session-key'] as string
  t.equal((await retry).headers['x-openclaw-session-key'], key, 'in the same (fresh) session')
  await new Promise(resolve => setTimeout(resolve, 20))
  const later = await post(app, { input: 'only once' }, once)
  t.equal(response(t, later).id, body.id, 'once it is done, from the store')
  const laterStream = streamed(t, await post(app, { input: 'only once', stream: true }, once))
  t.same(laterStream.map(e => e.sequence_number), events.map(e => e.sequence_number), 'the same events, replayed')
  const { entries } = await app.sessionGateway.history(key, { limit: 10 })
  t.equal(entries.filter(e => e.message?.role === 'user').length, 1)

  // The same key in a session that names itself: an ordinary idempotent send there.
  const named = post(app, { input: 'x' }, { 'idempotency-key': 'retry-1', 'x-openclaw-session-key': 'elsewhere' })
  await agent.waitStarted(2)
  agent.release()
  t.not(response(t, await named).id, body.id, 'keys are per session')
  refused(t, await post(app, { input: 'x' }, { 'idempotency-key': 'bad key with spaces' }), 400, { param: 'Idempotency-Key' })
})

t.test('Idempotency-Key: 256 visible characters are a key, 257 are refused', async t => {
  const app = await buildApp(t)
  response(t, await post(app, { input: 'x' }, { 'idempotency-key': 'k'.repeat(256) }))
  refused(t, await post(app, { input: 'x' }, { 'idempotency-key': 'k'.repeat(257) }), 400, { param: 'Idempotency-Key' })
})

t.test('bodyLimit: a body of exactly bodyLimit bytes is taken, one byte more is 413; maxPayload is its default', async t => {
  const body = (bytes: number): string => {
    const padded = (input: string): string => JSON.stringify({ input })
    return padded('x'.repeat(bytes - padded('').length))
  }
  for (const [options, limit] of [[{ responses: { bodyLimit: 2048 } }, 2048], [{ maxPayload: 4096 }, 4096], [{}, 4 * 1024 * 1024]] as const) {
    const app = await buildApp(t, options)
    t.equal(response(t, await post(app, body(limit))).status, 'completed', `${limit} bytes`)
    refused(t, await post(app, body(limit + 1)), 413, { code: 'request_too_large' })
  }
})

t.test('Idempotency-Key on a response that kept no record: a clear 409 once it is done', async t => {
  const app = await buildApp(t)
  const first = response(t, await post(app, { input: 'x', store: false }, { 'idempotency-key': 'k-1' }))
  await new Promise(resolve => setTimeout(resolve, 20))
  const again = await post(app, { input: 'x', store: false }, { 'idempotency-key': 'k-1' })
  refused(t, again, 409, { code: 'idempotency_key_reused' })
  t.equal(first.store, false)
})

t.test('a stored response is rebuilt from its session: event for event while the log holds the run, from the transcript after', async t => {
  const app = await buildApp(t, { agent: echoAgent({ delayMs: 1 }) })
  const streamed = await post(app, { input: 'three small words', stream: true }, { ...AUTH, 'x-openclaw-session-key': 'kept' })
  const original = parseSse(streamed.body).events
  const id = original[0]?.response.id as string
  const resumed = await app.inject({ method: 'GET', url: `/v1/responses/${id}?stream=true`, headers: AUTH })
  t.same(parseSse(resumed.body).events, original, 'rebuilt from the log: the very stream first sent, ids and times included')
  const fetched = await app.inject({ method: 'GET', url: `/v1/responses/${id}`, headers: AUTH })
  t.same(fetched.json(), original.at(-1)?.response, 'and the very response object')
  const record = await app.sessionGateway.store.getRecord('response', id) as Record<string, unknown>
  t.same(Object.keys(record).sort(), ['agentId', 'createdAt', 'cursor', 'fields', 'principal', 'sessionId', 'sessionKey', 'v'], 'the record identifies the response; it holds no copy of the stream')
  t.notOk(JSON.stringify(record).includes('three small words'), 'not even of its text')

  // No replay buffer at all: the log never holds a run, so the transcript answers.
  const bare = await buildApp(t, { replay: 0 })
  const tools = [{ type: 'function', name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } }]
  const call = response(t, await post(bare, { input: 'find this', tools }, { ...AUTH, 'x-openclaw-session-key': 'rebuilt' }))
  const plain = response(t, await post(bare, { input: 'just text' }, { ...AUTH, 'x-openclaw-session-key': 'rebuilt' }))
  for (const first of [call, plain]) {
    const again = await bare.inject({ method: 'GET', url: `/v1/responses/${first.id as string}`, headers: AUTH })
    t.same(again.json(), first, 'the same response object, rebuilt from the answer row')
  }
  const thinking = await buildApp(t, {
    replay: 0,
    agent: { async * respond () { yield { type: 'reasoning', delta: 'Let me think.' }; yield { type: 'text', delta: 'Done.' } } }
  })
  const reasoned = response(t, await post(thinking, { input: 'think' }, { ...AUTH, 'x-openclaw-session-key': 'reasoned' }))
  t.match(reasoned.output, [{ type: 'reasoning' }, { type: 'message' }])
  t.same((await thinking.inject({ method: 'GET', url: `/v1/responses/${reasoned.id as string}`, headers: AUTH })).json(), reasoned, 'reasoning is rebuilt too')
  const rebuiltStream = parseSse((await bare.inject({ method: 'GET', url: `/v1/responses/${plain.id as string}?stream=true&starting_after=1`, headers: AUTH })).body, 2)
  t.same(rebuiltStream.problems, [])
  t.same(rebuiltStream.events.map(e => e.type), [
    'response.output_item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.done',
    'response.content_part.done', 'response.output_item.done', 'response.completed'
  ], 'its text in one delta, numbered from the rebuilt stream')
})

t.test('a response whose answer is far back in its session is found; one whose session is gone is not', async t => {
  const app = await buildApp(t, { replay: 0 })
  const first = response(t, await post(app, { input: 'the first' }, { ...AUTH, 'x-openclaw-session-key': 'long' }))
  for (let i = 0; i < 60; i++) await (await app.sessionGateway.send({ sessionKey: 'agent:main:long', agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: `turn ${i}` }], timestamp: Date.now() }] })).result
  t.same((await app.inject({ method: 'GET', url: `/v1/responses/${first.id as string}`, headers: AUTH })).json(), first, 'found two pages back')

  await app.sessionGateway.reset('agent:main:long')
  t.same((await app.inject({ method: 'GET', url: `/v1/responses/${first.id as string}`, headers: AUTH })).json(), first, 'a reset keeps the old generation readable, and the response with it')
  await app.sessionGateway.delete('agent:main:long')
  t.equal((await app.inject({ method: 'GET', url: `/v1/responses/${first.id as string}`, headers: AUTH })).statusCode, 404, 'a deleted session takes its responses with it')

  const failing = await buildApp(t, { replay: 0 }, { logger: false })
  const kept = response(t, await post(failing, { input: 'x' }, { ...AUTH, 'x-openclaw-session-key': 'broken' }))
  const store = failing.sessionGateway.store as MemoryStore
  const read = store.read.bind(store)
  // The log's side answers; reading the run's generation back fails.
  store.read = async (key, query) => {
    if (query.sessionId !== undefined) throw new Error('disk on fire')
    return await read(key, query)
  }
  t.equal((await failing.inject({ method: 'GET', url: `/v1/responses/${kept.id as string}`, headers: AUTH })).statusCode, 500, 'a store that fails is a failure, not a missing response')
})
