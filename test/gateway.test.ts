import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { GatewayClient } from '@openclaw/gateway-client'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { echoAgent, MemoryStore } from '../lib/index.js'
import { GatewaySocket, listen, type Frame } from './gateway-frames.js'
import { buildApp, gatedAgent, TOKEN, user } from './helpers.js'



async function gatewayApp (t: Test, options: Parameters<typeof buildApp>[1] = {}): Promise<import('fastify').FastifyInstance> {
  const app = await buildApp(t, options)
  await listen(app)
  return app
}

async function open (t: Test, app: import('fastify').FastifyInstance, options: Parameters<typeof GatewaySocket.open>[1] = {}): Promise<GatewaySocket> {
  let ended = false
  // Every frame the server sends is checked against OpenClaw's schema as it arrives.
  const socket = await GatewaySocket.open(app, options, problem => { if (!ended) t.fail(problem) })
  t.teardown(() => {
    ended = true
    socket.close()
  })
  return socket
}

/** The HTTP status an upgrade is refused with (the socket never opens). */
async function refusedUpgrade (app: import('fastify').FastifyInstance, path: string, headers: Record<string, string> = {}): Promise<number> {
  const address = app.server.address() as { port: number }
  const socket = new WebSocket(`ws://127.0.0.1:${address.port}${path}`, { headers })
  socket.on('error', () => {}) // the refusal itself
  const [, response] = await once(socket, 'unexpected-response') as [unknown, { statusCode: number }]
  socket.terminate()
  return response.statusCode
}

function texts (frames: Frame[]): string[] {
  return frames.map(frame => `${String(frame.event)}:${String(frame.payload?.state ?? frame.payload?.message?.role ?? '')}`)
}

t.test('the official @openclaw/gateway-client connects, sends, streams and reads history, unchanged', async t => {
  const app = await gatewayApp(t)
  const address = app.server.address() as { port: number }
  const events: Array<{ event: string, payload?: any }> = []
  let helloResolve: () => void = () => {}
  let helloReject: (err: unknown) => void = () => {}
  const hello = new Promise<void>((resolve, reject) => { helloResolve = resolve; helloReject = reject })
  let finalResolve: () => void = () => {}
  const final = new Promise<void>(resolve => { finalResolve = resolve })
  const client = new GatewayClient({
    url: `ws://127.0.0.1:${address.port}/gateway`,
    token: TOKEN,
    minProtocol: 4,
    maxProtocol: 4,
    onHelloOk: () => helloResolve(),
    onConnectError: (err: unknown) => helloReject(err),
    onEvent: (event: { event: string, payload?: any }) => {
      events.push(event)
      if (event.event === 'chat' && event.payload?.state === 'final') finalResolve()
    }
  })
  client.start()
  t.teardown(() => client.stop())
  await hello
  const ack = await client.request('chat.send', { sessionKey: 'Portal-42', message: 'hello from openclaw', idempotencyKey: 'oc-1' }) as any
  t.same(ack, { runId: 'oc-1', status: 'started' })
  await final
  const chat = events.filter(e => e.event === 'chat').map(e => e.payload)
  t.same(chat.filter(p => p.state === 'delta').map(p => p.deltaText).join(''), 'hello from openclaw')
  t.match(chat.at(-1), { state: 'final', sessionKey: 'agent:main:portal-42', message: { role: 'assistant', content: [{ type: 'text', text: 'hello from openclaw' }] } })
  t.same(chat.map(p => p.seq), chat.map((_, i) => i + 1), 'the per-run seq counts from 1 without gaps')
  const history = await client.request('chat.history', { sessionKey: 'agent:main:portal-42' }) as any
  t.same(history.messages.map((m: any) => m.role), ['user', 'assistant'])
  t.equal(history.sessionKey, 'agent:main:portal-42')
})

t.test('the handshake: challenge first, then hello-ok with the session defaults; every frame is valid', async t => {
  const app = await gatewayApp(t, { defaultAgentId: 'ops', mainKey: 'home' })
  const socket = await open(t, app)
  t.equal(socket.frames[0]?.event, 'connect.challenge')
  t.type(socket.frames[0]?.payload.nonce, 'string')
  t.equal(socket.frames[0]?.seq, undefined, 'the challenge comes before the sequence starts')
  const hello = socket.frames[1] as Frame
  t.match(hello, {
    type: 'res',
    ok: true,
    payload: {
      type: 'hello-ok',
      protocol: 4,
      server: { version: /^\d+\.\d+\.\d+/ },
      snapshot: { sessionDefaults: { defaultAgentId: 'ops', mainKey: 'home', mainSessionKey: 'agent:ops:home' } },
      policy: { maxPayload: 4 * 1024 * 1024, maxBufferedBytes: 1024 * 1024, tickIntervalMs: 30_000 }
    }
  })
  t.ok(hello.payload.features.methods.includes('sessions.open'))
  const ack = await socket.request('chat.send', { sessionKey: 'main', message: 'hi there', idempotencyKey: 'h-1' })
  t.equal(ack.ok, true)
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  const seqs = socket.frames.filter(f => f.type === 'event' && f.seq !== undefined).map(f => f.seq)
  t.same(seqs, seqs.map((_, i) => i + 1), 'event seq counts per connection from 1')
})

t.test('ticks arrive every tickIntervalMs', async t => {
  const app = await gatewayApp(t, { gateway: { tickIntervalMs: 30 } })
  const socket = await open(t, app)
  const tick = await socket.next(f => f.event === 'tick')
  t.type(tick.payload.ts, 'number')
})

