import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { OpenClawConnection, type OpenClawConnectionOptions, type OpenClawSocket } from '../lib/transports/openclaw/connection.js'
import { MemoryStore, type SessionService } from '../lib/index.js'
import { buildApp, gatedAgent, TOKEN, user } from './helpers.js'

// The protocol core, driven without any socket: what it writes is what a client would read.

interface Written { type: string, id?: string, ok?: boolean, event?: string, payload?: any, error?: any, seq?: number }

class FakeSocket implements OpenClawSocket {
  readonly frames: Written[] = []
  closed: { code: number, reason: string } | undefined
  bufferedAmount = 0
  /** Added to `bufferedAmount` by every send: a network that takes its time. */
  growth = 0
  failSends = false

  send (data: string): void {
    if (this.failSends) throw new Error('socket went away')
    this.bufferedAmount += this.growth
    this.frames.push(JSON.parse(data) as Written)
  }

  close (code: number, reason: string): void {
    this.closed = { code, reason }
  }

  answer (id: string): Written | undefined {
    return this.frames.find(frame => frame.type === 'res' && frame.id === id)
  }

  chats (): Written[] {
    return this.frames.filter(frame => frame.event === 'chat')
  }
}

const LIMIT = 1000

/** The protocol core's options as the plugin would give them, with `overrides`. */
function connectionOptions (overrides: Partial<OpenClawConnectionOptions> = {}): OpenClawConnectionOptions {
  return { tickIntervalMs: 30_000, maxPayload: 64 * 1024, maxBufferedBytes: LIMIT, maxQueuedBytes: 4 * LIMIT, handshakeTimeoutMs: 5000, maxWatchedSessions: 256, serverVersion: 'test', defaultAgentId: 'main', mainKey: 'main', ...overrides }
}

