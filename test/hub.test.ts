import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { InProcessSessionLog, MemoryStore, echoAgent, eventCursor, isGatewayError, parseCursor, type Agent, type SessionEvent } from '../lib/index.js'
import { buildApp, EventLog, gatedAgent, user } from './helpers.js'

const KEY = 'agent:main:hub'

t.test('a turn: input durable before the ack, then deltas and a final answer', async t => {
  const store = new MemoryStore()
  const app = await buildApp(t, { store })
  const gw = app.sessionGateway
  const log = new EventLog()
  const sub = await gw.subscribe(KEY, {}, log.listener)
  sub.start()
  t.equal(sub.cursor, 'new:0', 'a session that does not exist yet')

  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('hello big world')], idempotencyKey: 'run-1' })
  t.equal(ticket.runId, 'run-1', 'the run id is the idempotency key')
  t.equal(ticket.status, 'started')
  t.equal(ticket.cursor, `${ticket.sessionId}:0`)
  const stored = await store.read(KEY, { limit: 10 })
  t.equal(stored.entries.length, 1, 'the user message is in the store when send resolves')
  t.match(stored.entries[0], { type: 'message', seq: 1, runId: 'run-1', message: { role: 'user', content: [{ type: 'text', text: 'hello big world' }] } })

  const result = await ticket.result
  t.equal(result.state, 'final')
  t.equal(result.text, 'hello big world')
  t.equal(result.message.stopReason, 'stop')
  t.same(result.message.content, [{ type: 'text', text: 'hello big world' }])
  t.same(log.types, ['message', 'run.started', 'run.delta', 'run.delta', 'run.delta', 'message', 'run.finished'])
  t.same(log.seqs, [1, 2, 3, 4, 5, 6, 7], 'every event of the run gets the next cursor value')
  t.same(log.events.filter(e => e.type === 'run.delta').map(e => e.type === 'run.delta' && [e.delta, e.text]), [
    ['hello', 'hello'], [' big', 'hello big'], [' world', 'hello big world']
  ])
  t.equal(result.cursor, `${ticket.sessionId}:7`)
  t.equal(eventCursor(log.events[6] as SessionEvent), result.cursor, 'an event names its own position')
  t.match(log.events[5], { type: 'message', entry: { seq: 6, runState: 'final' } }, 'the answer is a row like any other')

  const history = await gw.history(KEY, { limit: 10 })
  t.same(history.entries.map(e => [e.seq, e.message?.role, e.runState]), [[1, 'user', undefined], [6, 'assistant', 'final']])
  t.equal(history.entries[1]?.parentId, history.entries[0]?.id, 'entries chain by parentId, as OpenClaw writes them')
  t.equal(history.cursor, result.cursor)
})

t.test('the cursor only grows, across turns', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  const first = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('one two')] })
  await first.result
  const second = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('three')] })
  t.equal(second.cursor, (await first.result).cursor, 'the second run starts where the first ended')
  const end = await second.result
  t.ok(parseCursor(end.cursor).seq > parseCursor(second.cursor).seq)
  t.equal(parseCursor(end.cursor).epoch, parseCursor(first.cursor).epoch)
})

t.test('busy: queue runs turns one after the other, in order, never interleaved', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const log = new EventLog()
  ;(await gw.subscribe(KEY, {}, log.listener)).start()

  const a = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('a')], runId: 'a' })
  const bPending = gw.send({ sessionKey: KEY, agentId: 'main', input: [user('b')], runId: 'b' })
  const cPending = gw.send({ sessionKey: KEY, agentId: 'main', input: [user('c')], runId: 'c' })
  await agent.waitStarted(1)
  await sleep(20)
  t.same(agent.started, ['a'], 'b and c wait')
  agent.release()
  await a.result
  const b = await bPending
  await agent.waitStarted(2)
  agent.release()
  await b.result
  const c = await cPending
  await agent.waitStarted(3)
  agent.release()
  await c.result
  t.same(agent.started, ['a', 'b', 'c'])
  const order = log.events.map(e => 'runId' in e ? e.runId : '?')
  t.same(order, [...'aaaaa', ...'bbbbb', ...'ccccc'], 'each run is contiguous in the log')
  const history = await gw.history(KEY, { limit: 10 })
  t.same(history.entries.map(e => e.message?.role), ['user', 'assistant', 'user', 'assistant', 'user', 'assistant'])
})

t.test('busy: reject refuses with the running run and the cursor', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent, busy: 'reject' })
  const gw = app.sessionGateway
  const a = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('a')], runId: 'run-a' })
  await t.rejects(gw.send({ sessionKey: KEY, agentId: 'main', input: [user('b')] }), {
    code: 'FSG_SESSION_BUSY', statusCode: 409, runId: 'run-a', sessionKey: KEY, cursor: `${a.sessionId}:2`
  })
  const other = await gw.send({ sessionKey: 'agent:main:other', agentId: 'main', input: [user('x')] })
  t.match(other, { status: 'started', sessionKey: 'agent:main:other', cursor: `${other.sessionId}:0` }, 'other sessions are not held up: their own run starts')
  t.equal(agent.started.length, 2, 'and its agent runs while the first session is busy')
  agent.release()
  agent.release()
  await a.result
  const b = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('b')] })
  agent.release()
  t.equal((await b.result).state, 'final', 'free again once the run ends')
})

t.test('the queue is bounded', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent, maxQueue: 1 })
  const gw = app.sessionGateway
  const a = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('a')] })
  const b = gw.send({ sessionKey: KEY, agentId: 'main', input: [user('b')] })
  await t.rejects(gw.send({ sessionKey: KEY, agentId: 'main', input: [user('c')] }), { code: 'FSG_SESSION_BUSY', runId: a.runId })
  agent.release()
  const bTicket = await b
  await agent.waitStarted(2)
  agent.release()
  t.equal((await bTicket.result).state, 'final')
})

t.test('maxQueue is 16 by default: sixteen sends wait their turn, the seventeenth is refused', async t => {
  let open: () => void = () => {}
  const gate = new Promise<void>(resolve => { open = resolve })
  const agent: Agent = { async * respond () { await gate; yield { type: 'text', delta: 'done' } } }
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const running = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('running')] })
  const waiting = Array.from({ length: 16 }, async (_, i) => await gw.send({ sessionKey: KEY, agentId: 'main', input: [user(`waiting ${i}`)] }))
  const over = gw.send({ sessionKey: KEY, agentId: 'main', input: [user('one too many')] }).then(() => 'queued', (err: { code?: string, runId?: string }) => `${err.code}:${err.runId}`)
  open()
  const results = await Promise.all([running.result, ...await Promise.all(waiting.map(async pending => await (await pending).result))])
  t.same(results.map(result => result.state), Array(17).fill('final'), 'the running turn and the sixteen waiting ones all ran')
  t.equal(await over, `FSG_SESSION_BUSY:${running.runId}`, 'the seventeenth was refused, naming the running run')
})

