import assert from 'node:assert/strict'
import type { SessionEvent } from '../events.js'
import type { Lane, SessionLog } from '../hub/session-log.js'

/**
 * The rules every `SessionLog` keeps, as tests: the in-process log passes them, and so
 * must a log shared between processes (Redis, or yours).
 *
 * ```ts
 * import { test } from 'node:test'
 * import { sessionLogContract } from 'fastify-session-gateway/testing'
 * sessionLogContract({ test, makeLog: async ({ replay, claimTtlMs }) => new MyLog({ replay, claimTtlMs }) })
 * ```
 *
 * `makeLog` gives each test a fresh, empty log that keeps at least `replay` recent events
 * per session (and trims older ones, maybe not at once: a test fills it far past that, as
 * Redis's `MAXLEN ~` trims whole nodes of a stream) and holds idempotency claims for
 * `claimTtlMs`; its `close()` is called after the test.
 */
export interface SessionLogContractOptions {
  test: (name: string, fn: () => Promise<void>) => unknown
  makeLog: (options: { replay: number, claimTtlMs: number }) => Promise<SessionLog>
}

const KEY = 'agent:main:log-contract'
const REPLAY = 4
const CLAIM_TTL_MS = 200

function delta (seq: number, epoch = 'e1', key = KEY): SessionEvent {
  return { type: 'run.delta', sessionKey: key, epoch, seq, at: 1_700_000_000_000 + seq, runId: 'r1', delta: `d${seq}`, text: `t${seq}` }
}

/** A listener that records what it hears. */
function recorder (): { events: SessionEvent[], listener: (event: SessionEvent) => void } {
  const events: SessionEvent[] = []
  return { events, listener: event => { events.push(event) } }
}

/** Settles when `check` holds, or fails after a second (a shared log may deliver a little later). */
async function eventually (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise(resolve => setTimeout(resolve, 5))
  assert.ok(check(), what)
}

