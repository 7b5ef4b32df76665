// What OpenClaw's own Control UI asks of a gateway, at the protocol level: the methods it
// calls on load and when it opens a chat, and the shapes it reads from their answers.
// Every answer is checked against OpenClaw's schema as it arrives (gateway-frames.ts).
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryStore, openAIAgent, openClawAgent, type Agent } from '../lib/index.js'
import { GatewaySocket, listen, openChecked, type Frame } from './gateway-frames.js'
import { withinBytes } from '../lib/transports/openclaw/history-budget.js'
import { buildApp, gatedAgent, user } from './helpers.js'

async function gatewayApp (t: Test, options: Parameters<typeof buildApp>[1] = {}): Promise<FastifyInstance> {
  const app = await buildApp(t, options)
  await listen(app)
  return app
}

async function open (t: Test, app: FastifyInstance): Promise<GatewaySocket> {
  return await openChecked(t, app)
}

async function ok (socket: GatewaySocket, method: string, params: unknown): Promise<any> {
  const res = await socket.request(method, params)
  if (res.ok !== true) throw new Error(`${method}: ${JSON.stringify(res.error)}`)
  return res.payload
}

function sessionFrames (socket: GatewaySocket): Frame[] {
  return socket.frames.filter(f => f.event === 'chat' || f.event === 'session.message')
}

/** A store holding `agent:main:<key>` with `count` user messages `m0`… of about `size` characters each. */
async function storeWith (key: string, count: number, size = 10): Promise<MemoryStore> {
  const store = new MemoryStore()
  await store.ensure(`agent:main:${key}`, 'main')
  await store.append(`agent:main:${key}`, Array.from({ length: count }, (_, i) => ({
    type: 'message', id: `m${i}`, parentId: null, timestamp: new Date(0).toISOString(), message: { ...user(`${i}:`.padEnd(size, 'x')), timestamp: 0 }
  })))
  return store
}

const upstream = openAIAgent({ baseURL: 'http://127.0.0.1:9/v1', model: 'gpt-test' })

t.test('defaults: sessions.list, chat.history and chat.startup say the model new turns use, when the agent knows it', async t => {
  const socket = await open(t, await gatewayApp(t, { agent: upstream }))
  const defaults = { modelProvider: '127.0.0.1:9', model: 'gpt-test', modelSelectionTarget: 'session' }
  t.same((await ok(socket, 'sessions.list', {})).defaults, defaults)
  t.same((await ok(socket, 'chat.history', { sessionKey: 'd' })).defaults, defaults)
  t.same((await ok(socket, 'chat.startup', { sessionKey: 'd' })).defaults, defaults)

  const echoing = await open(t, await gatewayApp(t))
  t.same((await ok(echoing, 'sessions.list', {})).defaults, { modelProvider: 'fastify-session-gateway', model: 'echo', modelSelectionTarget: 'session' }, 'the echo agent is its own model')
  t.same(openClawAgent({ url: 'http://127.0.0.1:18789/' }).model, { id: 'openclaw', provider: '127.0.0.1:18789' }, 'openClawAgent asks OpenClaw for its agent')

  const silent: Agent = { async * respond () {} }
  const quiet = await open(t, await gatewayApp(t, { agent: silent }))
  t.same((await ok(quiet, 'sessions.list', {})).defaults, { modelSelectionTarget: 'session' }, 'an agent that does not say: no model, still an object')
  t.same((await ok(quiet, 'chat.startup', { sessionKey: 'd' })).metadata, { models: [], commands: [] })
  t.same(await ok(quiet, 'agents.list', {}), { defaultId: 'main', mainKey: 'main', scope: 'per-sender', agents: [{ id: 'main' }] }, 'no allow-list: the default agent')
})

