import t from 'tap'
import { encodeListCursor } from '../lib/stores/list-rows.js'
import type { TranscriptEntry } from '../lib/index.js'
import { migrate, PostgresStore, SCHEMA_VERSION, type PgPool } from '../lib/postgres/index.js'
import { storeContract } from '../lib/testing/index.js'
import { SessionNotFoundError } from '../lib/errors.js'
import { unreachable } from '../lib/postgres/connection.js'
import { buildApp, TOKEN } from './helpers.js'
import { startPostgres } from './postgres-server.js'

// PostgresStore on a real PostgreSQL (a throwaway cluster this file starts): the contract
// every store passes, then what is particular to a database: the migration, the error
// when it was not run, tail reads on the (session, seq) key, archives, transactions that
// fail half way, and bad input.

const server = await startPostgres(t)
const admin = server.pool()
let tables = 0

/** A fresh, migrated set of tables (a table prefix of its own). */
async function migrated (): Promise<string> {
  const tablePrefix = `t${++tables}_`
  await migrate({ pool: admin, tablePrefix })
  return tablePrefix
}

const KEY = 'agent:main:pg'

function entry (i: number, text = `message ${i}`): TranscriptEntry {
  return {
    type: 'message', id: `e${i}`, parentId: null, timestamp: new Date(1_700_000_000_000 + i).toISOString(), seq: i + 1,
    message: { role: 'user', content: [{ type: 'text', text }], timestamp: 1_700_000_000_000 + i }
  }
}

const ids = (entries: TranscriptEntry[]): string[] => entries.map(e => e.id)

async function regclass (name: string): Promise<boolean> {
  const { rows } = await admin.query('SELECT to_regclass($1) IS NOT NULL AS found', [name])
  return rows[0].found as boolean
}

// Each store its own pool, made from the URL and ended by close(), as an application's would be.
storeContract({
  test: (name, fn) => t.test(`postgres store: ${name}`, fn),
  makeStore: async () => new PostgresStore({ connectionString: server.url, tablePrefix: await migrated(), maxConnections: 4 })
})

t.test('migrate: versioned, idempotent, safe from two processes at once, in a schema of its own', async t => {
  const runs = await Promise.all([migrate({ connectionString: server.url, tablePrefix: 'm_' }), migrate({ connectionString: server.url, tablePrefix: 'm_' })])
  t.same(runs.map(run => run.from).sort(), [0, SCHEMA_VERSION], 'one made the tables, the other found them made')
  t.same(await migrate({ pool: admin, tablePrefix: 'm_' }), { from: SCHEMA_VERSION, to: SCHEMA_VERSION }, 'a third run changes nothing')
  const { rows } = await admin.query('SELECT version FROM public.m_migrations ORDER BY version')
  t.same(rows.map(row => row.version), [1, 2], 'each version recorded once')
  for (const table of ['sessions', 'generations', 'entries', 'records']) t.ok(await regclass(`public.m_${table}`), `m_${table} is there`)

  t.same(await migrate({ pool: admin, schema: 'tenant_a' }), { from: 0, to: SCHEMA_VERSION }, 'a schema that does not exist is made')
  const store = new PostgresStore({ pool: admin, schema: 'tenant_a' })
  await store.ensure(KEY, 'main')
  const { rows: there } = await admin.query('SELECT key FROM tenant_a.fsg_sessions')
  t.same(there, [{ key: KEY }], 'and the store writes there, with the default prefix')
})