t.test('fan-out: every watcher sees the same events', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  const logs = [new EventLog(), new EventLog(), new EventLog()]
  for (const log of logs) (await gw.subscribe(KEY, {}, log.listener)).start()
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('one two three')] })
  await ticket.result
  t.equal(logs[0]?.events.length, 7)
  t.same(logs[1]?.events, logs[0]?.events)
  t.same(logs[2]?.events, logs[0]?.events)
  const other = new EventLog()
  ;(await gw.subscribe('agent:main:elsewhere', {}, other.listener)).start()
  await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('more')] })).result
  t.same(other.events, [], 'watchers of another session see nothing')
})

t.test('a listener that throws does not break the run or other watchers', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  ;(await gw.subscribe(KEY, {}, () => { throw new Error('bad listener') })).start()
  const log = new EventLog()
  ;(await gw.subscribe(KEY, {}, log.listener)).start()
  const result = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('still fine')] })).result
  t.equal(result.state, 'final')
  t.equal(log.events.length, 6)
})

t.test('joining with a cursor: the missed events from memory, then live, no gap, no duplicate', async t => {
  const agent = gatedAgent(text => text.split(' ').map((w, i) => ({ type: 'text' as const, delta: i === 0 ? w : ' ' + w })))
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const early = new EventLog()
  ;(await gw.subscribe(KEY, {}, early.listener)).start()
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('a b c d')] })
  await early.waitFor(e => e.type === 'run.started')
  const late = new EventLog()
  const sub = await gw.subscribe(KEY, { since: ticket.cursor }, late.listener)
  t.equal(sub.replay.kind, 'replay')
  const replayed = sub.replay.kind === 'replay' ? sub.replay.events : []
  t.same(replayed.map(e => e.type), ['message', 'run.started'])
  agent.release()
  await early.waitFor(e => e.type === 'run.delta')
  t.same(late.events, [], 'live events wait for start()')
  sub.start()
  await ticket.result
  t.same([...replayed, ...late.events], early.events, 'replay + live = everything, once')

  const again = await gw.subscribe(KEY, { since: (await ticket.result).cursor }, () => {})
  t.same(again.replay, { kind: 'live' }, 'an up-to-date cursor has nothing to replay')
  again.unsubscribe()
})

t.test('when memory no longer covers the gap, the durable transcript does (catch-up)', async t => {
  const agent = gatedAgent(text => text.split(' ').map((w, i) => ({ type: 'text' as const, delta: i === 0 ? w : ' ' + w })))
  const app = await buildApp(t, { agent, replay: 2 })
  const gw = app.sessionGateway
  const first = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('one two three four')] })
  agent.release()
  const firstEnd = await first.result
  const second = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('five six')] })
  await agent.waitStarted(2)

  const sub = await gw.subscribe(KEY, { since: first.cursor }, () => {})
  t.equal(sub.replay.kind, 'catchup')
  if (sub.replay.kind !== 'catchup') return
  t.same(sub.replay.events.map(e => e.type === 'message' ? [e.type, e.entry.message?.role] : [e.type, e.type === 'run.finished' && e.state]),
    [['message', 'user'], ['message', 'assistant'], ['run.finished', 'final'], ['message', 'user']],
    'every row committed after the cursor, and the end of the run it finished')
  t.same(sub.replay.running, { runId: second.runId, text: '', toolCalls: [] }, 'and the run in progress')
  sub.unsubscribe()

  const fromMiddle = await gw.subscribe(KEY, { since: firstEnd.cursor }, () => {})
  t.same(fromMiddle.replay.kind === 'replay' && fromMiddle.replay.events.map(e => e.type), ['message', 'run.started'],
    'a gap the ring still holds is replayed exactly')
  fromMiddle.unsubscribe()
  agent.release()
  await second.result
})

t.test('replay keeps 512 events by default: a gap of 512 is replayed from memory, one of 513 is caught up', async t => {
  const app = await buildApp(t) // the echo agent: one event per word, four more per turn
  const gw = app.sessionGateway
  const end = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user(Array(509).fill('w').join(' '))] })).result
  const [epoch, head] = end.cursor.split(':')
  t.equal(head, '513', 'one turn of 509 words is 513 events')
  const exact = await gw.subscribe(KEY, { since: `${epoch}:1` }, () => {})
  t.equal(exact.replay.kind === 'replay' && exact.replay.events.length, 512, 'the newest 512 events, from memory')
  exact.unsubscribe()
  const past = await gw.subscribe(KEY, { since: `${epoch}:0` }, () => {})
  t.equal(past.replay.kind, 'catchup', 'one more than memory holds: from the transcript')
  past.unsubscribe()
})

t.test('a cursor from another epoch, or from the future, is answered with a reset', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('hi')] })
  const end = await ticket.result
  const { epoch, seq } = parseCursor(end.cursor)
  for (const since of [`other-epoch:1`, `${epoch}:${seq + 5}`, 'new:0']) {
    const sub = await gw.subscribe(KEY, { since }, () => {})
    t.equal(sub.replay.kind, 'reset', since)
    t.same(sub.replay.kind === 'reset' && sub.replay.entries.map(e => e.seq), [1, 4], 'with fresh history')
    sub.unsubscribe()
  }
  await t.rejects(gw.subscribe(KEY, { since: 'garbage' }, () => {}), { code: 'FSG_INVALID_CURSOR' })
  await t.rejects(gw.subscribe(KEY, { since: 'e:1.5' }, () => {}), { code: 'FSG_INVALID_CURSOR' })
  try {
    parseCursor(':3')
    t.fail('an empty epoch is no cursor')
  } catch (err) {
    t.ok(isGatewayError(err))
  }
  t.notOk(isGatewayError(new Error('plain')))
  t.notOk(isGatewayError(null))
  t.notOk(isGatewayError(Object.assign(new Error('x'), { code: 'ECONNRESET' })))
})

