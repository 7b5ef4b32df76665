import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { echoAgent, MemoryStore, type Agent, type SessionGatewayOptions, type SessionStore } from '../lib/index.js'
import { SessionLogUnavailableError } from '../lib/errors.js'
import type { Lane, LaneOptions, LogPosition } from '../lib/hub/session-log.js'
import { RedisSessionLog } from '../lib/redis/index.js'
import { GatewaySocket, listen, watchSession } from './gateway-frames.js'
import type { SessionEvent } from '../lib/events.js'
import { buildApp, gatedAgent, TOKEN, user } from './helpers.js'
import { startRedis } from './redis-server.js'

// Nodes on Redis when a step between them fails: the check another node makes of a dead
// node's run, and a log that lost a session's position and cannot be asked for it again.
// Faults are switched on where Redis or the store would fail; everything else is real.

const redis = await startRedis(t)
let space = 0

/** A Redis session log whose `position` and recovery lanes fail while told to. */
class FlakyLog extends RedisSessionLog {
  failPosition = false
  failRecovery = false

  override async position (key: string, seed: () => Promise<LogPosition>): Promise<LogPosition> {
    if (this.failPosition) throw new SessionLogUnavailableError('position: connection lost')
    return await super.position(key, seed)
  }

  override async acquire (key: string, runId: string, options: LaneOptions): Promise<Lane> {
    if (this.failRecovery && runId.startsWith('recovery-')) throw new SessionLogUnavailableError('acquire: connection lost')
    return await super.acquire(key, runId, options)
  }
}

/** A store whose transcript reads fail while told to. */
class FlakyStore extends MemoryStore {
  failReads = false

  override async read (...args: Parameters<MemoryStore['read']>): ReturnType<MemoryStore['read']> {
    if (this.failReads) throw new Error('disk unreadable')
    return await super.read(...args)
  }
}

/** The same store, seen through reads that can be held back once read (at the worst moment). */
class HeldReads {
  /** Runs after the next read and before its page is returned. */
  holdNextRead: (() => Promise<void>) | undefined
  readonly store: MemoryStore