t.test('migrating tables at version 1 adds records\' session and expiry, keeping the records there; doing it again changes nothing', async t => {
  const tablePrefix = await migrated()
  // Tables as version 1 left them, with a record in them.
  await admin.query(`DROP INDEX public."${tablePrefix}records_session", public."${tablePrefix}records_expiry"`)
  await admin.query(`ALTER TABLE public.${tablePrefix}records DROP COLUMN session_key, DROP COLUMN expires_at`)
  await admin.query(`DELETE FROM public.${tablePrefix}migrations WHERE version = 2`)
  await admin.query(`INSERT INTO public.${tablePrefix}records (kind, id, value) VALUES ('response', 'resp_old', '{"kept":true}')`)
  await t.rejects(new PostgresStore({ pool: admin, tablePrefix }).getRecord('response', 'resp_old'), { code: 'FSG_STORE_SCHEMA', message: /version 1 .*needs version 2/ })

  t.same(await migrate({ pool: admin, tablePrefix }), { from: 1, to: 2 })
  t.same(await migrate({ pool: admin, tablePrefix }), { from: 2, to: 2 })
  const store = new PostgresStore({ pool: admin, tablePrefix })
  t.same(await store.getRecord('response', 'resp_old'), { kept: true }, 'a record from before never expires and belongs to no session')
  t.equal(await store.sweepRecords(Date.now() + 86_400_000, 10), 0)
  await store.ensure(KEY, 'main')
  await store.putRecord('response', 'resp_new', { n: 1 }, { sessionKey: KEY, expiresAt: Date.now() + 60_000 })
  await store.delete(KEY)
  t.same([await store.getRecord('response', 'resp_new'), await store.getRecord('response', 'resp_old')], [undefined, { kept: true }])
})

t.test('a missing schema is a clear error: the store never makes its tables itself', async t => {
  const store = new PostgresStore({ pool: admin, tablePrefix: 'later_' })
  const missing = { code: 'FSG_STORE_SCHEMA', statusCode: 503, message: /version 0 \(0: not made yet\).*never creates.*npm run postgres:migrate/ }
  await t.rejects(store.open(), missing, 'open says what to do')
  await t.rejects(store.ensure(KEY, 'main'), missing, 'so does every call')
  t.notOk(await regclass('public.later_sessions'), 'and nothing was created')

  const app = await buildApp(t, { store })
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 503, 'a gateway on it starts, not ready')

  await migrate({ pool: admin, tablePrefix: 'later_' })
  await store.open()
  t.equal((await store.ensure(KEY, 'main')).key, KEY, 'once migrated, the same store works: a failed check is tried again')
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 200, 'and the gateway is ready')
})

t.test('tables newer than this package are refused, by the store and by migrate', async t => {
  const tablePrefix = await migrated()
  await admin.query(`INSERT INTO public.${tablePrefix}migrations (version, description) VALUES (${SCHEMA_VERSION + 1}, 'from the future')`)
  const newer = { code: 'FSG_STORE_SCHEMA', message: new RegExp(`version ${SCHEMA_VERSION + 1}, newer than this package knows.*upgrade`) }
  await t.rejects(new PostgresStore({ pool: admin, tablePrefix }).get(KEY), newer)
  await t.rejects(migrate({ connectionString: server.url, tablePrefix }), newer)
})

t.test('a migration that fails half way leaves nothing behind', async t => {
  const failing = failOn(admin, /CREATE TABLE "public"."half_entries"/)
  await t.rejects(migrate({ pool: failing, tablePrefix: 'half_' }), /refused on purpose/)
  t.notOk(await regclass('public.half_sessions'), 'the tables made before the failure were rolled back')
  t.notOk(await regclass('public.half_migrations'), 'and so was the version table')
  t.same(await migrate({ pool: admin, tablePrefix: 'half_' }), { from: 0, to: SCHEMA_VERSION }, 'the next run starts from nothing')
})

