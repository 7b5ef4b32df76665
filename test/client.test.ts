import { once } from 'node:events'
import { createServer } from 'node:net'
import t from 'tap'
import { ConnectionError, GatewayClient, ServerError, type SessionUpdate } from '../lib/client/index.js'
import { echoAgent, type Agent } from '../lib/index.js'
import {
  CHALLENGE, clientOf, fakeGateway, gatewayUrl, hello, nextUpdate, reaches, texts, TrackedWebSocket, WS
} from './client-support.js'
import { listen } from './gateway-frames.js'
import { buildApp, gatedAgent, TOKEN, until } from './helpers.js'

async function gateway (t: Parameters<typeof buildApp>[0], options: Parameters<typeof buildApp>[1] = {}): Promise<Awaited<ReturnType<typeof buildApp>>> {
  const app = await buildApp(t, { agent: echoAgent(), ...options })
  await listen(app)
  return app
}

/** An agent that says `partial ` at once, then the rest when released. */
function splitAgent (): Agent & { release: () => void } {
  let release = (): void => {}
  return {
    release: () => release(),
    async * respond () {
      yield { type: 'text', delta: 'partial ' }
      await new Promise<void>(resolve => { release = resolve })
      yield { type: 'text', delta: 'end' }
    }
  }
}

t.test('every method of the gateway section, typed, and refusals as ServerError', async t => {
  const app = await gateway(t)
  const states: string[] = []
  const client = new GatewayClient({ url: gatewayUrl(app), token: TOKEN, WebSocket: WS })
  t.teardown(() => client.close())
  client.onState(state => states.push(state))
  const hi = await client.ready
  t.equal(hi.protocol, 4)
  t.equal(client.hello?.snapshot.sessionDefaults.mainSessionKey, 'agent:main:main')
  t.same(states, ['open'])

  const created = await client.sessions.create({ key: 'a', label: 'A' })
  t.match(created, { ok: true, key: 'agent:main:a', entry: { label: 'A' } })
  t.match(await client.sessions.patch({ key: 'a', label: 'B' }), { entry: { label: 'B' } })
  t.match(await client.sessions.resolve({ key: 'a' }), { ok: true, key: 'agent:main:a' })
  const sent = await client.chat.send({ sessionKey: 'a', message: 'hello' })
  t.equal(sent.status, 'started')
  t.match(sent.runId, /^[0-9a-f-]{36}$/, 'an idempotency key was made')
  t.match(await client.chat.abort({ sessionKey: 'a' }), { ok: true })
  t.match((await client.chat.history({ sessionKey: 'a' })).messages[0], { role: 'user', content: [{ text: 'hello' }] })
  t.match(await client.sessions.list(), { count: 1, sessions: [{ key: 'agent:main:a' }] })
  t.match(await client.sessions.messages.subscribe({ key: 'a' }), { subscribed: true, key: 'agent:main:a' })
  t.match(await client.sessions.messages.unsubscribe({ key: 'a' }), { subscribed: false })
  t.match(await client.sessions.subscribe(), { subscribed: true })
  t.match(await client.sessions.unsubscribe(), { subscribed: false })
  t.match(await client.sessions.open({ key: 'a' }), { key: 'agent:main:a', replay: 'live' })
  t.match(await client.sessions.reset({ key: 'a' }), { ok: true })
  t.match(await client.sessions.delete({ key: 'a' }), { deleted: true })

  const refused = await client.sessions.resolve({}).catch((err: unknown) => err)
  t.ok(refused instanceof ServerError)
  t.match(refused, { code: 'INVALID_REQUEST', method: 'sessions.resolve', details: { code: 'FSG_INVALID_INPUT' }, retryable: false, retryAfterMs: undefined, message: /needs one of key/ })
  const busy = await client.request('chat.send', { sessionKey: 'subagent:x', message: 'x', idempotencyKey: 'k' }).catch((err: unknown) => err)
  t.match(busy, { code: 'INVALID_REQUEST', details: { code: 'FSG_RESERVED_SESSION_KEY' } })
})