export function sessionLogContract ({ test, makeLog }: SessionLogContractOptions): void {
  const withLog = (name: string, fn: (log: SessionLog) => Promise<void>): void => {
    test(name, async () => {
      const log = await makeLog({ replay: REPLAY, claimTtlMs: CLAIM_TTL_MS })
      try {
        await fn(log)
      } finally {
        await log.close()
      }
    })
  }

  withLog('position is seeded once, from the caller, and then kept', async log => {
    let seeds = 0
    const seed = async (): Promise<{ epoch: string, seq: number }> => { seeds++; return { epoch: 'e1', seq: 7 } }
    const [a, b] = await Promise.all([log.position(KEY, seed), log.position(KEY, seed)])
    assert.deepEqual(a, { epoch: 'e1', seq: 7 })
    assert.deepEqual(b, { epoch: 'e1', seq: 7 })
    assert.equal(seeds, 1, 'two callers at once seed it once')
    assert.deepEqual(await log.position(KEY, async () => ({ epoch: 'other', seq: 0 })), { epoch: 'e1', seq: 7 }, 'a known position is not seeded again')
  })

  withLog('append takes events that continue the log, in order, and refuses any that do not', async log => {
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
    const { events, listener } = recorder()
    const subscription = await log.subscribe(KEY, listener)
    assert.deepEqual(subscription.position, { epoch: 'e1', seq: 0 })
    await log.append(KEY, [delta(1), delta(2)])
    await log.append(KEY, [delta(3)])
    await eventually(() => events.length === 3, 'the subscriber heard every event')
    assert.deepEqual(events.map(event => event.seq), [1, 2, 3])
    assert.deepEqual(events[0], delta(1), 'events arrive as appended')
    await assert.rejects(Promise.resolve().then(() => log.append(KEY, [delta(5)])), 'a gap is refused')
    await assert.rejects(Promise.resolve().then(() => log.append(KEY, [delta(3)])), 'a repeated position is refused')
    await assert.rejects(Promise.resolve().then(() => log.append(KEY, [delta(4, 'e0')])), 'another epoch is refused')
    await assert.rejects(Promise.resolve().then(() => log.append(KEY, [delta(4), delta(6)])), 'a batch with a gap is refused')
    await log.append(KEY, [delta(4)])
    await eventually(() => events.length === 4, 'the next event after refusals is taken')
    assert.deepEqual(events.map(event => event.seq), [1, 2, 3, 4], 'nothing refused was delivered')
    assert.deepEqual(await log.position(KEY, async () => ({ epoch: 'x', seq: 0 })), { epoch: 'e1', seq: 4 })
    subscription.unsubscribe()
    await log.append(KEY, [delta(5)])
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(events.length, 4, 'an unsubscribed listener hears nothing more')
  })

  withLog('read answers exactly the events after a position, or says they are gone', async log => {
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
    // Far past `replay`, in batches: an approximate trim (whole stream nodes) has happened by then.
    const head = REPLAY + 400
    for (let seq = 1; seq <= head; seq += 50) await log.append(KEY, Array.from({ length: Math.min(50, head - seq + 1) }, (_, i) => delta(seq + i)))
    assert.deepEqual(await log.read(KEY, 'e1', head), [], 'nothing after the head')
    assert.deepEqual((await log.read(KEY, 'e1', head - 2))?.map(event => event.seq), [head - 1, head])
    assert.deepEqual(await log.read(KEY, 'e1', head - 1), [delta(head)])
    assert.equal(await log.read(KEY, 'e1', 0), undefined, 'trimmed events are gone, never partly replayed')
    assert.equal(await log.read(KEY, 'e0', head - 1), undefined, 'another epoch is never replayed')
    assert.equal(await log.read('agent:main:unknown', 'e1', 0), undefined, 'a session the log does not hold')
  })

  withLog('subscribers each hear every event once; a subscription starts at the position it names', async log => {
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
    const first = recorder()
    await log.subscribe(KEY, first.listener)
    await log.append(KEY, [delta(1)])
    const second = recorder()
    const late = await log.subscribe(KEY, second.listener)
    assert.deepEqual(late.position, { epoch: 'e1', seq: 1 })
    await log.append(KEY, [delta(2)])
    await eventually(() => first.events.length === 2 && second.events.length === 1, 'both heard what came after they joined')
    assert.deepEqual(second.events.map(event => event.seq), [2])
    const other = recorder()
    await log.position('agent:main:other', async () => ({ epoch: 'o1', seq: 0 }))
    await log.subscribe('agent:main:other', other.listener)
    await log.append('agent:main:other', [delta(1, 'o1', 'agent:main:other')])
    await eventually(() => other.events.length === 1, 'the other session was heard')
    assert.equal(first.events.length, 2, "a session's subscribers hear only that session")
  })

  withLog('restart begins a new life: old events are gone, watchers hear session.reset only when told to', async log => {
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
    const { events, listener } = recorder()
    await log.subscribe(KEY, listener)
    await log.append(KEY, [delta(1), delta(2)])
    await log.restart(KEY, { epoch: 'e2', seq: 0 }, { sessionId: 's2', deleted: false })
    await eventually(() => events.length === 3, 'the reset was heard')
    assert.deepEqual(events[2], { type: 'session.reset', sessionKey: KEY, epoch: 'e2', seq: 0, at: events[2]?.at, deleted: false, sessionId: 's2' })
    assert.equal(await log.read(KEY, 'e1', 1), undefined, "the old epoch's events are gone")
    await assert.rejects(Promise.resolve().then(() => log.append(KEY, [delta(3)])), 'the old epoch cannot be continued')
    await log.append(KEY, [delta(1, 'e2')])
    assert.deepEqual(await log.read(KEY, 'e2', 0), [delta(1, 'e2')])
    await log.restart(KEY, { epoch: 'e3', seq: 9 })
    await log.append(KEY, [delta(10, 'e3')])
    await eventually(() => events.length === 5, 'the next event was heard')
    assert.deepEqual(events.map(event => `${event.type}@${event.epoch}:${event.seq}`), [
      'run.delta@e1:1', 'run.delta@e1:2', 'session.reset@e2:0', 'run.delta@e2:1', 'run.delta@e3:10'
    ], 'a restart without a notice tells nobody; the log goes on from its position')
    await log.restart(KEY, { epoch: 'new', seq: 0 }, { deleted: true })
    await eventually(() => events.length === 6, 'the delete was heard')
    assert.match(JSON.stringify(events[5]), /"deleted":true/)
    assert.equal('sessionId' in (events[5] as object), false, 'a delete names no generation')
  })

  withLog('the lane: one turn at a time; the rest wait in order, or are refused with the running run and cursor', async log => {
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 3 }))
    const queue = { busy: 'queue' as const, maxQueue: 2 }
    const first = await log.acquire(KEY, 'run-1', queue)
    assert.equal(first.runId, 'run-1')
    assert.deepEqual(first.position, { epoch: 'e1', seq: 3 }, 'a lane says where the log stands')
    await assert.rejects(log.acquire(KEY, 'run-x', { busy: 'reject', maxQueue: 2 }), { code: 'FSG_SESSION_BUSY', runId: 'run-1', cursor: 'e1:3', sessionKey: KEY })
    const order: string[] = []
    const second = log.acquire(KEY, 'run-2', queue).then(lane => { order.push(lane.runId); return lane })
    const third = log.acquire(KEY, 'run-3', queue).then(lane => { order.push(lane.runId); return lane })
    await assert.rejects(log.acquire(KEY, 'run-4', queue), { code: 'FSG_SESSION_BUSY', runId: 'run-1' }, 'the queue is bounded')
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.deepEqual(order, [], 'nobody got the lane while it was held')
    await log.release(KEY, first)
    const secondLane = await second
    assert.deepEqual(order, ['run-2'], 'the first waiter got it')
    await log.release(KEY, first)
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.deepEqual(order, ['run-2'], 'a lane released twice frees nothing more')
    await log.release(KEY, secondLane)
    await log.release(KEY, await third)
    assert.deepEqual(order, ['run-2', 'run-3'])
    const again = await log.acquire(KEY, 'run-5', { busy: 'reject', maxQueue: 0 })
    assert.equal(again.runId, 'run-5', 'a free lane is taken at once')
    await log.release(KEY, again)
  })

  withLog('dropWaiting refuses every waiting turn; the running one keeps its lane', async log => {
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
    const running = await log.acquire(KEY, 'run-1', { busy: 'queue', maxQueue: 4 })
    // Their answers are taken at once: a refusal may come before this test awaits it.
    const waiting = ['run-2', 'run-3'].map(async runId => await log.acquire(KEY, runId, { busy: 'queue', maxQueue: 4 }).then(() => 'granted', (err: { code?: string }) => err.code))
    await new Promise(resolve => setTimeout(resolve, 20)) // both are waiting
    await log.dropWaiting(KEY)
    assert.deepEqual(await Promise.all(waiting), ['FSG_RUN_ABORTED', 'FSG_RUN_ABORTED'])
    await assert.rejects(log.acquire(KEY, 'run-4', { busy: 'reject', maxQueue: 4 }), { runId: 'run-1' })
    await log.release(KEY, running)
    await log.dropWaiting('agent:main:nobody-waits')
  })

  withLog("abort reaches the running turn's lane, and only the run it names", async log => {
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 0 }))
    assert.equal(await log.abort(KEY), undefined, 'nothing runs')
    const lane: Lane = await log.acquire(KEY, 'run-1', { busy: 'queue', maxQueue: 1 })
    assert.equal(await log.abort(KEY, 'run-other'), undefined)
    let heard = 0
    lane.onAbort(() => { heard++ })
    assert.equal(lane.aborted, false, 'another run id stops nothing')
    assert.equal(await log.abort(KEY, 'run-1'), 'run-1')
    await eventually(() => lane.aborted && heard === 1, "the run's lane heard it, once")
    let late = 0
    lane.onAbort(() => { late++ })
    assert.equal(late, 1, 'a listener added after the abort is called at once')
    await log.release(KEY, lane)
    const next = await log.acquire(KEY, 'run-2', { busy: 'queue', maxQueue: 1 })
    assert.equal(next.aborted, false, 'the next turn starts unaborted')
    assert.equal(await log.abort(KEY), 'run-2', 'without a run id, whatever runs')
    await log.release(KEY, next)
  })

  withLog('idempotency claims: one winner per key and session, freed by unclaim or by time', async log => {
    assert.equal(await log.claim(KEY, 'idem-1', 'run-1'), undefined, 'the first claim wins')
    assert.equal(await log.claim(KEY, 'idem-1', 'run-2'), 'run-1', 'a second names the winner')
    assert.equal(await log.claim('agent:main:other', 'idem-1', 'run-3'), undefined, 'keys are per session')
    const claims = await Promise.all(Array.from({ length: 20 }, async (_, i) => await log.claim(KEY, 'idem-race', `run-${i}`)))
    assert.equal(claims.filter(holder => holder === undefined).length, 1, 'twenty at once: one winner')
    await log.unclaim(KEY, 'idem-1')
    assert.equal(await log.claim(KEY, 'idem-1', 'run-4'), undefined, 'an unclaimed key can be claimed again')
    await new Promise(resolve => setTimeout(resolve, CLAIM_TTL_MS + 100))
    assert.equal(await log.claim(KEY, 'idem-1', 'run-5'), undefined, 'a claim expires')
  })

  withLog('forget never drops a session that is in use', async log => {
    await log.position(KEY, async () => ({ epoch: 'e1', seq: 2 }))
    const lane = await log.acquire(KEY, 'run-1', { busy: 'queue', maxQueue: 1 })
    log.forget(KEY)
    await assert.rejects(log.acquire(KEY, 'run-2', { busy: 'reject', maxQueue: 1 }), { runId: 'run-1', cursor: 'e1:2' })
    await log.release(KEY, lane)
  })
}