t.test('open: history and cursor from one instant, running run included', async t => {
  const agent = gatedAgent(() => [{ type: 'text', delta: 'part' }, { type: 'text', delta: 'ial' }])
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const first = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('q1')] })
  agent.release()
  await first.result
  await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('q2')] })
  await agent.waitStarted(2)

  const log = new EventLog()
  const opened = await gw.open(KEY, { limit: 10 }, log.listener)
  t.same(opened.entries.map(e => e.message?.role), ['user', 'assistant', 'user'])
  t.equal(opened.running?.text, '')
  t.equal(opened.cursor, `${opened.row?.sessionId}:8`)
  t.equal(opened.row?.key, KEY)
  opened.subscription.start()
  agent.release()
  const fin = await log.waitFor(e => e.type === 'run.finished')
  t.same(log.types, ['run.delta', 'run.delta', 'message', 'run.finished'])
  t.equal(fin.seq, 12)

  const small = await gw.open(KEY, { limit: 2 }, () => {})
  t.equal(small.entries.length, 2)
  t.type(small.before, 'string', 'a page of older rows exists')
  small.subscription.unsubscribe()

  const resumed = await gw.open(KEY, { limit: 10, since: opened.cursor }, () => {})
  t.same(resumed.entries, [], 'with since, no history: the replay carries the gap')
  t.equal(resumed.subscription.replay.kind, 'replay')
  resumed.subscription.unsubscribe()

  const unborn = await gw.open('agent:main:nobody', { limit: 10 }, () => {})
  t.same(unborn.entries, [])
  t.equal(unborn.row, undefined)
  t.equal(unborn.cursor, 'new:0')
  unborn.subscription.unsubscribe()
})

t.test('idempotency: a repeated key attaches to the same run, never a second one', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const request = { sessionKey: KEY, agentId: 'main', input: [user('once')], idempotencyKey: 'idem-1' }
  const first = await gw.send(request)
  const again = await gw.send(request)
  t.equal(again.status, 'in_flight')
  t.equal(again.runId, first.runId)
  t.equal(again.cursor, first.cursor)
  agent.release()
  await first.result
  const later = await gw.send(request)
  t.equal(later.status, 'done')
  t.equal((await later.result).text, 'once')
  t.same(agent.started, ['once'], 'the agent ran once')
  t.equal((await gw.history(KEY, { limit: 10 })).entries.length, 2, 'one user row, one answer')

  const elsewhere = await gw.send({ ...request, sessionKey: 'agent:main:other' })
  t.equal(elsewhere.status, 'started', 'the same key on another session is another run')
  agent.release()
  await elsewhere.result
})

t.test('idempotency keys expire after the TTL', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  const request = { sessionKey: KEY, agentId: 'main', input: [user('x')], idempotencyKey: 'k' }
  await (await gw.send(request)).result
  const realNow = Date.now
  t.teardown(() => { Date.now = realNow })
  Date.now = () => realNow() + 5 * 60_000 + 1
  const after = await gw.send(request)
  t.equal(after.status, 'started', 'a new run once five minutes have passed')
  await after.result
})

t.test('a key repeated after a restart (its claim died with the process) attaches to the run the transcript holds', async t => {
  const store = new MemoryStore()
  const request = { sessionKey: KEY, agentId: 'main', input: [user('once')], idempotencyKey: 'k-restart' }
  const before = await buildApp(t, { store })
  const first = await (await before.sessionGateway.send(request)).result
  await before.close()
  const after = await buildApp(t, { store })
  const repeat = await after.sessionGateway.send(request)
  t.match(repeat, { runId: first.runId, status: 'done' }, 'no second run')
  t.equal((await repeat.result).text, 'once', 'the answer is the stored one')
  const rows = (await after.sessionGateway.history(KEY, { limit: 10 })).entries.map(entry => entry.message?.role)
  t.same(rows, ['user', 'assistant'], 'the input is stored once')
  const fresh = await after.sessionGateway.send({ ...request, idempotencyKey: 'k-other' })
  t.equal(fresh.status, 'started', 'another key is another turn')
  await fresh.result

  // The stored answer is the result, whatever it holds: reasoning, a failure.
  const thinking: Agent = { async * respond () { yield { type: 'reasoning', delta: 'hmm' }; yield { type: 'text', delta: 'ok' } } }
  const failing: Agent = { async * respond () { yield { type: 'text', delta: 'half' }; throw new Error('upstream fell over') } }
  const shared = new MemoryStore()
  for (const [agent, key] of [[thinking, 'k-thinking'], [failing, 'k-failing']] as const) {
    const first = await buildApp(t, { store: shared, agent })
    await (await first.sessionGateway.send({ ...request, idempotencyKey: key })).result
    await first.close()
  }
  const later = await buildApp(t, { store: shared })
  const thought = await (await later.sessionGateway.send({ ...request, idempotencyKey: 'k-thinking' })).result
  t.match(thought, { state: 'final', text: 'ok', message: { content: [{ type: 'thinking', thinking: 'hmm' }, { type: 'text', text: 'ok' }] } }, 'the text is the text parts only')
  const failed = await (await later.sessionGateway.send({ ...request, idempotencyKey: 'k-failing' })).result
  t.match(failed, { state: 'error', text: 'half', error: { code: 'FSG_AGENT_FAILED', message: 'upstream fell over' } }, 'a failure keeps its code')
})

t.test('a send that fails before its run starts leaves its idempotency key free', async t => {
  const store = new MemoryStore()
  const append = store.append.bind(store)
  let fail = true
  store.append = async (key, entries) => {
    if (fail) { fail = false; throw new Error('disk full') }
    await append(key, entries)
  }
  const app = await buildApp(t, { store })
  const gw = app.sessionGateway
  const request = { sessionKey: KEY, agentId: 'main', input: [user('x')], idempotencyKey: 'k' }
  await t.rejects(gw.send(request), { message: 'disk full' })
  const retry = await gw.send(request)
  t.equal(retry.status, 'started')
  t.equal((await retry.result).state, 'final')
})

t.test('abort by run id, or by session; queued turns are dropped', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const log = new EventLog()
  ;(await gw.subscribe(KEY, {}, log.listener)).start()
  const a = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('a')], runId: 'a' })
  t.same(await gw.abort(KEY, 'not-running'), { aborted: false, runIds: [] }, 'another run id aborts nothing')
  t.same(await gw.abort(KEY, 'a'), { aborted: true, runIds: ['a'] })
  const aEnd = await a.result
  t.equal(aEnd.state, 'aborted')
  t.equal(aEnd.message.stopReason, 'aborted')
  t.match(log.events.at(-1), { type: 'run.finished', state: 'aborted', runId: 'a' })

  const b = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('b')], runId: 'b' })
  const queued = gw.send({ sessionKey: KEY, agentId: 'main', input: [user('c')], runId: 'c' })
  await agent.waitStarted(2)
  t.same(await gw.abort(KEY), { aborted: true, runIds: ['b'] })
  await t.rejects(queued, { code: 'FSG_RUN_ABORTED' })
  t.equal((await b.result).state, 'aborted')
  t.same(await gw.abort(KEY), { aborted: false, runIds: [] }, 'nothing left to abort')
  const rows = (await gw.history(KEY, { limit: 10 })).entries.map(e => [e.message?.role, e.runState])
  t.same(rows, [['user', undefined], ['assistant', 'aborted'], ['user', undefined], ['assistant', 'aborted']], 'c never reached the transcript')
})