t.test('open(): history, the running turn and live updates from one instant, each message once', async t => {
  const agent = gatedAgent()
  const app = await gateway(t, { agent })
  const sender = await clientOf(t, app)
  const watcher = await clientOf(t, app)
  await sender.chat.send({ sessionKey: 'w', message: 'one' })
  await agent.waitStarted(1)
  const session = await watcher.open('w')
  t.equal(session.key, 'agent:main:w')
  t.same(texts(session), ['user:one'])
  t.match(session.running, { text: '' }, 'the running turn')
  t.equal(await watcher.open('agent:main:w'), session, 'opening it again gives the same handle')

  const updates: SessionUpdate[] = []
  session.on(update => updates.push(update))
  const ended = nextUpdate(session, update => update.type === 'run.end')
  agent.release()
  t.match(await ended, { type: 'run.end', state: 'final', message: { content: [{ text: 'one' }] } })
  t.same(updates.map(update => update.type), ['delta', 'message', 'run.end'])
  t.match(updates[0], { type: 'delta', text: 'one', delta: 'one' })
  t.same(texts(session), ['user:one', 'assistant:one'])
  t.equal(session.running, undefined)

  // The handle sends, and its own turn streams back to it.
  const own = nextUpdate(session, update => update.type === 'run.end')
  const ack = await session.send('two', { idempotencyKey: 'mine-2' })
  t.match(ack, { runId: 'mine-2', status: 'started' })
  await agent.waitStarted(2)
  t.match(await session.abort('not-this-run'), { aborted: false })
  t.match(await session.abort('mine-2'), { aborted: true, runIds: ['mine-2'] })
  t.match(await own, { state: 'aborted' })
  t.match(await session.abort(), { aborted: false }, 'nothing running')
  t.same(texts(session), ['user:one', 'assistant:one', 'user:two', 'assistant:'])
})

t.test("a session hears its turns begin, reason and call tools, from OpenClaw's agent frames", async t => {
  const agent: Agent = {
    async * respond () {
      yield { type: 'reasoning', delta: 'let me ' }
      yield { type: 'reasoning', delta: 'look' }
      yield { type: 'text', delta: 'looking' }
      yield { type: 'function_call', name: 'lookup', arguments: { q: 'x' }, callId: 'call-1' }
    }
  }
  const app = await gateway(t, { agent })
  const client = await clientOf(t, app)
  const session = await client.open('tools')
  const updates: SessionUpdate[] = []
  session.on(update => updates.push(update))
  const ended = nextUpdate(session, update => update.type === 'run.end')
  // A turn with the caller's own tools, as OpenResponses takes them, watched from the portal.
  const posted = await app.inject({
    method: 'POST',
    url: '/v1/responses',
    headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'tools' },
    payload: { model: 'openclaw', input: 'go', tools: [{ type: 'function', name: 'lookup', parameters: { type: 'object' } }] }
  })
  const runId = posted.json().id as string
  await ended
  t.same(updates.map(update => update.type), ['message', 'run.start', 'reasoning', 'reasoning', 'delta', 'tool', 'message', 'run.end'], 'in the order they happened')
  t.match(updates[1], { type: 'run.start', runId })
  t.same(updates.slice(2, 4), [
    { type: 'reasoning', runId, text: 'let me ', delta: 'let me ' },
    { type: 'reasoning', runId, text: 'let me look', delta: 'look' }
  ])
  t.same(updates[5], { type: 'tool', runId, name: 'lookup', toolCallId: 'call-1', args: { q: 'x' } })
  t.equal(session.cursor, (await client.sessions.open({ key: 'tools' })).cursor, 'the cursor moved past every event')
})

t.test('events() yields the updates in order and ends after closed', async t => {
  const app = await gateway(t)
  const client = await clientOf(t, app)
  const session = await client.open('it')
  const seen: string[] = []
  const reading = (async () => {
    for await (const update of session.events()) {
      seen.push(update.type)
      if (update.type === 'run.end') session.close()
    }
  })()
  await session.send('hi')
  await reading
  t.same(seen, ['message', 'run.start', 'delta', 'message', 'run.end', 'closed'])
  const after = session.events()
  t.same(await after.next(), { done: true, value: undefined }, 'a closed session iterates nothing')
  session.close() // twice is fine

  const again = await client.open('it2')
  const iterator = again.events()
  t.same(await iterator.return?.(), { done: true, value: undefined })
  t.same(await iterator.next(), { done: true, value: undefined }, 'return() stops it')
})

t.test('loadOlder() pages back until the first message', async t => {
  const app = await gateway(t)
  for (const text of ['a', 'b', 'c']) {
    const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:old', agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text }], timestamp: Date.now() }] })
    await ticket.result
  }
  const client = await clientOf(t, app, { historyLimit: 2 })
  const session = await client.open('old')
  t.same(texts(session), ['user:c', 'assistant:c'])
  const older = nextUpdate(session, update => update.type === 'older')
  t.same((await session.loadOlder()).length, 2)
  t.match(await older, { type: 'older', messages: [{ role: 'user' }, { role: 'assistant' }] })
  await session.loadOlder(10)
  t.same(texts(session), ['user:a', 'assistant:a', 'user:b', 'assistant:b', 'user:c', 'assistant:c'])
  t.equal(session.before, undefined)
  t.same(await session.loadOlder(), [], 'nothing older')
})