  constructor (target: MemoryStore) {
    this.store = new Proxy(target, {
      get: (target, property) => {
        if (property === 'read') {
          return async (...args: Parameters<MemoryStore['read']>) => {
            const page = await target.read(...args)
            const hold = this.holdNextRead
            this.holdNextRead = undefined
            await hold?.()
            return page
          }
        }
        const value = Reflect.get(target, property, target) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  }
}

async function node (t: Test, store: SessionStore, agent: Agent, prefix: string, lines: string[] = [], options: Partial<SessionGatewayOptions> = {}): Promise<{ app: FastifyInstance, log: FlakyLog }> {
  const log = new FlakyLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 600 })
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const app = await buildApp(t, { store, sessionLog: log, agent, orphanCheckMs: 100, ...options }, { logger: { level: 'warn', stream } })
  await listen(app)
  return { app, log }
}

async function eventually (check: () => boolean, ms = 10_000): Promise<boolean> {
  const until = Date.now() + ms
  while (!check() && Date.now() < until) await sleep(20)
  return check()
}

t.test('a check of a dead node\'s run that fails is logged and made again, until the run is recorded as aborted', async t => {
  const prefix = `orphan-${space++}:`
  const store = new FlakyStore()
  const stuck: Agent = { async * respond () { await new Promise(() => {}) } }
  const { log: dying, app: a } = await node(t, store, stuck, prefix)
  const warnings: string[] = []
  const { log: checking, app: b } = await node(t, store, echoAgent(), prefix, warnings)
  const watcher = await watchSession(t, b, 'orphan')
  await a.sessionGateway.send({ sessionKey: 'agent:main:orphan', agentId: 'main', input: [user('never answered')], runId: 'run-dead' })
  await watcher.next(f => f.event === 'agent' && f.payload.runId === 'run-dead')
  const couldNot = (): string[] => warnings.filter(line => line.includes('could not check a run of another process'))

  store.failReads = true // B cannot read the transcript it would check
  await dying.close() // A dies without releasing its lane
  t.ok(await eventually(() => couldNot().some(line => line.includes('disk unreadable'))), 'the failed check is logged with its cause')
  checking.failRecovery = true // and then cannot reach the log to take the lane
  store.failReads = false
  t.ok(await eventually(() => couldNot().some(line => line.includes('acquire: connection lost'))), 'a log that fails is logged too')
  t.equal(watcher.frames.filter(f => f.event === 'chat' && f.payload.state === 'aborted').length, 0, 'nothing is recorded while the check fails')

  checking.failRecovery = false
  const end = await watcher.next(f => f.event === 'chat' && f.payload.runId === 'run-dead' && f.payload.state !== 'delta', 10_000)
  t.equal(end.payload.state, 'aborted', 'the next check that succeeds records the run')
  t.equal((await (await b.sessionGateway.send({ sessionKey: 'agent:main:orphan', agentId: 'main', input: [user('and on')] })).result).text, 'and on', 'and the session goes on')
})

t.test('a log that lost the session\'s position and cannot give it again: the turn is refused with 503 and its lane is let go', async t => {
  const prefix = `position-${space++}:`
  const { app, log } = await node(t, new MemoryStore(), echoAgent(), prefix, [], { busy: 'reject' })
  const auth = { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'lost' }
  const turn = async (input: string): Promise<{ statusCode: number, json: () => any }> =>
    await app.inject({ method: 'POST', url: '/v1/responses', headers: auth, payload: { model: 'openclaw', input } })
  t.equal((await turn('first')).statusCode, 200)

  // Redis loses the session's keys (a failover to a replica that had not seen them).
  const admin = redis.client()
  for (const key of await admin.keys(`${prefix}*`)) await admin.del(key)
  log.failPosition = true
  const refused = await turn('second')
  t.equal(refused.statusCode, 503, 'the caller is told to come back')
  t.match(refused.json(), { error: { code: 'log_unavailable' } }, 'saying the log is unavailable')

  log.failPosition = false
  const busy = await app.sessionGateway.send({ sessionKey: 'agent:main:lost', agentId: 'main', input: [user('third')] })
  t.equal(busy.status, 'started', 'the lane was let go: a turn that refuses to wait starts at once')
  t.equal((await busy.result).text, 'third')
  const history = await app.sessionGateway.history('agent:main:lost', { limit: 10 })
  t.same(history.entries.map(e => e.message?.role), ['user', 'assistant', 'user', 'assistant'], 'the refused turn left no row')
})

t.test('a watcher on another node sees the tool calls of a turn running elsewhere', async t => {
  const prefix = `tools-${space++}:`
  const store = new MemoryStore()
  let release = (): void => {}
  const released = new Promise<void>(resolve => { release = resolve })
  const calling: Agent = {
    async * respond () {
      yield { type: 'function_call', name: 'get_weather', arguments: { city: 'Paris' }, callId: 'call_paris' }
      await released
    }
  }
  const { app: a } = await node(t, store, calling, prefix)
  const { app: b } = await node(t, store, echoAgent(), prefix)
  const watcher = await watchSession(t, b, 'tools')
  const tools = [{ type: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }]
  const ticket = await a.sessionGateway.send({ sessionKey: 'agent:main:tools', agentId: 'main', input: [user('weather?')], tools })
  await watcher.next(f => f.event === 'agent' && f.payload.stream === 'tool')
  t.match((await b.sessionGateway.get('agent:main:tools'))?.running, { runId: ticket.runId, toolCalls: [{ type: 'toolCall', id: 'call_paris', name: 'get_weather', arguments: { city: 'Paris' } }] },
    'the running turn, as B knows it, has the call made on A')
  release()
  t.equal((await ticket.result).state, 'final')
})

t.test('a run that answers while another node checks it is not recorded twice: the check looks again once it holds the lane', async t => {
  const prefix = `race-${space++}:`
  const store = new MemoryStore()
  const gate = gatedAgent()
  const { app: a } = await node(t, store, gate, prefix)
  // B sees the same store, but its reads can be held back at the worst moment.
  const seenByB = new HeldReads(store)
  const { app: b } = await node(t, seenByB.store, echoAgent(), prefix)
  const watcher = await watchSession(t, b, 'race')
  const ticket = await a.sessionGateway.send({ sessionKey: 'agent:main:race', agentId: 'main', input: [user('answer me')], runId: 'run-a' })
  await gate.waitStarted(1)
  await watcher.next(f => f.event === 'agent' && f.payload.runId === 'run-a')

  // B's next check reads the transcript while run-a is unanswered; before B goes on, run-a
  // answers on A and A lets the lane go.
  let held = false
  seenByB.holdNextRead = async () => {
    gate.release()
    await ticket.result
    held = true
  }
  t.ok(await eventually(() => held), 'the check read the transcript before the answer')
  await watcher.next(f => f.event === 'chat' && f.payload.runId === 'run-a' && f.payload.state === 'final')
  await sleep(500) // five more checks
  const rows = (await b.sessionGateway.history('agent:main:race', { limit: 10 })).entries.map(e => `${e.message?.role as string}:${e.runState ?? '-'}`)
  t.same(rows, ['user:-', 'assistant:final'], 'one answer: the run is not also recorded as interrupted')
  t.notOk(watcher.frames.some(f => f.event === 'chat' && f.payload.state === 'aborted'), 'and no watcher is told it was')
})

t.test('a reset on one node stops the turn another node runs, and waits for its end before the new generation begins', async t => {
  const prefix = `reset-${space++}:`
  const store = new MemoryStore()
  const gate = gatedAgent()
  const { app: a } = await node(t, store, gate, prefix)
  const { app: b } = await node(t, store, echoAgent(), prefix)
  const watcher = await watchSession(t, b, 'reset-across')
  const ticket = await a.sessionGateway.send({ sessionKey: 'agent:main:reset-across', agentId: 'main', input: [user('long')], runId: 'run-long' })
  await gate.waitStarted(1)
  await watcher.next(f => f.event === 'agent' && f.payload.runId === 'run-long')
  const reset = await Promise.race([b.sessionGateway.reset('agent:main:reset-across').then(() => 'reset'), sleep(10_000).then(() => 'still waiting')])
  t.equal(reset, 'reset', 'the reset on B ends (it waited for the run to end, and heard it)')
  t.equal((await ticket.result).state, 'aborted', 'the run on A was stopped by the reset on B')
  const history = await b.sessionGateway.history('agent:main:reset-across', { limit: 10 })
  t.same(history.entries, [], 'and the new generation is empty: the old run\'s end went to the old one')
})

/** A log that never tells its listeners a run ended (as if its process missed that message). */
class DeafLog extends FlakyLog {
  override async subscribe (key: string, listener: (event: SessionEvent) => void): ReturnType<RedisSessionLog['subscribe']> {
    return await super.subscribe(key, event => { if (event.type !== 'run.finished') listener(event) })
  }
}

t.test('a reset on a node that missed the end of another node\'s run does not wait for it', async t => {
  const prefix = `deaf-${space++}:`
  const store = new MemoryStore()
  const { app: a } = await node(t, store, echoAgent(), prefix)
  const log = new DeafLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 600 })
  const b = await buildApp(t, { store, sessionLog: log, orphanCheckMs: 600_000 })
  const heard: string[] = []
  ;(await b.sessionGateway.subscribe('agent:main:deaf', {}, event => { heard.push(event.type) })).start()
  await (await a.sessionGateway.send({ sessionKey: 'agent:main:deaf', agentId: 'main', input: [user('over already')] })).result
  // The answer row comes after the run's deltas: once B heard it, it knows the whole text.
  t.ok(await eventually(() => heard.includes('run.started') && heard.filter(type => type === 'message').length === 2), 'B heard the run begin, and its answer row')
  t.match(await b.sessionGateway.get('agent:main:deaf'), { running: { text: 'over already' } }, 'but not its end: to B it still runs')
  const reset = await Promise.race([b.sessionGateway.reset('agent:main:deaf').then(() => 'reset'), sleep(5000).then(() => 'still waiting')])
  t.equal(reset, 'reset', 'the log says nothing runs: the reset goes on at once')
})

