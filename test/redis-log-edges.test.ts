import { once } from 'node:events'
import { Redis } from 'ioredis'
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { RedisSessionLog } from '../lib/redis/index.js'
import { sessionLogContract } from '../lib/testing/index.js'
import type { SessionEvent } from '../lib/events.js'
import { startRedisProxy } from './redis-proxy.js'
import { startRedis } from './redis-server.js'

// The Redis session log where the contract does not reach: on sharded pub/sub with a client
// of the application's, with its defaults, and when Redis or its data misbehave.
const redis = await startRedis(t)
const KEY = 'agent:main:edges'

function delta (seq: number, epoch = 'e1'): SessionEvent {
  return { type: 'run.delta', sessionKey: KEY, epoch, seq, at: 1_700_000_000_000 + seq, runId: 'r1', delta: `d${seq}`, text: `t${seq}` }
}

async function eventually (check: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!check() && Date.now() < until) await sleep(10)
  t.ok(check(), what)
}

let n = 0
t.test('the contract, on sharded pub/sub (SPUBLISH/SSUBSCRIBE) and a client the application owns', async t => {
  const client = redis.client()
  sessionLogContract({
    test: (name, fn) => t.test(name, fn),
    makeLog: async ({ replay, claimTtlMs }) => new RedisSessionLog({
      client, sharded: true, keyPrefix: `sharded-${n++}:`, replay, claimTtlMs, laneTtlMs: 2000, idleTtlMs: 60_000, checkIntervalMs: 1000
    })
  })
  t.test("the client stays the application's: the logs closed above left it usable", async t => {
    t.equal(await client.ping(), 'PONG')
  })
})

t.test('options that name no Redis are refused when the log is made', async t => {
  t.throws(() => new RedisSessionLog({}), { code: 'FSG_INVALID_OPTION', message: /a Redis to use/ })
})

t.test('with every default: events flow under the default key prefix', async t => {
  const log = new RedisSessionLog({ url: redis.url })
  t.teardown(async () => await log.close())
  // A session nobody wrote yet is subscribed to at no position.
  const heard: SessionEvent[] = []
  const sub = await log.subscribe(KEY, event => { heard.push(event) })
  t.same(sub.position, { epoch: '', seq: 0 })
  t.same(await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 })), { epoch: 'e1', seq: 0 })
  await log.append(KEY, [delta(1)])
  await eventually(() => heard.length === 1, 'the event is heard')
  t.same(heard.map(e => `${e.type}:${e.seq}`), ['run.delta:1'], 'the first event itself, with no reset: there was nothing to reset')
  t.equal(await redis.client().hget(`fsg:log:{${KEY}}:meta`, 's'), '1', 'under fsg:')
  sub.unsubscribe()
  // Forgetting a session this process no longer watches, or never did, is harmless.
  log.forget(KEY)
  log.forget('agent:main:never-seen')
})

t.test('a gap the stream no longer holds: a reset to where what it holds begins, then every event it holds, in order', async t => {
  const log = new RedisSessionLog({ url: redis.url, keyPrefix: 'gap:' })
  const writer = new RedisSessionLog({ url: redis.url, keyPrefix: 'gap:' })
  t.teardown(async () => { await log.close(); await writer.close() })
  await writer.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
  await writer.append(KEY, [delta(1), delta(2), delta(3)])
  const heard: SessionEvent[] = []
  const sub = await log.subscribe(KEY, event => { heard.push(event) })
  t.teardown(() => sub.unsubscribe())
  t.same(sub.position, { epoch: 'e1', seq: 3 })
  // Redis loses the position (an operator, an eviction); the writer's process seeds it again
  // from its store, further on, and a turn appends three events in one batch. The stream still
  // holds 1-3 from before: those are older than the gap.
  await redis.client().del(`gap:log:{${KEY}}:meta`)
  await writer.position(KEY, async () => ({ epoch: 'e1', seq: 10 }))
  await writer.append(KEY, [delta(11), delta(12), delta(13)])
  await eventually(() => heard.length === 4, 'the reset and the three events are heard')
  t.same(heard.map(e => `${e.type}:${e.seq}`), ['session.reset:10', 'run.delta:11', 'run.delta:12', 'run.delta:13'],
    'nothing the stream holds is skipped, the gap is told, nothing twice')
})