t.test('a peer that stops answering pings is dropped', async t => {
  const app = await gatewayApp(t, { gateway: { tickIntervalMs: 30 } })
  const address = app.server.address() as { port: number }
  const socket = new WebSocket(`ws://127.0.0.1:${address.port}/gateway`, { headers: { authorization: `Bearer ${TOKEN}` }, autoPong: false })
  const [code] = await once(socket, 'close') as [number]
  t.equal(code, 1006, 'terminated, no close frame')
})

t.test('handshake failures close with the right code', async t => {
  const app = await gatewayApp(t, { gateway: { handshakeTimeoutMs: 100 } })
  const connect = { minProtocol: 4, maxProtocol: 4, client: { id: 'test', version: '1', platform: 'node', mode: 'test' } }

  let socket = await open(t, app, { raw: true })
  const res = await socket.request('connect', { ...connect, minProtocol: 5, maxProtocol: 6 })
  t.match(res, { ok: false, error: { code: 'INVALID_REQUEST', message: /protocol mismatch/ } })
  t.match(await socket.closedWith(), { code: 1002 })

  socket = await open(t, app, { raw: true })
  socket.send({ type: 'req', id: '1', method: 'chat.send', params: {} })
  t.match(await socket.closedWith(), { code: 1008, reason: 'the first frame must be a connect request' })

  socket = await open(t, app, { raw: true })
  socket.send('not json')
  t.match(await socket.closedWith(), { code: 1008 })

  socket = await open(t, app, { raw: true })
  socket.socket.send(Buffer.from([1, 2, 3]))
  t.match(await socket.closedWith(), { code: 1008 })

  // Before connect, frames may be 64 KiB: exactly that is read, one byte more is not.
  const padded = (bytes: number): string => {
    const frame = (padding: string): string => JSON.stringify({ type: 'req', id: 'big', method: 'connect', params: { ...connect, padding } })
    return frame('x'.repeat(bytes - frame('').length))
  }
  socket = await open(t, app, { raw: true })
  socket.send(padded(64 * 1024))
  t.match(await socket.next(f => f.id === 'big'), { ok: true, payload: { type: 'hello-ok' } }, 'a connect of exactly 64 KiB')
  socket = await open(t, app, { raw: true })
  socket.send(padded(64 * 1024 + 1))
  t.match(await socket.closedWith(), { code: 1009 }, 'one byte more')

  socket = await open(t, app, { raw: true })
  const invalid = await socket.request('connect', { ...connect, client: { id: 'test' } })
  t.match(invalid, { ok: false, error: { code: 'INVALID_REQUEST', message: /params\.client\.version/ } })
  t.match(await socket.closedWith(), { code: 1008 })

  socket = await open(t, app, { raw: true })
  t.match(await socket.closedWith(), { code: 1008, reason: 'handshake timeout' }, 'no connect in time')
})

t.test('credentials: a bad token at the upgrade is a plain 401; the token may come in connect instead', async t => {
  const app = await gatewayApp(t)
  t.equal(await refusedUpgrade(app, '/gateway?token=wrong'), 401)
  t.equal(await refusedUpgrade(app, '/gateway', { authorization: 'Bearer wrong' }), 401)

  const viaConnect = await open(t, app, { headers: {}, connect: { auth: { token: TOKEN } } })
  t.equal((await viaConnect.request('chat.history', { sessionKey: 'x' })).ok, true)

  const viaQuery = await open(t, app, { headers: {}, query: `token=${TOKEN}` })
  t.equal((await viaQuery.request('chat.history', { sessionKey: 'x' })).ok, true)

  const bad = await open(t, app, { headers: {}, raw: true })
  const res = await bad.request('connect', { minProtocol: 4, maxProtocol: 4, client: { id: 'test', version: '1', platform: 'node', mode: 'test' }, auth: { token: 'nope' } })
  t.match(res, { ok: false, error: { code: 'FORBIDDEN', details: { code: 'FSG_UNAUTHENTICATED' } } })
  t.match(await bad.closedWith(), { code: 1008 })

  const none = await open(t, app, { headers: {}, raw: true })
  const missing = await none.request('connect', { minProtocol: 4, maxProtocol: 4, client: { id: 'test', version: '1', platform: 'node', mode: 'test' } })
  t.match(missing, { ok: false, error: { code: 'FORBIDDEN' } })
})

t.test('a default session from the upgrade, used by frames without a key and overridden by frames with one', async t => {
  const app = await gatewayApp(t, { authorize: ({ sessionKey }) => !sessionKey.includes('secret') })

  const byHeader = await open(t, app, { headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'Tab-1', 'x-openclaw-agent-id': 'beta' } })
  const ack = await byHeader.request('chat.send', { message: 'default', idempotencyKey: 'd-1' })
  t.equal(ack.ok, true)
  const final = await byHeader.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.equal(final.payload.sessionKey, 'agent:beta:tab-1')
  const other = await byHeader.request('chat.history', { sessionKey: 'tab-2' })
  t.equal(other.payload.sessionKey, 'agent:main:tab-2', 'a frame key overrides the default (and its agent)')

  const byQuery = await open(t, app, { query: 'sessionKey=tab-3' })
  t.equal((await byQuery.request('chat.history', {})).payload.sessionKey, 'agent:main:tab-3')

  const keyless = await open(t, app)
  t.match(await keyless.request('chat.history', {}), { ok: false, error: { code: 'INVALID_REQUEST', details: { code: 'FSG_MISSING_SESSION_KEY' } } })

  t.equal(await refusedUpgrade(app, '/gateway?sessionKey=secret', { authorization: `Bearer ${TOKEN}` }), 403,
    'a forbidden default session is refused at the upgrade')

  const late = await open(t, app, { headers: {}, query: 'sessionKey=secret', raw: true })
  const res = await late.request('connect', { minProtocol: 4, maxProtocol: 4, client: { id: 'test', version: '1', platform: 'node', mode: 'test' }, auth: { token: TOKEN } })
  t.match(res, { ok: false, error: { code: 'FORBIDDEN', details: { code: 'FSG_FORBIDDEN' } } }, 'or at connect, when the token comes there')
  t.match(await late.closedWith(), { code: 1008 })
})