t.test('an agent that ignores its abort signal cannot hold the lane', async t => {
  const stubborn: Agent = {
    async * respond () {
      yield { type: 'text', delta: 'start' }
      await new Promise(() => {}) // never resolves, never looks at the signal
    }
  }
  const app = await buildApp(t, { agent: stubborn, runTimeoutMs: 50 })
  const gw = app.sessionGateway
  const first = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })
  const result = await first.result
  t.equal(result.state, 'error')
  t.same(result.error, { code: 'FSG_RUN_TIMEOUT', message: 'the run took longer than 50 ms' })
  t.equal(result.text, 'start', 'what was produced is kept')
  t.equal(result.message.stopReason, 'error')
  const second = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('y')], timeoutMs: 10 })
  t.equal((await second.result).error?.code, 'FSG_RUN_TIMEOUT', 'a per-send timeout')
})

t.test('an agent that throws, or yields nonsense, ends in an error event, not a crash', async t => {
  const agents: Record<string, Agent> = {
    throws: { async * respond () { yield { type: 'text', delta: 'a' }; throw new Error('model exploded') } },
    sync: { respond () { throw new Error('no stream at all') } },
    unknown: { async * respond () { yield { type: 'weird' } as never } },
    badDelta: { async * respond () { yield { type: 'text', delta: 42 } as never } },
    undef: { async * respond () { yield undefined as never } },
    notOffered: { async * respond () { yield { type: 'function_call', name: 'rm_rf', arguments: {} } } },
    badArgs: { async * respond () { yield { type: 'function_call', name: 'f', arguments: '{nope' } } },
    arrayArgs: { async * respond () { yield { type: 'function_call', name: 'f', arguments: '[1]' } } }
  }
  const tools = [{ type: 'function' as const, name: 'f' }]
  for (const [name, agent] of Object.entries(agents)) {
    const app = await buildApp(t, { agent })
    const gw = app.sessionGateway
    const log = new EventLog()
    ;(await gw.subscribe(KEY, {}, log.listener)).start()
    const result = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')], tools })).result
    t.equal(result.state, 'error', name)
    t.match(result.error?.code, /^FSG_AGENT_(FAILED|PROTOCOL)$/, name)
    t.match(log.events.at(-1), { type: 'run.finished', state: 'error' }, name)
    t.equal(result.entry.message.errorMessage, result.error?.message)
    const next = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('y')] })
    t.equal(next.status, 'started', `${name}: the lane is free`)
    await next.result
  }
})

t.test('tools: calls are checked, recorded and announced', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  const log = new EventLog()
  ;(await gw.subscribe(KEY, {}, log.listener)).start()
  const tools = [{ type: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }]
  const result = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('Paris')], tools })).result
  t.equal(result.state, 'final')
  t.equal(result.message.stopReason, 'toolUse')
  t.match(result.toolCalls, [{ type: 'toolCall', name: 'get_weather', arguments: { city: 'Paris' }, id: /^call_/ }])
  t.ok(log.events.some(e => e.type === 'run.tool_call'))

  await t.rejects(gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')], tools, toolChoice: { type: 'function', name: 'nope' } }),
    { code: 'FSG_INVALID_INPUT', statusCode: 400 })
  await t.rejects(gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')], toolChoice: 'required' }), { code: 'FSG_INVALID_INPUT' })
  await t.rejects(gw.send({ sessionKey: KEY, agentId: 'main', input: [] }), { code: 'FSG_INVALID_INPUT' })
})

t.test('a store that cannot record the answer turns the run into an error', async t => {
  const store = new MemoryStore()
  const append = store.append.bind(store)
  store.append = async (key, entries) => {
    if (entries[0]?.message?.role === 'assistant') throw new Error('disk full')
    await append(key, entries)
  }
  const app = await buildApp(t, { store })
  const gw = app.sessionGateway
  const log = new EventLog()
  ;(await gw.subscribe(KEY, {}, log.listener)).start()
  const result = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x y')] })).result
  t.equal(result.state, 'error')
  t.same(result.error, { code: 'FSG_STORE_FAILED', message: 'the answer could not be recorded' })
  t.same(log.seqs, [1, 2, 3, 4, 5], 'positions stay contiguous')
  const next = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('z')] })
  t.equal(next.cursor.split(':')[1], '5', 'and keep growing')
  await next.result
})

t.test('reset and delete start a new epoch and tell the watchers', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  const first = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('before')] })).result
  const oldRow = await gw.get(KEY)
  const log = new EventLog()
  ;(await gw.subscribe(KEY, {}, log.listener)).start()

  const row = await gw.reset(KEY)
  t.not(row.sessionId, oldRow?.sessionId)
  t.match(log.events.at(-1), { type: 'session.reset', seq: 0, deleted: false, sessionId: row.sessionId, epoch: row.sessionId })
  t.same((await gw.history(KEY, { limit: 10 })).entries, [], 'the new generation is empty')
  t.equal((await gw.history(KEY, { limit: 10, sessionId: oldRow?.sessionId })).entries.length, 2, 'the old one stays readable')
  const since = await gw.subscribe(KEY, { since: first.cursor }, () => {})
  t.equal(since.replay.kind, 'reset', 'a cursor from before the reset')
  since.unsubscribe()

  const after = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('after')] })).result
  t.equal(after.entry.seq, 4, 'positions start over in the new epoch')
  t.same(log.seqs.slice(-5), [1, 2, 3, 4, 5], 'and the watcher follows them')

  t.equal(await gw.delete(KEY), true)
  t.match(log.events.at(-1), { type: 'session.reset', deleted: true, epoch: 'new' })
  t.equal(await gw.get(KEY), undefined)
  t.equal(await gw.delete(KEY), false)
  await t.rejects(gw.reset(KEY), { code: 'FSG_SESSION_NOT_FOUND' })
  t.same(await gw.history(KEY, { limit: 1 }), { entries: [], cursor: 'new:0' }, 'a deleted session has an empty history at the unborn cursor')
  await t.rejects(gw.history(KEY, { limit: 1, sessionId: 'gone' }), { code: 'FSG_SESSION_NOT_FOUND' }, 'an old generation of it must exist')
  await t.rejects(gw.patch(KEY, { label: 'x' }), { code: 'FSG_SESSION_NOT_FOUND' })
})