t.test('a position Redis lost and nobody gave again yet: checks find nothing to deliver, and the next append is heard after a reset', async t => {
  const log = new RedisSessionLog({ url: redis.url, keyPrefix: 'unseeded:', checkIntervalMs: 20 })
  const writer = new RedisSessionLog({ url: redis.url, keyPrefix: 'unseeded:' })
  t.teardown(async () => { await log.close(); await writer.close() })
  await writer.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
  await writer.append(KEY, [delta(1)])
  const heard: SessionEvent[] = []
  const sub = await log.subscribe(KEY, event => { heard.push(event) })
  t.teardown(() => sub.unsubscribe())
  // A lane held here keeps this process's checks running (they look at every watched session).
  const lane = await log.acquire('agent:main:other', 'run-other', { busy: 'reject', maxQueue: 0 })
  t.teardown(async () => await log.release('agent:main:other', lane))
  await redis.client().del(`unseeded:log:{${KEY}}:meta`, `unseeded:log:{${KEY}}:log`)
  await sleep(200) // checks while Redis holds no position for the session
  t.same(heard, [], 'nothing is made up meanwhile')
  await writer.position(KEY, async () => ({ epoch: 'e1', seq: 5 }))
  await writer.append(KEY, [delta(6)])
  await eventually(() => heard.length === 2, 'the reset and the event are heard')
  t.same(heard.map(e => `${e.type}:${e.seq}`), ['session.reset:5', 'run.delta:6'])
})

t.test('subscriptions made while another process appends: each hears every event after its position, once, in order', async t => {
  // Checks are far apart here: only the subscription itself may make up for a race.
  const log = new RedisSessionLog({ url: redis.url, keyPrefix: 'racing:', checkIntervalMs: 600_000, laneTtlMs: 1_800_000 })
  const writer = new RedisSessionLog({ url: redis.url, keyPrefix: 'racing:' })
  t.teardown(async () => { await log.close(); await writer.close() })
  await writer.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
  const subscribers: Array<{ from: number, seqs: number[] }> = []
  let seq = 0
  const appending = (async () => {
    for (; seq < 400; seq++) await writer.append(KEY, [delta(seq + 1)])
  })()
  for (let i = 0; i < 40 && seq < 400; i++) {
    const seqs: number[] = []
    const sub = await log.subscribe(KEY, event => { seqs.push(event.seq) })
    subscribers.push({ from: sub.position.seq, seqs })
  }
  await appending
  await eventually(() => subscribers.every(s => s.seqs.at(-1) === 400), 'every subscriber heard the last event')
  const wrong = subscribers.filter(s => s.seqs.join() !== Array.from({ length: 400 - s.from }, (_, i) => s.from + 1 + i).join())
  t.same(wrong, [], 'no subscriber missed, repeated or reordered an event')
})

t.test('a message on the channel that is not ours is ignored, and the next event still arrives', async t => {
  const log = new RedisSessionLog({ url: redis.url, keyPrefix: 'garbage:' })
  t.teardown(async () => await log.close())
  await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
  const heard: SessionEvent[] = []
  const sub = await log.subscribe(KEY, event => { heard.push(event) })
  t.teardown(() => sub.unsubscribe())
  await redis.client().publish(`garbage:log:{${KEY}}:ch`, 'not json {')
  await redis.client().publish(`garbage:log:{${KEY}}:ch`, '{"t":"who knows"}')
  await log.append(KEY, [delta(1)])
  await eventually(() => heard.length === 1, 'the event after the garbage is heard')
  t.same(heard.map(e => e.seq), [1])
})

