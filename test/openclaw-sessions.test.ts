// Sessions that live only in OpenClaw (2026.7 and later keep them in SQLite, out of our
// file store's sight): with openClawAgent they are listed beside ours, read over
// OpenClaw's gateway protocol, and imported into our store the first time they are
// opened or continued. Against an OpenClaw-like gateway on 127.0.0.1 (fake-openclaw.ts).
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryStore, openClawAgent, type OpenClawAgentOptions, type ListQuery, type SessionRow, type SessionStore, type UpstreamSessions } from '../lib/index.js'
import { storeContract } from '../lib/testing/index.js'
import { UpstreamSessionStore } from '../lib/stores/upstream-sessions.js'
import { openClawSession, startFakeOpenClaw, OPENCLAW_TOKEN, type FakeOpenClaw } from './fake-openclaw.js'
import { GatewaySocket, listen, openChecked } from './gateway-frames.js'
import { buildApp } from './helpers.js'

async function gatewayFor (t: Test, openclaw: FakeOpenClaw, options: Partial<OpenClawAgentOptions> = {}, gateway: Parameters<typeof buildApp>[1] = {}): Promise<{ app: FastifyInstance, socket: GatewaySocket, logs: string[] }> {
  const logs: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { logs.push(String(chunk)); done() } })
  const app = await buildApp(t, { agent: openClawAgent({ url: openclaw.origin, token: OPENCLAW_TOKEN, ...options }), ...gateway }, { logger: { level: 'info', stream } })
  await listen(app)
  return { app, socket: await openChecked(t, app), logs }
}

async function ok (socket: GatewaySocket, method: string, params: unknown): Promise<any> {
  const res = await socket.request(method, params)
  if (res.ok !== true) throw new Error(`${method}: ${JSON.stringify(res.error)}`)
  return res.payload
}

const text = (message: any): string => message.content.map((part: any) => part.text ?? '').join('')

t.test('a session made in OpenClaw before this gateway existed is listed, opened with its history, and continued through the gateway', async t => {
  const openclaw = await startFakeOpenClaw(t)
  const then = Date.now() - 60_000
  openclaw.stored.set('agent:main:before', openClawSession('s-before', then, [['hello from openclaw', 'echo: hello from openclaw'], ['second', 'echo: second']], { label: 'Old chat' }))
  const { app, socket } = await gatewayFor(t, openclaw, { headers: { 'x-trace': 'fsg' } })
  await ok(socket, 'chat.send', { sessionKey: 'ours', message: 'made here', idempotencyKey: 'ours-1' })
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === 'ours-1')

  const listed = await ok(socket, 'sessions.list', {})
  t.same(listed.sessions.map((row: any) => row.key), ['agent:main:ours', 'agent:main:before'], 'both, newest first, ours once though OpenClaw has it too')
  t.match(listed.sessions[1], { kind: 'direct', agentId: 'main', label: 'Old chat', lastMessagePreview: 'echo: second', updatedAt: then })
  t.same((await ok(socket, 'sessions.list', { label: 'Old chat' })).sessions.map((row: any) => row.key), ['agent:main:before'], 'a label filter reaches OpenClaw')
  t.equal(openclaw.gatewayHeaders[0]?.['x-trace'], 'fsg', 'the agent\'s headers go on its gateway-protocol connections too')
  t.equal(openclaw.gatewayHeaders[0]?.origin, undefined, 'and no Origin: it is not a browser')

  const opened = await ok(socket, 'chat.startup', { sessionKey: 'before', limit: 80 })
  t.same(opened.messages.map((m: any) => [m.role, text(m)]), [
    ['user', 'hello from openclaw'], ['assistant', 'echo: hello from openclaw'], ['user', 'second'], ['assistant', 'echo: second']
  ], 'its history, as OpenClaw has it')
  t.same(opened.messages.map((m: any) => m.__openclaw.id), ['s-before-1', 's-before-2', 's-before-3', 's-before-4'], 'OpenClaw\'s message ids')
  t.match(opened.sessionInfo, { key: 'agent:main:before', label: 'Old chat' })

  // Continued: the turn goes to OpenClaw under the same key; our store now holds all of it.
  const watcher = await GatewaySocket.open(app)
  t.teardown(() => watcher.close())
  await ok(socket, 'chat.send', { sessionKey: 'before', message: 'third', idempotencyKey: 'before-3' })
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === 'before-3')
  t.same(openclaw.sessions.get('agent:main:before'), ['third'], 'only the new input went to OpenClaw, which keeps the rest')
  const history = await ok(socket, 'chat.history', { sessionKey: 'before' })
  t.same(history.messages.map((m: any) => text(m)).slice(-2), ['third', 'echo: third (turn 1 of agent:main:before)'])
  t.equal(history.messages.length, 6)

  // Cursors work from then on: a client that had the snapshot resumes with exactly the turn.
  const resumed = await ok(watcher, 'sessions.open', { key: 'before', since: opened.cursor })
  t.equal(resumed.replay, 'replay')
  await watcher.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.same(watcher.events('session.message').map(f => text(f.payload.message)), ['third', 'echo: third (turn 1 of agent:main:before)'])

  // A key neither has: OpenClaw answers its history with no session id, and nothing is imported.
  t.same((await ok(socket, 'chat.history', { sessionKey: 'nowhere' })).messages, [], 'a key neither has: no history')
  const again = await ok(socket, 'sessions.list', {})
  t.same(again.sessions.map((row: any) => row.key).sort(), ['agent:main:before', 'agent:main:ours'], 'still each once, now both ours, and no session made for a key neither had')
  t.equal(openclaw.gatewayRequests.filter(r => r.method === 'chat.history' && r.params.sessionKey === 'agent:main:before').length, 1, 'imported once')
})

