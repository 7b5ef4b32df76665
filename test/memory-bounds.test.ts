import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { FileStore, messageText, type Agent, type SessionGatewayOptions, type UserMessage } from '../lib/index.js'
import { EventRing } from '../lib/hub/event-ring.js'
import { IdempotencyCache } from '../lib/hub/idempotency.js'
import { ReplayBudget } from '../lib/hub/replay-budget.js'
import type { SessionEvent } from '../lib/events.js'
import { GatewaySocket, listen, type Frame } from './gateway-frames.js'
import { buildApp, user } from './helpers.js'
import { heapAfterGc } from './soak.js'

// What the gateway keeps in memory between turns is bounded in bytes, not only in counts:
// the replay rings of every session together (`maxReplayBytes`) and the answers kept for
// repeated idempotency keys (`maxIdempotencyBytes`). Past a bound the oldest go, and what
// a client sees stays exact: a resume from further back comes from the store, a repeat
// reads its answer from the transcript.

const MiB = 1024 * 1024

async function fileStore (t: Test): Promise<FileStore> {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-memory-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return new FileStore({ dir })
}

/** A turn of `bytes` in 64 KiB words: the echo answers word by word, each delta carrying the text so far. */
function largeMessage (bytes: number, mark: string): string {
  const word = 'w'.repeat(64 * 1024 - 1)
  return `${mark} ${Array.from({ length: Math.floor(bytes / (64 * 1024)) }, () => word).join(' ')}`
}

async function turn (client: GatewaySocket, sessionKey: string, message: string, idempotencyKey: string): Promise<Frame> {
  const answer = await client.request('chat.send', { sessionKey, message, idempotencyKey })
  if (answer.ok !== true) throw new Error(`chat.send refused: ${JSON.stringify(answer.error)}`)
  return await client.next(f => f.event === 'chat' && f.payload.runId === idempotencyKey && f.payload.state === 'final', 30_000)
}

t.test('a flood of large keyed turns, watched over a socket, keeps the heap under replay + idempotency bytes + 8 MiB', async t => {
  const options: Partial<SessionGatewayOptions> = { store: await fileStore(t), maxReplayBytes: 8 * MiB, maxIdempotencyBytes: 4 * MiB }
  const app = await buildApp(t, options)
  await listen(app)
  const client = await GatewaySocket.open(app)
  t.teardown(() => client.close())
  await turn(client, 'flood-warm', largeMessage(MiB, 'warm'), 'warm') // the first turn loads what every turn uses
  client.frames.splice(0)
  const before = heapAfterGc()
  const turns = 40
  for (let i = 0; i < turns; i++) {
    await turn(client, `flood-${i}`, largeMessage(MiB, `turn ${i}`), `flood-${i}`)
    client.frames.splice(0) // the test's client keeps nothing
  }
  const grown = heapAfterGc() - before
  const bound = 8 * MiB + 4 * MiB + 8 * MiB
  t.ok(grown < bound, `${turns} turns of 1 MiB (16 deltas each) grew the heap by ${(grown / MiB).toFixed(1)} MiB; bound ${bound / MiB} MiB`)

  // And what the bounds let go still answers right: a repeat of the first keyed turn.
  const repeat = await client.request('chat.send', { sessionKey: 'flood-0', message: 'ignored', idempotencyKey: 'flood-0' })
  t.match(repeat.payload, { runId: 'flood-0', status: 'done', state: 'final' }, 'a repeat of the first turn answers done')
  t.ok(String(repeat.payload.message.content[0].text).startsWith('turn 0 w'), 'with its answer, read from the transcript')
})

t.test('past maxReplayBytes the oldest events go, whichever session: a resume from them comes from the store, exactly', async t => {
  const app = await buildApp(t, { maxReplayBytes: 64 * 1024 })
  const gw = app.sessionGateway
  const small = await gw.send({ sessionKey: 'agent:main:small', agentId: 'main', input: [user('a small turn')] })
  await small.result
  const kept = await gw.subscribe('agent:main:small', { since: small.cursor }, () => {})
  t.equal(kept.replay.kind, 'replay', 'within the budget, a resume is replayed from memory')
  kept.unsubscribe()

  for (let i = 0; i < 3; i++) await (await gw.send({ sessionKey: 'agent:main:large', agentId: 'main', input: [user('x'.repeat(16 * 1024))] })).result
  const resumed = await gw.subscribe('agent:main:small', { since: small.cursor }, () => {})
  t.equal(resumed.replay.kind, 'catchup', 'another session\'s large turn pushed the small one\'s events out: read from the store')
  const events = resumed.replay.kind === 'catchup' ? resumed.replay.events : []
  t.same(events.map(e => `${e.type}@${e.seq}`), ['message@1', 'message@6', 'run.finished@7'], 'the rows the resume missed and the run\'s end, no more, no fewer')
  resumed.unsubscribe()
})