t.test('reset aborts a running turn first', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })
  // Two stops at once: the first cause is the one recorded.
  await Promise.all([gw.reset(KEY), gw.abort(KEY)])
  const result = await ticket.result
  t.equal(result.state, 'aborted')
  t.equal(result.error?.code, 'FSG_SESSION_RESET')
})

t.test('a reset that interrupts a turn: the old generation gets the aborted answer, the new one stays empty', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('interrupted')] })
  await agent.waitStarted(1)
  const row = await gw.reset(KEY)
  const result = await ticket.result
  t.match(result, { state: 'aborted', error: { code: 'FSG_SESSION_RESET' } })
  t.equal(result.cursor, `${ticket.sessionId}:4`, 'the run ended in the old epoch')
  t.same((await gw.history(KEY, { limit: 10, sessionId: ticket.sessionId })).entries.map(e => [e.message?.role, e.runState]),
    [['user', undefined], ['assistant', 'aborted']], 'the aborted answer is recorded where the run began')
  const fresh = await gw.history(KEY, { limit: 10 })
  t.same(fresh.entries, [], 'the new generation is empty')
  t.equal(fresh.cursor, `${row.sessionId}:0`, 'at its first cursor')
  t.equal((await gw.get(KEY))?.cursor, `${row.sessionId}:0`, 'and so does the row')
})

t.test('a delete that interrupts a turn: nothing throws, the session is gone', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('interrupted')] })
  await agent.waitStarted(1)
  t.equal(await gw.delete(KEY), true)
  t.match(await ticket.result, { state: 'aborted', error: { code: 'FSG_SESSION_RESET' } })
  t.equal(await gw.get(KEY), undefined, 'the session is gone')
  t.same(await gw.history(KEY, { limit: 10 }), { entries: [], cursor: 'new:0' })
  const again = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('a new start')] })
  t.not(again.sessionId, ticket.sessionId)
  t.equal(again.cursor, `${again.sessionId}:0`, 'a send after it starts a new session at its first cursor')
  await agent.waitStarted(2)
  agent.release() // the interrupted run's gate
  agent.release()
  t.equal((await again.result).state, 'final')
})

t.test('list: newest first, paged, filtered, and only what the principal may read', async t => {
  const app = await buildApp(t, {
    authorize: ({ principal, sessionKey }) => principal.id === 'admin' || sessionKey.includes(`:${principal.id}-`)
  })
  const gw = app.sessionGateway
  for (const name of ['alice-1', 'bob-1', 'alice-2', 'bob-2', 'alice-3']) {
    await (await gw.send({ sessionKey: `agent:main:${name}`, agentId: 'main', input: [user(`text of ${name}`)] })).result
    await sleep(2)
  }
  await gw.patch('agent:main:alice-2', { label: 'Trip' })
  const all = await gw.list({})
  t.same(all.rows.map(r => r.key), ['agent:main:alice-2', 'agent:main:alice-3', 'agent:main:bob-2', 'agent:main:bob-1', 'agent:main:alice-1'])
  t.equal(all.rows[1]?.preview, 'text of alice-3')

  const page1 = await gw.list({ limit: 2 })
  const page2 = await gw.list({ limit: 2, cursor: page1.cursor as string })
  const page3 = await gw.list({ limit: 2, cursor: page2.cursor as string })
  t.same([...page1.rows, ...page2.rows, ...page3.rows].map(r => r.key), all.rows.map(r => r.key), 'pages cover everything once')
  t.equal(page3.cursor, undefined)

  const alice = await gw.list({ principal: { id: 'alice' }, limit: 2 })
  t.same(alice.rows.map(r => r.key), ['agent:main:alice-2', 'agent:main:alice-3'])
  const aliceMore = await gw.list({ principal: { id: 'alice' }, limit: 2, cursor: alice.cursor as string })
  t.same(aliceMore.rows.map(r => r.key), ['agent:main:alice-1'])
  t.same((await gw.list({ principal: { id: 'mallory' } })).rows, [])

  t.same((await gw.list({ label: 'Trip' })).rows.map(r => r.key), ['agent:main:alice-2'])
  t.same((await gw.list({ search: 'BOB-2' })).rows.map(r => r.key), ['agent:main:bob-2'])
  t.same((await gw.list({ search: 'trip' })).rows.map(r => r.key), ['agent:main:alice-2'], 'search looks at labels')
  t.same((await gw.list({ agentId: 'other' })).rows, [])
  await t.rejects(gw.list({ cursor: 'not-a-cursor' }), { code: 'FSG_INVALID_CURSOR' })
  await t.rejects(gw.list({ cursor: Buffer.from('[1]').toString('base64url') }), { code: 'FSG_INVALID_CURSOR' })

  await app.sessionGateway.store.ensure('agent:main:empty', 'main')
  t.same((await gw.list({ search: 'empty' })).rows.map(r => [r.key, r.preview]), [['agent:main:empty', undefined]], 'no preview yet')
  t.same((await gw.list({ search: 'nowhere' })).rows, [], 'a search that matches nothing')

  // Rows updated in the same millisecond are ordered by key, so paging stays exact.
  const realNow = Date.now
  Date.now = () => 1_000
  try {
    for (const key of ['agent:main:tie-b', 'agent:main:tie-a', 'agent:main:tie-c']) await app.sessionGateway.store.ensure(key, 'main')
  } finally {
    Date.now = realNow
  }
  const tied = await gw.list({ search: 'tie-', limit: 2 })
  const tiedMore = await gw.list({ search: 'tie-', limit: 2, cursor: tied.cursor as string })
  t.same([...tied.rows, ...tiedMore.rows].map(r => r.key), ['agent:main:tie-a', 'agent:main:tie-b', 'agent:main:tie-c'])
  const long = 'word '.repeat(60)
  await (await gw.send({ sessionKey: 'agent:main:long', agentId: 'main', input: [user(long)] })).result
  const preview = (await gw.get('agent:main:long'))?.preview as string
  t.equal(preview.length, 120)
  t.ok(preview.endsWith('…'))
})