t.test('listing pages across both, newest first, each session once; only sessions we can route to', async t => {
  const openclaw = await startFakeOpenClaw(t)
  const now = Date.now()
  const store = new MemoryStore()
  for (const key of ['agent:main:l1', 'agent:main:l2', 'agent:main:l3']) await store.ensure(key, 'main')
  const upstream: Array<[string, number]> = [['u1', now + 30_000], ['u2', now + 10_000], ['l1', now + 20_000], ['u3', now - 10_000], ['u4', now - 30_000], ['cron:daily', now], ['subagent:x', now], ['acp:z', now], ['UPPER', now]]
  for (const [name, at] of upstream) openclaw.stored.set(`agent:main:${name}`, openClawSession(`s-${name}`, at, [['q', 'a']]))
  openclaw.stored.set('agent:ops:elsewhere', openClawSession('s-ops', now, [['q', 'a']], { agentId: 'ops' }))
  const { socket } = await gatewayFor(t, openclaw, {}, { store, agents: ['main'] })

  const keys: string[] = []
  const times: number[] = []
  let cursor: string | undefined
  for (let pages = 0; pages < 20; pages++) {
    const page = await ok(socket, 'sessions.list', { limit: 2, ...(cursor === undefined ? {} : { cursor }) })
    keys.push(...page.sessions.map((row: any) => row.key))
    times.push(...page.sessions.map((row: any) => row.updatedAt))
    cursor = page.cursor
    if (cursor === undefined) break
  }
  t.same([...keys].sort(), ['agent:main:l1', 'agent:main:l2', 'agent:main:l3', 'agent:main:u1', 'agent:main:u2', 'agent:main:u3', 'agent:main:u4'],
    'every session once: not OpenClaw\'s copy of ours, not a key our resolver refuses, not an agent outside the allow-list')
  t.same(keys.slice(0, 2), ['agent:main:u1', 'agent:main:u2'])
  t.same(keys.slice(-2), ['agent:main:u3', 'agent:main:u4'])
  t.ok(times.every((at, i) => i === 0 || at <= (times[i - 1] as number)), 'newest first across the pages')

  const found = await ok(socket, 'sessions.list', { search: 'u2' })
  t.same(found.sessions.map((row: any) => row.key), ['agent:main:u2'], 'filters reach OpenClaw too')
  t.match(await socket.request('sessions.list', { cursor: 'garbage' }), { ok: false, error: { details: { code: 'FSG_INVALID_CURSOR' } } })
  // With an allow-list a listing's cursor is sealed; without one the merged listing's own cursor is checked.
  const { socket: open } = await gatewayFor(t, openclaw, {}, { store })
  const merged = await ok(open, 'sessions.list', { limit: 1 })
  t.match(merged.cursor, /^up1\./, 'the merged listing\'s cursor')
  t.ok(Array.isArray((await ok(open, 'sessions.list', { limit: 1, cursor: merged.cursor })).sessions), 'which is taken back')
  t.match(await open.request('sessions.list', { cursor: 'garbage' }), { ok: false, error: { details: { code: 'FSG_INVALID_CURSOR' } } })
  t.match(await open.request('sessions.list', { cursor: `up1.${Buffer.from('{"upstream":-1}').toString('base64url')}` }), { ok: false, error: { details: { code: 'FSG_INVALID_CURSOR' } } })
  t.match(await open.request('sessions.list', { cursor: `up1.${Buffer.from('{"store":5,"upstream":0}').toString('base64url')}` }), { ok: false, error: { details: { code: 'FSG_INVALID_CURSOR' } } })
})

