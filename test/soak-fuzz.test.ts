import { once } from 'node:events'
import fc from 'fast-check'
import t from 'tap'
import WebSocket from 'ws'
import { GatewaySocket, listen, type Frame } from './gateway-frames.js'
import { buildApp, TOKEN } from './helpers.js'
import { bounds, heapAfterGc } from './soak.js'

// Property-based fuzzing of every input a client controls: gateway frames, OpenResponses
// bodies over HTTP and WebSocket mode, session keys. For each: the server does not crash,
// a bad input gets a clear error on its transport (never a 500, never silence), the
// connection stays usable unless the protocol says it closes, and the heap is flat after.

const app = await buildApp(t, { maxPayload: 256 * 1024 })
await listen(app)
const port = (app.server.address() as { port: number }).port
const auth = { authorization: `Bearer ${TOKEN}` }
const settings = { numRuns: bounds.fuzzRuns, interruptAfterTimeLimit: bounds.fuzzMs, markInterruptAsFailure: false }

const METHODS = [
  'chat.send', 'chat.history', 'chat.abort', 'chat.startup', 'sessions.list', 'sessions.resolve', 'sessions.create',
  'sessions.patch', 'sessions.reset', 'sessions.delete', 'sessions.messages.subscribe', 'sessions.messages.unsubscribe',
  'sessions.subscribe', 'sessions.unsubscribe', 'sessions.open', 'sessions.describe', 'chat.metadata', 'agents.list',
  'agent.identity.get', 'models.list', 'models.authStatus', 'connect', 'no.such.method', ''
]

/** Keys a client might send: names, canonical keys, the reserved and the absurd. */
const sessionKey = fc.oneof(
  fc.constantFrom('main', 'agent:main:main', 'global', 'agent:main:a:b:c', 'agent::x', 'agent:main:', ':', '../../etc/passwd', 'a'.repeat(600)),
  fc.stringMatching(/^[a-z0-9:._-]{0,40}$/),
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'grapheme', maxLength: 30 })
)
const json = fc.jsonValue({ maxDepth: 4 })
/** Mostly a value of the right shape (so inputs get past the first check), sometimes any JSON. */
const maybe = <T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> => fc.oneof({ arbitrary, weight: 12 }, { arbitrary: json, weight: 1 })

/** The fields each method takes (PROTOCOL.md), every one sometimes wrong. */
const field = {
  sessionKey: maybe(sessionKey),
  key: maybe(sessionKey),
  message: maybe(fc.string({ maxLength: 200 })),
  idempotencyKey: maybe(fc.string({ minLength: 1, maxLength: 80 })),
  limit: maybe(fc.integer({ min: -5, max: 20_000 })),
  maxBytes: maybe(fc.integer({ min: -5, max: 1_000_000 })),
  since: maybe(fc.string({ maxLength: 60 })),
  label: maybe(fc.string({ maxLength: 80 })),
  search: maybe(fc.string({ maxLength: 40 })),
  cursor: maybe(fc.string({ maxLength: 60 })),
  runId: maybe(fc.string({ maxLength: 40 })),
  agentId: maybe(fc.constantFrom('main', 'other', ''))
}
const fieldsOf: Record<string, Array<keyof typeof field>> = {
  'chat.send': ['sessionKey', 'message', 'idempotencyKey', 'agentId'],
  'chat.history': ['sessionKey', 'limit', 'maxBytes', 'agentId'],
  'chat.abort': ['sessionKey', 'runId'],
  'chat.startup': ['sessionKey', 'limit', 'maxBytes'],
  'sessions.list': ['limit', 'search', 'label', 'cursor', 'agentId'],
  'sessions.resolve': ['key', 'label', 'agentId'],
  'sessions.create': ['key', 'label', 'agentId'],
  'sessions.patch': ['key', 'label', 'agentId'],
  'sessions.reset': ['key', 'agentId'],
  'sessions.delete': ['key', 'agentId'],
  'sessions.messages.subscribe': ['key', 'agentId'],
  'sessions.messages.unsubscribe': ['key', 'agentId'],
  'sessions.open': ['key', 'since', 'limit', 'agentId'],
  'sessions.describe': ['key', 'agentId'],
  'chat.metadata': ['sessionKey'],
  'agent.identity.get': ['agentId', 'sessionKey']
}
const params = (method: string): fc.Arbitrary<unknown> => fc.oneof(
  { arbitrary: json, weight: 1 },
  { arbitrary: fc.record(Object.fromEntries((fieldsOf[method] ?? ['key']).map(name => [name, field[name]])), { requiredKeys: [] }), weight: 6 }
)