t.test('bad requests get an answer naming the problem, and the connection stays up', async t => {
  const app = await gatewayApp(t, { authorize: ({ sessionKey }) => sessionKey !== 'agent:main:private' })
  const socket = await open(t, app)
  t.match(await socket.request('no.such.method', {}), { ok: false, error: { code: 'INVALID_REQUEST', message: 'unknown method "no.such.method"' } })
  t.match(await socket.request('chat.send', { sessionKey: 'k', message: 'x' }), { ok: false, error: { message: /params.*idempotencyKey/ } })
  t.match(await socket.request('chat.send', { sessionKey: 'k', message: 42, idempotencyKey: 'a' }), { ok: false, error: { message: /params\.message/ } })
  t.match(await socket.request('chat.history', { sessionKey: 'k', bogus: true }), { ok: false, error: { message: 'params.bogus: unknown field' } })
  t.match(await socket.request('chat.history', { sessionKey: 'k', limit: 0 }), { ok: false, error: { message: /params\.limit/ } })
  t.match(await socket.request('chat.history', 'nope'), { ok: false, error: { message: /^params: / } })
  t.equal((await socket.request('chat.history', { sessionKey: 'k', offset: 0, maxChars: 5 })).ok, true, 'OpenClaw fields we do not use are accepted')
  t.match(await socket.request('chat.history', { sessionKey: 'cron:x' }), { ok: false, error: { code: 'INVALID_REQUEST', details: { code: 'FSG_RESERVED_SESSION_KEY' } } })
  t.match(await socket.request('chat.history', { sessionKey: 'private' }), { ok: false, error: { code: 'FORBIDDEN', details: { code: 'FSG_FORBIDDEN' } } })
  t.match(await socket.request('connect', {}), { ok: false, error: { message: 'already connected' } })
  t.match(await socket.request('chat.send', { sessionKey: 'k', message: '', idempotencyKey: 'e' }), { ok: false, error: { details: { code: 'FSG_INVALID_INPUT' } } })
  t.match(await socket.request('sessions.resolve', {}), { ok: false, error: { message: /needs one of key, sessionId or label/ } })

  socket.send('{not json')
  t.match(await socket.next(f => f.event === 'error'), { payload: { code: 'INVALID_REQUEST', message: 'the frame is not JSON' } })
  socket.socket.send(Buffer.from('binary'))
  await socket.next(f => f.event === 'error' && f.payload.message.includes('binary'))
  socket.send({ type: 'res', id: 'x1' })
  t.match(await socket.next(f => f.type === 'res' && f.id === 'x1'), { ok: false, error: { message: /only "req" frames/ } })
  socket.send({ type: 'req', id: 'x2' })
  t.match(await socket.next(f => f.type === 'res' && f.id === 'x2'), { ok: false, error: { message: /needs a non-empty string "method"/ } })
  socket.send([1, 2])
  await socket.next(f => f.event === 'error' && f.payload.message.includes('JSON object'))
  socket.send({ type: 'req', method: 'chat.history' })
  await socket.next(f => f.event === 'error' && f.payload.message.includes('"id"'))
  t.equal((await socket.request('chat.history', { sessionKey: 'k' })).ok, true, 'still connected')
})

/** A `sessions.list` request of exactly `bytes` bytes (its search padded to fit). */
function listFrame (bytes: number, id: string): string {
  const frame = (search: string): string => JSON.stringify({ type: 'req', id, method: 'sessions.list', params: { search } })
  return frame('x'.repeat(bytes - frame('').length))
}

t.test('maxPayload: a frame of exactly maxPayload bytes is answered; one byte more closes with 1009', async t => {
  for (const [options, limit] of [[{ maxPayload: 4096 }, 4096], [{}, 4 * 1024 * 1024]] as const) {
    const app = await gatewayApp(t, options)
    const fits = await open(t, app)
    fits.send(listFrame(limit, 'fits'))
    t.match(await fits.next(f => f.id === 'fits'), { ok: true }, `${limit} bytes`)
    const over = await open(t, app)
    over.send(listFrame(limit + 1, 'over'))
    t.match(await over.closedWith(), { code: 1009 }, `${limit + 1} bytes`)
  }
})

t.test('history limits: at most 1000 per page; by default 200 for chat.history, 50 for sessions.open and sessions.list; a bigger list is clamped', async t => {
  const store = new MemoryStore()
  await store.ensure('agent:main:long', 'main')
  await store.append('agent:main:long', Array.from({ length: 1001 }, (_, i) => ({
    type: 'message', id: `m${i}`, parentId: null, timestamp: new Date().toISOString(), message: user(`row ${i}`)
  })))
  for (let i = 0; i < 1000; i++) await store.ensure(`agent:main:s${i}`, 'main')
  const socket = await open(t, await gatewayApp(t, { store }))
  const page = async (method: string, params: Record<string, unknown>): Promise<string[] | string> => {
    const res = await socket.request(method, params)
    if (res.ok !== true) return res.error?.message ?? ''
    return (res.payload.messages ?? res.payload.sessions).map((item: { id?: string, key?: string }) => item.id ?? item.key)
  }
  const newest = (n: number): string[] => Array.from({ length: n }, (_, i) => `m${1001 - n + i}`)
  t.same(await page('chat.history', { sessionKey: 'long' }), newest(200), 'chat.history: the newest 200')
  t.same(await page('chat.history', { sessionKey: 'long', limit: 1000 }), newest(1000))
  t.match(await page('chat.history', { sessionKey: 'long', limit: 1001 }), /params\.limit/)
  t.same(await page('sessions.open', { key: 'long' }), newest(50), 'sessions.open: the newest 50')
  t.same(await page('sessions.open', { key: 'long', limit: 1000 }), newest(1000))
  t.match(await page('sessions.open', { key: 'long', limit: 1001 }), /params\.limit/)
  t.equal((await page('sessions.list', {})).length, 50, 'sessions.list: 50 rows')
  t.equal((await page('sessions.list', { limit: 1000 })).length, 1000, 'of 1001')
  // OpenClaw's Control UI asks for 10000; it gets a page of 1000, as from OpenClaw.
  t.equal((await page('sessions.list', { limit: 10000 })).length, 1000, 'a bigger limit is clamped, not refused')
  t.match(await page('sessions.list', { limit: 0 }), /params\.limit/)
})