t.test('a restart mid-turn: the interrupted run is recorded as aborted, under a new epoch', async t => {
  const store = new MemoryStore()
  const agent = gatedAgent()
  const first = await buildApp(t, { store, agent })
  const ticket = await first.sessionGateway.send({ sessionKey: KEY, agentId: 'main', input: [user('lost?')] })
  // The process "dies": a second gateway opens the same store while the run never ended.
  const second = await buildApp(t, { store })
  const row = await second.sessionGateway.get(KEY)
  t.not(row?.epoch, undefined)
  t.not(row?.cursor.split(':')[0], ticket.sessionId, 'a new epoch')
  const history = await second.sessionGateway.history(KEY, { limit: 10 })
  t.same(history.entries.map(e => [e.message?.role, e.runState, e.runId]), [['user', undefined, ticket.runId], ['assistant', 'aborted', ticket.runId]])
  const sub = await second.sessionGateway.subscribe(KEY, { since: ticket.cursor }, () => {})
  t.equal(sub.replay.kind, 'reset', 'cursors from before the crash start over')
  sub.unsubscribe()
  const next = await (await second.sessionGateway.send({ sessionKey: KEY, agentId: 'main', input: [user('again')] })).result
  t.equal(next.state, 'final')
  agent.release()
})

t.test('a clean restart keeps the epoch and the cursor', async t => {
  const store = new MemoryStore()
  const first = await buildApp(t, { store })
  const end = await (await first.sessionGateway.send({ sessionKey: KEY, agentId: 'main', input: [user('kept')] })).result
  await first.close()
  const second = await buildApp(t, { store })
  t.equal((await second.sessionGateway.get(KEY))?.cursor, end.cursor)
  const sub = await second.sessionGateway.subscribe(KEY, { since: `${end.cursor.split(':')[0]}:1` }, () => {})
  t.equal(sub.replay.kind, 'catchup', 'rebuilt from the transcript')
  t.same(sub.replay.kind === 'catchup' && sub.replay.events.map(e => [e.type, e.seq]), [['message', 4], ['run.finished', 5]])
  sub.unsubscribe()
})

t.test('closing the gateway aborts running turns and refuses new ones', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })
  const queued = gw.send({ sessionKey: KEY, agentId: 'main', input: [user('y')] })
  await app.close()
  const result = await ticket.result
  t.equal(result.state, 'aborted')
  t.equal(result.error?.code, 'FSG_GATEWAY_CLOSED')
  await t.rejects(queued, { code: 'FSG_RUN_ABORTED' })
  await t.rejects(gw.send({ sessionKey: KEY, agentId: 'main', input: [user('z')] }), { code: 'FSG_GATEWAY_CLOSED', statusCode: 503 })
})

t.test('idle sessions are forgotten from memory, not from the store', async t => {
  const app = await buildApp(t, { maxIdleSessions: 1 })
  const gw = app.sessionGateway
  const a = await (await gw.send({ sessionKey: 'agent:main:a', agentId: 'main', input: [user('a')] })).result
  await (await gw.send({ sessionKey: 'agent:main:b', agentId: 'main', input: [user('b')] })).result
  const sub = await gw.subscribe('agent:main:a', { since: `${a.cursor.split(':')[0]}:1` }, () => {})
  t.equal(sub.replay.kind, 'catchup', 'the replay ring went with the memory; the transcript remains')
  t.equal((await gw.get('agent:main:a'))?.cursor, a.cursor)
  sub.unsubscribe()
})

t.test('maxIdleSessions is 10000 by default: that many idle sessions stay in memory, the least recently used leaves first', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  // In memory, a session's missed events are replayed exactly; once dropped, caught up from the store.
  const inMemory = async (key: string): Promise<boolean> => {
    const epoch = (await gw.get(key))?.cursor.split(':')[0] as string
    const sub = await gw.subscribe(key, { since: `${epoch}:1` }, () => {})
    sub.unsubscribe()
    return sub.replay.kind === 'replay'
  }
  for (const key of ['agent:main:a', 'agent:main:b']) await (await gw.send({ sessionKey: key, agentId: 'main', input: [user(key)] })).result
  for (let i = 0; i < 9998; i++) await gw.create(`agent:main:idle-${i}`, 'main')
  t.equal(await inMemory('agent:main:a'), true, '10000 idle sessions: the oldest is still kept (and now the most recently used)')
  await gw.create('agent:main:one-more', 'main')
  t.equal(await inMemory('agent:main:b'), false, 'one more: the least recently used (b) left')
})

t.test('the history an agent sees is the transcript before this turn', async t => {
  const seen: string[][] = []
  const agent: Agent = {
    async * respond (request) {
      seen.push((await request.history()).map(m => m.role))
      yield * echoAgent().respond(request)
    }
  }
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('one')] })).result
  await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('two')] })).result
  t.same(seen, [[], ['user', 'assistant']])
})

t.test('a model name reaches the agent and the run.started event; empty deltas are skipped', async t => {
  const seen: Array<string | undefined> = []
  const agent: Agent = {
    async * respond (request) {
      seen.push(request.model)
      yield { type: 'text', delta: '' }
      yield { type: 'text', delta: 'ok' }
    }
  }
  const app = await buildApp(t, { agent })
  const log = new EventLog()
  ;(await app.sessionGateway.subscribe(KEY, {}, log.listener)).start()
  await (await app.sessionGateway.send({ sessionKey: KEY, agentId: 'main', input: [user('x')], model: 'gpt-4o-mini', instructions: 'be brief' })).result
  t.same(seen, ['gpt-4o-mini'])
  t.match(log.events[1], { type: 'run.started', model: 'gpt-4o-mini' })
  t.same(log.types, ['message', 'run.started', 'run.delta', 'message', 'run.finished'])
})

t.test('an answer cut by maxOutputTokens stops with reason length', async t => {
  const app = await buildApp(t)
  const result = await (await app.sessionGateway.send({ sessionKey: KEY, agentId: 'main', input: [user('a b c d')], maxOutputTokens: 2 })).result
  t.equal(result.state, 'final')
  t.equal(result.message.stopReason, 'length')
  t.equal(result.text, 'a b')
  t.same(result.usage, { inputTokens: 4, outputTokens: 2 })
  t.same(result.message.usage, { input: 4, output: 2, totalTokens: 6 })
})

t.test('an agent that throws something that is not an Error', async t => {
  const app = await buildApp(t, { agent: { async * respond () { yield * []; throw 'a string' } } }) // eslint-disable-line no-throw-literal
  const result = await (await app.sessionGateway.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })).result
  t.same(result.error, { code: 'FSG_AGENT_FAILED', message: 'a string' })
})

t.test('tool_choice naming a tool when no tools are offered', async t => {
  const app = await buildApp(t)
  await t.rejects(app.sessionGateway.send({ sessionKey: KEY, agentId: 'main', input: [user('x')], toolChoice: { type: 'function', name: 'f' } }),
    { code: 'FSG_INVALID_INPUT' })
})