t.test('a tail read walks the (session_id, seq) key backwards and reads only its page', async t => {
  const tablePrefix = await migrated()
  const seen: Array<{ text: string, values: unknown[] | undefined }> = []
  const store = new PostgresStore({ pool: recording(admin, seen), tablePrefix })
  await store.ensure(KEY, 'main')
  for (let batch = 0; batch < 100; batch++) await store.append(KEY, Array.from({ length: 100 }, (_, i) => entry(batch * 100 + i)))

  seen.length = 0
  const newest = await store.read(KEY, { limit: 50 })
  const deep = await store.read(KEY, { limit: 50, before: '5000' })
  t.same(ids(newest.entries), Array.from({ length: 50 }, (_, i) => `e${9950 + i}`))
  t.equal(newest.before, '9951')
  t.same(ids(deep.entries), Array.from({ length: 50 }, (_, i) => `e${4949 + i}`), 'a page from the middle')
  t.equal(deep.before, '4950')

  t.equal(seen.length, 2, 'one statement per read')
  for (const { text, values } of seen) {
    const { rows } = await admin.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values)
    const nodes = planNodes((rows[0]['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0]?.Plan as PlanNode)
    const scans = nodes.filter(node => node['Relation Name'] === `${tablePrefix}entries`)
    t.equal(scans.length, 1, 'the entries table is scanned once')
    // An index scan, or a bitmap scan over the index: which one is the planner's choice; the rows it reads are not.
    const onKey = nodes.filter(node => node['Index Name'] === `${tablePrefix}entries_pkey`)
    t.equal(onKey.length, 1, 'on its (session_id, seq) key')
    t.equal(onKey[0]?.['Actual Rows'], 50, '50 of 10,000 rows found on the key')
    t.equal(scans[0]?.['Actual Rows'], 50, '50 rows read')
    t.notOk(nodes.some(node => node['Node Type'] === 'Seq Scan' || node['Node Type'] === 'Sort'), 'nothing read whole, nothing sorted')
  }
})

t.test('delete archives the generations (their entries stay), and a later key of that name reads none of them', async t => {
  const tablePrefix = await migrated()
  const store = new PostgresStore({ pool: admin, tablePrefix })
  const first = await store.ensure(KEY, 'main')
  await store.append(KEY, [entry(0)])
  const second = await store.reset(KEY) as { sessionId: string }
  await store.append(KEY, [entry(1)])
  t.equal(await store.delete(KEY), true)

  const { rows } = await admin.query(`SELECT g.session_id, g.deleted_at IS NOT NULL AS archived, count(e.seq)::int AS entries
    FROM public.${tablePrefix}generations g LEFT JOIN public.${tablePrefix}entries e USING (session_id) GROUP BY 1, 2 ORDER BY g.created_at`)
  t.same(rows, [{ session_id: first.sessionId, archived: true, entries: 1 }, { session_id: second.sessionId, archived: true, entries: 1 }], 'both generations archived, entries kept')
  await store.ensure(KEY, 'main')
  await t.rejects(store.read(KEY, { limit: 5, sessionId: first.sessionId }), { code: 'FSG_SESSION_NOT_FOUND' })
  t.equal(await store.findBySessionId(second.sessionId), undefined)
})

t.test('a delete that fails half way changes nothing', async t => {
  const tablePrefix = await migrated()
  const store = new PostgresStore({ pool: failOn(admin, /UPDATE .*generations/), tablePrefix })
  const row = await store.ensure(KEY, 'main')
  await store.append(KEY, [entry(0)])
  await t.rejects(store.delete(KEY), /refused on purpose/)
  t.equal((await store.get(KEY))?.sessionId, row.sessionId, 'the row is still there')
  t.same(ids((await store.read(KEY, { limit: 5 })).entries), ['e0'])

  // A commit that fails, and the rollback after it too (the connection is gone): the
  // caller hears the commit's failure, and nothing of the delete stays.
  const cut = new PostgresStore({ pool: failOn(admin, /^(COMMIT|ROLLBACK)$/), tablePrefix })
  await t.rejects(cut.delete(KEY), /refused on purpose: COMMIT/)
  t.equal((await store.get(KEY))?.sessionId, row.sessionId, 'the row is still there after a failed commit')
})

t.test('two stores (two processes\' pools) appending to one session at once: every batch whole, in order, seqs without gaps', async t => {
  const tablePrefix = await migrated()
  const stores = [new PostgresStore({ connectionString: server.url, tablePrefix }), new PostgresStore({ connectionString: server.url, tablePrefix })]
  t.teardown(async () => { await Promise.all(stores.map(async store => { await store.close() })) })
  await Promise.all(stores.map(async store => await store.ensure(KEY, 'main')))
  const batches = 60
  await Promise.all(Array.from({ length: batches }, async (_, b) =>
    await stores[b % 2]?.append(KEY, Array.from({ length: 3 }, (_, i) => ({ ...entry(b * 3 + i), id: `b${b}-${i}` })))))
  const all = (await stores[0]?.read(KEY, { limit: 1000 }))?.entries ?? []
  t.equal(all.length, batches * 3, 'no entry lost')
  for (let i = 0; i < all.length; i += 3) {
    const batch = /^b(\d+)-0$/.exec(all[i]?.id as string)?.[1]
    t.same(ids(all.slice(i, i + 3)), [`b${batch}-0`, `b${batch}-1`, `b${batch}-2`], `the batch at ${i} is whole and in order`)
  }
  t.equal(new Set(all.map(e => e.id)).size, all.length, 'none twice')
  const { rows } = await admin.query(`SELECT min(seq)::int AS min, max(seq)::int AS max, count(*)::int AS n FROM public.${tablePrefix}entries`)
  t.same(rows, [{ min: 1, max: batches * 3, n: batches * 3 }], 'seqs 1 to n, no gaps')
  const { rows: [row] } = await admin.query(`SELECT length::int FROM public.${tablePrefix}sessions`)
  t.equal(row?.length, batches * 3, "the row's length agrees")
})

t.test('search folds case as JavaScript does, whatever the database locale (this cluster is C)', async t => {
  const store = new PostgresStore({ pool: admin, tablePrefix: await migrated() })
  await store.ensure('agent:main:a', 'main')
  await store.patch('agent:main:a', { label: 'ÉCOLE' })
  await store.ensure('agent:main:b', 'main')
  await store.append('agent:main:b', [entry(0, 'Straße ÜBER alles')])
  t.same((await store.list({ limit: 5, search: 'école' })).rows.map(r => r.key), ['agent:main:a'])
  t.same((await store.list({ limit: 5, search: 'über' })).rows.map(r => r.key), ['agent:main:b'])
  t.same((await store.list({ limit: 5, search: 'ÜBER', agentId: 'main', label: undefined })).rows.map(r => r.key), ['agent:main:b'])
})

t.test('entries and records keep what JSON can say: quotes, backslashes, NUL, astral characters', async t => {
  const store = new PostgresStore({ pool: admin, tablePrefix: await migrated() })
  await store.ensure(KEY, 'main')
  const odd = { ...entry(0, 'a "quote", a \\ backslash, a \u0000 NUL, a 🦊, {braces}, \'single\''), extra: { n: 2 ** 53 - 1, f: 0.1, nothing: null } }
  await store.append(KEY, [odd, entry(1)])
  await store.append(KEY, [])
  t.same((await store.read(KEY, { limit: 5 })).entries, [odd, entry(1)])
  await store.putRecord('response', 'r1', { text: odd.message?.content, list: [1, 'two'] })
  t.same(await store.getRecord('response', 'r1'), { text: odd.message?.content, list: [1, 'two'] })
  await store.putRecord('response', 'r2', 'just a string')
  t.equal(await store.getRecord('response', 'r2'), 'just a string')
})

t.test('bad input gets a clear error', async t => {
  const option = { code: 'FSG_INVALID_OPTION' }
  t.throws(() => new PostgresStore(undefined as never), option, 'no options')
  t.throws(() => new PostgresStore({}), { ...option, message: /pool.*connectionString/ })
  t.throws(() => new PostgresStore({ connectionString: '' }), option)
  t.throws(() => new PostgresStore({ pool: {} as PgPool }), { ...option, message: /pg\.Pool/ })
  t.throws(() => new PostgresStore({ connectionString: server.url, maxConnections: 0 }), option)
  t.throws(() => new PostgresStore({ connectionString: server.url, schema: 'Public; DROP' }), { ...option, message: /schema/ })
  t.throws(() => new PostgresStore({ connectionString: server.url, tablePrefix: '1x' }), { ...option, message: /tablePrefix/ })
  t.throws(() => new PostgresStore({ connectionString: server.url, tablePrefix: 'x'.repeat(31) }), option)
  await t.rejects(migrate({ pool: admin, schema: 'a"b' }), option)

  const store = new PostgresStore({ pool: admin, tablePrefix: await migrated() })
  await store.ensure(KEY, 'main')
  const input = { code: 'FSG_INVALID_INPUT' }
  const cursor = { code: 'FSG_INVALID_CURSOR' }
  await t.rejects(store.read(KEY, { limit: 0 }), input)
  await t.rejects(store.read(KEY, { limit: 1.5 }), input)
  await t.rejects(store.list({ limit: 0 }), input)
  for (const before of ['-1', '1.5', 'x', '9'.repeat(16), '']) await t.rejects(store.read(KEY, { limit: 5, before }), cursor, `before ${JSON.stringify(before)}`)
  await t.rejects(store.list({ limit: 5, cursor: encodeListCursor({ updatedAt: 1.5, key: KEY }) }), cursor)
  await t.rejects(store.list({ limit: 5, cursor: encodeListCursor({ updatedAt: -1, key: KEY }) }), cursor)
  t.same(await store.list({ limit: 5, cursor: encodeListCursor({ updatedAt: 0, key: KEY }) }), { rows: [] }, 'a cursor past the end lists nothing')
  await t.rejects(store.read(KEY, { limit: 5, sessionId: 'not-a-uuid' }), { code: 'FSG_SESSION_NOT_FOUND' }, 'a generation id that is no uuid names none')
  t.equal(await store.findBySessionId('not-a-uuid'), undefined)
  await t.rejects(store.putRecord('response', 'r', undefined), input, 'a record must be JSON')
  await t.rejects(store.putRecord('a b', 'r', {}), input)
  await t.rejects(store.getRecord('response', 'a/b'), input)
})

t.test('ensure gives up with a clear error if the key is deleted each time it is about to be made', async t => {
  // A pool that answers the schema check, then finds no row and never wins an insert.
  const pool: PgPool = {
    query: async text => /to_regclass/.test(text)
      ? { rows: [{ found: true }], rowCount: 1 }
      : /max\(version\)/.test(text) ? { rows: [{ version: SCHEMA_VERSION }], rowCount: 1 } : { rows: [], rowCount: 0 },
    connect: async () => { throw new Error('not used') },
    end: async () => {}
  }
  await t.rejects(new PostgresStore({ pool }).ensure(KEY, 'main'), { code: 'FSG_STORE_FAILED', message: /deleted each time/ })
})

t.test('close() ends the pool the store made, not one it was given', async t => {
  const tablePrefix = await migrated()
  const given = server.pool(2)
  const borrowed = new PostgresStore({ pool: given, tablePrefix })
  await borrowed.ensure(KEY, 'main')
  await borrowed.close()
  await borrowed.close()
  t.equal((await given.query('SELECT 1 AS one')).rows[0].one, 1, 'the given pool still answers')

  const owned = new PostgresStore({ connectionString: server.url, tablePrefix })
  t.equal((await owned.get(KEY))?.key, KEY)
  await owned.close()
  await t.rejects(owned.get(KEY), /pool/i, 'its own pool is ended')
})

// ── helpers ────────────────────────────────────────────────────────────────

interface PlanNode { 'Node Type': string, 'Relation Name'?: string, Plans?: PlanNode[], [field: string]: unknown }

function planNodes (node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)]
}

