import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import t from 'tap'
import type { ListQuery, SessionRow, TranscriptEntry } from '../lib/index.js'
import { RedisStore } from '../lib/redis/index.js'
import { listMember } from '../lib/redis/store-keys.js'
import { storeContract } from '../lib/testing/index.js'
import { buildApp, TOKEN } from './helpers.js'
import { startRedis } from './redis-server.js'

const redis = await startRedis(t)
const admin = redis.client()
const KEY = 'agent:main:one'

/** A store on the test file's server, under its own key prefix, closed at teardown. */
function store (keyPrefix: string, options: Omit<ConstructorParameters<typeof RedisStore>[0], 'keyPrefix'> = { url: redis.url }): RedisStore {
  const made = new RedisStore({ ...options, keyPrefix })
  t.teardown(() => made.close())
  return made
}

function entry (i: number, text = `message ${i}`): TranscriptEntry {
  return { type: 'message', id: `e${i}`, parentId: null, timestamp: new Date(0).toISOString(), message: { role: 'user', content: [{ type: 'text', text }], timestamp: 0 }, seq: i + 1 }
}

const ids = (entries: TranscriptEntry[]): string[] => entries.map(e => e.id)

/** The keys on every page of a listing, page by page (at most 10 pages). */
async function pages (s: RedisStore, query: ListQuery): Promise<string[][]> {
  const found: string[][] = []
  let cursor: string | undefined
  for (let i = 0; i < 10; i++) {
    const page = await s.list({ ...query, ...(cursor === undefined ? {} : { cursor }) })
    found.push(page.rows.map(row => row.key))
    cursor = page.cursor
    if (cursor === undefined) break
  }
  return found
}

let stores = 0
storeContract({
  test: (name, fn) => t.test(`redis store: ${name}`, fn),
  makeStore: async () => new RedisStore({ url: redis.url, keyPrefix: `contract${++stores}:` })
})

t.test('a Redis restart with AOF (kill -9, same port) keeps rows, transcripts, generations, listing and records', async t => {
  // `always`: every write is on disk before Redis answers. With `everysec` a write Redis
  // acknowledged can still be lost when it postpones the write behind a slow fsync.
  const server = await startRedis(t, { aof: true, args: ['--appendfsync', 'always'] })
  const config = server.client()
  t.same(await config.config('GET', 'appendfsync'), ['appendfsync', 'always'])
  config.disconnect()
  const before = new RedisStore({ url: server.url })
  t.teardown(() => before.close())
  const first = await before.ensure(KEY, 'main')
  await before.append(KEY, [entry(0), entry(1)])
  await before.reset(KEY)
  await before.append(KEY, [entry(2, 'after the reset')])
  await before.patch(KEY, { label: 'Kept' })
  await before.ensure('agent:ops:two', 'ops')
  await before.putRecord('response', 'resp_1', { status: 'completed' })
  const snapshot = async (store: RedisStore): Promise<unknown> => {
    const row = await store.get(KEY)
    return {
      row,
      found: await store.findBySessionId(row?.sessionId as string),
      list: await store.list({ limit: 10 }),
      current: await store.read(KEY, { limit: 10 }),
      old: await store.read(KEY, { limit: 10, sessionId: first.sessionId }),
      record: await store.getRecord('response', 'resp_1')
    }
  }
  const written = await snapshot(before)
  t.match(written, { row: { label: 'Kept', preview: 'after the reset' }, current: { entries: [{ id: 'e2' }] }, old: { entries: [{ id: 'e0' }, { id: 'e1' }] }, record: { status: 'completed' } })
  t.equal((written as { list: { rows: unknown[] } }).list.rows.length, 2)

  await server.restart()
  const after = new RedisStore({ url: server.url })
  t.teardown(() => after.close())
  t.same(await snapshot(after), written, 'a new store (a new process) finds everything')
  t.same(await snapshot(before), written, 'and the store that wrote it reconnects (its scripts are gone from the restarted Redis)')
  await before.append(KEY, [entry(3)])
  t.same(ids((await after.read(KEY, { limit: 10 })).entries), ['e2', 'e3'], 'and goes on writing')

  await server.kill()
  await t.rejects(before.get(KEY), { code: 'FSG_STORE_UNAVAILABLE', statusCode: 503 }, 'a call while Redis is down fails, it does not hang')
  await t.rejects(before.append(KEY, [entry(4)]), { code: 'FSG_STORE_UNAVAILABLE' })
  await server.start()
  t.same(ids((await before.read(KEY, { limit: 10 })).entries), ['e2', 'e3'], 'and works again once Redis is back; the failed append wrote nothing')
})