t.test('an agent of ours mapped to OpenClaw\'s lists and opens its sessions under our id', async t => {
  const openclaw = await startFakeOpenClaw(t)
  openclaw.stored.set('agent:main:ticket-9', openClawSession('s-t9', Date.now(), [['help', 'on it']]))
  const { socket } = await gatewayFor(t, openclaw, { agents: { support: 'main' } }, { agents: ['support'], defaultAgentId: 'support' })
  t.same((await ok(socket, 'sessions.list', {})).sessions.map((row: any) => row.key), ['agent:support:ticket-9'])
  t.same((await ok(socket, 'sessions.list', { agentId: 'support' })).sessions.map((row: any) => row.key), ['agent:support:ticket-9'])
  t.same((await ok(socket, 'chat.history', { sessionKey: 'ticket-9' })).messages.map(text), ['help', 'on it'])
  t.match(openclaw.gatewayRequests.find(r => r.method === 'chat.history'), { params: { sessionKey: 'agent:main:ticket-9' } })

  // Two of ours on one of OpenClaw's: which one a session belongs to cannot be told, so it is not listed.
  const twice = await startFakeOpenClaw(t)
  twice.stored.set('agent:main:x', openClawSession('s-x', Date.now(), [['q', 'a']]))
  const both = await gatewayFor(t, twice, { agents: { a: 'main', b: 'main' } })
  t.same((await ok(both.socket, 'sessions.list', {})).sessions, [])
  // Ours `main` goes to OpenClaw's `ops`: OpenClaw's own `main` is reached by none of ours.
  const away = await gatewayFor(t, twice, { agents: { main: 'ops' } })
  t.same((await ok(away.socket, 'sessions.list', {})).sessions, [])
})