t.test('a node that missed the end of another node\'s run stops showing it as running at its next check, and records nothing', async t => {
  const prefix = `deaf-check-${space++}:`
  const store = new MemoryStore()
  const { app: a } = await node(t, store, echoAgent(), prefix)
  const log = new DeafLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 600 })
  const b = await buildApp(t, { store, sessionLog: log, orphanCheckMs: 100 })
  const heard: string[] = []
  ;(await b.sessionGateway.subscribe('agent:main:deaf-check', {}, event => { heard.push(event.type) })).start()
  await (await a.sessionGateway.send({ sessionKey: 'agent:main:deaf-check', agentId: 'main', input: [user('over already')] })).result
  t.ok(await eventually(() => heard.includes('message') && heard.includes('run.started')), 'B heard the run begin')
  const until = Date.now() + 10_000
  while ((await b.sessionGateway.get('agent:main:deaf-check'))?.running !== undefined && Date.now() < until) await sleep(20)
  t.equal((await b.sessionGateway.get('agent:main:deaf-check'))?.running, undefined, 'a check finds the run answered in the transcript: B no longer shows it running')
  const rows = (await b.sessionGateway.history('agent:main:deaf-check', { limit: 10 })).entries.map(e => `${e.message?.role as string}:${e.runState ?? '-'}`)
  t.same(rows, ['user:-', 'assistant:final'], 'and records nothing: the run answered')
})