t.test('get shows the run in progress; a reset cursor mid-run carries it too', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const gw = app.sessionGateway
  t.equal(await gw.get(KEY), undefined)
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')], runId: 'r1' })
  t.match(await gw.get(KEY), { key: KEY, cursor: `${ticket.sessionId}:2`, running: { runId: 'r1', text: '' } })
  const sub = await gw.subscribe(KEY, { since: 'elsewhere:3' }, () => {})
  t.match(sub.replay, { kind: 'reset', running: { runId: 'r1' } })
  t.match(sub.running, { runId: 'r1' })
  sub.unsubscribe()
  const opened = await gw.open(KEY, { limit: 5, since: 'elsewhere:3' }, () => {})
  t.same(opened.entries.map(e => e.message?.role), ['user'], 'open answers a reset with fresh history')
  t.equal(opened.subscription.replay.kind, 'reset')
  opened.subscription.unsubscribe()
  agent.release()
  await ticket.result
  t.equal((await gw.get(KEY))?.running, undefined)
})

t.test('start() twice delivers once; events during a reset before start() are kept in order', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })).result
  const log = new EventLog()
  const sub = await gw.subscribe(KEY, {}, log.listener)
  await gw.reset(KEY)
  sub.start()
  sub.start()
  t.same(log.types, ['session.reset'])
})

t.test('store failures while watching or opening are reported, and the watcher is gone', async t => {
  const store = new MemoryStore()
  const app = await buildApp(t, { store, replay: 0 })
  const gw = app.sessionGateway
  const first = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })).result
  await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('y')] })).result
  store.read = async () => { throw new Error('store down') }
  await t.rejects(gw.subscribe(KEY, { since: first.cursor }, () => {}), { message: 'store down' })
  await t.rejects(gw.open(KEY, { limit: 5 }, () => {}), { message: 'store down' })
  delete (store as { read?: unknown }).read // back to the class method
  const log = new EventLog()
  ;(await gw.subscribe(KEY, {}, log.listener)).start()
  await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('z')] })).result
  t.equal(log.events.length, 5, 'only the healthy watcher hears the next turn')
})

t.test('a session that cannot be loaded is retried on the next call', async t => {
  const store = new MemoryStore()
  const app = await buildApp(t, { store })
  const gw = app.sessionGateway
  const get = store.get.bind(store)
  let failures = 1
  store.get = async key => {
    if (failures-- > 0) throw new Error('flaky')
    return await get(key)
  }
  await t.rejects(gw.get(KEY), { message: 'flaky' })
  t.equal(await gw.get(KEY), undefined, 'loaded on the second try')
})

t.test('closing while a send waits for its session to load', async t => {
  const store = new MemoryStore()
  let releaseGet: () => void = () => {}
  const get = store.get.bind(store)
  store.get = async key => {
    await new Promise<void>(resolve => { releaseGet = resolve })
    return await get(key)
  }
  const app = await buildApp(t, { store })
  const pending = app.sessionGateway.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })
  await sleep(5)
  await app.close()
  releaseGet()
  await t.rejects(pending, { code: 'FSG_GATEWAY_CLOSED' })
})

t.test('sessions with watchers or turns stay in memory whatever the limit', async t => {
  const app = await buildApp(t, { maxIdleSessions: 0, replay: 10 })
  const gw = app.sessionGateway
  const log = new EventLog()
  const sub = await gw.subscribe(KEY, {}, log.listener)
  sub.start()
  const end = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })).result
  await (await gw.send({ sessionKey: 'agent:main:other', agentId: 'main', input: [user('y')] })).result
  const again = await gw.subscribe(KEY, { since: `${end.cursor.split(':')[0]}:1` }, () => {})
  t.equal(again.replay.kind, 'replay', 'the watched session kept its ring')
  again.unsubscribe()
  sub.unsubscribe()
})

t.test('catch-up reads back as many pages as the gap needs, up to `limit` rows; past them the newest page comes as a reset', async t => {
  const app = await buildApp(t, { replay: 0 })
  const gw = app.sessionGateway
  const first = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('start')] })).result
  for (let i = 0; i < 70; i++) await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user(`turn ${i}`)] })).result
  // The gap: 70 turns of two rows each.
  const sub = await gw.subscribe(KEY, { since: first.cursor, limit: 140 }, () => {})
  t.equal(sub.replay.kind === 'catchup' && sub.replay.events.length, 70 * 3, 'two rows and the end of the run, per turn')
  sub.unsubscribe()
  const past = await gw.subscribe(KEY, { since: first.cursor, limit: 139 }, () => {})
  t.equal(past.replay.kind, 'reset', 'one row more than a page: not held in memory as a catch-up')
  const entries = past.replay.kind === 'reset' ? past.replay.entries : []
  t.equal(entries.length, 139, 'the newest page of history instead')
  t.match(entries.at(-1)?.message, { role: 'assistant', content: [{ text: 'turn 69' }] })
  past.unsubscribe()
  const byDefault = await gw.subscribe(KEY, { since: first.cursor }, () => {})
  t.same(byDefault.replay.kind === 'reset' && byDefault.replay.entries.length, 50, 'a page is 50 rows unless asked')
  byDefault.unsubscribe()
})

t.test('a resume that missed more than a page while a turn runs gets the newest page and the running turn', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent, replay: 0 })
  const gw = app.sessionGateway
  const first = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('start')] })
  agent.release()
  const start = await first.result
  for (let i = 0; i < 2; i++) {
    const turn = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user(`turn ${i}`)] })
    agent.release()
    await turn.result
  }
  const running = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('still going')] })
  await agent.waitStarted(4)
  const sub = await gw.subscribe(KEY, { since: start.cursor, limit: 2 }, () => {})
  t.equal(sub.replay.kind, 'reset')
  t.match(sub.replay.kind === 'reset' && sub.replay, { entries: [{ message: { role: 'assistant' } }, { message: { role: 'user', content: [{ text: 'still going' }] } }], running: { runId: running.runId } })
  sub.unsubscribe()
  agent.release()
  await running.result
})

t.test('rows written by OpenClaw itself (no seq) count as before any cursor', async t => {
  const store = new MemoryStore()
  await store.ensure(KEY, 'main')
  await store.append(KEY, [
    { type: 'message', id: 'aaaa0001', parentId: null, timestamp: new Date().toISOString(), message: user('from openclaw') },
    { type: 'model_change', id: 'aaaa0002', parentId: 'aaaa0001', timestamp: new Date().toISOString(), provider: 'x' }
  ])
  const app = await buildApp(t, { store, replay: 0 })
  const gw = app.sessionGateway
  const row = await gw.get(KEY)
  t.equal(row?.cursor, `${row?.sessionId}:0`)
  const result = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('from us')] })).result
  const history = await gw.history(KEY, { limit: 10 })
  t.same(history.entries.map(e => e.seq), [undefined, undefined, 1, 5])
  t.equal(history.entries[2]?.parentId, 'aaaa0002', 'our first row chains onto the last OpenClaw row')
  const sub = await gw.subscribe(KEY, { since: `${row?.sessionId}:0` }, () => {})
  t.same(sub.replay.kind === 'catchup' && sub.replay.events.map(e => e.seq), [1, 5, 6])
  sub.unsubscribe()
  t.equal(result.state, 'final')
})