t.test('two gateway apps on one Redis: a turn on one, its session, history and response on the other', async t => {
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
  const a = await buildApp(t, { store: new RedisStore({ url: redis.url, keyPrefix: 'apps:' }) })
  const b = await buildApp(t, { store: new RedisStore({ client: redis.client(), keyPrefix: 'apps:' }) })
  const key = 'agent:main:shared'
  const first = await a.inject({ method: 'POST', url: '/v1/responses', headers: { ...auth, 'x-openclaw-session-key': key }, payload: { input: 'hello from a' } })
  t.equal(first.statusCode, 200, first.body)

  const listed = await b.inject({ url: '/v1/sessions', headers: auth })
  t.match(listed.json(), { sessions: [{ key, lastMessagePreview: 'hello from a' }] }, 'the other app lists the session')
  const text = async (app: typeof a): Promise<string[]> => {
    const page = await app.inject({ url: `/v1/sessions/${encodeURIComponent(key)}/messages`, headers: auth })
    return (page.json().messages as Array<{ role: string, content: Array<{ text: string }> }>).map(m => `${m.role}: ${m.content[0]?.text as string}`)
  }
  t.same(await text(b), ['user: hello from a', 'assistant: hello from a'], 'and reads its history')

  const second = await b.inject({ method: 'POST', url: '/v1/responses', headers: auth, payload: { input: 'b goes on', previous_response_id: first.json().id } })
  t.equal(second.statusCode, 200, second.body)
  t.equal(second.headers['x-openclaw-session-key'], key, "and continues it from the first app's response")
  t.same(await text(a), ['user: hello from a', 'assistant: hello from a', 'user: b goes on', 'assistant: b goes on'])
})

t.test('while Redis is down, clients get 503s that say the store is unavailable; once it is back, turns go on', async t => {
  const server = await startRedis(t, { aof: true, args: ['--appendfsync', 'always'] })
  const app = await buildApp(t, { store: new RedisStore({ url: server.url, keyPrefix: 'down:' }) })
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-openclaw-session-key': 'down' }
  const turn = async (input: string): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url: '/v1/responses', headers: auth, payload: { input } })
  t.equal((await turn('before')).statusCode, 200)

  await server.kill()
  const refused = await turn('while down')
  t.equal(refused.statusCode, 503)
  t.match(refused.json(), { error: { code: 'store_unavailable', message: /session store is unavailable/ } })
  const listed = await app.inject({ url: '/v1/sessions', headers: auth })
  t.equal(listed.statusCode, 503, listed.body)
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 503, 'and the gateway says it is not ready')

  await server.start()
  // The store's client reconnects on its own, with a backoff: wait (bounded) until ready.
  let ready = 0
  const until = Date.now() + 10_000
  while (Date.now() < until && (ready = (await app.inject({ url: '/readyz' })).statusCode) !== 200) await sleep(50)
  t.equal(ready, 200, 'ready again once Redis is back')
  const after = await turn('after')
  t.equal(after.statusCode, 200, after.json())
  const page = await app.inject({ url: '/v1/sessions/down/messages', headers: auth })
  t.same(page.json().messages.map((m: { content: Array<{ text: string }> }) => m.content[0]?.text), ['before', 'before', 'after', 'after'], 'and nothing of the refused turn was kept')
})