/** A log whose abort answers only once `heard()` says the run's end reached this node (Redis tells the two on different connections). */
class LateAnswerLog extends FlakyLog {
  heard: () => boolean = () => true

  override async abort (key: string, runId?: string): Promise<string | undefined> {
    const stopped = await super.abort(key, runId)
    await eventually(this.heard)
    return stopped
  }
}

t.test('an abort whose answer comes after the run\'s end (heard on the other connection) does not wait for that end again', async t => {
  const prefix = `late-abort-${space++}:`
  const store = new MemoryStore()
  const gate = gatedAgent()
  const { app: a } = await node(t, store, gate, prefix)
  const log = new LateAnswerLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 600 })
  const b = await buildApp(t, { store, sessionLog: log, orphanCheckMs: 600_000 })
  const heard: string[] = []
  ;(await b.sessionGateway.subscribe('agent:main:late', {}, event => { heard.push(event.type) })).start()
  // B has heard more runs end than it remembers (the newest eight) before this one.
  for (let i = 1; i <= 9; i++) {
    const earlier = await a.sessionGateway.send({ sessionKey: 'agent:main:late', agentId: 'main', input: [user(`turn ${i}`)] })
    await gate.waitStarted(i)
    gate.release()
    await earlier.result
  }
  t.ok(await eventually(() => heard.filter(type => type === 'run.finished').length === 9), 'B heard nine runs end')
  log.heard = () => heard.filter(type => type === 'run.finished').length === 10
  const ticket = await a.sessionGateway.send({ sessionKey: 'agent:main:late', agentId: 'main', input: [user('stop me')], runId: 'run-late' })
  await gate.waitStarted(10)
  t.ok(await eventually(() => heard.includes('run.started')), 'B knows the run')
  const abort = await Promise.race([b.sessionGateway.abort('agent:main:late'), sleep(5000).then(() => 'still waiting')])
  t.same(abort, { aborted: true, runIds: ['run-late'] }, 'the abort answers: the end it heard first counts')
  t.equal((await ticket.result).state, 'aborted')
})

t.test('a repeat that attaches while the run ends during its read of the transcript gets the run\'s answer', async t => {
  const prefix = `attach-race-${space++}:`
  const store = new MemoryStore()
  const gate = gatedAgent()
  const { app: a } = await node(t, store, gate, prefix)
  const seenByB = new HeldReads(store)
  const { app: b } = await node(t, seenByB.store, echoAgent(), prefix)
  const heard: string[] = []
  ;(await b.sessionGateway.subscribe('agent:main:attach', {}, event => { heard.push(event.type) })).start()
  const ticket = await a.sessionGateway.send({ sessionKey: 'agent:main:attach', agentId: 'main', input: [user('the answer')], runId: 'run-attach', idempotencyKey: 'attach-key' })
  await gate.waitStarted(1)
  // B's read of the transcript for the repeat finds no answer yet; before it returns, the run
  // answers on A and B hears its end.
  seenByB.holdNextRead = async () => {
    gate.release()
    await ticket.result
    await eventually(() => heard.includes('run.finished'))
  }
  const repeat = await b.sessionGateway.send({ sessionKey: 'agent:main:attach', agentId: 'main', input: [user('the answer')], idempotencyKey: 'attach-key' })
  t.equal(repeat.runId, 'run-attach', 'the repeat attaches to the run')
  const result = await Promise.race([repeat.result, sleep(5000).then(() => undefined)])
  t.match(result, { state: 'final', text: 'the answer' }, 'and gets its answer, not an abort or a wait for ever')
})