async function connected (
  t: Test,
  options: Parameters<typeof buildApp>[1] = {},
  caps: string[] = [],
  wrap: (sessions: SessionService) => SessionService = sessions => sessions
): Promise<{ app: FastifyInstance, socket: FakeSocket, connection: OpenClawConnection, until: (match: (frame: Written) => boolean) => Promise<Written> }> {
  const app = await buildApp(t, options)
  const socket = new FakeSocket()
  const connection = new OpenClawConnection(socket, {
    sessions: wrap(app.sessionGateway),
    principal: null,
    authenticate: async credentials => {
      if (credentials.token !== TOKEN) throw new Error('not this token')
      return { id: 'tester' }
    },
    defaultHints: {},
    options: connectionOptions(),
    logger: app.log
  })
  t.teardown(() => connection.dispose())
  connection.open()
  connection.receive(JSON.stringify({ type: 'req', id: 'c', method: 'connect', params: { minProtocol: 4, maxProtocol: 4, client: { id: 'test', version: '1', platform: 'node', mode: 'backend' }, auth: { token: TOKEN }, caps } }), false)
  const until = async (match: (frame: Written) => boolean): Promise<Written> => {
    for (let i = 0; i < 500; i++) {
      const found = socket.frames.find(match)
      if (found !== undefined) return found
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    throw new Error('the frame never came')
  }
  await until(frame => frame.id === 'c')
  return { app, socket, connection, until }
}

function request (connection: OpenClawConnection, id: string, method: string, params: unknown): void {
  connection.receive(JSON.stringify({ type: 'req', id, method, params }), false)
}

/** Resolves once the session's running turn has ended (its events all produced). */
async function runEnded (app: FastifyInstance, key: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { running } = await app.sessionGateway.open(`agent:main:${key}`, { limit: 1 }, () => {}).then(opened => { opened.subscription.unsubscribe(); return opened })
    if (running === undefined) return
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  throw new Error('the turn never ended')
}

t.test('a slow consumer gets its deltas merged, never loses the final, and catches up when it drains', async t => {
  const agent = gatedAgent(() => ['one', ' two', ' three', ' four'].map(delta => ({ type: 'text' as const, delta })))
  const { app, socket, connection, until } = await connected(t, { agent })
  request(connection, 'o', 'sessions.open', { key: 'slow' })
  await until(frame => frame.id === 'o')
  socket.bufferedAmount = LIMIT + 1 // the network is not keeping up
  request(connection, 's', 'chat.send', { sessionKey: 'slow', message: 'go', idempotencyKey: 'slow-1' })
  await until(frame => frame.id === 's')
  agent.release()
  await runEnded(app, 'slow')
  socket.bufferedAmount = 0
  connection.drained()
  const final = await until(frame => frame.event === 'chat' && frame.payload.state === 'final')
  const chats = socket.chats()
  t.same(chats.map(frame => frame.payload.state), ['delta', 'final'], 'the waiting deltas went out as one, just before the final')
  t.equal(chats[0]?.payload.deltaText, 'one two three four')
  t.same(chats.map(frame => frame.payload.seq), [1, 2], 'per-run seq still counts every frame sent')
  t.equal(final.payload.message.content[0].text, 'one two three four')
})

t.test('with cursors, a merged delta says which positions it stands for, so nothing looks lost', async t => {
  const agent = gatedAgent(() => ['one', ' two', ' three'].map(delta => ({ type: 'text' as const, delta })))
  const { app, socket, connection, until } = await connected(t, { agent }, ['session-cursor'])
  request(connection, 'o', 'sessions.open', { key: 'slow' })
  await until(frame => frame.id === 'o')
  socket.bufferedAmount = LIMIT + 1
  request(connection, 's', 'chat.send', { sessionKey: 'slow', message: 'go', idempotencyKey: 'slow-1' })
  await until(frame => frame.id === 's')
  agent.release()
  await runEnded(app, 'slow')
  socket.bufferedAmount = 0
  connection.drained()
  await until(frame => frame.event === 'chat' && frame.payload.state === 'final')
  const positioned = socket.frames.filter(frame => frame.type === 'event' && frame.payload?.cursor !== undefined)
  const seqOf = (cursor: unknown): number => Number(String(cursor).split(':').at(-1))
  let expected = seqOf(positioned[0]?.payload.cursor)
  for (const frame of positioned) {
    t.equal(seqOf(frame.payload.cursorFrom ?? frame.payload.cursor), expected, `${frame.event as string} starts where the last frame ended`)
    expected = seqOf(frame.payload.cursor) + 1
  }
  const merged = socket.chats().find(frame => frame.payload.state === 'delta')
  t.equal(seqOf(merged?.payload.cursor) - seqOf(merged?.payload.cursorFrom), 2, 'three deltas in one frame: it spans three positions')
})

t.test('merged deltas go out once the buffer drains, even with no final yet', async t => {
  const agent = gatedAgent(() => ['a', 'b'].map(delta => ({ type: 'text' as const, delta })))
  const { app, socket, connection, until } = await connected(t, { agent })
  request(connection, 'o', 'sessions.open', { key: 'drain' })
  await until(frame => frame.id === 'o')
  socket.bufferedAmount = LIMIT + 1
  request(connection, 's', 'chat.send', { sessionKey: 'drain', message: 'go', idempotencyKey: 'drain-1' })
  await until(frame => frame.id === 's')
  // Hold the final back: the agent is released, but the run's final waits on the store.
  const store = (app.sessionGateway.store as MemoryStore)
  const append = store.append.bind(store)
  let releaseAppend: () => void = () => {}
  store.append = async (...args) => {
    await new Promise<void>(resolve => { releaseAppend = resolve })
    return await append(...args)
  }
  agent.release()
  await new Promise(resolve => setTimeout(resolve, 30))
  t.same(socket.chats(), [], 'nothing while the buffer is full')
  socket.bufferedAmount = 0
  connection.drained()
  const delta = await until(frame => frame.event === 'chat')
  t.equal(delta.payload.deltaText, 'ab', 'the merged delta, after the drain')
  store.append = append
  releaseAppend()
  await until(frame => frame.event === 'chat' && frame.payload.state === 'final')
})

t.test('a consumer whose live frames waiting pass maxQueuedBytes is closed with 1008 (it can resume by cursor)', async t => {
  const agent = gatedAgent(() => [{ type: 'text' as const, delta: 'x' }])
  const { socket, connection, until } = await connected(t, { agent })
  request(connection, 'o', 'sessions.open', { key: 'far' })
  await until(frame => frame.id === 'o')
  socket.bufferedAmount = LIMIT + 1
  // Its own message alone, waiting behind the full socket, is more than four times the limit.
  request(connection, 's', 'chat.send', { sessionKey: 'far', message: 'm'.repeat(4 * LIMIT), idempotencyKey: 'far-1' })
  agent.release()
  for (let i = 0; i < 100 && socket.closed === undefined; i++) await new Promise(resolve => setTimeout(resolve, 5))
  t.same(socket.closed, { code: 1008, reason: 'slow consumer' })
})

t.test('at exactly maxBufferedBytes deltas still go one by one; a replay bigger than maxQueuedBytes is paced, not closed', async t => {
  const agent = gatedAgent(() => ['one', ' two'].map(delta => ({ type: 'text' as const, delta })))
  const { socket, connection, until } = await connected(t, { agent })
  request(connection, 'o', 'sessions.open', { key: 'edge' })
  await until(frame => frame.id === 'o')
  socket.bufferedAmount = LIMIT
  request(connection, 's1', 'chat.send', { sessionKey: 'edge', message: 'go', idempotencyKey: 'edge-1' })
  await until(frame => frame.id === 's1')
  agent.release()
  await until(frame => frame.event === 'chat' && frame.payload.runId === 'edge-1' && frame.payload.state === 'final')
  t.same(socket.chats().map(frame => frame.payload.deltaText ?? frame.payload.state), ['one', ' two', 'final'], 'nothing merged')

  socket.bufferedAmount = 0
  request(connection, 's2', 'chat.send', { sessionKey: 'edge', message: 'r'.repeat(3 * LIMIT), idempotencyKey: 'edge-2' })
  await until(frame => frame.id === 's2')
  agent.release()
  await until(frame => frame.event === 'chat' && frame.payload.runId === 'edge-2' && frame.payload.state === 'final')
  // Reading it all again, behind a socket that drains one frame at a time.
  const before = socket.frames.length
  socket.bufferedAmount = LIMIT + 1
  const epoch = String(socket.frames.find(frame => frame.event === 'session.message')?.payload.cursor).split(':')[0] as string
  request(connection, 'again', 'sessions.open', { key: 'edge', since: `${epoch}:0` })
  await until(frame => frame.id === 'again')
  t.equal(socket.frames.length, before + 1, 'only the answer went out: the replay waits for the socket')
  socket.growth = LIMIT + 1
  const perDrain: number[] = []
  for (let i = 0; i < 100 && socket.frames.length < before + 11; i++) {
    const sent = socket.frames.length
    socket.bufferedAmount = 0
    connection.drained()
    perDrain.push(socket.frames.length - sent)
  }
  t.ok(perDrain.every(n => n === 1), 'one frame each time the socket drained')
  t.equal(socket.closed, undefined, 'not closed')
  // A turn's two deltas wait together, so they go out merged.
  const turn = ['session.message', 'agent', 'chat', 'session.message', 'chat']
  t.same(socket.frames.slice(before + 1).map(frame => frame.event), [...turn, ...turn], 'every event of both turns, in order')
  t.same(socket.chats().slice(-4).map(frame => frame.payload.deltaText ?? frame.payload.state), ['one two', 'final', 'one two', 'final'])
})

t.test('a socket whose send throws is closed with 1011, and nothing else is written', async t => {
  const { socket, connection } = await connected(t)
  socket.failSends = true
  request(connection, 'l', 'sessions.list', {})
  await new Promise(resolve => setTimeout(resolve, 20))
  t.same(socket.closed, { code: 1011, reason: 'send failed' })
  socket.failSends = false
  request(connection, 'l2', 'sessions.list', {})
  await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(socket.answer('l2'), undefined, 'a closed connection answers nothing')
})

t.test('requests sent before hello-ok are refused, not lost silently', async t => {
  const app = await buildApp(t)
  const socket = new FakeSocket()
  let letIn: () => void = () => {}
  const connection = new OpenClawConnection(socket, {
    sessions: app.sessionGateway,
    principal: null,
    authenticate: async () => { await new Promise<void>(resolve => { letIn = resolve }); return { id: 'late' } },
    defaultHints: {},
    options: connectionOptions(),
    logger: app.log
  })
  t.teardown(() => connection.dispose())
  connection.open()
  request(connection, 'c', 'connect', { minProtocol: 4, maxProtocol: 4, client: { id: 'x', version: '1', platform: 'node', mode: 'backend' } })
  request(connection, 'early', 'sessions.list', {})
  connection.receive(JSON.stringify({ type: 'req' }), false) // no id: nothing to answer
  t.match(socket.answer('early'), { ok: false, error: { code: 'INVALID_REQUEST', message: /hello-ok/ } })
  letIn()
  await new Promise(resolve => setTimeout(resolve, 10))
  t.match(socket.answer('c'), { ok: true, payload: { type: 'hello-ok' } })
  t.equal(socket.frames.filter(frame => frame.type === 'res').length, 2)
})

t.test('maxWatchedSessions counts a session once, however many requests are making its watch', async t => {
  const app = await buildApp(t)
  /** A connection whose `sessions.open` calls wait for `letOpen`; `opening` names them as they come. */
  const gatedConnection = async (maxWatchedSessions: number): Promise<{ connection: OpenClawConnection, socket: FakeSocket, opening: string[], letOpen: () => void }> => {
    const opening: string[] = []
    let letOpen: () => void = () => {}
    const gate = new Promise<void>(resolve => { letOpen = resolve })
    const sessions = new Proxy(app.sessionGateway, {
      get (target, name: keyof SessionService) {
        if (name === 'open') {
          return async (...args: Parameters<SessionService['open']>) => {
            opening.push(args[0])
            await gate
            return await target.open(...args)
          }
        }
        const value = target[name]
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
    const socket = new FakeSocket()
    const connection = new OpenClawConnection(socket, {
      sessions,
      principal: null,
      authenticate: async () => ({ id: 'tester' }),
      defaultHints: {},
      options: connectionOptions({ maxWatchedSessions }),
      logger: app.log
    })
    t.teardown(() => connection.dispose())
    connection.open()
    request(connection, 'c', 'connect', { minProtocol: 4, maxProtocol: 4, client: { id: 'x', version: '1', platform: 'node', mode: 'backend' } })
    await until(() => socket.answer('c') !== undefined)
    request(connection, 'w', 'sessions.messages.subscribe', { key: 'watched' })
    await until(() => socket.answer('w') !== undefined)
    return { connection, socket, opening, letOpen }
  }
  /** Waits (up to 2.5 s) until `done` says so. */
  const until = async (done: () => boolean): Promise<void> => {
    for (let i = 0; i < 500 && !done(); i++) await new Promise(resolve => setTimeout(resolve, 5))
    if (!done()) throw new Error('waited 2.5 s in vain')
  }
  const opened = (socket: FakeSocket, ids: string[]): Array<boolean | undefined> => ids.map(id => socket.answer(id)?.ok)

  // One place left: two requests making the watch of one session both fit in it.
  const one = await gatedConnection(2)
  request(one.connection, 'o1', 'sessions.open', { key: 'x' })
  request(one.connection, 'o2', 'chat.startup', { sessionKey: 'x' })
  await until(() => one.opening.length === 2)
  one.letOpen()
  await until(() => answered(one.socket, ['o1', 'o2']))
  t.same(opened(one.socket, ['o1', 'o2']), [true, true], 'the second request for the session takes no second place')

  // Two places left: a session two requests are watching takes one, and another still fits; a third does not.
  const two = await gatedConnection(3)
  request(two.connection, 'o1', 'sessions.open', { key: 'x' })
  request(two.connection, 'o2', 'chat.startup', { sessionKey: 'x' })
  await until(() => two.opening.length === 2)
  request(two.connection, 'o3', 'sessions.open', { key: 'y' })
  await until(() => two.opening.length === 3)
  request(two.connection, 'o4', 'sessions.open', { key: 'z' })
  await until(() => two.socket.answer('o4') !== undefined)
  t.match(two.socket.answer('o4'), { ok: false, error: { details: { code: 'FSG_TOO_MANY_WATCHES' } } }, 'z: watched, x and y coming fill the three places')
  two.letOpen()
  await until(() => answered(two.socket, ['o1', 'o2', 'o3']))
  t.same(opened(two.socket, ['o1', 'o2', 'o3']), [true, true, true])

  // A request on a session watched already takes no place while it runs.
  const three = await gatedConnection(2)
  request(three.connection, 'o1', 'chat.startup', { sessionKey: 'watched' })
  await until(() => three.opening.length === 1)
  request(three.connection, 'o2', 'sessions.open', { key: 'y' })
  await until(() => three.opening.length === 2)
  three.letOpen()
  await until(() => answered(three.socket, ['o1', 'o2']))
  t.same(opened(three.socket, ['o1', 'o2']), [true, true], 'the watched session and one more fill the two places')
})

/** Whether every request named is answered. */
function answered (socket: FakeSocket, ids: string[]): boolean {
  return ids.every(id => socket.answer(id) !== undefined)
}

t.test('a failure that is not ours is answered "internal error", without its message', async t => {
  const store = new MemoryStore()
  const { app, connection, until } = await connected(t, { store })
  store.list = async () => { throw new Error('connection string with a password') }
  request(connection, 'l', 'sessions.list', {})
  const answer = await until(frame => frame.id === 'l')
  t.match(answer, { ok: false, error: { code: 'UNAVAILABLE', message: 'internal error', retryable: true } })
  t.notMatch(JSON.stringify(answer), /password/)
})

t.test('method edge cases answer as a client would expect', async t => {
  const store = new MemoryStore()
  await store.ensure('agent:main:imported', 'main')
  await store.append('agent:main:imported', [
    { type: 'session_info', id: 'i0', parentId: null, timestamp: new Date().toISOString() },
    { type: 'message', id: 'i1', parentId: 'i0', timestamp: new Date().toISOString(), message: { role: 'user', content: [{ type: 'text', text: 'old' }], timestamp: 1 } }
  ])
  const { app, connection, until } = await connected(t, { store })
  const answer = async (id: string, method: string, params: unknown): Promise<Written> => {
    request(connection, id, method, params)
    return await until(frame => frame.id === id)
  }

  t.match(await answer('p', 'sessions.list', 5), { ok: false, error: { code: 'INVALID_REQUEST', message: 'params: expected object' } })
  t.match(await answer('h', 'chat.history', { sessionKey: 'nobody', sessionId: 'no-such-id' }), { ok: false, error: { details: { code: 'FSG_SESSION_NOT_FOUND' } } },
    'an unknown generation of a session is an error, unlike a session not created yet')
  t.match(await answer('h2', 'chat.history', { sessionKey: 'nobody' }), { ok: true, payload: { messages: [], cursor: 'new:0' } })

  const opened = await answer('o', 'sessions.open', { key: 'imported' })
  t.same(opened.payload.messages.map((m: { id: string }) => m.id), ['i1'], 'rows that are not messages are not history')

  await answer('create', 'sessions.create', { key: 'labelled', label: 'Trip to Oslo' })
  t.match(await answer('r', 'sessions.resolve', { label: 'Trip to Oslo' }), { ok: true, payload: { ok: true, key: 'agent:main:labelled', displayName: 'Trip to Oslo' } })

  const sent = await answer('s', 'chat.send', { sessionKey: 'timed', message: 'hi', idempotencyKey: 'timed-1', timeoutMs: 60_000 })
  t.match(sent, { ok: true, payload: { runId: 'timed-1', status: 'started' } })
  await until(frame => frame.event === 'chat' && frame.payload.state === 'final')

  await app.sessionGateway.close()
  t.match(await answer('late', 'chat.send', { sessionKey: 'timed', message: 'again', idempotencyKey: 'timed-2' }),
    { ok: false, error: { code: 'UNAVAILABLE', retryable: true, retryAfterMs: 1000, details: { code: 'FSG_GATEWAY_CLOSED' } } })
})

t.test('a session reset between a send and its subscription is announced, not replayed from another life', async t => {
  const agent = gatedAgent()
  const { app, connection, until } = await connected(t, { agent })
  const sessions = app.sessionGateway
  const subscribe = sessions.subscribe.bind(sessions)
  // The race, made certain: the reset lands after the send, before the connection subscribes.
  sessions.subscribe = async (...args) => {
    await sessions.reset(args[0])
    return await subscribe(...args)
  }
  request(connection, 's', 'chat.send', { sessionKey: 'raced', message: 'hi', idempotencyKey: 'raced-1' })
  t.match(await until(frame => frame.id === 's'), { ok: true })
  const reset = await until(frame => frame.event === 'session.reset')
  t.match(reset.payload, { sessionKey: 'agent:main:raced', deleted: false })
  t.notMatch(reset.payload.cursor, /^new:/)
  agent.release()
})

t.test('the connection lifecycle: oversize frames, password auth, closing mid-handshake, leftovers after close', async t => {
  const agent = gatedAgent(() => [{ type: 'text', delta: 'counted' }, { type: 'usage', inputTokens: 3, outputTokens: 1 }])
  const app = await buildApp(t, { agent })
  const options = connectionOptions({ maxPayload: 70_000 })
  const make = (authenticate: (credentials: { token?: string, password?: string }) => Promise<{ id: string }>): { socket: FakeSocket, connection: OpenClawConnection } => {
    const socket = new FakeSocket()
    const connection = new OpenClawConnection(socket, { sessions: app.sessionGateway, principal: null, authenticate, defaultHints: {}, options, logger: app.log })
    t.teardown(() => connection.dispose())
    connection.open()
    return { socket, connection }
  }
  const connect = { minProtocol: 4, maxProtocol: 4, client: { id: 'x', version: '1', platform: 'node', mode: 'backend' }, auth: { password: 'open sesame' } }

  const seen: unknown[] = []
  const byPassword = make(async credentials => { seen.push(credentials); return { id: 'p' } })
  request(byPassword.connection, 'c', 'connect', connect)
  await new Promise(resolve => setTimeout(resolve, 10))
  t.same(seen, [{ password: 'open sesame' }], 'a password reaches verify as it came')
  request(byPassword.connection, 'w', 'sessions.subscribe', {})
  await new Promise(resolve => setTimeout(resolve, 10))
  byPassword.connection.receive('x'.repeat(70_001), false)
  t.same(byPassword.socket.closed, { code: 1009, reason: 'frame too large' })
  await app.sessionGateway.create('agent:main:after-close', 'main')
  t.notOk(byPassword.socket.frames.some(frame => frame.event === 'sessions.changed'), 'a closed connection stops watching the list')

  let letIn: () => void = () => {}
  const slow = make(async () => { await new Promise<void>(resolve => { letIn = resolve }); return { id: 'slow' } })
  request(slow.connection, 'c', 'connect', connect)
  slow.connection.close(1000, 'changed my mind')
  letIn()
  await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(slow.socket.answer('c'), undefined, 'no hello-ok for a connection that is gone')

  const usage = make(async () => ({ id: 'u' }))
  request(usage.connection, 'c', 'connect', connect)
  await new Promise(resolve => setTimeout(resolve, 10))
  request(usage.connection, 's', 'chat.send', { sessionKey: 'late', message: 'count', idempotencyKey: 'u-1' })
  await agent.waitStarted(1)
  agent.release()
  for (let i = 0; i < 100 && !usage.socket.chats().some(frame => frame.payload.state === 'final'); i++) await new Promise(resolve => setTimeout(resolve, 5))
  t.match(usage.socket.chats().at(-1)?.payload, { state: 'final', usage: { input: 3, output: 1, totalTokens: 4 } }, 'a final carries the usage')
})

t.test('a delta arriving once the buffer drained goes out merged with the waiting ones, in order', async t => {
  const steps: Array<(delta: string | null) => void> = []
  const next = async (): Promise<string | null> => await new Promise(resolve => steps.push(resolve))
  const agent = {
    async * respond () {
      for (let delta = await next(); delta !== null; delta = await next()) yield { type: 'text' as const, delta }
    }
  }
  const { socket, connection, until } = await connected(t, { agent })
  request(connection, 's', 'chat.send', { sessionKey: 'steps', message: 'go', idempotencyKey: 'steps-1' })
  await until(frame => frame.id === 's')
  const feed = async (delta: string | null): Promise<void> => {
    while (steps.length === 0) await new Promise(resolve => setTimeout(resolve, 1))
    steps.shift()?.(delta)
    await new Promise(resolve => setImmediate(resolve))
  }
  socket.bufferedAmount = LIMIT + 1
  await feed('a')
  await feed('b')
  socket.bufferedAmount = 0
  await feed('c') // before the socket says it drained
  await feed(null)
  connection.drained()
  await until(frame => frame.event === 'chat' && frame.payload.state === 'final')
  t.same(socket.chats().map(frame => [frame.payload.state, frame.payload.deltaText]), [['delta', 'abc'], ['final', undefined]])
})

t.test('open and resolve: paging, no label, a foreign cursor while a turn runs', async t => {
  const agent = gatedAgent()
  const { connection, until } = await connected(t, { agent })
  const answer = async (id: string, method: string, params: unknown): Promise<Written> => {
    request(connection, id, method, params)
    return await until(frame => frame.id === id)
  }
  await answer('s1', 'chat.send', { sessionKey: 'paged', message: 'one', idempotencyKey: 'p-1' })
  agent.release()
  await until(frame => frame.event === 'chat' && frame.payload.state === 'final')
  t.match(await answer('r', 'sessions.resolve', { key: 'paged' }), { payload: { ok: true, key: 'agent:main:paged' } })
  t.notOk('displayName' in (await answer('r2', 'sessions.resolve', { key: 'paged' })).payload)
  const page = await answer('o1', 'sessions.open', { key: 'paged', limit: 1 })
  t.equal(page.payload.messages.length, 1)
  t.type(page.payload.before, 'string')

  await answer('s2', 'chat.send', { sessionKey: 'paged', message: 'two', idempotencyKey: 'p-2' })
  await agent.waitStarted(2)
  const reopened = await answer('o2', 'sessions.open', { key: 'paged', since: 'another-life:9' })
  t.match(reopened.payload, { replay: 'reset', running: { runId: 'p-2', text: '' } })
  await until(frame => frame.event === 'chat' && frame.payload.runId === 'p-2' && frame.payload.replace === true)
  agent.release()
  await until(frame => frame.event === 'chat' && frame.payload.runId === 'p-2' && frame.payload.state === 'final')

  await answer('s3', 'chat.send', { sessionKey: 'paged', message: 'three', idempotencyKey: 'p-3', timeoutMs: 20 })
  const failed = await until(frame => frame.event === 'chat' && frame.payload.runId === 'p-3' && frame.payload.state !== 'delta')
  t.match(failed.payload, { state: 'error', errorMessage: /took longer than 20 ms/, message: { stopReason: 'error' } }, 'a run that fails says why')
  agent.release()
})

t.test('a watch that completes after its connection closed is let go: nothing holds the session in memory', async t => {
  const store = new MemoryStore()
  // The session's load waits until the connection is gone.
  let loaded: () => void = () => {}
  const get = store.get.bind(store)
  store.get = async key => {
    if (key === 'agent:main:late') await new Promise<void>(resolve => { loaded = resolve })
    return await get(key)
  }
  const { app, socket, connection } = await connected(t, { store, maxIdleSessions: 0 })
  request(connection, 'o', 'sessions.open', { key: 'late' })
  await new Promise(resolve => setTimeout(resolve, 10))
  connection.close(1000, 'bye')
  loaded()
  await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(socket.answer('o'), undefined, 'no answer after close')
  store.get = get
  const first = await (await app.sessionGateway.send({ sessionKey: 'agent:main:late', agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: 'one two' }], timestamp: Date.now() }] })).result
  // With maxIdleSessions 0 an idle session leaves memory at once, and its missed events are
  // caught up from the store; a leftover watcher would have kept it in memory (exact replay).
  const epoch = first.cursor.split(':')[0] as string
  const sub = await app.sessionGateway.subscribe('agent:main:late', { since: `${epoch}:1` }, () => {})
  sub.unsubscribe()
  t.equal(sub.replay.kind, 'catchup', 'the session left memory: no watcher of the closed connection remained')
})