t.test('the idempotency cache is bounded', async t => {
  const { IdempotencyCache } = await import('../lib/hub/idempotency.js')
  const cache = new IdempotencyCache<number>(60_000, { maxEntries: 2 })
  cache.set('a', 1)
  cache.set('b', 2)
  cache.set('c', 3)
  t.equal(cache.get('a'), undefined, 'the oldest went first')
  t.equal(cache.get('b'), 2)
  t.equal(cache.get('c'), 3)
})

t.test('change listeners hear created, updated, reset and deleted; one that throws harms nobody', async t => {
  const app = await buildApp(t)
  const gw = app.sessionGateway
  const heard: string[] = []
  const stopBad = gw.onChange(() => { throw new Error('bad change listener') })
  const stop = gw.onChange(change => heard.push(`${change.kind}:${change.sessionKey}`))
  await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('x')] })).result
  await gw.reset(KEY)
  await gw.delete(KEY)
  stop()
  stopBad()
  await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('unheard')] })).result
  t.same(heard, [`created:${KEY}`, `updated:${KEY}`, `reset:${KEY}`, `deleted:${KEY}`])
})

t.test('catch-up from the transcript keeps why a run ended', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent, replay: 0 })
  const gw = app.sessionGateway
  const ticket = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('stop me')] })
  await agent.waitStarted(1)
  await gw.abort(KEY)
  await ticket.result
  const sub = await gw.subscribe(KEY, { since: ticket.cursor }, () => {})
  const finished = sub.replay.kind === 'catchup' ? sub.replay.events.at(-1) : undefined
  t.match(finished, { type: 'run.finished', state: 'aborted' })
  t.notOk(finished !== undefined && 'error' in finished, 'an abort asked for is not an error')
  sub.unsubscribe()

  const timed = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('too slow')], timeoutMs: 5 })
  t.equal((await timed.result).state, 'error')
  const again = await gw.subscribe(KEY, { since: timed.cursor }, () => {})
  t.match(again.replay.kind === 'catchup' && again.replay.events.at(-1), { type: 'run.finished', state: 'error', error: { code: 'FSG_RUN_TIMEOUT' } })
  again.unsubscribe()
})

t.test('a session log that refuses a run\'s events ends the run with FSG_LOG_UNAVAILABLE; the session heals', async t => {
  const log = new InProcessSessionLog({ replay: 64, claimTtlMs: 60_000 })
  // A shared log refuses by rejecting; one that appends at once, by throwing.
  let refuse: false | 'reject' | 'throw' = false
  let positionFails = 0
  const append = log.append.bind(log)
  log.append = (key, events) => {
    if (refuse !== false && events.some(event => event.type === 'run.delta')) {
      if (refuse === 'throw') throw new Error('connection lost')
      return Promise.reject(new Error('connection lost'))
    }
    return append(key, events)
  }
  const position = log.position.bind(log)
  log.position = async (key, seed) => {
    if (positionFails > 0) {
      positionFails--
      throw new Error('still down')
    }
    return await position(key, seed)
  }
  const app = await buildApp(t, { sessionLog: log, agent: echoAgent() }, { logger: false })
  const gw = app.sessionGateway
  refuse = 'reject'
  const failed = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('one two three')] })).result
  t.equal(failed.state, 'error')
  t.match(failed.error, { code: 'FSG_LOG_UNAVAILABLE', message: "the session log refused the run's events" })
  refuse = false
  t.equal((await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('again')] })).result).state, 'final', 'the next turn runs')

  refuse = 'throw'
  positionFails = 1 // the log cannot even say where it is, at first
  t.equal((await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('four five')] })).result).state, 'error')
  refuse = false
  // The next turn takes its position from the log with its lane, so it runs at once.
  const healed = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('six')] })).result
  t.equal(healed.state, 'final', 'the head is the log\'s again and turns run')
  const watcher = new EventLog()
  const sub = await gw.subscribe(KEY, { since: healed.cursor }, watcher.listener)
  t.equal(sub.replay.kind, 'live', "the session's cursor is the log's")
  sub.unsubscribe()
})

t.test('an idempotency key another process claimed attaches to that run: in flight until its end, or done', async t => {
  const log = new InProcessSessionLog({ replay: 64, claimTtlMs: 60_000 })
  const app = await buildApp(t, { sessionLog: log })
  const gw = app.sessionGateway
  const first = await (await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('answered elsewhere')], runId: 'run-done' })).result
  // As if another process had claimed these keys for its runs.
  await log.claim(KEY, 'key-done', 'run-done')
  await log.claim(KEY, 'key-running', 'run-elsewhere')

  const done = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('again')], idempotencyKey: 'key-done' })
  t.match(done, { runId: 'run-done', status: 'done', cursor: `${first.cursor.split(':')[0] as string}:0` })
  t.match(await done.result, { state: 'final', text: 'answered elsewhere', usage: { inputTokens: 2, outputTokens: 2 } })

  const running = await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('again')], idempotencyKey: 'key-running' })
  t.match(running, { runId: 'run-elsewhere', status: 'in_flight' })
  t.equal((await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('again')], idempotencyKey: 'key-running' })).runId, 'run-elsewhere', 'a repeat here attaches too')
  await gw.reset(KEY)
  t.match(await running.result, { runId: 'run-elsewhere', state: 'aborted', text: '' }, 'a reset ends what it was waiting for')
  t.equal((await gw.send({ sessionKey: KEY, agentId: 'main', input: [user('hi')], idempotencyKey: 'own-key' })).status, 'started', 'other keys start runs as usual')
})

t.test('an authorize hook that fails is a failure, not a "no": listing says so instead of hiding rows', async t => {
  const app = await buildApp(t, {
    authorize: ({ sessionKey }) => {
      if (sessionKey.endsWith(':broken')) throw new Error('the permission service is down')
      return true
    }
  })
  const gw = app.sessionGateway
  await gw.create('agent:main:fine', 'main')
  t.equal((await gw.list({ principal: { id: 'a' } })).rows.length, 1)
  await gw.create('agent:main:broken', 'main')
  await t.rejects(gw.list({ principal: { id: 'a' } }), { message: 'the permission service is down' })
  t.equal(await gw.allows({ id: 'a' }, 'agent:main:fine', 'read'), true)
})