/** A log whose process never hears a row committed: what it knows of a session comes from the store. */
class RowDeafLog extends FlakyLog {
  override async subscribe (key: string, listener: (event: SessionEvent) => void): ReturnType<RedisSessionLog['subscribe']> {
    return await super.subscribe(key, event => { if (event.type !== 'message') listener(event) })
  }
}

t.test('a repeat on a node that has not heard the session created attaches to the run all the same', async t => {
  const prefix = `unheard-${space++}:`
  const store = new MemoryStore()
  const gate = gatedAgent()
  const { app: a } = await node(t, store, gate, prefix)
  const b = await buildApp(t, { store, sessionLog: new RowDeafLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 600 }), orphanCheckMs: 600_000 })
  // B holds the session from before it existed, and never hears its first row.
  ;(await b.sessionGateway.subscribe('agent:main:unheard', {}, () => {})).start()
  const ticket = await a.sessionGateway.send({ sessionKey: 'agent:main:unheard', agentId: 'main', input: [user('the answer')], runId: 'run-unheard', idempotencyKey: 'unheard-key' })
  await gate.waitStarted(1)
  const repeat = await b.sessionGateway.send({ sessionKey: 'agent:main:unheard', agentId: 'main', input: [user('the answer')], idempotencyKey: 'unheard-key' })
  t.match(repeat, { runId: 'run-unheard', sessionId: ticket.sessionId, status: 'in_flight' }, 'the repeat attaches to the run, in the session the store has')
  gate.release()
  t.match(await Promise.race([repeat.result, sleep(5000).then(() => undefined)]), { state: 'final', text: 'the answer' })
})

/** A log whose process never hears anything of one run (as if Redis had not told it yet). */
class DeafToRunLog extends FlakyLog {
  constructor (options: ConstructorParameters<typeof RedisSessionLog>[0], readonly unheard: string) {
    super(options)
  }

  override async subscribe (key: string, listener: (event: SessionEvent) => void): ReturnType<RedisSessionLog['subscribe']> {
    return await super.subscribe(key, event => {
      const runId = event.type === 'message' ? event.entry.runId : 'runId' in event ? event.runId : undefined
      if (runId !== this.unheard) listener(event)
    })
  }
}

/** A log whose process never hears of a reset made elsewhere. */
class DeafToResetLog extends FlakyLog {
  override async subscribe (key: string, listener: (event: SessionEvent) => void): ReturnType<RedisSessionLog['subscribe']> {
    return await super.subscribe(key, event => { if (event.type !== 'session.reset') listener(event) })
  }
}

/** A log whose process hears of a reset made elsewhere only at `tellHeld()` (Redis told it late). */
class LateResetLog extends FlakyLog {
  readonly #held: Array<() => void> = []

  override async subscribe (key: string, listener: (event: SessionEvent) => void): ReturnType<RedisSessionLog['subscribe']> {
    return await super.subscribe(key, event => {
      if (event.type === 'session.reset') this.#held.push(() => listener(event))
      else listener(event)
    })
  }

  /** Delivers what was held; says how many. */
  tellHeld (): number {
    const held = this.#held.splice(0)
    for (const deliver of held) deliver()
    return held.length
  }
}

t.test('a node that has not heard the rows another node wrote chains its next row to the newest row stored', async t => {
  const prefix = `unheard-rows-${space++}:`
  const store = new MemoryStore()
  // B's turn reaches A late: not before A's next turn has begun (Redis tells it on another connection).
  const a = await buildApp(t, { store, sessionLog: new DeafToRunLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 600 }, 'run-b'), orphanCheckMs: 600_000 })
  const { app: b } = await node(t, store, echoAgent(), prefix)
  const key = 'agent:main:unheard-rows'
  await (await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('from a')] })).result
  await (await b.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('from b')], runId: 'run-b' })).result
  await (await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('from a again')] })).result
  const { entries } = await store.read(key, { limit: 10 })
  t.same(entries.map(entry => entry.message?.role), ['user', 'assistant', 'user', 'assistant', 'user', 'assistant'])
  t.same(entries.map(entry => entry.parentId), entries.map((_, i) => i === 0 ? null : entries[i - 1]?.id), 'A\'s second turn follows B\'s answer, not A\'s first')
})