t.test('a reset or delete made elsewhere replaces the history', async t => {
  const app = await gateway(t)
  const client = await clientOf(t, app)
  const session = await client.open('r')
  const ended = nextUpdate(session, update => update.type === 'run.end')
  await session.send('hello')
  await ended
  const reset = nextUpdate(session, update => update.type === 'reset')
  await app.sessionGateway.reset('agent:main:r')
  t.match(await reset, { type: 'reset', messages: [], deleted: false })
  t.same(session.messages, [])
  t.equal(session.sessionId, (await app.sessionGateway.get('agent:main:r'))?.sessionId)
  const deleted = nextUpdate(session, update => update.type === 'reset')
  await app.sessionGateway.delete('agent:main:r')
  t.match(await deleted, { deleted: true })
})

t.test('after a dropped connection the session resumes: replay, catch-up with the running text, reset', async t => {
  const agent = splitAgent()
  const app = await gateway(t, { agent, replay: 1 })
  const other = await clientOf(t, app)
  const client = await clientOf(t, app)
  const states: string[] = []
  client.onState(state => states.push(state))
  await client.sessions.create({ key: 'resume' }) // born: its epoch stays
  const session = await client.open('resume')

  // Catch-up: the ring holds one event, the gap is longer; the running text comes as a snapshot.
  TrackedWebSocket.cut()
  await reaches(client, 'reconnecting')
  await other.chat.send({ sessionKey: 'resume', message: 'while away' })
  const snapshot = nextUpdate(session, update => update.type === 'delta')
  TrackedWebSocket.release()
  await reaches(client, 'open')
  t.match(await snapshot, { type: 'delta', text: 'partial ', delta: 'partial ' })
  t.same(texts(session), ['user:while away'])
  const ended = nextUpdate(session, update => update.type === 'run.end')
  agent.release()
  await ended
  t.same(texts(session), ['user:while away', 'assistant:partial end'])
  t.same(states, ['reconnecting', 'open'])
})

t.test('resume cases against a real gateway: replay from memory, and reset after the session was reset', async t => {
  const app = await gateway(t)
  const client = await clientOf(t, app)
  await client.sessions.create({ key: 'cases' })
  const session = await client.open('cases')

  TrackedWebSocket.cut()
  await reaches(client, 'reconnecting')
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:cases', agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: 'missed' }], timestamp: Date.now() }] })
  await ticket.result
  const caught = nextUpdate(session, update => update.type === 'run.end')
  TrackedWebSocket.release()
  await reaches(client, 'open')
  await caught
  t.same(texts(session), ['user:missed', 'assistant:missed'], 'replayed, once')

  TrackedWebSocket.cut()
  await reaches(client, 'reconnecting')
  await app.sessionGateway.reset('agent:main:cases')
  await app.sessionGateway.send({ sessionKey: 'agent:main:cases', agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: 'fresh' }], timestamp: Date.now() }] }).then(async next => await next.result)
  const reset = nextUpdate(session, update => update.type === 'reset')
  TrackedWebSocket.release()
  await reaches(client, 'open')
  t.match(await reset, { type: 'reset', deleted: false, messages: [{ role: 'user' }, { role: 'assistant' }] })
  t.same(texts(session), ['user:fresh', 'assistant:fresh'])
})

t.test('while disconnected, wait (the default): a send in flight goes out again with its key, and the turn happens once', async t => {
  const app = await gateway(t)
  const client = await clientOf(t, app)
  await client.sessions.create({ key: 'again' })
  const session = await client.open('again')
  const answered = nextUpdate(session, update => update.type === 'run.end')
  const sending = session.send('only once', { idempotencyKey: 'once-1' })
  const waiting = client.sessions.list()
  TrackedWebSocket.latest.terminate()
  t.match(await sending, { runId: 'once-1' })
  t.match(await waiting, { count: 1 })
  await answered

  // A request made while away waits, through failed dials, for the connection.
  TrackedWebSocket.cut()
  const dials = TrackedWebSocket.opened.length
  const later = client.sessions.list()
  for (let i = 0; i < 500 && TrackedWebSocket.opened.length < dials + 2; i++) await new Promise(resolve => setTimeout(resolve, 5))
  TrackedWebSocket.release()
  t.match(await later, { count: 1 })
  const history = await client.chat.history({ sessionKey: 'again' })
  t.same(history.messages.map(message => message.role), ['user', 'assistant'], 'one turn')

  // What would do a second thing when repeated fails instead, saying so.
  for (const call of [
    () => client.sessions.reset({ key: 'again' }),
    () => client.chat.abort({ sessionKey: 'again' }),
    () => client.sessions.create({})
  ]) {
    const pending = call()
    TrackedWebSocket.latest.terminate()
    t.match(await pending.catch((err: unknown) => err), { name: 'ConnectionError', code: 'CONNECTION_LOST', message: /may or may not/ })
    await reaches(client, 'open')
  }
  for (const call of [() => client.chat.abort({ sessionKey: 'again', runId: 'x' }), () => client.sessions.create({ key: 'made' })]) {
    const pending = call()
    TrackedWebSocket.latest.terminate()
    t.match(await pending, { ok: true }, 'repeated after the reconnect')
  }
})