t.test('watchers: every watcher of a session sees the same events; nobody else sees them', async t => {
  const app = await gatewayApp(t)
  const [a, b, stranger] = await Promise.all([open(t, app), open(t, app), open(t, app)])
  t.equal((await b.request('sessions.messages.subscribe', { key: 'shared' })).payload.subscribed, true)
  await stranger.request('sessions.messages.subscribe', { key: 'elsewhere' })
  await a.request('chat.send', { sessionKey: 'shared', message: 'one two three', idempotencyKey: 's-1' })
  await a.next(f => f.event === 'chat' && f.payload.state === 'final')
  await b.next(f => f.event === 'chat' && f.payload.state === 'final')
  const sessionFrames = (s: GatewaySocket): unknown[] => s.frames.filter(f => f.event === 'chat' || f.event === 'session.message').map(f => f.payload)
  t.same(sessionFrames(b), sessionFrames(a))
  t.same(texts(a.frames.filter(f => f.event === 'chat' || f.event === 'session.message')),
    ['session.message:user', 'chat:delta', 'chat:delta', 'chat:delta', 'session.message:assistant', 'chat:final'],
    'the user\'s own message is announced too')
  await sleep(50)
  t.same(sessionFrames(stranger), [], 'no other session\'s traffic')

  t.same((await b.request('sessions.messages.unsubscribe', { key: 'shared' })).payload, { subscribed: false, key: 'agent:main:shared' })
  const before = b.frames.length
  await a.request('chat.send', { sessionKey: 'shared', message: 'again', idempotencyKey: 's-2' })
  await a.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === 's-2')
  await sleep(50)
  t.equal(b.frames.length, before, 'after unsubscribing, nothing more')
})

t.test('maxWatchedSessions: a watch of one session more is refused (a send before its turn starts); one already watched, or after one is let go, is not', async t => {
  const app = await gatewayApp(t, { gateway: { maxWatchedSessions: 2 } })
  const socket = await open(t, app)
  const refused = { ok: false, error: { code: 'INVALID_REQUEST', message: /watches 2 sessions/, details: { code: 'FSG_TOO_MANY_WATCHES' } } }
  t.equal((await socket.request('sessions.messages.subscribe', { key: 'w1' })).ok, true)
  t.equal((await socket.request('chat.send', { sessionKey: 'w2', message: 'two', idempotencyKey: 'w2-1' })).ok, true)
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === 'w2-1')
  t.match(await socket.request('chat.send', { sessionKey: 'w3', message: 'three', idempotencyKey: 'w3-1' }), refused, 'chat.send')
  t.equal(await app.sessionGateway.get('agent:main:w3'), undefined, 'the refused send started nothing')
  t.match(await socket.request('sessions.open', { key: 'w3' }), refused, 'sessions.open')
  t.match(await socket.request('chat.startup', { sessionKey: 'w3' }), refused, 'chat.startup')
  t.match(await socket.request('sessions.messages.subscribe', { key: 'w3' }), refused, 'sessions.messages.subscribe')
  t.equal((await socket.request('chat.send', { sessionKey: 'w2', message: 'again', idempotencyKey: 'w2-2' })).ok, true, 'a session it watches takes more sends')
  t.equal((await socket.request('sessions.open', { key: 'w1' })).ok, true, 'and may be opened again')
  await socket.request('sessions.messages.unsubscribe', { key: 'w1' })
  t.equal((await socket.request('sessions.open', { key: 'w3' })).ok, true, 'after one is let go, another may be watched')

  // Asked at once, before any is answered: the limit counts the watches still being made.
  const other = await open(t, app)
  const answers = await Promise.all(['c1', 'c2', 'c3'].map(async key => await other.request('sessions.open', { key })))
  t.same(answers.map(answer => answer.ok).sort(), [false, true, true], 'two of three opened at once')
})

t.test('a turn started outside the gateway protocol streams live to its watchers', async t => {
  const app = await gatewayApp(t)
  const socket = await open(t, app)
  await socket.request('sessions.messages.subscribe', { key: 'agent:main:cross' })
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:cross', agentId: 'main', input: [user('from elsewhere')] })
  await ticket.result
  const final = await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.equal(final.payload.runId, ticket.runId)
  t.same(socket.events('chat').filter(f => f.payload.state === 'delta').map(f => f.payload.deltaText).join(''), 'from elsewhere')
})