t.test('chat.startup: history, row and running turn from one instant; the turn goes on streaming once, and a later subscribe adds nothing twice', async t => {
  const agent = gatedAgent(text => [{ type: 'text', delta: `${text}-1` }, { type: 'text', delta: `${text}-2` }])
  const app = await gatewayApp(t, { agent })
  const writer = await open(t, app)
  await writer.request('chat.send', { sessionKey: 'st', message: 'q1', idempotencyKey: 'st-1' })
  agent.release()
  await writer.next(f => f.event === 'chat' && f.payload.state === 'final')
  await writer.request('chat.send', { sessionKey: 'st', message: 'q2', idempotencyKey: 'st-2' })
  await agent.waitStarted(2)

  const ui = await open(t, app)
  const startup = await ok(ui, 'chat.startup', { sessionKey: 'st', limit: 80, maxBytes: 262144 })
  t.match(startup, {
    sessionKey: 'agent:main:st',
    hasMore: false,
    totalMessages: 3,
    pendingInputs: { items: [], total: 0 },
    sessionInfo: { key: 'agent:main:st', kind: 'direct', agentId: 'main', status: 'running', hasActiveRun: true, activeRunIds: ['st-2'] },
    metadata: { models: [], commands: [] },
    inFlightRun: { runId: 'st-2', text: '' }
  })
  t.same(startup.messages.map((m: any) => m.role), ['user', 'assistant', 'user'])
  t.equal(startup.sessionId, startup.sessionInfo.sessionId)

  // What the Control UI does next: subscribe. The watch chat.startup began is kept.
  const subscribed = await ok(ui, 'sessions.messages.subscribe', { key: 'agent:main:st', includeApprovals: true })
  t.equal(subscribed.cursor, startup.cursor, 'nothing happened in between: the same position')
  agent.release()
  await ui.next(f => f.event === 'chat' && f.payload.state === 'final')
  await writer.request('chat.send', { sessionKey: 'st', message: 'q3', idempotencyKey: 'st-3' })
  agent.release()
  await ui.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === 'st-3')
  await sleep(20)
  t.same(sessionFrames(ui).map(f => `${String(f.event)}:${String(f.payload.runId)}:${String(f.payload.state ?? f.payload.message.role)}`), [
    'chat:st-2:delta', 'chat:st-2:delta', 'session.message:st-2:assistant', 'chat:st-2:final',
    'session.message:st-3:user', 'chat:st-3:delta', 'chat:st-3:delta', 'session.message:st-3:assistant', 'chat:st-3:final'
  ], 'every event once: none before the snapshot, none twice after the subscribe')

  const unborn = await ok(ui, 'chat.startup', { sessionKey: 'nothing-yet' })
  t.match(unborn, { messages: [], hasMore: false, totalMessages: 0, cursor: 'new:0', sessionInfo: { key: 'agent:main:nothing-yet', kind: 'direct', updatedAt: null } })
  t.equal(unborn.sessionId, undefined)
  t.equal(unborn.inFlightRun, undefined)
  t.match(await ui.request('chat.startup', { sessionKey: 'st', maxBytes: 1023 }), { ok: false, error: { message: /params\.maxBytes/ } })
})

t.test('maxBytes: the newest messages that fit, at least one; before pages back to exactly the ones left out', async t => {
  const store = await storeWith('big', 40, 200)
  const socket = await open(t, await gatewayApp(t, { store }))
  const bytes = (messages: unknown[]): number => Buffer.byteLength(JSON.stringify(messages))

  const page = await ok(socket, 'chat.history', { sessionKey: 'big', maxBytes: 2048 })
  t.ok(bytes(page.messages) <= 2048, `${bytes(page.messages)} bytes`)
  t.ok(page.messages.length > 1, 'as many as fit')
  t.equal(page.hasMore, true)
  const seen: string[] = page.messages.map((m: any) => m.id)
  let before: string | undefined = page.before
  for (let pages = 0; before !== undefined && pages < 40; pages++) {
    const older = await ok(socket, 'chat.history', { sessionKey: 'big', maxBytes: 2048, before })
    t.ok(bytes(older.messages) <= 2048)
    seen.unshift(...older.messages.map((m: any) => m.id))
    before = older.before
  }
  t.same(seen, Array.from({ length: 40 }, (_, i) => `m${i}`), 'every message once, in order, across the pages')

  const all = await ok(socket, 'chat.history', { sessionKey: 'big' })
  t.equal(all.messages.length, 40, 'without maxBytes, the limit alone')

  const huge = await storeWith('huge', 3, 5000)
  const tight = await open(t, await gatewayApp(t, { store: huge }))
  const one = await ok(tight, 'chat.history', { sessionKey: 'huge', maxBytes: 1024 })
  t.same(one.messages.map((m: any) => m.id), ['m2'], 'a message bigger than the budget is still sent, alone')
  t.equal(one.hasMore, true)

  const startup = await ok(socket, 'chat.startup', { sessionKey: 'big', maxBytes: 2048 })
  t.same(startup.messages.map((m: any) => m.id), page.messages.map((m: any) => m.id), 'chat.startup honours it the same way')
  t.same([startup.hasMore, startup.before, startup.totalMessages], [true, page.before, undefined])
  t.match(await socket.request('chat.history', { sessionKey: 'big', maxBytes: 100 }), { ok: false, error: { message: /params\.maxBytes/ } })
  const limited = await ok(socket, 'chat.startup', { sessionKey: 'big', limit: 5 })
  t.same([limited.messages.length, limited.hasMore, typeof limited.before], [5, true, 'string'], 'the limit alone leaves older ones behind a before too')
})