t.test("while disconnected, fail: a send fails at once with its key, and a retry with that key is safe", async t => {
  const app = await gateway(t)
  const client = await clientOf(t, app, { whileDisconnected: 'fail', reconnect: { initialDelayMs: 200, maxDelayMs: 200 } })
  const session = await client.open('f')
  const inFlight = session.send('first', { idempotencyKey: 'f-1' })
  TrackedWebSocket.latest.terminate()
  const lost = await inFlight.catch((err: unknown) => err) as ConnectionError
  t.match(lost, { code: 'CONNECTION_LOST', idempotencyKey: 'f-1' })
  const early = await session.send('second').catch((err: unknown) => err) as ConnectionError
  t.ok(early instanceof ConnectionError)
  t.match(early, { code: 'NOT_CONNECTED', message: /not connected to the gateway \(reconnecting\)/ })
  t.match(early.idempotencyKey, /^[0-9a-f-]{36}$/)
  await reaches(client, 'open')
  const second = nextUpdate(session, update => update.type === 'run.end' && update.runId === early.idempotencyKey)
  t.match(await session.send('first', { idempotencyKey: lost.idempotencyKey as string }), { runId: 'f-1' })
  t.match(await session.send('second', { idempotencyKey: early.idempotencyKey as string }), { runId: early.idempotencyKey })
  await second
  const roles = (await client.chat.history({ sessionKey: 'f' })).messages.map(message => message.role)
  t.ok(roles.length === 4 || roles.length === 2, `each message at most once: ${roles.join(',')}`)
  t.equal(roles.filter(role => role === 'user').length * 2, roles.length)
})

t.test('reconnect: false, close(), and a gateway that is gone', async t => {
  const app = await gateway(t)
  const client = await clientOf(t, app, { reconnect: false })
  const session = await client.open('x')
  const closed = nextUpdate(session, update => update.type === 'closed')
  TrackedWebSocket.latest.terminate()
  t.match(await closed, { error: { code: 'CONNECTION_LOST', message: /was lost \(1006\)/ } })
  t.equal(client.state, 'closed')
  t.match(await client.sessions.list().catch((err: unknown) => err), { code: 'CLOSED' })

  const second = await clientOf(t, app)
  const open = await second.open('y')
  const pending = second.chat.send({ sessionKey: 'y', message: 'never answered', idempotencyKey: 'c-1' })
  const ended = nextUpdate(open, update => update.type === 'closed')
  second.close()
  second.close()
  t.match(await pending.catch((err: unknown) => err), { code: 'CLOSED', idempotencyKey: 'c-1' })
  t.same(await ended, { type: 'closed' })
  second.reconnectNow() // nothing to do once closed

  const port = (app.server.address() as { port: number }).port
  await app.close()
  const gone = await GatewayClient.connect({ url: `ws://127.0.0.1:${port}/gateway`, WebSocket: WS }).catch((err: unknown) => err)
  t.match(gone, { code: 'UNREACHABLE', message: /could not be made/ })
  const malformed = await GatewayClient.connect({ url: 'not a url', WebSocket: WS }).catch((err: unknown) => err)
  t.match(malformed, { code: 'UNREACHABLE', message: /cannot open not a url/ })
})

t.test('a wrong token is refused for good, not retried', async t => {
  const app = await gateway(t)
  const refused = await GatewayClient.connect({ url: gatewayUrl(app), token: 'wrong', WebSocket: WS }).catch((err: unknown) => err)
  t.match(refused, { name: 'ConnectionError', code: 'REFUSED', message: /refused the connection: Missing or invalid credentials/ })
  const noToken = await GatewayClient.connect({ url: gatewayUrl(app), password: 'pw', WebSocket: WS }).catch((err: unknown) => err)
  t.match(noToken, { code: 'REFUSED' })
})

