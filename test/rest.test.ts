import { request as httpRequest, type IncomingMessage } from 'node:http'
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import sessionGateway, { echoAgent, MemoryStore, type Agent } from '../lib/index.js'
import { listen } from './gateway-frames.js'
import { buildApp, TOKEN, until, user } from './helpers.js'

const auth = { authorization: `Bearer ${TOKEN}` }

async function turn (app: FastifyInstance, key: string, text: string): Promise<void> {
  const ticket = await app.sessionGateway.send({ sessionKey: `agent:main:${key}`, agentId: 'main', input: [user(text)] })
  await ticket.result
}

interface Sse { id?: string, event: string, data: any }

/** Reads Server-Sent Events from a listening app until `until` says stop (bounded). */
async function readEvents (app: FastifyInstance, path: string, headers: Record<string, string>, until: (events: Sse[]) => boolean, timeoutMs = 5000): Promise<{ events: Sse[], comments: number, status: number, ended: boolean, headers: IncomingMessage['headers'] }> {
  const port = (app.server.address() as { port: number }).port
  return await new Promise((resolve, reject) => {
    const events: Sse[] = []
    let comments = 0
    let buffer = ''
    const req = httpRequest({ host: '127.0.0.1', port, path, headers }, (res: IncomingMessage) => {
      const finish = (ended: boolean): void => {
        clearTimeout(timer)
        req.destroy()
        resolve({ events, comments, status: res.statusCode as number, ended, headers: res.headers })
      }
      const timer = setTimeout(() => reject(new Error(`events so far: ${JSON.stringify(events).slice(0, 500)}`)), timeoutMs)
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          if (block.startsWith(':')) {
            comments++
          } else if (res.statusCode === 200) {
            const fields = Object.fromEntries(block.split('\n').map(line => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]))
            events.push({ ...(fields.id === undefined ? {} : { id: fields.id }), event: fields.event as string, data: JSON.parse(fields.data as string) })
          }
          if (until(events) || (comments > 0 && until([{ event: ':', data: comments }]))) return finish(false)
        }
        if (res.statusCode !== 200) finish(false)
      })
      res.on('end', () => finish(true))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('GET /v1/sessions: the principal\'s sessions, newest first, paged and filtered as sessions.list', async t => {
  const app = await buildApp(t, {
    auth: { verify: request => ({ id: String(request.headers.authorization).replace(/^Bearer /, '') }) },
    authorize: ({ principal, sessionKey }) => sessionKey.startsWith(`agent:main:${principal.id}-`)
  })
  for (const key of ['ann-1', 'ann-2', 'bob-1']) await turn(app, key, `hello ${key}`)
  await app.sessionGateway.patch('agent:main:ann-2', { label: 'Quarterly' })
  // Rows are ordered by the millisecond they changed: let one pass.
  for (const then = Date.now(); Date.now() <= then + 1;) await new Promise(resolve => setImmediate(resolve))
  await turn(app, 'ann-3', 'hello ann-3')
  const ann = { authorization: 'Bearer ann' }

  const first = await app.inject({ url: '/v1/sessions?limit=2', headers: ann })
  t.equal(first.statusCode, 200)
  const page = first.json()
  t.same(page.sessions.map((row: { key: string }) => row.key), ['agent:main:ann-3', 'agent:main:ann-2'])
  t.match(page.sessions[1], { label: 'Quarterly', displayName: 'Quarterly', lastMessagePreview: 'hello ann-2', agentId: 'main' })
  const next = await app.inject({ url: `/v1/sessions?limit=2&cursor=${encodeURIComponent(page.cursor)}`, headers: ann })
  t.same(next.json(), { sessions: [{ ...next.json().sessions[0], key: 'agent:main:ann-1' }] }, 'only ann\'s; no cursor after the last page')

  t.same((await app.inject({ url: '/v1/sessions?label=Quarterly', headers: ann })).json().sessions.map((row: { key: string }) => row.key), ['agent:main:ann-2'])
  t.same((await app.inject({ url: '/v1/sessions?search=ann-1', headers: ann })).json().sessions.map((row: { key: string }) => row.key), ['agent:main:ann-1'])
  t.same((await app.inject({ url: '/v1/sessions?agentId=OTHER', headers: ann })).json(), { sessions: [] })
  t.equal((await app.inject({ url: '/v1/sessions', headers: { authorization: 'Bearer bob' } })).json().sessions.length, 1)
})

t.test('GET, PATCH and DELETE /v1/sessions/{key}, and history paged backwards with before', async t => {
  const app = await buildApp(t)
  for (const text of ['one', 'two', 'three']) await turn(app, 'doc', text)

  const row = await app.inject({ url: '/v1/sessions/doc', headers: auth })
  t.equal(row.statusCode, 200)
  t.match(row.json(), { key: 'agent:main:doc', agentId: 'main', lastMessagePreview: 'three', cursor: /:15$/ })
  t.notOk('running' in row.json())

  const newest = (await app.inject({ url: '/v1/sessions/agent:main:doc/messages?limit=2', headers: auth })).json()
  t.same(newest.messages.map((m: { role: string }) => m.role), ['user', 'assistant'])
  t.match(newest.messages[0], { id: /^[0-9a-f]{8}$/, content: [{ type: 'text', text: 'three' }] })
  const older = (await app.inject({ url: `/v1/sessions/doc/messages?limit=10&before=${encodeURIComponent(newest.before)}`, headers: auth })).json()
  t.same(older.messages.map((m: { content: Array<{ text: string }> }) => m.content[0]?.text), ['one', 'one', 'two', 'two'])
  t.notOk('before' in older, 'the first page has no before')

  const patched = await app.inject({ method: 'PATCH', url: '/v1/sessions/doc', headers: auth, payload: { label: 'Report' } })
  t.match(patched.json(), { key: 'agent:main:doc', label: 'Report' })
  const cleared = await app.inject({ method: 'PATCH', url: '/v1/sessions/doc', headers: auth, payload: { label: null } })
  t.notOk('label' in cleared.json())

  const { sessionId } = row.json()
  await app.sessionGateway.reset('agent:main:doc')
  const generation = (await app.inject({ url: `/v1/sessions/doc/messages?sessionId=${sessionId}`, headers: auth })).json()
  t.equal(generation.messages.length, 6, 'an older generation stays readable')

  t.same((await app.inject({ method: 'DELETE', url: '/v1/sessions/doc', headers: auth })).json(), { key: 'agent:main:doc', deleted: true })
  t.same((await app.inject({ method: 'DELETE', url: '/v1/sessions/doc', headers: auth })).json(), { key: 'agent:main:doc', deleted: false })
  const gone = await app.inject({ url: '/v1/sessions/doc', headers: auth })
  t.equal(gone.statusCode, 404)
  t.same(gone.json(), { error: { message: 'Session "agent:main:doc" not found', type: 'not_found_error', param: null, code: 'session_not_found' } })
  t.same((await app.inject({ url: '/v1/sessions/doc/messages', headers: auth })).json(), { sessionKey: 'agent:main:doc', messages: [], cursor: 'new:0' }, 'no session, no history')
  t.equal((await app.inject({ url: `/v1/sessions/doc/messages?sessionId=${sessionId}`, headers: auth })).statusCode, 404, 'an older generation of a deleted key is gone')
})

t.test('GET /v1/sessions/{key} shows the running turn', async t => {
  let release = (): void => {}
  const agent: Agent = {
    async * respond () {
      yield { type: 'text', delta: 'half' }
      await new Promise<void>(resolve => { release = resolve })
    }
  }
  const app = await buildApp(t, { agent })
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:busy', agentId: 'main', input: [user('go')] })
  await until(async () => (await app.sessionGateway.get('agent:main:busy'))?.running?.text === 'half', 'the turn to be half way')
  t.match((await app.inject({ url: '/v1/sessions/busy', headers: auth })).json(), { running: { runId: ticket.runId, text: 'half' } })
  await listen(app)
  const { events } = await readEvents(app, '/v1/sessions/busy/events', auth, seen => seen.length === 1)
  t.match(events[0]?.data, { replay: 'live', running: { runId: ticket.runId, text: 'half' } }, 'the opening event carries the running turn')
  release()
  await ticket.result
})

t.test('every route goes through the resolver and authorize; bad input is a 400 naming the field', async t => {
  const app = await buildApp(t, { authorize: ({ sessionKey, action }) => !sessionKey.includes('secret') || action === 'read' })
  await turn(app, 'secret', 'x')
  const cases: Array<[string, string, unknown, number, Record<string, unknown>]> = [
    ['GET', '/v1/sessions', undefined, 401, { error: { type: 'authentication_error', code: 'unauthenticated' } }],
    ['GET', '/v1/sessions?limit=0', undefined, 400, { error: { param: 'limit', code: 'invalid_value', message: /^limit: expected integer to be greater or equal to 1/ } }],
    ['GET', '/v1/sessions?limit=ten', undefined, 400, { error: { param: 'limit', message: 'limit: expected integer' } }],
    ['GET', '/v1/sessions?limit=1.5', undefined, 400, { error: { param: 'limit', message: 'limit: expected integer' } }],
    ['GET', '/v1/sessions/k/messages?limit=0x10', undefined, 400, { error: { param: 'limit', message: 'limit: expected integer' } }],
    ['GET', '/v1/sessions?color=red', undefined, 400, { error: { param: 'color', code: 'unknown_parameter', message: "Unknown parameter: 'color'." } }],
    ['GET', '/v1/sessions/subagent:x', undefined, 400, { error: { code: 'reserved_session_key' } }],
    ['GET', '/v1/sessions/agent:ops:x?agentId=main', undefined, 400, { error: { code: 'agent_mismatch' } }],
    ['GET', '/v1/sessions/x/messages?before=', undefined, 400, { error: { param: 'before' } }],
    ['PATCH', '/v1/sessions/secret', { label: 'no' }, 403, { error: { type: 'permission_error', code: 'forbidden' } }],
    ['DELETE', '/v1/sessions/secret', undefined, 403, { error: { code: 'forbidden' } }],
    ['PATCH', '/v1/sessions/secret', { label: 'x', color: 'red' }, 400, { error: { param: 'color', code: 'unknown_parameter' } }],
    ['PATCH', '/v1/sessions/secret', { label: '' }, 400, { error: { param: 'label' } }],
    ['PATCH', '/v1/sessions/secret', undefined, 400, { error: { param: 'body', message: 'body: expected object' } }],
    ['PATCH', '/v1/sessions/nobody', { label: 'x' }, 404, { error: { code: 'session_not_found' } }]
  ]
  for (const [method, url, payload, status, body] of cases) {
    const res = await app.inject({ method: method as 'GET', url, headers: url === '/v1/sessions' ? {} : auth, ...(payload === undefined ? {} : { payload: payload as object }) })
    t.equal(res.statusCode, status, `${method} ${url}`)
    t.match(res.json(), body)
  }
  t.equal((await app.inject({ url: `/v1/sessions?token=${TOKEN}` })).statusCode, 200, 'the token may ride in the query of a GET')
})

t.test('GET /v1/sessions/{key}/events: Server-Sent Events, id = cursor, one line of JSON each', async t => {
  const app = await buildApp(t, { agent: echoAgent() })
  await listen(app)
  await turn(app, 'live', 'before')
  let sending: Promise<void> | undefined
  const { events } = await readEvents(app, `/v1/sessions/live/events?token=${TOKEN}&limit=1`, {}, seen => {
    // The opening event went out: the reader is subscribed, so the turn comes live.
    sending ??= turn(app, 'live', 'hello there')
    return seen.at(-1)?.data.state === 'final'
  })
  await sending
  const [open, ...rest] = events
  t.match(open, { event: 'session.open', data: { key: 'agent:main:live', replay: 'live', messages: [{ role: 'assistant' }], before: /./ } })
  t.equal(open?.id, open?.data.cursor)
  t.same(rest.map(event => `${event.event}:${event.data.state ?? event.data.stream ?? event.data.message.role}`), [
    'session.message:user', 'agent:lifecycle', 'chat:delta', 'chat:delta', 'session.message:assistant', 'chat:final'
  ])
  for (const event of rest) t.equal(event.id, event.data.cursor)
  t.match(rest[3]?.data, { deltaText: ' there', message: { content: [{ text: 'hello there' }] } })
})

t.test('events resume from Last-Event-ID as sessions.open does from since: replay, catch-up, reset', async t => {
  let release = (): void => {}
  const agent: Agent = {
    async * respond (request) {
      const text = request.input.map(message => message.content.map(part => part.type === 'text' ? part.text : '').join('')).join('')
      if (text !== 'slow') return yield { type: 'text', delta: text }
      yield { type: 'text', delta: 'so ' }
      await new Promise<void>(resolve => { release = resolve })
      yield { type: 'text', delta: 'far' }
    }
  }
  const app = await buildApp(t, { agent, replay: 5 })
  await listen(app)
  await turn(app, 'r', 'first')
  const start = (await app.inject({ url: '/v1/sessions/r', headers: auth })).json().cursor as string
  await turn(app, 'r', 'two')

  // The ring holds the five events of "two": replayed exactly, and the opening event stands at the resume point.
  const replay = await readEvents(app, `/v1/sessions/r/events?since=bogus`, { ...auth, 'last-event-id': start }, seen => seen.at(-1)?.data.state === 'final')
  t.match(replay.events[0], { id: start, data: { replay: 'replay', messages: [] } })
  t.same(replay.events.slice(1).map(event => event.event), ['session.message', 'agent', 'chat', 'session.message', 'chat'])

  // A longer gap with a turn still running: rebuilt rows, then its text so far as one replacing delta.
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:r', agentId: 'main', input: [user('slow')] })
  await until(async () => (await app.sessionGateway.get('agent:main:r'))?.running?.text === 'so ', 'the turn to be half way')
  const catchup = await readEvents(app, `/v1/sessions/r/events?since=${encodeURIComponent(start)}`, auth, seen => seen.some(event => event.data.replace === true))
  t.match(catchup.events[0], { id: start, data: { replay: 'catchup' } })
  t.notOk('running' in catchup.events[0]?.data, 'the running text follows, not in the opening event')
  t.same(catchup.events.slice(1).map(event => event.event === 'chat' ? event.data.state : event.data.message.role), ['user', 'assistant', 'final', 'user', 'delta'])
  t.match(catchup.events.at(-1), { event: 'chat', data: { state: 'delta', replace: true, deltaText: 'so ' } })

  // A reset while a reader watches: the running turn ends aborted, then the session starts over.
  let attached = (): void => {}
  const watching = readEvents(app, '/v1/sessions/r/events', auth, seen => {
    attached() // its opening event went out: the reader is subscribed
    return seen.some(event => event.event === 'session.reset')
  })
  await new Promise<void>(resolve => { attached = resolve })
  await app.sessionGateway.reset('agent:main:r')
  await ticket.result
  const { events } = await watching
  t.match(events.slice(-3), [
    { event: 'session.message', data: { message: { stopReason: 'aborted' } } },
    { event: 'chat', data: { state: 'aborted', errorMessage: 'the session was reset' } },
    { event: 'session.reset', data: { deleted: false, cursor: /:0$/ } }
  ])

  // A cursor from another life of the log: a fresh history instead.
  const reset = await readEvents(app, '/v1/sessions/r/events', { ...auth, 'last-event-id': 'gone:3' }, seen => seen.length === 1)
  t.match(reset.events[0], { data: { replay: 'reset', messages: [] } })
  t.equal(reset.events[0]?.id, reset.events[0]?.data.cursor)
  const bad = await readEvents(app, '/v1/sessions/r/events', { ...auth, 'last-event-id': 'nonsense' }, () => true)
  t.equal(bad.status, 400)
})

t.test('an event stream: keep-alive comments, ended for a reader that stops reading, a replay paced by the reader, ended by shutdown', async t => {
  const big = 'x'.repeat(1 << 19)
  const agent: Agent = { async * respond () { for (let i = 0; i < 20; i++) yield { type: 'text', delta: big } } }
  const app = await buildApp(t, { agent, rest: { keepAliveMs: 10, maxBufferedBytes: 1024, maxQueuedBytes: 1 << 20 } })
  await listen(app)
  const idle = await readEvents(app, '/v1/sessions/k/events', auth, seen => seen[0]?.event === ':' && seen[0].data >= 2)
  t.ok(idle.comments >= 2, 'keep-alive comments on an idle stream')

  // A reader that never reads: once the socket and then the buffer are full, the stream ends.
  const port = (app.server.address() as { port: number }).port
  const stalledReader = async (headers: Record<string, string>): Promise<IncomingMessage> => {
    const request = httpRequest({ host: '127.0.0.1', port, path: '/v1/sessions/k/events', headers: { ...auth, ...headers } })
    const response = new Promise<IncomingMessage>(resolve => request.on('response', resolve))
    request.end()
    const res = await response
    res.pause()
    return res
  }
  const endOf = async (res: IncomingMessage): Promise<void> => {
    const ended = new Promise(resolve => res.on('end', resolve))
    res.resume()
    await ended
  }
  await app.sessionGateway.create('agent:main:k', 'main')
  const before = (await app.sessionGateway.get('agent:main:k'))?.cursor as string
  const live = await stalledReader({})
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:k', agentId: 'main', input: [user('big')] })
  await ticket.result
  await endOf(live)
  t.pass('the server ended the live stream of a reader that fell behind')
  // A replay waits for its reader, however long it reads nothing, and arrives whole.
  const replaying = await stalledReader({ 'last-event-id': before })
  await new Promise(resolve => setTimeout(resolve, 50))
  let text = ''
  const finalArrived = new Promise<void>(resolve => replaying.on('data', (chunk: Buffer) => {
    text += String(chunk)
    const at = text.indexOf('"state":"final"')
    if (at >= 0 && text.indexOf('\n\n', at) >= 0) resolve()
  }))
  t.equal(replaying.complete, false, 'the replay is not ended')
  replaying.resume()
  await finalArrived
  const final = text.split('\n\n').find(event => event.includes('"state":"final"')) as string
  t.equal(JSON.parse(final.slice(final.indexOf('data: ') + 6)).message.content[0].text, big.repeat(20), 'the whole answer, once the reader reads')
  replaying.destroy()

  let opened = (): void => {}
  const open = readEvents(app, '/v1/sessions/quiet/events', auth, seen => {
    if (seen[0]?.event === 'session.open') opened()
    return false
  })
  await new Promise<void>(resolve => { opened = resolve })
  await app.close()
  t.match(await open, { ended: true, events: [{ event: 'session.open' }] }, 'shutdown ends the stream')
})

t.test('rest: false turns the routes off; prefix moves them; the options are checked', async t => {
  const off = await buildApp(t, { rest: false })
  t.equal((await off.inject({ url: '/v1/sessions', headers: auth })).statusCode, 404)
  const moved = await buildApp(t, { rest: { prefix: '/api' } })
  t.equal((await moved.inject({ url: '/api/sessions', headers: auth })).statusCode, 200)
  for (const rest of [{ keepAliveMs: 9 }, { maxBufferedBytes: 1023 }, { prefix: 'api' }, { other: 1 }]) {
    await t.rejects(buildApp(t, { rest: rest as never }), { code: 'FSG_INVALID_OPTION', message: /"rest(\.\w+)?": false, or \{ prefix/ })
  }
  await buildApp(t, { rest: { keepAliveMs: 10, maxBufferedBytes: 1024, prefix: '' } })
})

t.test('an event stream asked for as the server closes, while the store is slow, is refused with 503: the close does not wait for its reader', async t => {
  let release = (): void => {}
  let reading = (): void => {}
  let held = false
  const readStarted = new Promise<void>(resolve => { reading = resolve })
  const hold = new Promise<void>(resolve => { release = resolve })
  class SlowStore extends MemoryStore {
    override async read (...args: Parameters<MemoryStore['read']>): ReturnType<MemoryStore['read']> {
      if (held) {
        reading()
        await hold
      }
      return await super.read(...args)
    }
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sessionGateway, { auth: { token: TOKEN }, store: new SlowStore() })
  // Registered after the plugin's: the store answers once the shutdown has ended the streams it had.
  app.addHook('preClose', done => {
    setImmediate(release)
    done()
  })
  await listen(app)
  await app.sessionGateway.create('agent:main:slow', 'main')
  held = true
  const open = readEvents(app, '/v1/sessions/slow/events', auth, () => false)
  await readStarted
  const closed = app.close()
  t.match(await open, { status: 503, headers: { connection: 'close' } }, 'told to come back, on a connection not kept for another request')
  await closed
  t.pass('and the server closed')
})

t.test('with an agent allow-list, GET /v1/sessions lists no session of another agent, as GET of its key finds none', async t => {
  const store = new MemoryStore()
  // A store shared with OpenClaw, which has an agent this gateway does not serve.
  await store.ensure('agent:ops:elsewhere', 'ops')
  await store.ensure('agent:main:here', 'main')
  const app = await buildApp(t, { store, agents: ['main'] })
  const listed = await app.inject({ url: '/v1/sessions', headers: auth })
  t.same(listed.json().sessions.map((row: { key: string }) => row.key), ['agent:main:here'])
  t.equal((await app.inject({ url: '/v1/sessions/agent:ops:elsewhere', headers: auth })).statusCode, 404)
})