let fuzzId = 0
const request = fc.constantFrom(...METHODS).chain(method => params(method).map(p => ({ type: 'req', method, params: p, id: `fuzz-${++fuzzId}` })))
const anyFrame = fc.oneof(
  { arbitrary: request.map(frame => JSON.stringify(frame)), weight: 6 },
  { arbitrary: fc.record({ type: maybe(fc.constantFrom('req', 'res', 'event', 'hello')), id: json, method: json, params: json }, { requiredKeys: [] }).map(frame => JSON.stringify(frame)), weight: 1 },
  { arbitrary: json.map(value => JSON.stringify(value)), weight: 1 },
  { arbitrary: fc.string({ maxLength: 300 }), weight: 1 }
)

async function gatewaySocket (): Promise<GatewaySocket> {
  const socket = await GatewaySocket.open({ port }, { headers: auth })
  socket.onProblem = () => {} // fuzzing: frames are checked below, not against the schema
  return socket
}

t.test('gateway frames: each is answered (a result or a clear error), and the connection keeps serving', async t => {
  let socket = await gatewaySocket()
  let probes = 0
  let reopened = 0
  const before = heapAfterGc()
  await fc.assert(fc.asyncProperty(anyFrame, async text => {
    socket.send(text)
    const probe = `probe-${++probes}`
    socket.send({ type: 'req', id: probe, method: 'sessions.list', params: { limit: 1 } })
    const answered = await Promise.race([socket.next(f => f.type === 'res' && f.id === probe, 10_000).then(() => true), socket.closedWith(10_000).then(() => false)])
    if (!answered) {
      // Only what PROTOCOL.md says closes a connection may: a frame over maxPayload (1009) or a slow consumer (1008).
      if (socket.closed === undefined || ![1008, 1009].includes(socket.closed.code)) throw new Error(`closed ${JSON.stringify(socket.closed)} after ${text.slice(0, 200)}`)
      reopened++
      socket = await gatewaySocket()
      return
    }
    const sent = (() => { try { return JSON.parse(text) as Record<string, unknown> } catch { return undefined } })()
    if (typeof sent?.id === 'string' && sent.id.startsWith('fuzz-')) {
      const res = await socket.next(f => f.type === 'res' && f.id === sent.id, 10_000)
      // "internal error" is what a bug is answered with (the cause goes to the log only).
      if (res.ok !== true && (typeof res.error?.code !== 'string' || typeof res.error?.message !== 'string' || res.error.message === 'internal error')) {
        throw new Error(`an unclear error for ${text.slice(0, 200)}: ${JSON.stringify(res)}`)
      }
    }
    socket.frames.splice(0) // what was checked is let go: the heap is measured below
  }), settings)
  socket.close()
  t.pass(`fuzzed; the server answered every probe (${probes}), reopened ${reopened} time(s)`)
  const grown = heapAfterGc() - before
  t.ok(grown < 32 * 1048576, `heap flat after the run: grew ${Math.round(grown / 1024)} KiB (bound 32 MiB)`)
})

/** Mostly absent (JSON.stringify leaves out undefined): a field that is nearly always refused when present. */
const rarely = <T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.oneof({ arbitrary: fc.constant(undefined), weight: 8 }, { arbitrary, weight: 1 })

/** Bodies shaped like OpenResponses' requests, with every field sometimes wrong. */
const inputItem = fc.oneof(
  json,
  fc.record({
    type: maybe(fc.constantFrom('message', 'function_call_output', 'function_call', 'input_text', 'reasoning')),
    role: maybe(fc.constantFrom('user', 'assistant', 'system', 'developer', 'tool')),
    content: maybe(fc.oneof(fc.string({ maxLength: 100 }), fc.array(fc.record({ type: maybe(fc.constantFrom('input_text', 'input_image', 'output_text', 'input_file')), text: maybe(fc.string({ maxLength: 50 })), image_url: maybe(fc.string({ maxLength: 50 })) }, { requiredKeys: [] }), { maxLength: 3 }))),
    call_id: maybe(fc.string({ maxLength: 20 })),
    output: maybe(fc.string({ maxLength: 50 }))
  }, { requiredKeys: [] })
)
const body = fc.oneof(
  { arbitrary: json, weight: 1 },
  { arbitrary: fc.record({
    model: maybe(fc.constantFrom('openclaw', 'openclaw/main', 'openclaw/nobody', 'gpt-5')),
    input: maybe(fc.oneof(fc.string({ maxLength: 200 }), fc.array(inputItem, { maxLength: 4 }))),
    instructions: maybe(fc.string({ minLength: 1, maxLength: 100 })),
    previous_response_id: rarely(maybe(fc.string({ maxLength: 40 }))),
    tools: maybe(fc.array(fc.record({ type: maybe(fc.constant('function')), name: maybe(fc.stringMatching(/^[a-z_]{1,20}$/)), parameters: maybe(fc.constant({ type: 'object', properties: {} })) }, { requiredKeys: ['type', 'name'] }), { maxLength: 3 })),
    tool_choice: maybe(fc.constantFrom('auto', 'none', 'required')),
    max_output_tokens: maybe(fc.integer({ min: 16, max: 4096 })),
    metadata: maybe(fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 })),
    store: maybe(fc.boolean()),
    stream: maybe(fc.boolean()),
    user: maybe(fc.string({ maxLength: 40 }))
  }, { requiredKeys: [] }), weight: 4 }
)
/** What a header may carry (a client cannot send CR, LF or NUL in one). */
const headerKey = sessionKey.map(key => key.replace(/[^\x20-\x7e]/g, ''))