t.test('a gateway that closes the handshake with 1008 or 1002 refuses; one that goes silent or sends junk is dropped and dialled again', async t => {
  for (const [code, reason, said] of [[1008, 'no', '1008: no'], [1002, '', '1002']] as const) {
    const fake = await fakeGateway(t, async (socket, frames) => {
      socket.send(CHALLENGE)
      for await (const _frame of frames) return socket.close(code, reason)
    })
    const err = await GatewayClient.connect({ url: fake.url, WebSocket: WS }).catch((err: unknown) => err)
    t.match(err, { code: 'REFUSED', message: `the gateway refused the connection (${said})` })
  }

  const quiet = await fakeGateway(t, async (socket, frames) => {
    socket.send(CHALLENGE)
    for await (const frame of frames) {
      if (frame.method === 'connect') socket.send(hello(frame.id, 20))
      // then nothing: no ticks, no answers
    }
  })
  const client = await GatewayClient.connect({ url: quiet.url, WebSocket: WS, reconnect: { initialDelayMs: 1, maxDelayMs: 1 }, requestTimeoutMs: 2000 })
  t.teardown(() => client.close())
  await reaches(client, 'reconnecting')
  await reaches(client, 'open')
  t.ok(quiet.connections >= 2, 'the silent link was dropped and dialled again')
  const timedOut = await client.chat.send({ sessionKey: 'k', message: 'm', idempotencyKey: 't-1' }).catch((err: unknown) => err)
  t.match(timedOut, { code: 'TIMEOUT', idempotencyKey: 't-1', message: 'chat.send: no answer within 2000 ms' })

  const junk = await fakeGateway(t, async (socket, frames) => {
    socket.send(CHALLENGE)
    for await (const frame of frames) {
      if (frame.method !== 'connect') continue
      socket.send(hello(frame.id))
      socket.send(JSON.stringify({ type: 'res', id: 'nobody-asked', ok: true, payload: {} }))
      socket.send(JSON.stringify({ type: 'something-else' }))
      socket.send(JSON.stringify({ type: 'event', event: 'tick', payload: { ts: 1 } }))
      if (junk.connections === 1) socket.send('not json')
    }
  })
  const second = await GatewayClient.connect({ url: junk.url, WebSocket: WS, reconnect: { initialDelayMs: 1, maxDelayMs: 1 } })
  t.teardown(() => second.close())
  t.equal(junk.connections, 2, 'ready once the second connection, free of junk, is open')

  const slow = await fakeGateway(t, () => {}) // never sends the challenge
  const never = await GatewayClient.connect({ url: slow.url, WebSocket: WS, connectTimeoutMs: 30 }).catch((err: unknown) => err)
  t.match(never, { code: 'UNREACHABLE', message: /\(1006: the handshake took too long\)/ })

  // A server that takes the TCP connection and never answers the upgrade: given up while still connecting.
  const mute = createServer(() => {})
  mute.listen(0, '127.0.0.1')
  await once(mute, 'listening')
  t.teardown(() => { mute.close() })
  const port = (mute.address() as { port: number }).port
  const stuck = await GatewayClient.connect({ url: `ws://127.0.0.1:${port}/gateway`, WebSocket: WS, connectTimeoutMs: 30 }).catch((err: unknown) => err)
  t.match(stuck, { code: 'UNREACHABLE' })
  await new Promise(resolve => setTimeout(resolve, 20)) // ws reports the aborted handshake a tick later: it must find a listener
})

t.test('sessions.subscribe and message subscriptions are renewed after a reconnect; reconnectNow skips the backoff', async t => {
  const app = await gateway(t)
  const client = await clientOf(t, app, { reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 } })
  await client.sessions.subscribe()
  await client.sessions.messages.subscribe({ key: 'sub' })
  client.reconnectNow() // open: nothing to do
  TrackedWebSocket.latest.terminate()
  await reaches(client, 'reconnecting')
  client.reconnectNow()
  await reaches(client, 'open')
  const seen: string[] = []
  const heard = new Promise<void>(resolve => client.onEvent(frame => {
    seen.push(frame.event)
    if (frame.event === 'chat' && frame.payload.state === 'final') resolve()
  }))
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:sub', agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: 'x' }], timestamp: Date.now() }] })
  await ticket.result
  await heard
  t.ok(seen.includes('sessions.changed'), 'list changes still arrive')
  t.ok(seen.includes('session.message'), 'the subscribed session still streams')
})