t.test('subscribing to a session the connection already watches keeps that watch: a turn streaming meanwhile is heard once', async t => {
  // The subscribe that would replace the watch lets a whole turn go by before it returns,
  // as a fast agent can between a new subscription and the old one's end.
  const wrap = (sessions: SessionService): SessionService => new Proxy(sessions, {
    get (target, name) {
      if (name === 'subscribe') {
        return async (...args: Parameters<SessionService['subscribe']>) => {
          const subscription = await target.subscribe(...args)
          await (await target.send({ sessionKey: args[0], agentId: 'main', input: [user('in between')], runId: 'between' })).result
          return subscription
        }
      }
      const value = Reflect.get(target, name) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const { socket, connection, until } = await connected(t, {}, [], wrap)
  request(connection, 's', 'chat.startup', { sessionKey: 'twice' })
  await until(frame => frame.id === 's')
  request(connection, 'm', 'sessions.messages.subscribe', { key: 'twice' })
  const answer = await until(frame => frame.id === 'm')
  t.match(answer.payload, { subscribed: true, key: 'agent:main:twice' })
  request(connection, 'send', 'chat.send', { sessionKey: 'twice', message: 'after', idempotencyKey: 'after' })
  await until(frame => frame.event === 'chat' && frame.payload.state === 'final' && frame.payload.runId === 'after')
  const events = socket.frames.filter(frame => frame.event === 'chat' || frame.event === 'session.message').map(frame => JSON.stringify(frame.payload))
  t.same(events.filter((json, i) => events.indexOf(json) !== i), [], 'no event twice')
})

t.test('a run\'s waiting delta keeps taking its run\'s deltas while another session\'s frames wait after it', async t => {
  const steps = new Map<string, Array<(delta: string | null) => void>>()
  const agent = {
    async * respond (request: { sessionKey: string }) {
      for (;;) {
        const delta = await new Promise<string | null>(resolve => {
          const waiting = steps.get(request.sessionKey) ?? []
          waiting.push(resolve)
          steps.set(request.sessionKey, waiting)
        })
        if (delta === null) return
        yield { type: 'text' as const, delta }
      }
    }
  }
  const { app, socket, connection, until } = await connected(t, { agent })
  const feed = async (key: string, delta: string | null): Promise<void> => {
    for (let i = 0; i < 500 && (steps.get(`agent:main:${key}`)?.length ?? 0) === 0; i++) await new Promise(resolve => setTimeout(resolve, 2))
    steps.get(`agent:main:${key}`)?.shift()?.(delta)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  request(connection, 'a', 'chat.send', { sessionKey: 'one', message: 'go', idempotencyKey: 'one-1' })
  request(connection, 'b', 'chat.send', { sessionKey: 'two', message: 'go', idempotencyKey: 'two-1' })
  await until(frame => frame.id === 'a')
  await until(frame => frame.id === 'b')
  socket.bufferedAmount = LIMIT + 1
  await feed('one', 'a')
  await feed('two', 'x')
  await feed('one', 'b')
  await feed('one', null)
  await feed('two', null)
  await runEnded(app, 'one')
  await runEnded(app, 'two')
  socket.bufferedAmount = 0
  connection.drained()
  const deltas = socket.chats().filter(frame => frame.payload.state === 'delta').map(frame => `${frame.payload.runId as string}:${frame.payload.deltaText as string}`)
  t.same(deltas, ['one-1:ab', 'two-1:x'], 'one merged delta per run')
})