t.test('a node that has not heard a reset made on another node starts the new transcript\'s chain afresh', async t => {
  const prefix = `unheard-reset-${space++}:`
  const store = new MemoryStore()
  // A's agent says how much history it was given.
  const historyLengths: number[] = []
  const agent: Agent = {
    async * respond (request) {
      historyLengths.push((await request.history()).length)
      yield { type: 'text', delta: 'ok' }
    }
  }
  const a = await buildApp(t, { store, agent, sessionLog: new DeafToResetLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 600 }), orphanCheckMs: 600_000 })
  const { app: b } = await node(t, store, echoAgent(), prefix)
  const key = 'agent:main:unheard-reset'
  await (await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('before')] })).result
  await b.sessionGateway.reset(key)
  const after = await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('after')] })
  await after.result
  t.equal(after.sessionId, (await store.get(key))?.sessionId, 'the turn is in the generation the reset began')
  t.same(historyLengths, [0, 0], 'and its agent is not given the old generation\'s history')
  const { entries } = await store.read(key, { limit: 10 })
  t.same(entries.map(entry => entry.message?.role), ['user', 'assistant'], 'the new generation has the new turn only')
  t.same(entries.map(entry => entry.parentId), [null, entries[0]?.id], 'whose first row has no parent: the old generation\'s rows are not in this transcript')
})

t.test('a reset made elsewhere that a node hears only once its next turn has begun does not move that turn back', async t => {
  const prefix = `late-reset-${space++}:`
  const store = new MemoryStore()
  const gate = gatedAgent()
  const log = new LateResetLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 600 })
  const a = await buildApp(t, { store, agent: gate, sessionLog: log, orphanCheckMs: 600_000 })
  const { app: b } = await node(t, store, echoAgent(), prefix)
  const key = 'agent:main:late-reset'
  const first = await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('before')] })
  gate.release()
  await first.result
  await b.sessionGateway.reset(key)
  const second = await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('after')] })
  await gate.waitStarted(2)
  t.equal(log.tellHeld(), 1, 'the reset reaches A while its turn runs')
  gate.release()
  t.match(await second.result, { state: 'final', text: 'after' }, 'the turn goes on where the lane put it')
  const { entries } = await store.read(key, { limit: 10 })
  t.same(entries.map(entry => entry.parentId), [null, entries[0]?.id], 'and its rows chain in the new transcript')
})

t.test('rows chain across nodes: a row written on B follows the row A wrote before it (parentId, as OpenClaw reads transcripts)', async t => {
  const prefix = `chain-${space++}:`
  const store = new MemoryStore()
  const { app: a } = await node(t, store, echoAgent(), prefix)
  const { app: b } = await node(t, store, echoAgent(), prefix)
  const key = 'agent:main:chain'
  const heard: string[] = []
  ;(await b.sessionGateway.subscribe(key, {}, event => { heard.push(event.type) })).start() // B holds the session before A writes
  await (await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('from a')] })).result
  t.ok(await eventually(() => heard.includes('run.finished')), 'B heard A\'s turn')
  await (await b.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('from b')] })).result
  await (await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('from a again')] })).result
  const { entries } = await store.read(key, { limit: 10 })
  t.equal(entries.length, 6)
  t.same(entries.map(entry => entry.parentId), entries.map((_, i) => i === 0 ? null : entries[i - 1]?.id), 'each row follows the one before it, whichever node wrote it')
})

t.test('the sender of a new session\'s first turn hears each of its events once, though Redis tells them after the answer to chat.send', async t => {
  const { app } = await node(t, new MemoryStore(), echoAgent(), `first-${space++}:`)
  const socket = await GatewaySocket.open(app, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.teardown(() => socket.close())
  for (let i = 0; i < 3; i++) {
    t.equal((await socket.request('chat.send', { sessionKey: `new-${i}`, message: 'ping', idempotencyKey: `run-${i}` })).ok, true)
    await socket.next(f => f.event === 'chat' && f.payload.runId === `run-${i}` && f.payload.state === 'final')
    await sleep(100) // anything late would be here by now
    t.same(socket.frames.filter(f => f.event === 'chat' && f.payload.runId === `run-${i}`).map(f => f.payload.state), ['delta', 'final'], `turn ${i}: one delta, one final`)
  }
})