t.test('a session whose resume is refused ends with the error; the client carries on', async t => {
  let allowed = true
  const app = await gateway(t, { authorize: ({ action }) => allowed || action === 'write' })
  const client = await clientOf(t, app, { reconnect: undefined }) // the default backoff
  const session = await client.open('mine')
  const ended = nextUpdate(session, update => update.type === 'closed')
  allowed = false
  TrackedWebSocket.latest.terminate()
  const closed = await ended as Extract<SessionUpdate, { type: 'closed' }>
  t.ok(closed.error instanceof ServerError)
  t.match(closed.error, { code: 'FORBIDDEN' })
  await reaches(client, 'open')
  t.equal(session.closed, true)
  t.not(await client.open('mine').catch(() => undefined), session)
})

t.test('a listener that throws is reported and the others still hear', async t => {
  const app = await gateway(t)
  const client = await clientOf(t, app)
  const reported: unknown[] = []
  const error = console.error
  console.error = (...args: unknown[]) => { reported.push(args) }
  t.teardown(() => { console.error = error })
  const session = await client.open('l')
  const stop = session.on(() => { throw new Error('bad listener') })
  const done = nextUpdate(session, update => update.type === 'run.end')
  await session.send('still')
  await done
  stop()
  t.ok(reported.length >= 4)
  t.match(reported[0], ['fastify-session-gateway client: a listener threw', { message: 'bad listener' }])
})

t.test('without a WebSocket to use, the constructor says what to pass', async t => {
  const global = globalThis as { WebSocket?: unknown }
  const saved = global.WebSocket
  global.WebSocket = undefined
  t.teardown(() => { global.WebSocket = saved })
  t.throws(() => new GatewayClient({ url: 'ws://127.0.0.1:1/gateway' }), { name: 'TypeError', message: /pass one, e.g. \{ WebSocket \} from the "ws" package/ })
})

