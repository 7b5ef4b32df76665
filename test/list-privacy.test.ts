import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryStore } from '../lib/index.js'
import { GatewaySocket, listen, type Frame } from './gateway-frames.js'
import { buildApp, namedPrincipals, user } from './helpers.js'

// Two principals on one gateway: alice and bob, each allowed only `agent:main:<id>:…`.
// What bob's listings answer must not depend on anything in alice's sessions.

const ALICE_SECRET_SESSIONS = 25 // more than the 20 store pages one listing scans

async function twoPrincipals (t: Test): Promise<FastifyInstance> {
  const store = new MemoryStore()
  const app = await buildApp(t, {
    store,
    auth: { verify: namedPrincipals('alice', 'bob') },
    authorize: ({ principal, sessionKey }) => sessionKey.startsWith(`agent:main:${principal.id}:`)
  })
  await listen(app)
  const session = async (key: string, text: string, label?: string): Promise<void> => {
    await store.ensure(key, 'main')
    await store.append(key, [{ type: 'message', id: key.slice(-8).padStart(8, '0'), parentId: null, timestamp: new Date().toISOString(), message: user(text) }])
    if (label !== undefined) await store.patch(key, { label })
  }
  // Interleaved in time, so bob's pages fall between alice's rows.
  for (let i = 0; i < ALICE_SECRET_SESSIONS; i++) {
    await session(`agent:main:alice:private-project-${i}`, `tiramisu recipe number ${i}`, 'Surprise party')
    if (i % 8 === 0) await session(`agent:main:bob:notes-${i}`, `bob's notes ${i}`)
  }
  return app
}

async function as (t: Test, app: FastifyInstance, name: string): Promise<GatewaySocket> {
  const socket = await GatewaySocket.open(app, { headers: { authorization: `Bearer ${name}` } })
  t.teardown(() => socket.close())
  return socket
}

/** Every page of a listing, following its cursors (at most 100 pages). */
async function pages (socket: GatewaySocket, params: Record<string, unknown>): Promise<Frame[]> {
  const answers: Frame[] = []
  let cursor: string | undefined
  do {
    const answer = await socket.request('sessions.list', { ...params, ...(cursor === undefined ? {} : { cursor }) })
    answers.push(answer)
    cursor = answer.payload?.cursor
  } while (cursor !== undefined && answers.length < 100)
  return answers
}

const keys = (answers: Frame[]): string[] => answers.flatMap(answer => answer.payload.sessions.map((s: { key: string }) => s.key))
const BOBS = ['agent:main:bob:notes-0', 'agent:main:bob:notes-16', 'agent:main:bob:notes-24', 'agent:main:bob:notes-8']

t.test('a paging cursor names nothing the principal may not read, and pages return each readable row once', async t => {
  const app = await twoPrincipals(t)
  const bob = await as(t, app, 'bob')
  const answers = await pages(bob, { limit: 1 })
  t.same(keys(answers).sort(), BOBS, 'bob sees his four sessions, each once')
  const cursors = answers.map(answer => answer.payload.cursor).filter(cursor => cursor !== undefined) as string[]
  t.ok(cursors.length >= 3, 'it took several pages')
  for (const cursor of cursors) {
    const decoded = Buffer.from(cursor, 'base64url').toString('latin1')
    t.notMatch(decoded, /alice|agent:|private/, 'the cursor does not carry a key')
  }

  const alice = await as(t, app, 'alice')
  t.match(await alice.request('sessions.list', { limit: 1, cursor: cursors[0] }), { ok: false, error: { details: { code: 'FSG_INVALID_CURSOR' } } },
    'a cursor is good only for the principal it was given to')
  const forged = Buffer.from(JSON.stringify([1_760_000_020_000, 'agent:main:alice:private-project-20'])).toString('base64url')
  t.match(await bob.request('sessions.list', { limit: 1, cursor: forged }), { ok: false, error: { details: { code: 'FSG_INVALID_CURSOR' } } },
    'a position made up by the client is refused')
})

t.test('search and label cannot probe other principals\' sessions: the answers are the same whatever they contain', async t => {
  const app = await twoPrincipals(t)
  const bob = await as(t, app, 'bob')
  const shape = (answers: Frame[]): unknown => answers.map(answer => ({ ok: answer.ok, keys: answer.payload?.sessions.map((s: { key: string }) => s.key), more: answer.payload?.cursor !== undefined }))
  for (const limit of [1, 5]) {
    const probe = shape(await pages(bob, { limit, search: 'tiramisu' }))
    const blank = shape(await pages(bob, { limit, search: 'no such words anywhere' }))
    t.same(probe, blank, `search, limit ${limit}: alice's previews change nothing bob sees`)
    t.same(shape(await pages(bob, { limit, label: 'Surprise party' })), shape(await pages(bob, { limit, label: 'No such label' })),
      `label, limit ${limit}: alice's labels change nothing bob sees`)
  }
  t.same(keys(await pages(bob, { limit: 2, search: 'NOTES' })).sort(), BOBS,
    'bob\'s own search still finds each of his matching sessions, across pages')
  const alice = await as(t, app, 'alice')
  t.equal(new Set(keys(await pages(alice, { limit: 10, label: 'Surprise party' }))).size, ALICE_SECRET_SESSIONS, 'and alice\'s label filter finds each of hers')
})