t.test('a tail read costs its page: 50 of 10,000 entries is one range read of 50', async t => {
  const s = store('tail:')
  await s.ensure(KEY, 'main')
  for (let batch = 0; batch < 100; batch++) await s.append(KEY, Array.from({ length: 100 }, (_, i) => entry(batch * 100 + i)))

  // MONITOR shows every command Redis runs, those a script runs too.
  const monitor = await redis.client().monitor()
  const seen: string[][] = []
  monitor.on('monitor', (_time: string, args: string[]) => seen.push(args))
  const newest = await s.read(KEY, { limit: 50 })
  const deep = await s.read(KEY, { limit: 50, before: '5000' })
  await admin.echo('tail read done')
  for (let i = 0; i < 200 && !seen.some(args => args[1] === 'tail read done'); i++) await sleep(10)
  monitor.disconnect()

  t.same(ids(newest.entries), Array.from({ length: 50 }, (_, i) => `e${9950 + i}`))
  t.equal(newest.before, '9951')
  t.same(ids(deep.entries), Array.from({ length: 50 }, (_, i) => `e${4949 + i}`), 'a page from the middle')
  t.equal(deep.before, '4950')
  const transcript = seen.filter(args => !/^eval/i.test(args[0] as string) && args.some(arg => arg.endsWith(':transcript')))
  t.same(transcript.map(args => [(args[0] as string).toLowerCase(), ...args.slice(2)]), [
    ['xrevrange', '1', '1', 'COUNT', '50'],
    ['xrevrange', '(1-5000', '1', 'COUNT', '50']
  ], 'each read touched the transcript once, for 50 entries')
})

t.test('a crash between a row and its index: listing skips and removes what no row backs, and moves what lags', async t => {
  const s = store('crash:')
  const a = await s.ensure('agent:main:a', 'main')
  await sleep(2)
  await s.ensure('agent:main:b', 'main')
  // What a crash between two writes can leave behind, written as it would be:
  const ghost = listMember({ updatedAt: Date.now() + 60_000, key: 'agent:main:ghost' }) // deleted, its member not yet removed
  const lagging = listMember({ updatedAt: a.updatedAt - 1000, key: 'agent:main:a' }) // an older place of a row
  const astray = listMember(a) // in another agent's index (a key deleted and created again for another agent)
  await admin.zadd('crash:{sessions}:all', 0, ghost, 0, lagging)
  await admin.zadd('crash:{sessions}:agent:main', 0, ghost)
  await admin.zadd('crash:{sessions}:agent:ops', 0, astray)
  const stray = randomUUID()
  await admin.set(`crash:session-id:${stray}`, 'agent:main:a') // a pointer to a generation never made current

  t.same((await s.list({ limit: 10 })).rows.map(row => row.key), ['agent:main:b', 'agent:main:a'], 'each row once, in its place')
  t.same((await s.list({ limit: 10, agentId: 'main' })).rows.map(row => row.key), ['agent:main:b', 'agent:main:a'])
  t.same((await s.list({ limit: 10, agentId: 'ops' })).rows, [])
  t.same(await admin.zrange('crash:{sessions}:all', 0, '-1'), [listMember(await s.get('agent:main:b') as SessionRow), listMember(a)], 'the index holds what the rows say, and nothing else')
  t.same(await admin.zrange('crash:{sessions}:agent:main', 0, '-1'), await admin.zrange('crash:{sessions}:all', 0, '-1'))
  t.same(await admin.zrange('crash:{sessions}:agent:ops', 0, '-1'), [])
  t.equal(await s.findBySessionId(stray), undefined, 'a stray pointer finds nothing')
})

t.test('an index member newer than its row is not listed ahead of rows the page has not reached', async t => {
  const s = store('ahead:', { url: redis.url, listScanLimit: 1 })
  const a = await s.ensure('agent:main:a', 'main')
  await sleep(2)
  await s.ensure('agent:main:b', 'main')
  await admin.zadd('ahead:{sessions}:all', 0, listMember({ updatedAt: a.updatedAt + 60_000, key: 'agent:main:a' }))
  t.same((await pages(s, { limit: 5 })).flat(), ['agent:main:b', 'agent:main:a'], 'each row once, in order, one index entry a page')
  t.same(await admin.zrange('ahead:{sessions}:all', 0, '-1'), [listMember(await s.get('agent:main:b') as SessionRow), listMember(a)])
})

t.test('a row met twice on one page (its older index entry not yet removed) counts once: the last page has no cursor', async t => {
  const s = store('twice:')
  const a = await s.ensure('agent:main:a', 'main')
  await sleep(2)
  await s.ensure('agent:main:b', 'main')
  await admin.zadd('twice:{sessions}:all', 0, listMember({ updatedAt: a.updatedAt - 1000, key: 'agent:main:a' }))
  t.same(await pages(s, { limit: 2 }), [['agent:main:b', 'agent:main:a']], 'one page, and nothing said to follow')
})