t.test('a session applies each event once: repeats are dropped by cursor, snapshots replace, a reset answer replaces the history', async t => {
  const message = (role: string, text: string): unknown => ({ role, content: [{ type: 'text', text }], timestamp: 1 })
  const event = (name: string, payload: Record<string, unknown>): string => JSON.stringify({ type: 'event', event: name, payload: { sessionKey: 'agent:main:s', ...payload } })
  // OpenClaw's `agent` frames carry their session in `data`.
  const agentEvent = (stream: string, data: Record<string, unknown>, cursor: string): string =>
    JSON.stringify({ type: 'event', event: 'agent', payload: { runId: 'r3', seq: 1, stream, ts: 1, data: { ...data, sessionKey: 'agent:main:s' }, cursor } })
  const fake = await fakeGateway(t, async (socket, frames) => {
    socket.send(CHALLENGE)
    for await (const frame of frames) {
      const answer = (payload: unknown): void => socket.send(JSON.stringify({ type: 'res', id: frame.id, ok: true, payload }))
      if (frame.method === 'connect') socket.send(hello(frame.id))
      if (frame.method === 'sessions.open' && frame.params.since === undefined) {
        answer({ key: 'agent:main:s', agentId: 'main', replay: 'live', messages: [], cursor: 'e:0' })
      } else if (frame.method === 'sessions.list') {
        // The events come once the test listens: it asks for the list when it does.
        answer({ ts: 0, count: 0, sessions: [] })
        for (const text of [
          event('session.message', { messageId: 'm1', message: message('user', 'hi'), cursor: 'e:1' }),
          event('session.message', { messageId: 'm1', message: message('user', 'hi'), cursor: 'e:1' }),
          event('chat', { runId: 'r1', state: 'delta', deltaText: 'he', cursor: 'e:2' }),
          event('chat', { runId: 'r1', state: 'delta', deltaText: 'he', cursor: 'e:2' }),
          event('chat', { runId: 'r1', state: 'delta', deltaText: 'hello', replace: true, cursor: 'e:2' }),
          event('chat', { runId: 'r1', state: 'error', errorMessage: 'boom', cursor: 'e:3' }),
          event('chat', { runId: 'r1', state: 'error', errorMessage: 'boom', cursor: 'e:3' }),
          event('chat', { runId: 'other', state: 'final', message: message('assistant', 'x'), cursor: 'e:4' }),
          agentEvent('lifecycle', { phase: 'start', model: 'm1' }, 'e:5'),
          agentEvent('lifecycle', { phase: 'start', model: 'm1' }, 'e:5'),
          agentEvent('tool', { phase: 'start', name: 'lookup', toolCallId: 'c1', args: { q: 1 } }, 'e:6'),
          agentEvent('tool', { phase: 'start', name: 'lookup', toolCallId: 'c1', args: { q: 1 } }, 'e:6'),
          agentEvent('thinking', { text: 'hm', delta: 'hm' }, 'e:7'),
          agentEvent('thinking', { text: 'hm', delta: 'hm' }, 'e:7'),
          // OpenClaw's other agent streams and phases, and one without data: none is an update.
          agentEvent('lifecycle', { phase: 'end' }, 'e:8'),
          agentEvent('tool', { phase: 'result', name: 'lookup', toolCallId: 'c1' }, 'e:9'),
          agentEvent('assistant', { text: 'x' }, 'e:10'),
          JSON.stringify({ type: 'event', event: 'agent', payload: { runId: 'r3', seq: 9, stream: 'tool', ts: 1, cursor: 'e:11' } })
        ]) socket.send(text)
        socket.close(1012, 'restart')
      } else if (frame.method === 'sessions.open') {
        t.equal(frame.params.since, 'e:10', 'resumed from the last event applied')
        answer({ key: 'agent:main:s', agentId: 'main', sessionId: 'g2', entry: { key: 'agent:main:s' }, replay: 'reset', messages: [{ ...message('user', 'fresh') as object, id: 'f1' }], cursor: 'g2:1', running: { runId: 'r2', text: 'so far' } })
      }
    }
  })
  const client = await GatewayClient.connect({ url: fake.url, WebSocket: WS, reconnect: { initialDelayMs: 1, maxDelayMs: 1 } })
  t.teardown(() => client.close())
  const session = await client.open('s', { agentId: 'main' })
  const updates: SessionUpdate[] = []
  let runningAtStart: unknown
  const reset = new Promise<void>(resolve => session.on(update => {
    updates.push(update)
    if (update.type === 'run.start') runningAtStart = session.running
    if (update.type === 'reset') resolve()
  }))
  await client.sessions.list()
  await reset
  t.same(updates, [
    { type: 'message', message: { role: 'user', content: [{ type: 'text', text: 'hi' }], timestamp: 1, id: 'm1' } },
    { type: 'delta', runId: 'r1', text: 'he', delta: 'he' },
    { type: 'delta', runId: 'r1', text: 'hello', delta: 'llo' },
    { type: 'run.end', runId: 'r1', state: 'error', errorMessage: 'boom' },
    { type: 'run.end', runId: 'other', state: 'final', message: message('assistant', 'x') },
    { type: 'run.start', runId: 'r3', model: 'm1' },
    { type: 'tool', runId: 'r3', name: 'lookup', toolCallId: 'c1', args: { q: 1 } },
    { type: 'reasoning', runId: 'r3', text: 'hm', delta: 'hm' },
    { type: 'reset', messages: [{ role: 'user', content: [{ type: 'text', text: 'fresh' }], timestamp: 1, id: 'f1' }], running: { runId: 'r2', text: 'so far' }, deleted: false }
  ])
  t.same(runningAtStart, { runId: 'r3', text: '' }, 'a turn that starts is the running turn, with no text yet')
  t.same(session.running, { runId: 'r2', text: 'so far' })
  t.equal(session.cursor, 'g2:1')
  t.equal(session.sessionId, 'g2')
})

/** A fake gateway's script: the handshake, then `onRequest` for every other request of the connection (its number, from 1). */
function scripted (onRequest: (frame: any, answer: (payload: unknown) => void, socket: import('ws').WebSocket, connection: number) => void): { script: Parameters<typeof fakeGateway>[1], connections: () => number } {
  let connections = 0
  return {
    connections: () => connections,
    script: async (socket, frames) => {
      const connection = ++connections
      socket.send(CHALLENGE)
      for await (const frame of frames) {
        if (frame.method === 'connect') {
          socket.send(hello(frame.id))
          continue
        }
        onRequest(frame, payload => socket.send(JSON.stringify({ type: 'res', id: frame.id, ok: true, payload })), socket, connection)
      }
    }
  }
}

const userMessage = (text: string): unknown => ({ role: 'user', content: [{ type: 'text', text }], timestamp: 1 })