t.test('closed while its subscriber joins its channels again after a lost connection: no reply left waiting rejects unhandled', async t => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  for (const sharded of [false, true]) {
    const proxy = await startRedisProxy(redis.port)
    t.teardown(async () => await proxy.close())
    const log = new RedisSessionLog({ url: proxy.url, keyPrefix: `rejoin-${String(sharded)}:`, sharded })
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
    await log.subscribe(KEY, () => {})
    const rejoining = proxy.holdAnswersAfter(sharded ? 'SSUBSCRIBE' : 'SUBSCRIBE')
    proxy.dropAll()
    // The subscriber is back and has asked for its channel again; the answer never comes.
    await rejoining
    await log.close()
    await sleep(50)
    t.same(unhandled.map(String), [], `${sharded ? 'sharded' : 'plain'}: the closed connection failed the waiting subscribe, and someone was there to hear it`)
  }
})

t.test('a subscriber that lost its connection while it needed no channel joins the next one it needs', async t => {
  const proxy = await startRedisProxy(redis.port)
  t.teardown(async () => await proxy.close())
  // The application's client, whose duplicate (the log's subscriber) the test keeps, to know when it is back.
  const client = new Redis(proxy.url)
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  let subscriber: Redis | undefined
  const duplicate = client.duplicate.bind(client)
  client.duplicate = override => (subscriber = duplicate(override))
  const log = new RedisSessionLog({ client, keyPrefix: 'rejoin-none:' })
  t.teardown(async () => await log.close())
  await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
  ;(await log.subscribe(KEY, () => {})).unsubscribe()
  proxy.dropAll()
  await once(subscriber as Redis, 'ready')
  const heard: SessionEvent[] = []
  await log.subscribe(KEY, event => { heard.push(event) })
  await log.append(KEY, [delta(1)])
  await eventually(() => heard.length === 1, 'the event is heard')
})

/** `count` deltas of one run that make up a long answer, each with its text so far; with `reasoning`, every third is the reasoning's. */
function answer (count: number, reasoning = false): Array<SessionEvent & { type: 'run.delta' | 'run.reasoning' }> {
  const texts = { 'run.delta': '', 'run.reasoning': '' }
  return Array.from({ length: count }, (_, i) => {
    const type = reasoning && i % 3 === 0 ? 'run.reasoning' as const : 'run.delta' as const
    const delta = `${String(i).padStart(5, '0')} of a long ${type === 'run.delta' ? 'answer' : 'thought'}, `
    texts[type] += delta
    return { type, sessionKey: KEY, epoch: 'e1', seq: 1 + i, at: 1_700_000_000_000 + i, runId: 'r1', delta, text: texts[type] }
  })
}

t.test("a turn's deltas (of its answer and of its reasoning) are stored without their text so far: Redis holds the turn's length, not its square, and every reader gets each text whole", async t => {
  const log = new RedisSessionLog({ url: redis.url, keyPrefix: 'texts:', replay: 5000 })
  t.teardown(async () => await log.close())
  await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
  const deltas = answer(1000, true)
  const live: SessionEvent[] = []
  await log.subscribe(KEY, event => { live.push(event) })
  for (let i = 0; i < deltas.length; i += 10) await log.append(KEY, deltas.slice(i, i + 10))
  const stored = await redis.client().xrange(`texts:log:{${KEY}}:log`, '-', '+')
  const bytes = stored.reduce((sum, [, fields]) => sum + Buffer.byteLength(fields[1] as string), 0)
  const whole = deltas.reduce((sum, event) => sum + Buffer.byteLength(JSON.stringify(event)), 0)
  t.ok(bytes * 20 < whole, `the stream holds ${bytes} bytes, where every text would take ${whole}`)
  t.same(await log.read(KEY, 'e1', 0), deltas, 'read from the start')
  for (const after of [1, 62, 63, 64, 65, 66, 500, 998, 999]) {
    t.same(await log.read(KEY, 'e1', after), deltas.slice(after), `read after ${after}`)
  }
  await eventually(() => live.length === deltas.length, 'a live listener hears every delta')
  t.same(live, deltas, 'with its text')
})