t.test('chat.send is idempotent; chat.abort stops a run', async t => {
  const agent = gatedAgent()
  const app = await gatewayApp(t, { agent })
  const socket = await open(t, app)
  const first = await socket.request('chat.send', { sessionKey: 'k', message: 'once', idempotencyKey: 'idem' })
  const again = await socket.request('chat.send', { sessionKey: 'k', message: 'once', idempotencyKey: 'idem' })
  t.same(first.payload, { runId: 'idem', status: 'started' })
  t.same(again.payload, { runId: 'idem', status: 'in_flight' })
  agent.release()
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  const done = await socket.request('chat.send', { sessionKey: 'k', message: 'once', idempotencyKey: 'idem' })
  t.match(done.payload, { runId: 'idem', status: 'done', state: 'final', message: { role: 'assistant' } })
  t.same(agent.started, ['once'], 'one run')

  const other = await open(t, app)
  const attach = await other.request('chat.send', { sessionKey: 'k', message: 'once', idempotencyKey: 'idem' })
  t.equal(attach.payload.status, 'done', 'another connection attaches to the same finished run')

  await socket.request('chat.send', { sessionKey: 'k', message: 'stop me', idempotencyKey: 'long' })
  await agent.waitStarted(2)
  t.same((await socket.request('chat.abort', { sessionKey: 'k', runId: 'long' })).payload, { ok: true, aborted: true, runIds: ['long'] })
  t.match(await socket.next(f => f.event === 'chat' && f.payload.runId === 'long' && f.payload.state !== 'delta'), { payload: { state: 'aborted', stopReason: 'aborted' } })
  t.same((await socket.request('chat.abort', { sessionKey: 'k' })).payload, { ok: true, aborted: false, runIds: [] })
})

t.test('busy: reject answers UNAVAILABLE with the running run and cursor, so a tab can attach', async t => {
  const agent = gatedAgent()
  const app = await gatewayApp(t, { agent, busy: 'reject' })
  const socket = await open(t, app)
  await socket.request('chat.send', { sessionKey: 'k', message: 'first', idempotencyKey: 'r1' })
  const busy = await socket.request('chat.send', { sessionKey: 'k', message: 'second', idempotencyKey: 'r2' })
  t.match(busy, { ok: false, error: { code: 'UNAVAILABLE', retryable: true, details: { code: 'FSG_SESSION_BUSY', runId: 'r1', cursor: /:2$/ } } })
  agent.release()
})

t.test('chat.history pages, reads old generations, and is empty for a new session', async t => {
  const app = await gatewayApp(t)
  const socket = await open(t, app)
  for (const word of ['a', 'b', 'c']) {
    await socket.request('chat.send', { sessionKey: 'h', message: word, idempotencyKey: `h-${word}` })
    await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === `h-${word}`)
  }
  const page = await socket.request('chat.history', { sessionKey: 'h', limit: 4 })
  t.same(page.payload.messages.map((m: any) => m.content[0].text), ['b', 'b', 'c', 'c'])
  t.type(page.payload.before, 'string')
  const older = await socket.request('chat.history', { sessionKey: 'h', limit: 4, before: page.payload.before })
  t.same(older.payload.messages.map((m: any) => m.content[0].text), ['a', 'a'])
  t.equal(older.payload.before, undefined)

  const oldId = page.payload.sessionId
  await socket.request('sessions.reset', { key: 'h' })
  t.same((await socket.request('chat.history', { sessionKey: 'h' })).payload.messages, [])
  t.equal((await socket.request('chat.history', { sessionKey: 'h', sessionId: oldId })).payload.messages.length, 6)

  t.match((await socket.request('chat.history', { sessionKey: 'never' })).payload, { sessionKey: 'agent:main:never', messages: [], cursor: 'new:0' })
  t.match(await socket.request('chat.history', { sessionKey: 'never', sessionId: oldId }), { ok: false, error: { details: { code: 'FSG_SESSION_NOT_FOUND' } } })
})

t.test('attachments become image and file parts of the user message', async t => {
  const app = await gatewayApp(t)
  const socket = await open(t, app)
  await socket.request('chat.send', {
    sessionKey: 'att',
    message: 'look',
    idempotencyKey: 'att-1',
    attachments: [
      { type: 'image', mimeType: 'image/png', content: 'iVBORw0KGgo=' },
      { mimeType: 'image/jpeg', content: '/9j/' },
      { type: 'file', mimeType: 'application/pdf', fileName: 'a.pdf', content: 'JVBERi0=' },
      { content: 'aGk=' }
    ]
  })
  const message = await socket.next(f => f.event === 'session.message' && f.payload.message.role === 'user')
  t.same(message.payload.message.content, [
    { type: 'text', text: 'look' },
    { type: 'image', data: 'iVBORw0KGgo=', mimeType: 'image/png' },
    { type: 'image', data: '/9j/', mimeType: 'image/jpeg' },
    { type: 'file', data: 'JVBERi0=', mimeType: 'application/pdf', filename: 'a.pdf' },
    { type: 'file', data: 'aGk=' }
  ])
  const only = await socket.request('chat.send', { sessionKey: 'att', message: '', idempotencyKey: 'att-2', attachments: [{ type: 'image', content: 'AAAA' }] })
  t.equal(only.ok, true, 'an attachment alone is a message')
  t.match(await socket.request('chat.send', { sessionKey: 'att', message: 'x', idempotencyKey: 'att-3', attachments: [{ content: 42 }] }),
    { ok: false, error: { message: /base64 string/ } })
})