t.test('maxBytes on a session with turns: entries that are not messages come along free, and chat.startup pages like chat.history', async t => {
  const app = await gatewayApp(t)
  const socket = await open(t, app)
  for (let i = 0; i < 6; i++) {
    await ok(socket, 'chat.send', { sessionKey: 'turns', message: `${i} `.padEnd(300, 'y'), idempotencyKey: `t-${i}` })
    await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === `t-${i}`)
  }
  await app.sessionGateway.store.append('agent:main:turns', [{ type: 'custom', id: 'note', parentId: null, timestamp: new Date().toISOString() }])
  const startup = await ok(socket, 'chat.startup', { sessionKey: 'turns', maxBytes: 2048 })
  const history = await ok(socket, 'chat.history', { sessionKey: 'turns', maxBytes: 2048 })
  t.same(startup.messages, history.messages)
  t.ok(startup.messages.length >= 2 && startup.messages.length < 12, `${String(startup.messages.length)} of 12 messages`)
  const rest = await ok(socket, 'chat.history', { sessionKey: 'turns', before: startup.before })
  const seqs: number[] = [...rest.messages, ...startup.messages].map((m: any) => m.__openclaw.seq)
  t.equal(seqs.length, 12, 'nothing lost between the pages')
  t.ok(seqs.every((seq, i) => i === 0 || seq > (seqs[i - 1] as number)), 'and nothing twice, in order')
})

t.test('maxBytes: a page that keeps growing while it is read again is sent as last read, whole', async t => {
  const entry = (id: string): any => ({ type: 'message', id, parentId: null, timestamp: '', message: user('x'.repeat(600)) })
  const grown = { entries: [entry('a'), entry('b'), entry('c')] }
  let reads = 0
  const page = await withinBytes({ entries: [entry('a'), entry('b')] }, 1024, async () => { reads++; return grown })
  t.equal(reads, 4, 'a bounded number of reads')
  t.equal(page, grown)
})

t.test('__openclaw on history and session.message: id, position, run, and the key that replaces a client\'s unconfirmed copy', async t => {
  const app = await gatewayApp(t)
  const socket = await open(t, app)
  await ok(socket, 'chat.send', { sessionKey: 'oc', message: 'hello there', idempotencyKey: 'run-1' })
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  const events = socket.events('session.message').map(f => f.payload)
  const history = (await ok(socket, 'chat.history', { sessionKey: 'oc' })).messages
  t.equal(history.length, 2)
  const [asked, answered] = history
  t.match(asked, { role: 'user', id: events[0].messageId, __openclaw: { id: events[0].messageId, seq: events[0].messageSeq, runId: 'run-1', idempotencyKey: 'run-1:user' } })
  t.match(answered, { role: 'assistant', id: events[1].messageId, __openclaw: { id: events[1].messageId, seq: events[1].messageSeq, runId: 'run-1', idempotencyKey: 'run-1' } })
  t.same(events.map(payload => payload.message), history, 'the events carry the same messages')
})

t.test('sessions.resolve takes a deep link\'s reference: its key (the slug only names it)', async t => {
  const store = await storeWith('linked', 1)
  const socket = await open(t, await gatewayApp(t, { store }))
  t.same(await ok(socket, 'sessions.resolve', { reference: { key: 'agent:main:linked', slug: 'linked' }, agentId: 'main', includeGlobal: true }), { ok: true, key: 'agent:main:linked', agentId: 'main' })
  t.same(await ok(socket, 'sessions.resolve', { reference: { key: 'agent:main:nowhere' } }), { ok: false, candidates: [] })
  t.match(await socket.request('sessions.resolve', { reference: { slug: 'linked' } }), { ok: false, error: { message: /params\.reference\.key/ } })
})