/** The pool, with every statement it runs written down. */
function recording (pool: PgPool, seen: Array<{ text: string, values: unknown[] | undefined }>): PgPool {
  return {
    query: async (text, values) => {
      seen.push({ text, values })
      return await pool.query(text, values)
    },
    connect: async () => await pool.connect(),
    end: async () => {}
  }
}

/** The pool, where a statement matching `pattern` fails (in a transaction's client too). */
function failOn (pool: PgPool, pattern: RegExp): PgPool {
  const guard = async (text: string): Promise<void> => {
    if (pattern.test(text)) throw new Error(`refused on purpose: ${text.slice(0, 60)}`)
  }
  return {
    query: async (text, values) => {
      await guard(text)
      return await pool.query(text, values)
    },
    connect: async () => {
      const client = await pool.connect()
      return {
        query: async (text, values) => {
          await guard(text)
          return await client.query(text, values)
        },
        release: err => { client.release(err) }
      }
    },
    end: async () => {}
  }
}

t.test('a PostgreSQL that cannot be reached is a 503 on the wire; an error of a statement stays what it is', async t => {
  const cases: Array<[string, unknown, boolean]> = [
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), true],
    ['a connection cut (no code)', new Error('Connection terminated unexpectedly'), true],
    ['a server shutting down', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }), true],
    ['a connection failure', Object.assign(new Error('connection failure'), { code: '08006' }), true],
    ['too many connections', Object.assign(new Error('sorry, too many clients already'), { code: '53300' }), true],
    ['something thrown that is not an Error', 'socket hang up', true],
    ['a statement that broke a constraint', Object.assign(new Error('duplicate key'), { code: '23505' }), false],
    ['our own error', new SessionNotFoundError('agent:main:x'), false]
  ]
  for (const [what, err, down] of cases) {
    const seen = unreachable(err)
    if (down) t.match(seen, { code: 'FSG_STORE_UNAVAILABLE', statusCode: 503, message: /unavailable: .+/ }, what)
    else t.equal(seen, err, what)
  }
  const store = new PostgresStore({ connectionString: 'postgres://fsg@127.0.0.1:1/nowhere' })
  t.teardown(() => store.close())
  const app = await buildApp(t, { store })
  const turn = await app.inject({ method: 'POST', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'down' }, payload: { model: 'openclaw', input: 'hello?' } })
  t.equal(turn.statusCode, 503, 'a turn is told to come back')
  t.match(turn.json(), { error: { message: /store is unavailable/ } })
  t.equal((await app.inject({ url: '/v1/sessions', headers: { authorization: `Bearer ${TOKEN}` } })).statusCode, 503, 'and so is a listing')
})

t.test('PostgreSQL gone while the gateway runs: turns, listings and deletes are 503s, and all works once it is back', async t => {
  const real = server.pool(2)
  let down = false
  const refused = (): Error => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
  const pool: PgPool = {
    query: async (text, values) => { if (down) throw refused(); return await real.query(text, values) },
    connect: async () => { if (down) throw refused(); return await real.connect() },
    end: async () => {}
  }
  const app = await buildApp(t, { store: new PostgresStore({ pool, tablePrefix: await migrated() }) })
  const auth = { authorization: `Bearer ${TOKEN}` }
  const turn = async (): Promise<number> => (await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...auth, 'x-openclaw-session-key': 'gone' }, payload: { model: 'openclaw', input: 'hello' } })).statusCode
  t.equal(await turn(), 200)
  down = true
  t.equal(await turn(), 503, 'a turn is told to come back')
  t.equal((await app.inject({ url: '/v1/sessions', headers: auth })).statusCode, 503, 'a listing too')
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/sessions/gone', headers: auth })).statusCode, 503, 'and a delete (a transaction)')
  down = false
  t.equal(await turn(), 200, 'back')
})