t.test('sessions.*: list, resolve, create, patch, reset, delete, and sessions.changed', async t => {
  const app = await gatewayApp(t, { authorize: ({ principal, sessionKey }) => principal.id === 'token' && !sessionKey.includes('hidden') })
  const socket = await open(t, app)
  t.same((await socket.request('sessions.subscribe')).payload, { subscribed: true })
  t.same((await socket.request('sessions.subscribe')).payload, { subscribed: true }, 'twice is once')

  const created = await socket.request('sessions.create', { key: 'trip', label: 'Trip to Rome' })
  t.match(created.payload, { ok: true, key: 'agent:main:trip', sessionId: /^[0-9a-f-]{36}$/, entry: { label: 'Trip to Rome', displayName: 'Trip to Rome' } })
  const fresh = await socket.request('sessions.create', { agentId: 'beta' })
  t.match(fresh.payload.key, /^agent:beta:openresponses:/)
  await app.sessionGateway.create('agent:main:hidden', 'main')

  await socket.request('chat.send', { sessionKey: 'trip', message: 'plan it', idempotencyKey: 't-1' })
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')

  const list = await socket.request('sessions.list', { limit: 10, includeGlobal: true })
  t.same(list.payload.sessions.map((s: any) => s.key).sort(), ['agent:beta:' + fresh.payload.key.slice('agent:beta:'.length), 'agent:main:trip'].sort(), 'not the hidden one')
  t.match(list.payload.sessions.find((s: any) => s.key === 'agent:main:trip'), { label: 'Trip to Rome', lastMessagePreview: 'plan it', agentId: 'main' })
  t.equal(list.payload.count, 2)
  const page = await socket.request('sessions.list', { limit: 1 })
  t.type(page.payload.cursor, 'string')
  const rest = await socket.request('sessions.list', { limit: 1, cursor: page.payload.cursor })
  t.equal(rest.payload.sessions.length, 1)
  t.same((await socket.request('sessions.list', { search: 'rome' })).payload.sessions.map((s: any) => s.key), ['agent:main:trip'])
  t.same((await socket.request('sessions.list', { agentId: 'BETA' })).payload.sessions.length, 1)
  t.same((await socket.request('sessions.list', { label: 'Trip to Rome' })).payload.count, 1)

  t.match((await socket.request('sessions.resolve', { key: 'TRIP' })).payload, { ok: true, key: 'agent:main:trip', agentId: 'main', displayName: 'Trip to Rome' })
  t.same((await socket.request('sessions.resolve', { key: 'nothing' })).payload, { ok: false, candidates: [] })
  t.match((await socket.request('sessions.resolve', { sessionId: created.payload.sessionId })).payload, { ok: true, key: 'agent:main:trip' })
  const hidden = await app.sessionGateway.get('agent:main:hidden')
  t.same((await socket.request('sessions.resolve', { sessionId: hidden?.sessionId })).payload, { ok: false, candidates: [] }, 'a forbidden session looks absent')
  t.same((await socket.request('sessions.resolve', { sessionId: 'no-such-id' })).payload, { ok: false, candidates: [] })
  t.match((await socket.request('sessions.resolve', { label: 'Trip to Rome' })).payload, { ok: true, key: 'agent:main:trip' })
  await socket.request('sessions.patch', { key: fresh.payload.key, label: 'Trip to Rome' })
  t.match((await socket.request('sessions.resolve', { label: 'Trip to Rome' })).payload, { ok: false, candidates: [{}, {}] }, 'two with that label')

  t.match((await socket.request('sessions.patch', { key: 'trip', label: 'Rome' })).payload, { ok: true, key: 'agent:main:trip', entry: { label: 'Rome' } })
  t.match((await socket.request('sessions.patch', { key: 'trip', label: null })).payload.entry, { key: 'agent:main:trip' })
  t.equal((await socket.request('sessions.patch', { key: 'trip', label: null })).payload.entry.label, undefined, 'null clears the label')
  t.equal((await socket.request('sessions.patch', { key: 'trip', pinned: true })).ok, true, 'OpenClaw fields we do not keep are accepted')

  const reset = await socket.request('sessions.reset', { key: 'trip', reason: 'new' })
  t.not(reset.payload.entry.sessionId, created.payload.sessionId)
  t.same((await socket.request('sessions.delete', { key: 'trip', deleteTranscript: true })).payload, { ok: true, key: 'agent:main:trip', deleted: true, archived: [] })
  t.same((await socket.request('sessions.delete', { key: 'trip' })).payload.deleted, false)
  t.match(await socket.request('sessions.patch', { key: 'trip', label: 'x' }), { ok: false, error: { details: { code: 'FSG_SESSION_NOT_FOUND' } } })

  const reasons = socket.events('sessions.changed').filter(f => f.payload.sessionKey === 'agent:main:trip').map(f => f.payload.reason)
  t.same(reasons, ['created', 'updated', 'updated', 'updated', 'updated', 'updated', 'updated', 'reset', 'deleted'])
  t.notOk(socket.events('sessions.changed').some(f => f.payload.sessionKey === 'agent:main:hidden'), 'not for sessions the principal may not read')
  t.same((await socket.request('sessions.unsubscribe')).payload, { subscribed: false })
  await app.sessionGateway.create('agent:main:later', 'main')
  await sleep(30)
  t.notOk(socket.events('sessions.changed').some(f => f.payload.sessionKey === 'agent:main:later'))
})

t.test('sessions.open: history, cursor and the running turn from one instant', async t => {
  const agent = gatedAgent(text => [{ type: 'text', delta: `${text}-1` }, { type: 'text', delta: `${text}-2` }])
  const app = await gatewayApp(t, { agent })
  const writer = await open(t, app)
  await writer.request('chat.send', { sessionKey: 'o', message: 'q1', idempotencyKey: 'o-1' })
  agent.release()
  await writer.next(f => f.event === 'chat' && f.payload.state === 'final')
  await writer.request('chat.send', { sessionKey: 'o', message: 'q2', idempotencyKey: 'o-2' })
  await agent.waitStarted(2)

  const reader = await open(t, app)
  const opened = await reader.request('sessions.open', { key: 'o', limit: 10 })
  t.match(opened.payload, { key: 'agent:main:o', agentId: 'main', replay: 'live', running: { runId: 'o-2', text: '' } })
  t.same(opened.payload.messages.map((m: any) => m.role), ['user', 'assistant', 'user'])
  agent.release()
  await reader.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.same(texts(reader.frames.filter(f => f.event === 'chat' || f.event === 'session.message')), ['chat:delta', 'chat:delta', 'session.message:assistant', 'chat:final'])

  const unborn = await reader.request('sessions.open', { key: 'brand-new' })
  t.match(unborn.payload, { key: 'agent:main:brand-new', cursor: 'new:0', messages: [], replay: 'live' })
  t.equal(unborn.payload.sessionId, undefined)
})