t.test('OpenResponses over HTTP: every body and session key gets an answer below 500, and every error says what is wrong', async t => {
  const before = heapAfterGc()
  let answered = 0
  const statuses = new Map<number, number>()
  await fc.assert(fc.asyncProperty(body, fc.option(fc.oneof(fc.constantFrom('main', 'fuzz-a', 'agent:main:fuzz-b'), headerKey)), async (payload, key) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/responses',
      headers: { ...auth, 'content-type': 'application/json', ...(key === null ? {} : { 'x-openclaw-session-key': key }) },
      payload: JSON.stringify(payload)
    })
    answered++
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    if (res.statusCode >= 500) throw new Error(`${res.statusCode} for ${JSON.stringify(payload).slice(0, 300)}: ${res.body.slice(0, 300)}`)
    if (res.statusCode >= 400) {
      const error = res.json().error as Record<string, unknown> | undefined
      if (typeof error?.message !== 'string' || typeof error.type !== 'string') throw new Error(`an unclear error: ${res.body.slice(0, 300)}`)
    }
  }), settings)
  t.pass(`${answered} requests answered: ${JSON.stringify(Object.fromEntries(statuses))} by status`)
  const grown = heapAfterGc() - before
  t.ok(grown < 32 * 1048576, `heap flat after the run: grew ${Math.round(grown / 1024)} KiB (bound 32 MiB)`)
})

t.test('OpenResponses WebSocket mode: every frame gets its events or an error frame, and the connection stays usable', async t => {
  const open = async (): Promise<{ socket: WebSocket, frames: Array<Record<string, any>> }> => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/responses`, { headers: auth })
    const frames: Array<Record<string, any>> = []
    socket.on('message', data => { frames.push(JSON.parse(String(data)) as Record<string, any>) })
    await once(socket, 'open')
    return { socket, frames }
  }
  let { socket, frames } = await open()
  t.teardown(() => socket.terminate())
  const ended = (frame: Record<string, any>): boolean => frame.type === 'error' || frame.type === 'response.completed' || frame.type === 'response.failed' || frame.type === 'response.incomplete'
  let count = 0
  await fc.assert(fc.asyncProperty(fc.oneof(body.map(b => JSON.stringify(typeof b === 'object' && b !== null && !Array.isArray(b) ? { type: 'response.create', ...b } : b)), fc.string({ maxLength: 200 })), async text => {
    frames.splice(0)
    socket.send(text)
    socket.send(JSON.stringify({ type: 'response.create', model: 'openclaw', input: `probe ${++count}`, store: false }))
    const until = Date.now() + 10_000
    // Answers come in order: the fuzzed frame's end (events or an error), then the probe's.
    while (frames.filter(ended).length < 2 && Date.now() < until && socket.readyState === WebSocket.OPEN) await new Promise(resolve => setTimeout(resolve, 5))
    if (socket.readyState !== WebSocket.OPEN) {
      ;({ socket, frames } = await open()) // a frame over maxPayload closes with 1009, as documented
      return
    }
    const ends = frames.filter(ended)
    if (ends.length < 2) throw new Error(`no answer within 10 s to ${text.slice(0, 200)}`)
    const first = ends[0] as Record<string, any>
    if (first.type === 'error' && (typeof first.error?.message !== 'string' || typeof first.status !== 'number' || first.status >= 500)) throw new Error(`an unclear error: ${JSON.stringify(first)}`)
    if ((ends[1] as Record<string, any>).type !== 'response.completed') throw new Error(`the probe after ${text.slice(0, 200)} got ${JSON.stringify(ends[1])}`)
  }), settings)
  t.pass(`${count} frames answered`)
})

t.test('after the fuzzing, the server is whole: a turn over each transport works', async t => {
  const http = await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...auth, 'x-openclaw-session-key': 'after-fuzz' }, payload: { model: 'openclaw', input: 'still here' } })
  t.equal(http.statusCode, 200)
  t.equal(http.json().output[0].content[0].text, 'still here')
  const socket = await gatewaySocket()
  t.teardown(() => socket.close())
  const sent: Frame = await socket.request('chat.send', { sessionKey: 'after-fuzz', message: 'and here', idempotencyKey: 'after-fuzz-1' })
  t.equal(sent.ok, true)
  const final = await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.equal(final.payload.message.content[0].text, 'and here')
})
