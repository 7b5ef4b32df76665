import { access, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { FileStore, MemoryStore, type RecordOptions } from '../lib/index.js'
import { buildApp, TOKEN, until } from './helpers.js'

// What a finished response's record costs, and for how long: it expires after
// `responses.recordTtlMs`, goes with its session, and never brings a deleted session back.

const AUTH = { authorization: `Bearer ${TOKEN}` }

async function respond (app: FastifyInstance, body: Record<string, unknown>): Promise<{ statusCode: number, json: any, sessionKey: string }> {
  const res = await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...AUTH, 'content-type': 'application/json' }, payload: { model: 'openclaw', ...body } })
  return { statusCode: res.statusCode, json: res.json(), sessionKey: String(res.headers['x-openclaw-session-key']) }
}

async function getResponse (app: FastifyInstance, id: string): Promise<{ statusCode: number, json: any }> {
  const res = await app.inject({ url: `/v1/responses/${id}`, headers: AUTH })
  return { statusCode: res.statusCode, json: res.json() }
}

/** What a client is told for a response id nobody made, with `id` in its place. */
async function unknown (app: FastifyInstance, id: string): Promise<{ get: unknown, previous: { statusCode: number, json: unknown } }> {
  const get = (await getResponse(app, 'resp_neverMade')).json
  const previous = await respond(app, { input: 'again', previous_response_id: 'resp_neverMade' })
  const named = (value: unknown): unknown => JSON.parse(JSON.stringify(value).replaceAll('resp_neverMade', id))
  return { get: { statusCode: 404, json: named(get) }, previous: { statusCode: previous.statusCode, json: named(previous.json) } }
}

async function sessionThere (app: FastifyInstance, key: string): Promise<boolean> {
  const one = await app.inject({ url: `/v1/sessions/${encodeURIComponent(key)}`, headers: AUTH })
  const listed = (await app.inject({ url: '/v1/sessions?limit=100', headers: AUTH })).json().sessions as Array<{ key: string }>
  t.equal(one.statusCode === 200, listed.some(row => row.key === key), 'get and list agree')
  return one.statusCode === 200
}

async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-retention-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('a response is there until recordTtlMs has passed, then answers as an unknown id, and the sweep removes its file', async t => {
  const dir = await tempDir()
  const app = await buildApp(t, { store: new FileStore({ dir }), responses: { recordTtlMs: 1000 } })
  const { json: made, sessionKey } = await respond(app, { input: 'hello' })
  const file = join(dir, 'records', 'response', `${made.id as string}.json`)
  await until(async () => await access(file).then(() => true, () => false), 'the record to be written', 15_000)
  t.same((await getResponse(app, made.id)).json, made, 'there while its time runs')

  await until(async () => (await getResponse(app, made.id)).statusCode === 404, 'the response to expire', 15_000)
  const expected = await unknown(app, made.id)
  t.same(await getResponse(app, made.id), expected.get, 'GET answers as for an id nobody made')
  const continued = await respond(app, { input: 'more', previous_response_id: made.id })
  t.same({ statusCode: continued.statusCode, json: continued.json }, expected.previous, 'and so does previous_response_id')
  t.ok(await sessionThere(app, sessionKey), 'the session itself stays: only the response expired')
  await until(async () => await access(file).then(() => false, () => true), 'the sweep to remove the file', 15_000)
})

t.test('deleting a session deletes its responses: GET and previous_response_id answer as for an unknown id, and the session is not made again', async t => {
  const store = new MemoryStore()
  const app = await buildApp(t, { store })
  const { json: made, sessionKey } = await respond(app, { input: 'hello', user: 'deleted-soon' })
  await until(async () => await store.getRecord('response', made.id) !== undefined, 'the record to be written', 15_000)
  t.equal((await getResponse(app, made.id)).statusCode, 200)
  t.same((await app.inject({ method: 'DELETE', url: `/v1/sessions/${encodeURIComponent(sessionKey)}`, headers: AUTH })).json(), { key: sessionKey, deleted: true })
  t.equal(await store.getRecord('response', made.id), undefined, 'its record went with it')

  const expected = await unknown(app, made.id)
  t.same(await getResponse(app, made.id), expected.get, 'GET answers 404, as for an id nobody made')
  const continued = await respond(app, { input: 'more', previous_response_id: made.id })
  t.same({ statusCode: continued.statusCode, json: continued.json }, expected.previous, 'previous_response_id is refused as unknown')
  t.equal(continued.json.error.code, 'previous_response_not_found')
  t.notOk(await sessionThere(app, sessionKey), 'and the session was not made again')
})

t.test('a store that keeps records past their session\'s delete: the response is still refused as unknown, and the session is not made again', async t => {
  // An adapter that ignores `sessionKey` (as one written before it existed would).
  class KeepsRecords extends MemoryStore {
    override async putRecord (kind: string, id: string, value: unknown, options: RecordOptions = {}): Promise<void> {
      await super.putRecord(kind, id, value, { ...options, sessionKey: undefined })
    }
  }
  const store = new KeepsRecords()
  const app = await buildApp(t, { store })
  const { json: made, sessionKey } = await respond(app, { input: 'hello', user: 'kept-records' })
  await until(async () => await store.getRecord('response', made.id) !== undefined, 'the record to be written', 15_000)
  await app.sessionGateway.delete(sessionKey)
  t.ok(await store.getRecord('response', made.id), 'the record outlived its session')

  const expected = await unknown(app, made.id)
  t.same(await getResponse(app, made.id), expected.get)
  const continued = await respond(app, { input: 'more', previous_response_id: made.id })
  t.same({ statusCode: continued.statusCode, json: continued.json }, expected.previous)
  const compacted = await app.inject({ method: 'POST', url: '/v1/responses/compact', headers: AUTH, payload: { model: 'openclaw', input: 'x', previous_response_id: made.id } })
  t.same(compacted.json(), expected.previous.json, 'compacting from it too')
  t.notOk(await sessionThere(app, sessionKey), 'the session was not made again')
})

t.test('the sweep: a failure is logged and tried again; a store without one is left alone; close stops a sweep that finds more and more', async t => {
  const logs = (lines: string[]): { logger: { level: string, stream: Writable } } => ({ logger: { level: 'error', stream: new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } }) } })
  const lines: string[] = []
  let calls = 0
  class Failing extends MemoryStore {
    override async sweepRecords (): Promise<number> {
      calls++
      throw new Error('the disk went away')
    }
  }
  await buildApp(t, { store: new Failing(), responses: { recordTtlMs: 10 } }, logs(lines))
  await until(async () => calls >= 2, 'a second sweep', 15_000)
  t.match(JSON.parse(lines[0] as string), { msg: /expired records could not be swept; the next sweep tries again/, err: { message: 'the disk went away' } })

  // A store that expires records itself (Redis) has no sweepRecords.
  const selfExpiring = Object.assign(new MemoryStore(), { sweepRecords: undefined })
  const quietLines: string[] = []
  const quiet = await buildApp(t, { store: selfExpiring, responses: { recordTtlMs: 10 } }, logs(quietLines))
  await sleep(50)
  t.same(quietLines, [], 'nothing to sweep, nothing logged')
  await quiet.close()

  let endless = 0
  class Endless extends MemoryStore {
    override async sweepRecords (): Promise<number> {
      endless++
      return 1
    }
  }
  const busy = await buildApp(t, { store: new Endless(), responses: { recordTtlMs: 10 } })
  await until(async () => endless >= 3, 'a sweep of several batches', 15_000)
  await busy.close()
  const stoppedAt = endless
  await sleep(50)
  t.equal(endless, stoppedAt, 'closed: no batch after')
})