t.test('loadOlder(): calls made while a page loads share it, and a page of a history replaced meanwhile is let go', async t => {
  let histories = 0
  let answerHeld = (): void => {}
  const fake = scripted((frame, answer, socket) => {
    if (frame.method === 'sessions.open') answer({ key: 'agent:main:o', agentId: 'main', replay: 'live', messages: [userMessage('m3')], before: 'B', cursor: 'e:3' })
    if (frame.method !== 'chat.history') return
    histories++
    if (frame.params.before === 'B') {
      answer({ sessionKey: 'agent:main:o', messages: [userMessage('m2')], before: 'A' })
      return
    }
    // The second page waits while the session is reset elsewhere.
    answerHeld = () => {
      socket.send(JSON.stringify({ type: 'event', event: 'session.reset', payload: { sessionKey: 'agent:main:o', sessionId: 'g2', deleted: false, cursor: 'g2:0' } }))
      answer({ sessionKey: 'agent:main:o', messages: [userMessage('m1')] })
    }
  })
  const server = await fakeGateway(t, fake.script)
  const client = await GatewayClient.connect({ url: server.url, WebSocket: WS, reconnect: false })
  t.teardown(() => client.close())
  const session = await client.open('o')
  const [one, two] = await Promise.all([session.loadOlder(), session.loadOlder()])
  t.equal(histories, 1, 'one request for both calls')
  t.same([one, two], [[userMessage('m2')], [userMessage('m2')]])
  t.same(texts(session), ['user:m2', 'user:m3'], 'the page is put in front once')
  const third = session.loadOlder()
  await until(() => histories === 2, 'the second page to be asked for')
  const reset = nextUpdate(session, update => update.type === 'reset')
  answerHeld()
  await reset
  t.same(await third, [], 'the old history\'s page is not returned')
  t.same(session.messages, [], 'nor put in front of the new history')
  t.equal(session.before, undefined)
})

t.test('a resume refused for now (retryable) or not answered is tried again on a new connection; the session stays open', async t => {
  const fake = scripted((frame, answer, socket, connection) => {
    if (frame.method !== 'sessions.open') return
    if (connection === 1) {
      answer({ key: 'agent:main:s', agentId: 'main', replay: 'live', messages: [], cursor: 'e:1', running: { runId: 'r1', text: 'so' } })
      setTimeout(() => socket.close(1012, 'restart'), 5)
    } else if (connection === 2) {
      // The store failed: retryable.
      socket.send(JSON.stringify({ type: 'res', id: frame.id, ok: false, error: { code: 'UNAVAILABLE', message: 'the store is unavailable', retryable: true } }))
    } else if (connection === 3) {
      // No answer at all: the client's request times out.
    } else {
      t.equal(frame.params.since, 'e:1', 'resumed from its cursor')
      // The gap was caught up from the store, and the turn that ran has no answer row: no turn runs now.
      answer({ key: 'agent:main:s', agentId: 'main', replay: 'catchup', messages: [], cursor: 'e:3' })
      socket.send(JSON.stringify({ type: 'event', event: 'session.message', payload: { sessionKey: 'agent:main:s', messageId: 'm2', message: userMessage('later'), cursor: 'e:3' } }))
    }
  })
  const server = await fakeGateway(t, fake.script)
  const client = await GatewayClient.connect({ url: server.url, WebSocket: WS, requestTimeoutMs: 300, reconnect: { initialDelayMs: 1, maxDelayMs: 5 } })
  t.teardown(() => client.close())
  const session = await client.open('s')
  t.same(session.running, { runId: 'r1', text: 'so' })
  const later = nextUpdate(session, update => update.type === 'message')
  await later
  t.equal(fake.connections(), 4, 'dialled again after the refusal and after the silence')
  t.equal(session.closed, false)
  t.same(texts(session), ['user:later'])
  t.equal(session.running, undefined, 'a catch-up with no turn running ends the one that was')
  await reaches(client, 'open')
})

t.test('backoff starts over only once a connection is of use: a gateway that takes the handshake and refuses every resume is dialled less and less often', async t => {
  const fake = scripted((frame, answer, socket, connection) => {
    if (frame.method !== 'sessions.open') return
    if (connection === 1) {
      answer({ key: 'agent:main:b', agentId: 'main', replay: 'live', messages: [], cursor: 'e:1' })
      setTimeout(() => socket.close(1012, 'restart'), 5)
    } else {
      socket.send(JSON.stringify({ type: 'res', id: frame.id, ok: false, error: { code: 'UNAVAILABLE', message: 'not now', retryable: true } }))
    }
  })
  const server = await fakeGateway(t, fake.script)
  const client = await GatewayClient.connect({ url: server.url, WebSocket: WS, reconnect: { initialDelayMs: 20, maxDelayMs: 10_000 } })
  t.teardown(() => client.close())
  await client.open('b')
  const from = Date.now()
  await until(() => fake.connections() >= 6, 'six connections')
  // Five waits of at least half of 20, 40, 80, 160 and 320 ms (jitter takes at most half away).
  t.ok(Date.now() - from >= 300, `the waits grew (${Date.now() - from} ms for five)`)
})