t.test('an index write that fails does not fail the change already stored; listing puts the row in its place', async t => {
  const s = store('acl:')
  // A client that may write sessions, pointers and records, but not the indexes.
  await admin.call('ACL', 'SETUSER', 'noindex', 'on', '>secret', '+@all', '~acl:{agent*', '~acl:session-id:*')
  const limited = store('acl:', { url: redis.url.replace('redis://', 'redis://noindex:secret@') })
  await s.ensure('agent:main:a', 'main')
  await sleep(2)
  await s.ensure('agent:main:b', 'main')
  await limited.append('agent:main:a', [entry(0, 'touched')])
  t.same(ids((await s.read('agent:main:a', { limit: 5 })).entries), ['e0'], 'the append resolved, and it is stored')
  t.same((await s.list({ limit: 10 })).rows.map(row => [row.key, row.preview]), [['agent:main:a', 'touched'], ['agent:main:b', undefined]],
    'listed where the row is now, not where the index had it')
  t.equal((await admin.zrange('acl:{sessions}:all', 0, '-1')).length, 2, 'and the index is repaired')

  await limited.ensure('agent:main:c', 'main')
  t.same((await s.list({ limit: 10 })).rows.map(row => row.key), ['agent:main:a', 'agent:main:b'], 'a session created without its index entry is not listed…')
  await s.append('agent:main:c', [entry(1)])
  t.same((await s.list({ limit: 10 })).rows.map(row => row.key), ['agent:main:c', 'agent:main:a', 'agent:main:b'], '…until its first append')
})

t.test('a list page examines at most listScanLimit index entries, and goes on by its cursor', async t => {
  const s = store('scan:', { url: redis.url, listScanLimit: 3 })
  for (let i = 0; i < 7; i++) {
    await s.ensure(`agent:main:s${i}`, 'main')
    await sleep(2)
  }
  const short = async (query: ListQuery): Promise<string[][]> => (await pages(s, query)).map(keys => keys.map(key => key.slice(-2)))
  t.same(await short({ limit: 2, search: 's0' }), [[], [], ['s0']], 'a search that skips rows ends its pages early, with a cursor')
  t.same(await short({ limit: 5 }), [['s6', 's5', 's4'], ['s3', 's2', 's1'], ['s0']])
  t.same(await short({ limit: 2 }), [['s6', 's5'], ['s4', 's3'], ['s2', 's1'], ['s0']], 'pages within the limit are as usual')
})

t.test('delete archives a session for deletedTtlSeconds; 0 drops it at once', async t => {
  for (const [prefix, ttl] of [['archive:', 60], ['drop:', 0]] as const) {
    const s = store(prefix, { url: redis.url, deletedTtlSeconds: ttl })
    await s.ensure(KEY, 'main')
    await s.append(KEY, [entry(0)])
    await s.reset(KEY)
    await s.append(KEY, [entry(1)])
    await s.ensure('agent:main:empty', 'main')
    t.equal(await s.delete(KEY), true)
    t.equal(await s.delete('agent:main:empty'), true, 'a session without a transcript too')
    const left = (await admin.keys(`${prefix}*`)).sort()
    if (ttl === 0) {
      t.same(left, [], `${prefix} nothing is left`)
      continue
    }
    t.match(left, [/^archive:\{agent:main:empty\}:deleted:.+:generations$/, /^archive:\{agent:main:empty\}:deleted:.+:row$/,
      /^archive:\{agent:main:one\}:deleted:.+:generations$/, /^archive:\{agent:main:one\}:deleted:.+:row$/, /^archive:\{agent:main:one\}:deleted:.+:transcript$/])
    t.equal(left.length, 5)
    for (const key of left) t.ok(await admin.ttl(key) > 0 && await admin.ttl(key) <= 60, `${key} expires`)
    t.equal(await admin.xlen(left.find(key => key.endsWith('transcript')) as string), 2, 'both generations are in the archive')
  }
})

t.test('keys with braces and percent signs keep to their own session', async t => {
  const s = store('odd:')
  const keys = ['agent:main:a{b}', 'agent:main:a%7bb%7d', 'agent:main:a%257bb%257d']
  for (const [i, key] of keys.entries()) {
    await s.ensure(key, 'main')
    await s.append(key, [entry(i)])
  }
  for (const [i, key] of keys.entries()) t.same(ids((await s.read(key, { limit: 5 })).entries), [`e${i}`], key)
})