t.test('a keyed turn whose answer the cache let go: a repeat reads it from the transcript, however many rows came after', async t => {
  const app = await buildApp(t, { maxIdempotencyBytes: 0 })
  const gw = app.sessionGateway
  const key = 'agent:main:repeats'
  const first = await gw.send({ sessionKey: key, agentId: 'main', input: [user('the answer to keep')], idempotencyKey: 'keyed' })
  await first.result
  for (let i = 0; i < 60; i++) await (await gw.send({ sessionKey: key, agentId: 'main', input: [user(`turn ${i}`)] })).result
  const repeat = await gw.send({ sessionKey: key, agentId: 'main', input: [user('ignored')], idempotencyKey: 'keyed' })
  t.equal(repeat.status, 'done', '120 rows later, the repeat finds the run done')
  t.equal(repeat.runId, first.runId)
  const settled = await Promise.race([repeat.result, new Promise(resolve => setTimeout(() => resolve('never'), 5000))])
  t.match(settled, { state: 'final', text: 'the answer to keep' }, 'with its answer')
})

t.test('a keyed turn still running keeps its place in the cache however many answers come after it: its repeat gets its end', async t => {
  let finishLong = (): void => {}
  const held = new Promise<void>(resolve => { finishLong = resolve })
  const agent: Agent = {
    async * respond (request) {
      const text = messageText(request.input.findLast(message => message.role === 'user') as UserMessage)
      if (text === 'long') await held
      yield { type: 'text', delta: text }
    }
  }
  const app = await buildApp(t, { agent, maxIdempotencyBytes: 2000 })
  const gw = app.sessionGateway
  const long = await gw.send({ sessionKey: 'agent:main:long', agentId: 'main', input: [user('long')], idempotencyKey: 'long' })
  for (let i = 0; i < 4; i++) await (await gw.send({ sessionKey: `agent:main:other-${i}`, agentId: 'main', input: [user('x'.repeat(500))], idempotencyKey: `other-${i}` })).result
  const repeat = await gw.send({ sessionKey: 'agent:main:long', agentId: 'main', input: [user('long')], idempotencyKey: 'long' })
  t.match(repeat, { runId: long.runId, status: 'in_flight' }, 'answers past the limit pushed out finished answers only')
  finishLong()
  const settled = await Promise.race([repeat.result, new Promise(resolve => setTimeout(() => resolve('never'), 5000))])
  t.match(settled, { state: 'final', text: 'long' }, 'and the repeat learns the run\'s end')
})

t.test('the idempotency cache counts the bytes it is told and lets the oldest go past its limit', async t => {
  const cache = new IdempotencyCache<string>(60_000, { maxEntries: 100, maxBytes: 100 })
  cache.set('a', 'A')
  cache.set('b', 'B')
  cache.weigh('a', 'A', 60)
  cache.weigh('b', 'other', 60)
  t.equal(cache.get('b'), 'B', 'a size told for another value is ignored')
  cache.weigh('b', 'B', 60)
  t.equal(cache.get('a'), undefined, 'past 100 bytes the oldest went')
  t.equal(cache.get('b'), 'B')
  cache.set('c', 'C')
  cache.weigh('c', 'C', 101)
  t.equal(cache.get('c'), undefined, 'a value larger than the whole limit is not kept')
  t.equal(cache.get('b'), 'B', 'and does not push the others out')
  cache.set('b', 'B2')
  cache.weigh('b', 'B2', 100)
  t.equal(cache.get('b'), 'B2', 'a key set again counts its new size only')
})

function delta (seq: number, text: string): SessionEvent {
  return { type: 'run.delta', sessionKey: 'k', epoch: 'e', seq, at: 0, runId: 'r', delta: text, text }
}

t.test('replay rings on one budget: counts and bytes both hold, and the budget\'s books stay small', async t => {
  const budget = new ReplayBudget(10_000)
  const a = new EventRing(8, budget)
  const b = new EventRing(8, budget)
  for (let seq = 1; seq <= 3000; seq++) a.push(delta(seq, 'x'))
  t.same(a.after(2992)?.map(e => e.seq), [2993, 2994, 2995, 2996, 2997, 2998, 2999, 3000], 'a ring keeps its newest `capacity` events')
  t.equal(a.after(2991), undefined, 'and says when it no longer holds the next one')
  const eight = budget.usedBytes
  t.ok(eight < 10_000, 'the budget counts only the events held')

  for (let seq = 1; seq <= 8; seq++) b.push(delta(seq, 'y'.repeat(400)))
  t.equal(a.after(2992), undefined, 'a large session pushed the other\'s oldest events out')
  t.ok(budget.usedBytes <= 10_000, `the budget holds: ${budget.usedBytes} bytes`)
  t.same(b.after(0)?.map(e => e.seq), [1, 2, 3, 4, 5, 6, 7, 8], 'the newest events are kept')

  a.push(delta(3001, 'x'))
  b.push(delta(9, 'z'.repeat(20_000)))
  t.equal(b.after(8), undefined, 'an event larger than the whole budget is not held')
  t.equal(b.after(0), undefined, 'nor anything before it: a replay across it comes from the store')
  t.same(a.after(3000)?.map(e => e.seq), [3001], 'the other ring keeps its events')
  a.clear()
  t.equal(budget.usedBytes, 0, 'a cleared ring gives its bytes back')
  t.equal(a.after(3000), undefined)
})