t.test('a delta whose earlier text was trimmed away is never given with a wrong text: a read says it cannot, a watcher is reset past it', async t => {
  const proxy = await startRedisProxy(redis.port)
  t.teardown(async () => await proxy.close())
  const log = new RedisSessionLog({ url: proxy.url, keyPrefix: 'trimmed:' })
  const writer = new RedisSessionLog({ url: redis.url, keyPrefix: 'trimmed:', replay: 5000 })
  t.teardown(async () => { await log.close(); await writer.close() })
  await writer.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
  const heard: SessionEvent[] = []
  await log.subscribe(KEY, event => { heard.push(event) })
  // The watcher's process loses Redis while the turn goes on, and the stream is cut to its last ten.
  proxy.refusing = true
  proxy.dropAll()
  const deltas = answer(200)
  for (let i = 0; i < deltas.length; i += 10) await writer.append(KEY, deltas.slice(i, i + 10))
  await redis.client().xtrim(`trimmed:log:{${KEY}}:log`, 'MAXLEN', 10)
  // 191-200 are left; 193 carries its text (a checkpoint), 191 and 192 do not and cannot be rebuilt.
  t.equal(await writer.read(KEY, 'e1', 190), undefined, 'from before 191: not given')
  t.same(await writer.read(KEY, 'e1', 192), deltas.slice(192), 'from 192 on: given whole')
  proxy.refusing = false
  await eventually(() => heard.length === 9, 'back, the watcher hears a reset and what can be given')
  t.same(heard[0], { type: 'session.reset', sessionKey: KEY, epoch: 'e1', seq: 192, at: heard[0]?.at, deleted: false })
  t.same(heard.slice(1), deltas.slice(192), 'then 193-200, each with its text')
})

t.test('a lane whose key vanished (an operator, an eviction) is told to stop at the next check', async t => {
  const log = new RedisSessionLog({ url: redis.url, keyPrefix: 'vanish:', laneTtlMs: 300 })
  t.teardown(async () => await log.close())
  const lane = await log.acquire(KEY, 'run-1', { busy: 'reject', maxQueue: 0 })
  let stopped = false
  lane.onAbort(() => { stopped = true })
  await redis.client().del(`vanish:log:{${KEY}}:lane`)
  await eventually(() => stopped, 'the run is aborted')
  await log.release(KEY, lane)
})

t.test('a turn waiting behind a holder that died gets the lane when it expires', async t => {
  const dying = new RedisSessionLog({ url: redis.url, keyPrefix: 'died:', laneTtlMs: 300 })
  const waiting = new RedisSessionLog({ url: redis.url, keyPrefix: 'died:', laneTtlMs: 300 })
  t.teardown(async () => await waiting.close())
  await dying.acquire(KEY, 'run-1', { busy: 'queue', maxQueue: 4 })
  const next = waiting.acquire(KEY, 'run-2', { busy: 'queue', maxQueue: 4 })
  // The holder's process goes without releasing: its renewals stop.
  await dying.close()
  const lane = await next
  t.equal(lane.runId, 'run-2')
  // Aborted from a process that never watched the session: the holder's process hears it.
  const other = new RedisSessionLog({ url: redis.url, keyPrefix: 'died:' })
  t.teardown(async () => await other.close())
  let stopped = false
  lane.onAbort(() => { stopped = true })
  t.equal(await other.abort(KEY), 'run-2')
  await eventually(() => stopped, 'the holder stops')
  await waiting.release(KEY, lane)
})

t.test('Redis away: subscribing and taking a lane fail with 503 and leave nothing behind; all works once it is back', async t => {
  const log = new RedisSessionLog({ url: redis.url, keyPrefix: 'away:', redisOptions: { maxRetriesPerRequest: 0 } })
  t.teardown(async () => await log.close())
  await log.ping()
  await redis.kill()
  await t.rejects(log.ping(), { code: 'FSG_LOG_UNAVAILABLE' }, 'readiness hears Redis is away')
  await t.rejects(log.subscribe(KEY, () => {}), { code: 'FSG_LOG_UNAVAILABLE' })
  await t.rejects(log.acquire(KEY, 'run-1', { busy: 'reject', maxQueue: 0 }), { code: 'FSG_LOG_UNAVAILABLE' })
  await redis.start()
  const lane = await log.acquire(KEY, 'run-1', { busy: 'reject', maxQueue: 0 })
  t.equal(lane.runId, 'run-1')
  await log.release(KEY, lane)
})