t.test('bad input gets a clear error', async t => {
  const s = store('bad:')
  await s.ensure(KEY, 'main')
  await t.rejects(s.read(KEY, { limit: 0 }), { code: 'FSG_INVALID_INPUT' })
  await t.rejects(s.read(KEY, { limit: 2.5 }), { code: 'FSG_INVALID_INPUT' })
  await t.rejects(s.list({ limit: Number.NaN }), { code: 'FSG_INVALID_INPUT' })
  await t.rejects(s.read(KEY, { limit: 5, before: '1-0' }), { code: 'FSG_INVALID_CURSOR' })
  await t.rejects(s.read(KEY, { limit: 5, before: '1'.repeat(20) }), { code: 'FSG_INVALID_CURSOR' })
  const cursor = (position: unknown[]): string => Buffer.from(JSON.stringify(position)).toString('base64url')
  await t.rejects(s.list({ limit: 5, cursor: cursor([-1, KEY]) }), { code: 'FSG_INVALID_CURSOR' })
  await t.rejects(s.list({ limit: 5, cursor: cursor([1e300, KEY]) }), { code: 'FSG_INVALID_CURSOR' })
  await t.rejects(s.putRecord('response', 'resp_1', undefined), { code: 'FSG_INVALID_INPUT', message: /JSON value/ })
  t.same(await s.read(KEY, { limit: 5, before: '0' }), { entries: [] })

  t.throws(() => new RedisStore({} as any), { code: 'FSG_INVALID_OPTION', message: /\{ client \}.*\{ url \}/ })
  t.throws(() => new RedisStore(undefined as any), { code: 'FSG_INVALID_OPTION' })
  t.throws(() => new RedisStore({ url: redis.url, listScanLimit: 0 }), { code: 'FSG_INVALID_OPTION', message: /listScanLimit/ })
  t.throws(() => new RedisStore({ url: redis.url, deletedTtlSeconds: -1 }), { code: 'FSG_INVALID_OPTION', message: /deletedTtlSeconds/ })
})

t.test('close() closes the client the store made, not one it was given', async t => {
  const connections = async (): Promise<number> => String(await admin.client('LIST')).trim().split('\n').length
  const given: Redis = redis.client()
  await given.ping()
  const start = await connections()
  const lent = new RedisStore({ client: given, keyPrefix: 'close:' })
  const owned = new RedisStore({ url: redis.url, keyPrefix: 'close:' })
  await owned.get(KEY)
  t.equal(await connections(), start + 1)
  await Promise.all([lent.close(), owned.close(), owned.close()])
  t.equal(await connections(), start, 'its own connection is closed (once, however often it is asked)')
  t.equal(await given.ping(), 'PONG', "the application's client is still open")
})

t.test('a session\'s set of records lives as long as its longest-lived record, for ever once one has no expiry', async t => {
  const s = store('recordset:')
  const set = `recordset:{${KEY}}:records`
  const now = Date.now()
  const expiry = async (): Promise<number> => Number(await admin.pexpiretime(set))
  await s.putRecord('response', 'resp_1', { n: 1 }, { sessionKey: KEY, expiresAt: now + 60_000 })
  t.equal(await expiry(), now + 60_000)
  await s.putRecord('response', 'resp_2', { n: 2 }, { sessionKey: KEY, expiresAt: now + 120_000 })
  t.equal(await expiry(), now + 120_000, 'a later record makes it live longer')
  await s.putRecord('response', 'resp_3', { n: 3 }, { sessionKey: KEY, expiresAt: now + 30_000 })
  t.equal(await expiry(), now + 120_000, 'an earlier one does not make it live shorter')
  await s.putRecord('response', 'resp_4', { n: 4 }, { sessionKey: KEY })
  t.equal(await expiry(), -1, 'a record without expiry keeps it')
  await s.putRecord('response', 'resp_5', { n: 5 }, { sessionKey: KEY, expiresAt: now + 30_000 })
  t.equal(await expiry(), -1)
  t.same((await admin.smembers(set)).sort(), [1, 2, 3, 4, 5].map(i => `recordset:record:response:resp_${i}`))
})