t.test('a long transcript comes page by page, the newest maxImportMessages of it; OpenClaw\'s shapes become ours', async t => {
  const openclaw = await startFakeOpenClaw(t)
  const turns = Array.from({ length: 1200 }, (_, i): [string, string] => [`q${i}`, `a${i}`])
  openclaw.stored.set('agent:main:long', openClawSession('s-long', Date.now(), turns))
  openclaw.stored.set('agent:main:bounded', openClawSession('s-bounded', Date.now(), turns))
  openclaw.stored.set('agent:main:shapes', {
    sessionId: 's-shapes',
    agentId: 'main',
    updatedAt: Date.now(),
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'weather?' }, { type: 'image', data: 'aGk=', mimeType: 'image/png' }, { type: 'mystery' }, 'not a part'], timestamp: 1 },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'hm' }, { type: 'toolCall', id: 'c1', name: 'weather', arguments: { city: 'Oslo' } }], stopReason: 'toolUse', usage: { input: 5, output: 2 }, model: 'stub/echo', timestamp: 2 },
      { role: 'toolResult', toolCallId: 'c1', toolName: 'weather', content: 'Oslo: 4°C', isError: false, timestamp: 3 },
      { role: 'system', content: 'compaction notice', timestamp: 4 },
      // Without a timestamp, and without an id (OpenClaw gives one; if not, we make one).
      { role: 'assistant', content: 'It is 4°C.', stopReason: 'somethingNew', errorMessage: 'none really', __openclaw: {} }
    ]
  })
  const { app, socket } = await gatewayFor(t, openclaw, { maxImportMessages: 1500 })
  const long = await ok(socket, 'chat.history', { sessionKey: 'long', limit: 1000 })
  t.equal(long.messages.length, 1000)
  const all = await app.sessionGateway.store.read('agent:main:long', { limit: 5000 })
  t.equal(all.entries.length, 1500, 'the newest 1500 of 2400')
  t.same([text(all.entries[0]?.message), text(all.entries.at(-1)?.message)], ['q450', 'a1199'], 'in order')
  t.same(openclaw.gatewayRequests.filter(r => r.method === 'chat.history').map(r => [r.params.limit, r.params.offset, r.params.maxChars]), [[1000, 0, 500000], [500, 1000, 500000]], 'pages counted from the newest, messages uncut')

  const shapes = (await ok(socket, 'chat.history', { sessionKey: 'shapes' })).messages
  t.match(shapes, [
    { role: 'user', content: [{ type: 'text', text: 'weather?' }, { type: 'image', data: 'aGk=' }] },
    { role: 'assistant', content: [{ type: 'thinking' }, { type: 'toolCall', name: 'weather' }], stopReason: 'toolUse', model: 'stub/echo', usage: { input: 5, output: 2, totalTokens: 7 } },
    { role: 'toolResult', toolCallId: 'c1', content: [{ type: 'text', text: 'Oslo: 4°C' }] },
    { role: 'assistant', content: [], stopReason: 'stop', errorMessage: 'none really' }
  ])
  t.equal(shapes.length, 4, 'a role we do not keep is left out')
  t.equal(shapes[0].content.length, 2)
  t.match(shapes[3].__openclaw.id, /^[0-9a-f]{8}$/)
})

t.test('rows and messages missing what OpenClaw usually sends still read, as far as they can', async t => {
  const openclaw = await startFakeOpenClaw(t)
  openclaw.gatewayMode = 'odd'
  const { socket } = await gatewayFor(t, openclaw)
  const rows = (await ok(socket, 'sessions.list', {})).sessions
  t.same(rows.map((row: any) => [row.key, row.sessionId, row.createdAt, row.updatedAt, row.label, row.lastMessagePreview]), [
    ['agent:main:bare', '', 5, 0, undefined, undefined],
    ['agent:main:empty-label', '', 3, 3, undefined, undefined]
  ], 'a row without a key or an agent is not one we can route to')
  t.same((await ok(socket, 'sessions.list', { search: 'none' })).sessions, [])

  const odd = (await ok(socket, 'chat.history', { sessionKey: 'odd' })).messages
  t.match(odd, [
    { role: 'user', content: [], timestamp: 1 },
    { role: 'user', content: [{ type: 'text', text: 'ok' }], __openclaw: { id: /^[0-9a-f]{8}$/ } },
    { role: 'assistant', content: [], stopReason: 'stop' },
    { role: 'toolResult', toolCallId: '', toolName: '', content: [{ type: 'text', text: 'r' }], isError: false }
  ])
  t.equal(odd[2].usage, undefined, 'a usage without both counts is none')
  t.same(openclaw.gatewayRequests.filter(r => r.method === 'chat.history').map(r => r.params.offset), [0, 4], 'no nextOffset: the next page after the messages read; an empty page ends it')
  t.same((await ok(socket, 'chat.history', { sessionKey: 'global' })).messages.map(text), ['to everyone'], 'global, which names no agent')
  t.match(await socket.request('chat.history', { sessionKey: 'null' }), { ok: false, error: { details: { code: 'FSG_UPSTREAM_PROTOCOL' }, message: /answered chat\.history without a payload/ } })
})