t.test('a connection that drops mid-answer and reopens with since sees every event exactly once', async t => {
  const app = await gatewayApp(t, { agent: echoAgent({ delayMs: 15 }) })
  const words = Array.from({ length: 30 }, (_, i) => `w${i}`).join(' ')
  const first = await open(t, app, { caps: ['session-cursor'] })
  await first.request('sessions.open', { key: 'resume' })
  await first.request('chat.send', { sessionKey: 'resume', message: words, idempotencyKey: 'res-1' })
  await first.next(f => f.event === 'chat' && f.payload.state === 'delta' && f.payload.deltaText === ' w9')
  first.socket.terminate()
  const seen = first.frames.filter(f => (f.event === 'chat' || f.event === 'session.message') && f.payload.cursor !== undefined)
  const last = seen.at(-1)?.payload.cursor as string

  await sleep(60) // more of the answer goes by while nobody listens
  const second = await open(t, app, { caps: ['session-cursor'] })
  const reopened = await second.request('sessions.open', { key: 'resume', since: last })
  t.equal(reopened.payload.replay, 'replay')
  await second.next(f => f.event === 'chat' && f.payload.state === 'final')
  const all = [...seen, ...second.frames.filter(f => f.event === 'chat' || f.event === 'session.message')]
  const cursors = all.map(f => f.payload.cursor as string)
  t.equal(new Set(cursors).size, cursors.length, 'no event twice')
  const text = all.filter(f => f.event === 'chat' && f.payload.state === 'delta').map(f => f.payload.deltaText).join('')
  t.equal(text, words, 'no delta lost')
  t.same(all.filter(f => f.event === 'session.message').map(f => f.payload.message.role), ['user', 'assistant'])
})

t.test('reopening after the replay buffer moved on: the committed rows, then the running text', async t => {
  const agent = gatedAgent(text => text.split(' ').map((w, i) => ({ type: 'text' as const, delta: i === 0 ? w : ` ${w}` })))
  const app = await gatewayApp(t, { agent, replay: 2 })
  const socket = await open(t, app, { caps: ['session-cursor'] })
  await socket.request('sessions.open', { key: 'c' })
  await socket.request('chat.send', { sessionKey: 'c', message: 'a b c d', idempotencyKey: 'c-1' })
  agent.release()
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  const sinceQuestion = socket.events('session.message')[0]?.payload.cursor as string
  await socket.request('chat.send', { sessionKey: 'c', message: 'e f', idempotencyKey: 'c-2' })
  await agent.waitStarted(2)

  const late = await open(t, app, { caps: ['session-cursor'] })
  const caught = await late.request('sessions.open', { key: 'c', since: sinceQuestion })
  t.equal(caught.payload.replay, 'catchup')
  const snapshot = await late.next(f => f.event === 'chat' && f.payload.replace === true)
  t.match(snapshot.payload, { runId: 'c-2', state: 'delta', deltaText: '' })
  t.same(late.frames.filter(f => f.event === 'session.message' || f.event === 'chat').map(f => [f.event, f.payload.message.role, f.payload.state]),
    [['session.message', 'assistant', undefined], ['chat', 'assistant', 'final'], ['session.message', 'user', undefined], ['chat', 'assistant', 'delta']],
    'the answer and the end of the first run, the next question, then the running text')
  agent.release()
  await late.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === 'c-2')

  const stranger = await open(t, app)
  const reset = await stranger.request('sessions.open', { key: 'c', since: 'other-epoch:3', limit: 2 })
  t.equal(reset.payload.replay, 'reset')
  t.equal(reset.payload.messages.length, 2, 'fresh history in the answer')
})

t.test('reset and delete reach the watchers', async t => {
  const app = await gatewayApp(t)
  const socket = await open(t, app)
  await socket.request('chat.send', { sessionKey: 'r', message: 'x', idempotencyKey: 'r-1' })
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  const { payload } = await socket.request('sessions.reset', { key: 'r' })
  t.match(await socket.next(f => f.event === 'session.reset'), { payload: { sessionKey: 'agent:main:r', deleted: false, sessionId: payload.entry.sessionId, cursor: `${String(payload.entry.sessionId)}:0` } })
  await socket.request('sessions.delete', { key: 'r' })
  t.match(await socket.next(f => f.event === 'session.reset' && f.payload.deleted === true), { payload: { cursor: 'new:0' } })
})