t.test('sessions.list: spawnedBy lists no children (there are none); other filters still apply', async t => {
  const store = await storeWith('parent', 1)
  const socket = await open(t, await gatewayApp(t, { store }))
  t.equal((await ok(socket, 'sessions.list', {})).count, 1)
  t.match(await ok(socket, 'sessions.list', { spawnedBy: 'agent:main:parent', limit: 10000, includeGlobal: false, configuredAgentsOnly: true }), { count: 0, sessions: [] })
})

t.test('agents, identity, models, auth status, describe and metadata: what the gateway knows, in OpenClaw\'s shapes', async t => {
  const agent = gatedAgent()
  const app = await gatewayApp(t, { agent: Object.assign(agent, { model: { id: 'm-1', provider: 'lab' } }), agents: ['ops', 'dev'], defaultAgentId: 'ops' })
  const socket = await open(t, app)
  t.same(await ok(socket, 'agents.list', {}), {
    defaultId: 'ops', mainKey: 'main', scope: 'per-sender', agents: [{ id: 'ops', model: { primary: 'lab/m-1' } }, { id: 'dev', model: { primary: 'lab/m-1' } }]
  })
  t.same(await ok(socket, 'agent.identity.get', {}), { agentId: 'ops' })
  t.same(await ok(socket, 'agent.identity.get', { agentId: 'DEV' }), { agentId: 'dev' })
  t.same(await ok(socket, 'agent.identity.get', { sessionKey: 'agent:dev:x' }), { agentId: 'dev' }, 'the agent of the session named')
  t.same(await ok(socket, 'agent.identity.get', { sessionKey: '', agentId: 'dev' }), { agentId: 'dev' })
  t.match(await socket.request('agent.identity.get', { agentId: 'nobody' }), { ok: false, error: { code: 'INVALID_REQUEST', details: { code: 'FSG_UNKNOWN_AGENT' } } })
  t.same(await ok(socket, 'models.list', { view: 'configured', sessionKey: 'agent:dev:x', agentId: 'dev' }), { models: [{ id: 'm-1', name: 'm-1', provider: 'lab', available: true }] })
  t.same(await ok(socket, 'models.list', {}), { models: [{ id: 'm-1', name: 'm-1', provider: 'lab', available: true }] })
  t.match(await socket.request('models.list', { agentId: 'nobody' }), { ok: false, error: { details: { code: 'FSG_UNKNOWN_AGENT' } } })
  t.match(await ok(socket, 'models.authStatus', { agentId: 'ops' }), { providers: [] })
  t.match(await socket.request('models.authStatus', { agentId: 'nobody' }), { ok: false })
  t.same(await ok(socket, 'chat.metadata', { agentId: 'dev' }), { models: [{ id: 'm-1', name: 'm-1', provider: 'lab', available: true }], commands: [] })
  t.same(await ok(socket, 'chat.metadata', { sessionKey: 'x' }), { models: [{ id: 'm-1', name: 'm-1', provider: 'lab', available: true }], commands: [] })
  t.match(await socket.request('chat.metadata', { sessionKey: 'agent:nobody:x' }), { ok: false, error: { details: { code: 'FSG_UNKNOWN_AGENT' } } })

  t.same(await ok(socket, 'sessions.describe', { key: 'agent:ops:main' }), { session: null }, 'a session that does not exist yet')
  await ok(socket, 'chat.send', { sessionKey: 'main', message: 'hi', idempotencyKey: 'd-1' })
  await agent.waitStarted(1)
  const running = await ok(socket, 'sessions.describe', { key: 'main', includeLastMessage: true })
  t.match(running.session, { key: 'agent:ops:main', kind: 'direct', isMain: true, status: 'running', activeRunIds: ['d-1'] })
  agent.release()
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  const done = await ok(socket, 'sessions.describe', { key: 'main' })
  t.equal(done.session.status, undefined)
  t.equal(done.session.lastMessagePreview, 'hi')
})