t.test('two asking at once for a session only the upstream has import it once', async t => {
  let reads = 0
  const upstream: UpstreamSessions = {
    list: async () => ({ rows: [], more: false }),
    read: async key => {
      reads++
      await new Promise(resolve => setImmediate(resolve))
      return { row: { key, sessionId: 's', agentId: 'main', createdAt: 1, updatedAt: 1 }, entries: [{ type: 'message', id: 'm1', parentId: null, timestamp: new Date(1).toISOString(), message: { role: 'user', content: [{ type: 'text', text: 'hi' }], timestamp: 1 } }] }
    }
  }
  const memory = new MemoryStore()
  const store = new UpstreamSessionStore(memory, upstream, { logger: { info () {}, warn () {} } as never })
  const [a, b] = await Promise.all([store.get('agent:main:popular'), store.get('agent:main:popular')])
  t.equal(reads, 1)
  t.same([a?.key, b?.key], ['agent:main:popular', 'agent:main:popular'])
  t.equal((await memory.read('agent:main:popular', { limit: 10 })).entries.length, 1)
  t.equal((await store.get('agent:main:popular'))?.key, 'agent:main:popular')
  t.equal(reads, 1, 'and then it is ours')
})

t.test('when OpenClaw cannot be read: listing goes on with ours (and says why in the log); opening a session we do not have fails, saying what to check', async t => {
  const openclaw = await startFakeOpenClaw(t)
  const { socket, logs } = await gatewayFor(t, openclaw, { token: 'not-the-token-xyz', timeoutMs: 300 }, { store: await (async () => { const store = new MemoryStore(); await store.ensure('agent:main:mine', 'main'); return store })() })
  t.same((await ok(socket, 'sessions.list', {})).sessions.map((row: any) => row.key), ['agent:main:mine'])
  t.match(logs.join(''), /the upstream's sessions could not be listed/)
  t.notMatch(logs.join(''), /not-the-token-xyz/)
  const refused = await socket.request('chat.history', { sessionKey: 'unknown-here' })
  t.match(refused, { ok: false, error: { code: 'UNAVAILABLE', retryable: true, details: { code: 'FSG_UPSTREAM_REJECTED' }, message: /refused connect .*gateway token mismatch.*check token/ } })
  t.notMatch(refused.error?.message, /not-the-token-xyz/)
  t.equal((await socket.request('chat.history', { sessionKey: 'mine' })).ok, true, 'a session we have needs no upstream')

  const cases: Array<[FakeOpenClaw['gatewayMode'], string, RegExp]> = [
    ['remote', 'FSG_UPSTREAM_REJECTED', /without the operator\.read scope.*same host.*sessions: false/],
    ['silent', 'FSG_UPSTREAM_TIMEOUT', /sent no connect\.challenge within 300 ms/],
    ['garbled', 'FSG_UPSTREAM_PROTOCOL', /not JSON: check that url is an OpenClaw gateway/]
  ]
  for (const [mode, code, message] of cases) {
    const upstream = await startFakeOpenClaw(t)
    upstream.gatewayMode = mode
    const { socket } = await gatewayFor(t, upstream, { timeoutMs: 300 })
    t.match(await socket.request('chat.startup', { sessionKey: 'x' }), { ok: false, error: { details: { code }, message } }, mode)
  }
  const anonymous = await gatewayFor(t, await startFakeOpenClaw(t), { token: undefined })
  t.match(await anonymous.socket.request('chat.history', { sessionKey: 'x' }), { ok: false, error: { details: { code: 'FSG_UPSTREAM_REJECTED' }, message: /refused connect/ } }, 'no token')
  const down = await startFakeOpenClaw(t)
  const { socket: nowhere } = await gatewayFor(t, { ...down, origin: 'http://127.0.0.1:9' } as FakeOpenClaw)
  t.match(await nowhere.request('chat.history', { sessionKey: 'x' }), { ok: false, error: { details: { code: 'FSG_UPSTREAM_FAILED' }, message: /could not be reached.*check url/ } })
})

t.test('sessions: false keeps OpenClaw\'s gateway protocol out of it', async t => {
  const openclaw = await startFakeOpenClaw(t)
  openclaw.stored.set('agent:main:theirs', openClawSession('s-theirs', Date.now(), [['q', 'a']]))
  const { socket } = await gatewayFor(t, openclaw, { sessions: false })
  t.same((await ok(socket, 'sessions.list', {})).sessions, [])
  t.same((await ok(socket, 'chat.history', { sessionKey: 'theirs' })).messages, [])
  t.same(openclaw.gatewayRequests, [])
})

t.test('merging keeps newest first when either source\'s page runs out before it does', async t => {
  const row = (key: string, updatedAt: number): SessionRow => ({ key: `agent:main:${key}`, sessionId: key, agentId: 'main', createdAt: 0, updatedAt })
  // A store of fixed rows, newest first; `step` rows per page whatever the limit (a store may page short).
  const fixed = (rows: SessionRow[], step?: number): SessionStore => ({
    async list (query: ListQuery) {
      const start = Number(query.cursor ?? 0)
      const end = Math.min(rows.length, start + (step ?? query.limit))
      return end < rows.length ? { rows: rows.slice(start, end), cursor: String(end) } : { rows: rows.slice(start, end) }
    },
    get: async () => undefined
  } as unknown as SessionStore)
  const upstream = (rows: SessionRow[]): UpstreamSessions => ({
    list: async query => ({ rows: rows.slice(query.offset, query.offset + query.limit), more: query.offset + query.limit < rows.length }),
    read: async () => undefined
  })
  const pages = async (store: UpstreamSessionStore): Promise<string[][]> => {
    const out: string[][] = []
    let cursor: string | undefined
    for (let i = 0; i < 10; i++) {
      const page = await store.list({ limit: 2, ...(cursor === undefined ? {} : { cursor }) })
      out.push(page.rows.map(r => r.sessionId))
      cursor = page.cursor
      if (cursor === undefined) break
    }
    return out
  }
  const logger = { info () {}, warn () {} } as never
  t.same(await pages(new UpstreamSessionStore(fixed([row('a', 100), row('b', 10)], 1), upstream([row('u', 50)]), { logger })), [['a'], ['u', 'b']],
    'a short page of the store\'s: nothing older than its last row is taken from the upstream')
  t.same(await pages(new UpstreamSessionStore(fixed([row('a', 100), row('b', 10), row('c', 5)]), upstream([row('u', 50)]), { logger })), [['a', 'u'], ['b', 'c']],
    'part of the store\'s page taken: the next page starts right after it')
  const calls: string[] = []
  const wrapped = new UpstreamSessionStore(Object.assign(fixed([]), { open: async () => { calls.push('open') }, close: async () => { calls.push('close') } }), upstream([]), { logger })
  await wrapped.open({ logger })
  await wrapped.close()
  t.same(calls, ['open', 'close'], 'opening and closing reach the store')
  const bare = new UpstreamSessionStore(fixed([]), upstream([]), { logger })
  await bare.open({ logger })
  t.equal(await bare.sweepRecords(Date.now(), 10), 0, 'a store that expires records itself has nothing to sweep')
  await bare.close()
})

// The store in front of the upstream is a store like any other.
storeContract({
  test: (name, fn) => t.test(`the store with an upstream: ${name}`, fn),
  makeStore: async () => new UpstreamSessionStore(new MemoryStore(), { list: async () => ({ rows: [], more: false }), read: async () => undefined }, { logger: { info () {}, warn () {} } as never })
})