t.test('a closed connection lets go: none of its listeners remains, and its sessions can leave memory', async t => {
  let asked = 0 // authorize runs for each sessions.changed a subscribed connection might be sent
  const app = await gatewayApp(t, { maxIdleSessions: 0, authorize: () => { asked++; return true } })
  const gw = app.sessionGateway
  const socket = await open(t, app)
  t.equal((await socket.request('chat.send', { sessionKey: 'sent', message: 'one two', idempotencyKey: 'c-1' })).ok, true)
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.equal((await socket.request('sessions.open', { key: 'opened' })).ok, true)
  await (await gw.send({ sessionKey: 'agent:main:opened', agentId: 'main', input: [user('three')] })).result
  t.equal((await socket.request('sessions.subscribe')).ok, true)

  // A session still in memory replays exactly; one that was dropped can only catch up from the store.
  const inMemory = async (key: string): Promise<boolean> => {
    const epoch = (await gw.get(key))?.cursor.split(':')[0] as string
    const sub = await gw.subscribe(key, { since: `${epoch}:1` }, () => {})
    sub.unsubscribe()
    return sub.replay.kind === 'replay'
  }
  const keys = ['agent:main:sent', 'agent:main:opened']
  for (const key of keys) t.equal(await inMemory(key), true, `${key}: held while the connection watches it`)

  socket.close()
  await socket.closedWith()
  // The server learns of the close a moment after the client: wait for it, boundedly.
  let held = keys
  for (let i = 0; i < 100 && held.length > 0; i++) {
    held = (await Promise.all(keys.map(async key => await inMemory(key) ? [key] : []))).flat()
    if (held.length > 0) await sleep(10)
  }
  t.same(held, [], 'no watcher of the closed connection keeps a session in memory')
  asked = 0
  await (await gw.send({ sessionKey: 'agent:main:sent', agentId: 'main', input: [user('after')] })).result
  await gw.patch('agent:main:opened', { label: 'changed' })
  t.equal(asked, 0, 'and no change listener of it is still asking who may hear of changes')
})

t.test('shutting down closes sockets with 1012 and records running turns as aborted', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  await listen(app)
  const socket = await GatewaySocket.open(app)
  await socket.request('chat.send', { sessionKey: 'bye', message: 'x', idempotencyKey: 'bye-1' })
  await agent.waitStarted(1)
  const history = app.sessionGateway.store
  await app.close()
  t.match(await socket.closedWith(), { code: 1012 })
  const page = await history.read('agent:main:bye', { limit: 5 })
  t.same(page.entries.map(e => [e.message?.role, e.runState]), [['user', undefined], ['assistant', 'aborted']])
})

t.test('the gateway can be turned off, or moved', async t => {
  const off = await gatewayApp(t, { gateway: false })
  t.equal(await refusedUpgrade(off, '/gateway', { authorization: `Bearer ${TOKEN}` }), 404)

  const moved = await gatewayApp(t, { gateway: { path: '/ws' } })
  const port = (moved.server.address() as { port: number }).port
  const other = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { authorization: `Bearer ${TOKEN}` } })
  const [challenge] = await once(other, 'message') as [Buffer]
  t.equal(JSON.parse(String(challenge)).event, 'connect.challenge')
  other.close()
})

t.test('with cursors, every position reaches the watcher exactly once: runs, reasoning and tool calls are frames too', async t => {
  const tools = [{ type: 'function' as const, name: 'lookup', parameters: { type: 'object' } }]
  const app = await gatewayApp(t, {
    agent: {
      async * respond (request) {
        yield { type: 'reasoning', delta: 'Hmm' }
        yield { type: 'reasoning', delta: ', let me see.' }
        yield { type: 'text', delta: 'Looking' }
        if (request.tools.length > 0) yield { type: 'function_call', name: 'lookup', arguments: { q: 'x' }, callId: 'call-1' }
        yield { type: 'text', delta: ' it up.' }
      }
    }
  })
  const socket = await open(t, app, { caps: ['session-cursor'] })
  const opened = await socket.request('sessions.open', { key: 'positions' })
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:positions', agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: 'go' }], timestamp: Date.now() }], tools, model: 'gpt-x' })
  await ticket.result
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  const positioned = socket.frames.filter(f => f.type === 'event' && f.payload?.cursor !== undefined && f.event !== 'session.reset')
  const seqs = positioned.map(f => Number(String(f.payload.cursor).split(':').at(-1)))
  const start = Number(String(opened.payload.cursor).split(':').at(-1))
  t.same(seqs, Array.from({ length: seqs.length }, (_, i) => start + 1 + i), 'positions follow one another with no gap and no repeat')
  t.same(positioned.map(f => f.event === 'agent' ? `agent:${f.payload.stream as string}` : `${f.event as string}:${(f.payload.state ?? f.payload.message?.role) as string}`), [
    'session.message:user', 'agent:lifecycle', 'agent:thinking', 'agent:thinking', 'chat:delta', 'agent:tool', 'chat:delta', 'session.message:assistant', 'chat:final'
  ])
  t.match(positioned.find(f => f.event === 'agent' && f.payload.stream === 'lifecycle')?.payload, { runId: ticket.runId, data: { phase: 'start', model: 'gpt-x' } })
  t.match(positioned.find(f => f.event === 'agent' && f.payload.stream === 'tool')?.payload, { runId: ticket.runId, data: { phase: 'start', name: 'lookup', toolCallId: 'call-1', args: { q: 'x' }, sessionKey: 'agent:main:positions' } })
  t.match(positioned.filter(f => f.event === 'agent' && f.payload.stream === 'thinking').map(f => f.payload.data), [{ delta: 'Hmm', text: 'Hmm' }, { delta: ', let me see.', text: 'Hmm, let me see.' }])

  // Without cursors the same frames come, each as OpenClaw's schema has it (checked as they arrive).
  const plain = await open(t, app)
  await plain.request('sessions.open', { key: 'positions' })
  await app.sessionGateway.send({ sessionKey: 'agent:main:positions', agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: 'again' }], timestamp: Date.now() }] })
  await plain.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.same(plain.events('agent').map(f => [f.payload.stream, f.payload.seq]), [['lifecycle', 1], ['thinking', 2], ['thinking', 3]], 'agent frames count their own seq per run')
})
