import assert from 'node:assert/strict'
import type { SessionRow, SessionStore } from '../stores/store.js'
import type { TranscriptEntry } from '../transcript.js'

/**
 * The rules every `SessionStore` keeps, as tests. Run them against your own adapter:
 *
 * ```ts
 * import { test } from 'node:test' // or tap's t.test, or any `test(name, fn)`
 * import { storeContract } from 'fastify-session-gateway/testing'
 * storeContract({ test, makeStore: async () => new MyStore(...) })
 * ```
 *
 * Assertions use `node:assert`, so any runner that fails a test on a thrown error works.
 * `makeStore` gives each test a fresh, empty store; `close()` is called after it when present.
 */
export interface StoreContractOptions {
  test: (name: string, fn: () => Promise<void>) => unknown
  makeStore: () => Promise<SessionStore>
}

const KEY = 'agent:main:contract'
const OTHER = 'agent:main:other'

export function storeContract ({ test, makeStore }: StoreContractOptions): void {
  const withStore = (name: string, fn: (store: SessionStore) => Promise<void>): void => {
    test(name, async () => {
      const store = await makeStore()
      try {
        await fn(store)
      } finally {
        await store.close?.()
      }
    })
  }

  withStore('ensure creates a row once, get and findBySessionId find it', async store => {
    assert.equal(await store.get(KEY), undefined)
    assert.deepEqual(await store.list({ limit: 5 }), { rows: [] }, 'an empty store lists nothing')
    const before = Date.now()
    const row = await store.ensure(KEY, 'main')
    assert.equal(row.key, KEY)
    assert.equal(row.agentId, 'main')
    assert.match(row.sessionId, /^[0-9a-f-]{36}$/)
    assert.ok(row.createdAt >= before - 1000 && row.updatedAt >= row.createdAt)
    assert.deepEqual(await store.ensure(KEY, 'main'), row, 'a second ensure returns the same row')
    assert.deepEqual(await store.get(KEY), row)
    assert.deepEqual(await store.findBySessionId(row.sessionId), row)
    assert.equal(await store.findBySessionId('00000000-0000-0000-0000-000000000000'), undefined)
  })

  withStore('concurrent ensure calls for one key agree on one row', async store => {
    const rows = await Promise.all([store.ensure(KEY, 'main'), store.ensure(KEY, 'main'), store.ensure(KEY, 'main')])
    assert.equal(new Set(rows.map(row => row.sessionId)).size, 1)
    assert.equal((await store.list({ limit: 5 })).rows.length, 1)
  })

  withStore('rows are copies: changing one changes nothing stored', async store => {
    const row = await store.ensure(KEY, 'main')
    row.label = 'mutated'
    assert.equal((await store.get(KEY))?.label, undefined)
  })

  withStore('append keeps every field, read returns the newest first page oldest-first, and pages back', async store => {
    await store.ensure(KEY, 'main')
    const entries = Array.from({ length: 7 }, (_, i) => entry(i))
    await store.append(KEY, entries.slice(0, 3))
    await store.append(KEY, entries.slice(3))
    const all = await store.read(KEY, { limit: 100 })
    assert.deepEqual(all.entries, entries)
    assert.equal(all.before, undefined)

    const newest = await store.read(KEY, { limit: 3 })
    assert.deepEqual(newest.entries.map(e => e.id), ['e0000004', 'e0000005', 'e0000006'])
    assert.equal(typeof newest.before, 'string')
    const older = await store.read(KEY, { limit: 3, before: newest.before as string })
    assert.deepEqual(older.entries.map(e => e.id), ['e0000001', 'e0000002', 'e0000003'])
    const oldest = await store.read(KEY, { limit: 3, before: older.before as string })
    assert.deepEqual(oldest.entries.map(e => e.id), ['e0000000'])
    assert.equal(oldest.before, undefined)
  })

  withStore('append bumps updatedAt and the preview; entries without text keep the old preview', async store => {
    const row = await store.ensure(KEY, 'main')
    await new Promise(resolve => setTimeout(resolve, 5))
    await store.append(KEY, [entry(0, 'hello there')])
    const after = await store.get(KEY) as SessionRow
    assert.ok(after.updatedAt > row.updatedAt)
    assert.equal(after.preview, 'hello there')
    await store.append(KEY, [{ type: 'custom', id: 'c0000001', parentId: null, timestamp: new Date().toISOString(), data: { kept: true } }])
    assert.equal((await store.get(KEY))?.preview, 'hello there')
    await store.append(KEY, [entry(1, 'x'.repeat(500))])
    const long = await store.get(KEY) as SessionRow
    assert.ok(String(long.preview).length <= 120, 'previews are short')
  })

  withStore('missing keys: append and read refuse, patch/reset answer undefined, delete false', async store => {
    await assert.rejects(store.append('agent:main:nobody', [entry(0)]), { code: 'FSG_SESSION_NOT_FOUND' })
    await assert.rejects(store.read('agent:main:nobody', { limit: 5 }), { code: 'FSG_SESSION_NOT_FOUND' })
    assert.equal(await store.patch('agent:main:nobody', { label: 'x' }), undefined)
    assert.equal(await store.reset('agent:main:nobody'), undefined)
    assert.equal(await store.delete('agent:main:nobody'), false)
  })

  withStore('patch sets and clears the label and the epoch', async store => {
    await store.ensure(KEY, 'main')
    assert.equal((await store.patch(KEY, { label: 'Trip', epoch: 'e1' }))?.label, 'Trip')
    assert.equal((await store.get(KEY))?.epoch, 'e1')
    const cleared = await store.patch(KEY, { label: undefined })
    assert.equal(cleared?.label, undefined)
    assert.equal((await store.get(KEY))?.label, undefined)
  })

  withStore('reset points the key at an empty generation; the old one stays readable by its id', async store => {
    const first = await store.ensure(KEY, 'main')
    await store.append(KEY, [entry(0)])
    await store.patch(KEY, { epoch: 'old-epoch' })
    const reset = await store.reset(KEY)
    assert.notEqual(reset?.sessionId, first.sessionId)
    assert.equal(reset?.epoch, undefined, 'a new generation starts a new epoch')
    assert.equal(reset?.preview, undefined)
    assert.deepEqual((await store.read(KEY, { limit: 10 })).entries, [])
    assert.deepEqual((await store.read(KEY, { limit: 10, sessionId: first.sessionId })).entries, [entry(0)])
    await assert.rejects(store.read(KEY, { limit: 10, sessionId: '11111111-1111-1111-1111-111111111111' }), { code: 'FSG_SESSION_NOT_FOUND' })
    const other = await store.ensure(OTHER, 'main')
    await assert.rejects(store.read(KEY, { limit: 10, sessionId: other.sessionId }), { code: 'FSG_SESSION_NOT_FOUND' },
      'a generation of another key is not readable through this one')
  })

  withStore('delete removes the row and its generations', async store => {
    const row = await store.ensure(KEY, 'main')
    await store.append(KEY, [entry(0)])
    assert.equal(await store.delete(KEY), true)
    assert.equal(await store.get(KEY), undefined)
    assert.equal(await store.findBySessionId(row.sessionId), undefined)
    const again = await store.ensure(KEY, 'main')
    assert.notEqual(again.sessionId, row.sessionId)
    assert.deepEqual((await store.read(KEY, { limit: 10 })).entries, [])
    await assert.rejects(store.read(KEY, { limit: 10, sessionId: row.sessionId }), { code: 'FSG_SESSION_NOT_FOUND' })
  })

  withStore('list: newest first, filters, search, and keyset paging that never skips or repeats', async store => {
    for (const [i, name] of ['alpha', 'beta', 'gamma', 'delta', 'epsilon'].entries()) {
      await store.ensure(`agent:main:${name}`, 'main')
      await store.append(`agent:main:${name}`, [entry(i, `about ${name}`)])
      await new Promise(resolve => setTimeout(resolve, 3))
    }
    await store.ensure('agent:ops:zeta', 'ops')
    await new Promise(resolve => setTimeout(resolve, 3))
    await store.patch('agent:main:beta', { label: 'Work' })

    const all = await store.list({ limit: 100 })
    assert.deepEqual(all.rows.map(r => r.key), ['agent:main:beta', 'agent:ops:zeta', 'agent:main:epsilon', 'agent:main:delta', 'agent:main:gamma', 'agent:main:alpha'])
    assert.equal(all.cursor, undefined)
    assert.deepEqual((await store.list({ limit: 100, agentId: 'ops' })).rows.map(r => r.key), ['agent:ops:zeta'])
    assert.deepEqual((await store.list({ limit: 100, label: 'Work' })).rows.map(r => r.key), ['agent:main:beta'])
    assert.deepEqual((await store.list({ limit: 100, search: 'GAMMA' })).rows.map(r => r.key), ['agent:main:gamma'], 'search ignores case')
    assert.deepEqual((await store.list({ limit: 100, search: 'about delta' })).rows.map(r => r.key), ['agent:main:delta'], 'search reads previews')

    const first = await store.list({ limit: 2 })
    assert.equal(first.rows.length, 2)
    // A row touched while the client pages moves to the front; the next page neither skips nor repeats.
    await store.append('agent:main:alpha', [entry(9)])
    const second = await store.list({ limit: 2, cursor: first.cursor as string })
    assert.deepEqual(second.rows.map(r => r.key), ['agent:main:epsilon', 'agent:main:delta'])
    await assert.rejects(store.list({ limit: 2, cursor: 'not a cursor' }), { code: 'FSG_INVALID_CURSOR' })
  })

  withStore('a bad read cursor is refused', async store => {
    await store.ensure(KEY, 'main')
    await assert.rejects(store.read(KEY, { limit: 5, before: 'nonsense' }), { code: 'FSG_INVALID_CURSOR' })
  })

  withStore('records: put replaces, get returns a copy, unsafe ids are refused', async store => {
    assert.equal(await store.getRecord('response', 'resp_1'), undefined)
    await store.putRecord('response', 'resp_1', { status: 'in_progress', n: 1 })
    await store.putRecord('response', 'resp_1', { status: 'completed', n: 2 })
    assert.deepEqual(await store.getRecord('response', 'resp_1'), { status: 'completed', n: 2 })
    await assert.rejects(store.putRecord('response', '../escape', {}), { code: 'FSG_INVALID_INPUT' })
    await assert.rejects(store.getRecord('../kind', 'x'), { code: 'FSG_INVALID_INPUT' })
  })

  withStore('records: one past its expiresAt is gone; one put again with a later one is back; one without either option stays', async store => {
    const now = Date.now()
    await store.putRecord('response', 'resp_old', { n: 1 }, { expiresAt: now - 1 })
    await store.putRecord('response', 'resp_new', { n: 2 }, { sessionKey: KEY, expiresAt: now + 60_000 })
    await store.putRecord('response', 'resp_kept', { n: 3 })
    assert.equal(await store.getRecord('response', 'resp_old'), undefined)
    assert.deepEqual(await store.getRecord('response', 'resp_new'), { n: 2 })
    assert.deepEqual(await store.getRecord('response', 'resp_kept'), { n: 3 })
    await store.putRecord('response', 'resp_old', { n: 4 }, { expiresAt: now + 60_000 })
    assert.deepEqual(await store.getRecord('response', 'resp_old'), { n: 4 })
  })

  withStore('delete removes the records put with the key, and only those', async store => {
    const later = Date.now() + 60_000
    await store.ensure(KEY, 'main')
    await store.ensure(OTHER, 'main')
    await store.putRecord('response', 'resp_a', { a: 1 }, { sessionKey: KEY, expiresAt: later })
    await store.putRecord('response', 'resp_b', { b: 1 }, { sessionKey: KEY })
    await store.putRecord('response', 'resp_c', { c: 1 }, { sessionKey: OTHER, expiresAt: later })
    await store.putRecord('response', 'resp_d', { d: 1 })
    assert.equal(await store.delete(KEY), true)
    assert.equal(await store.getRecord('response', 'resp_a'), undefined)
    assert.equal(await store.getRecord('response', 'resp_b'), undefined)
    assert.deepEqual(await store.getRecord('response', 'resp_c'), { c: 1 }, 'another session\'s record stays')
    assert.deepEqual(await store.getRecord('response', 'resp_d'), { d: 1 }, 'a record of no session stays')
    await store.ensure(KEY, 'main')
    await store.putRecord('response', 'resp_e', { e: 1 }, { sessionKey: KEY, expiresAt: later })
    assert.equal(await store.delete(KEY), true)
    assert.equal(await store.getRecord('response', 'resp_e'), undefined, 'the key made again: its new records go with it too')
    assert.deepEqual(await store.getRecord('response', 'resp_c'), { c: 1 })
  })

  withStore('sweepRecords removes expired records, a batch at a time, and leaves the others', async store => {
    if (store.sweepRecords === undefined) return // the backend expires records itself
    const now = Date.now()
    for (let i = 0; i < 3; i++) await store.putRecord('response', `resp_gone${i}`, { i }, { sessionKey: KEY, expiresAt: now - 1000 + i })
    await store.putRecord('response', 'resp_back', { n: 1 }, { expiresAt: now - 1000 })
    await store.putRecord('response', 'resp_back', { n: 2 }, { expiresAt: now + 60_000 })
    await store.putRecord('response', 'resp_later', { n: 3 }, { expiresAt: now + 60_000 })
    await store.putRecord('response', 'resp_forever', { n: 4 })
    assert.equal(await store.sweepRecords(now, 2), 2)
    assert.equal(await store.sweepRecords(now, 2), 1)
    assert.equal(await store.sweepRecords(now, 2), 0, 'nothing expired is left')
    assert.deepEqual(await store.getRecord('response', 'resp_back'), { n: 2 }, 'a record put again with a later expiry is not swept at the earlier one')
    assert.deepEqual(await store.getRecord('response', 'resp_later'), { n: 3 })
    assert.equal(await store.sweepRecords(now + 120_000, 10), 2, 'the later ones, at their time')
    assert.equal(await store.sweepRecords(now + 86_400_000, 10), 0)
    assert.deepEqual(await store.getRecord('response', 'resp_forever'), { n: 4 }, 'a record without expiresAt is never swept')
    await store.ensure(KEY, 'main')
    assert.equal(await store.delete(KEY), true, 'a session whose records were swept deletes as any other')
  })
}

function entry (i: number, text = `message ${i}`): TranscriptEntry {
  return {
    type: 'message',
    id: `e${String(i).padStart(7, '0')}`,
    parentId: i === 0 ? null : `e${String(i - 1).padStart(7, '0')}`,
    timestamp: new Date(1_700_000_000_000 + i).toISOString(),
    message: { role: i % 2 === 0 ? 'user' : 'assistant', content: [{ type: 'text', text }], timestamp: 1_700_000_000_000 + i } as TranscriptEntry['message'],
    seq: i + 1,
    runId: `run-${i >> 1}`,
    custom: { nested: [i] }
  }
}
