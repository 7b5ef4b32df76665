import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { echoAgent, MemoryStore, type Agent, type SessionEvent, type SessionGatewayOptions, type SessionStore, type TranscriptEntry } from '../lib/index.js'
import { RedisSessionLog } from '../lib/redis/index.js'
import { GatewaySocket, listen, type Frame } from './gateway-frames.js'
import { buildApp, EventLog, gatedAgent, TOKEN, user } from './helpers.js'
import { startRedis } from './redis-server.js'

// Several gateway nodes on one Redis, each with its own hub, as processes behind a load
// balancer would be (one process here, so a test can watch all of them): a turn started on
// one is watched live on another and continued on a third; the lane, idempotency and abort
// hold across them.

const redis = await startRedis(t)
let space = 0

const logs = new Map<FastifyInstance, RedisSessionLog>()

/** `count` nodes sharing one store and one Redis key space (a new one, unless named). */
async function nodes (t: Test, count: number, options: Partial<SessionGatewayOptions> & { agentPerNode?: Agent[] } = {}, store: SessionStore = new MemoryStore(), keyPrefix = `nodes-${space++}:`): Promise<FastifyInstance[]> {
  const apps: FastifyInstance[] = []
  for (let i = 0; i < count; i++) {
    const { agentPerNode, ...rest } = options
    const sessionLog = new RedisSessionLog({ url: redis.url, keyPrefix, laneTtlMs: 1000 })
    const app = await buildApp(t, {
      store,
      sessionLog,
      orphanCheckMs: 200,
      ...rest,
      ...(agentPerNode?.[i] === undefined ? {} : { agent: agentPerNode[i] })
    })
    await listen(app)
    logs.set(app, sessionLog)
    apps.push(app)
  }
  return apps
}

async function watch (t: Test, app: FastifyInstance, key: string, since?: string): Promise<{ socket: GatewaySocket, opened: Frame }> {
  const socket = await GatewaySocket.open(app, { caps: ['session-cursor'] })
  t.teardown(() => socket.close())
  const opened = await socket.request('sessions.open', { key, ...(since === undefined ? {} : { since }) })
  return { socket, opened }
}

const positioned = (socket: GatewaySocket): Frame[] => socket.frames.filter(f => f.type === 'event' && f.payload?.cursor !== undefined && f.event !== 'session.reset')
const seqOf = (cursor: unknown): number => Number(String(cursor).split(':').at(-1))

t.test('HTTP on A, watched live on B, continued over WebSocket mode on C; a watcher that drops resumes on C with every event once', async t => {
  const [a, b, c] = await nodes(t, 3, { agent: echoAgent({ delayMs: 20 }) }) as [FastifyInstance, FastifyInstance, FastifyInstance]
  const { socket: watcher } = await watch(t, b, 'shared')
  const words = Array.from({ length: 20 }, (_, i) => `w${i}`).join(' ')
  const posting = a.inject({ method: 'POST', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'shared' }, payload: { model: 'openclaw', input: words } })
  await watcher.next(f => f.event === 'chat' && f.payload.state === 'delta' && String(f.payload.deltaText).includes('w5'))
  watcher.socket.terminate() // the watcher's network blips mid-turn
  const seen = positioned(watcher)
  const last = seen.at(-1)?.payload.cursor as string
  await new Promise(resolve => setTimeout(resolve, 100)) // more of the answer goes by meanwhile

  const { socket: resumed, opened } = await watch(t, c, 'shared', last)
  t.equal(opened.payload.replay, 'replay', 'the missed events come exactly, from Redis')
  t.equal((await posting).json().output[0].content[0].text, words)
  await resumed.next(f => f.event === 'chat' && f.payload.state === 'final')
  const all = [...seen, ...positioned(resumed)]
  const seqs = all.map(f => seqOf(f.payload.cursor))
  t.same(seqs, Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i), 'every position once, in order, across two nodes')
  t.equal(all.filter(f => f.event === 'chat' && f.payload.state === 'delta').map(f => f.payload.deltaText).join(''), words)

  // C continues the same session over OpenResponses' WebSocket mode.
  const port = (c.server.address() as { port: number }).port
  const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/responses`, { headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'shared' } })
  t.teardown(() => socket.terminate())
  await once(socket, 'open')
  const done = new Promise<Record<string, any>>(resolve => socket.on('message', data => {
    const frame = JSON.parse(String(data)) as Record<string, any>
    if (frame.type === 'response.completed') resolve(frame)
  }))
  socket.send(JSON.stringify({ type: 'response.create', model: 'openclaw', input: 'and more' }))
  t.equal((await done).response.output[0].content[0].text, 'and more')
  await resumed.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.message.content[0].text === 'and more')
  const history = await b.sessionGateway.history('agent:main:shared', { limit: 10 })
  t.same(history.entries.map(e => e.message?.role), ['user', 'assistant', 'user', 'assistant'], 'one transcript, whichever node wrote')
})

t.test('the lane holds across nodes: turns never interleave; busy, idempotency and abort work from any node', async t => {
  const gate = gatedAgent()
  const [a, b] = await nodes(t, 2, { agentPerNode: [gate, gate] }) as [FastifyInstance, FastifyInstance]
  const key = 'agent:main:lane'
  const first = await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('first')], runId: 'run-a' })
  const second = b.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('second')], runId: 'run-b' })
  await gate.waitStarted(1)
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same(gate.started, ['first'], 'B waits while A holds the lane')
  gate.release()
  await first.result
  await gate.waitStarted(2)
  gate.release()
  await (await second).result
  const rows = (await a.sessionGateway.history(key, { limit: 10 })).entries.map(e => `${e.message?.role as string}:${e.runId as string}`)
  t.same(rows, ['user:run-a', 'assistant:run-a', 'user:run-b', 'assistant:run-b'], 'not interleaved')

  const [c, d] = await nodes(t, 2, { agentPerNode: [gate, gate], busy: 'reject' }) as [FastifyInstance, FastifyInstance]
  const running = await c.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('hold')], runId: 'run-c', idempotencyKey: 'idem-c' })
  await gate.waitStarted(3)
  await t.rejects(d.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('x')] }), { code: 'FSG_SESSION_BUSY', runId: 'run-c' }, 'busy from the other node names the running run')
  const repeat = await d.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('hold')], idempotencyKey: 'idem-c' })
  t.match(repeat, { runId: 'run-c', status: 'in_flight' }, 'the same key on another node starts no second run')
  t.match(await d.sessionGateway.abort(key), { aborted: true, runIds: ['run-c'] }, 'abort on D stops the run owned by C')
  t.equal((await running.result).state, 'aborted')
  t.equal((await repeat.result).state, 'aborted', 'and the attached ticket learns its end')
  t.equal(gate.started.length, 3, 'no second run started anywhere')
})

t.test('a repeat on B of a send that A claimed but has not yet created the session for is told the session is busy with that run', async t => {
  const [a, b] = await nodes(t, 2) as [FastifyInstance, FastifyInstance]
  const key = 'agent:main:claimed-first'
  // A's first step of a send: the idempotency claim, before the session's row exists anywhere.
  t.equal(await (logs.get(a) as RedisSessionLog).claim(key, 'idem-w', 'run-w'), undefined)
  await t.rejects(b.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('hi')], idempotencyKey: 'idem-w' }), { code: 'FSG_SESSION_BUSY', runId: 'run-w', sessionKey: key }, 'the hub names the run that holds the claim')
  const socket = await GatewaySocket.open(b)
  t.teardown(() => socket.close())
  const answer = await socket.request('chat.send', { sessionKey: key, message: 'hi', idempotencyKey: 'idem-w' })
  t.equal(answer.ok, false)
  t.match(answer.error, { code: 'UNAVAILABLE', retryable: true, details: { code: 'FSG_SESSION_BUSY', runId: 'run-w' } }, 'a gateway client is told to retry, not given an internal error')
  t.equal(await (logs.get(a) as RedisSessionLog).claim(key, 'idem-h', 'resp_h'), undefined)
  const posted = await b.inject({ method: 'POST', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': key, 'idempotency-key': 'idem-h' }, payload: { model: 'openclaw', input: 'hi' } })
  t.equal(posted.statusCode, 409, posted.body)
  t.match(posted.json(), { error: { code: 'session_busy', running_response_id: 'resp_h' } }, 'an HTTP retry is told which response holds the key')
  t.equal(await b.sessionGateway.get(key), undefined, 'and nothing was created by the repeats')
})

t.test('a node that dies mid-turn: its lane expires, another node records the run as aborted, and the session goes on', async t => {
  const stuck: Agent = { async * respond () { await new Promise(() => {}) } }
  const [a, b] = await nodes(t, 2, { agentPerNode: [stuck, echoAgent()] }) as [FastifyInstance, FastifyInstance]
  const key = 'agent:main:orphan'
  const { socket: watcher } = await watch(t, b, 'orphan')
  await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('never answered')], runId: 'run-dead' })
  await watcher.next(f => f.event === 'agent' && f.payload.stream === 'lifecycle')
  // A dies without a word: its log lets go of Redis without releasing the lane (the closest
  // to kill -9 in one process; a test with real processes is below).
  await logs.get(a)?.close()
  const end = await watcher.next(f => f.event === 'chat' && f.payload.runId === 'run-dead' && f.payload.state !== 'delta', 10_000)
  t.equal(end.payload.state, 'aborted', 'within the lane TTL, the watcher on B hears the run ended')
  const next = await (await b.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('still here')] })).result
  t.equal(next.text, 'still here', 'the session is usable again')
})

t.test('a subscriber connection that is killed is resubscribed, and watchers miss nothing', async t => {
  const gate = gatedAgent(text => text.split(' ').map((word, i) => ({ type: 'text' as const, delta: i === 0 ? word : ` ${word}` })))
  const [a, b] = await nodes(t, 2, { agentPerNode: [gate, gate] }) as [FastifyInstance, FastifyInstance]
  const { socket: watcher } = await watch(t, b, 'killed')
  const admin = redis.client()
  const ticket = await a.sessionGateway.send({ sessionKey: 'agent:main:killed', agentId: 'main', input: [user('one two three four')] })
  await gate.waitStarted(1)
  // Kill every pub/sub connection (B's subscriber among them) while the run is held back.
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  gate.release()
  await ticket.result
  const final = await watcher.next(f => f.event === 'chat' && f.payload.state === 'final', 10_000)
  t.equal(final.payload.message.content[0].text, 'one two three four')
  const seqs = positioned(watcher).map(f => seqOf(f.payload.cursor))
  t.same(seqs, Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i), 'no gap, no repeat')
})


/** What `pending` resolves to, or a failure after `ms`. */
async function within<T> (pending: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms) })
  try {
    return await Promise.race([pending, late])
  } finally {
    clearTimeout(timer)
  }
}

/** The first event that matches, within 10 s. */
async function heardWithin (log: EventLog, match: (e: SessionEvent) => boolean): Promise<SessionEvent> {
  return await within(log.waitFor(match), `an event (heard ${log.types.join(', ')})`)
}

t.test('attached on B to a run on A: the ticket learns how it ended (an error, with its text and tool call)', async t => {
  let fail = (): void => {}
  const failing: Agent = {
    async * respond () {
      yield { type: 'text', delta: 'partial' }
      yield { type: 'function_call', name: 'get_weather', arguments: { city: 'Paris' } }
      await new Promise<void>(resolve => { fail = resolve })
      throw new Error('the model fell over')
    }
  }
  const gate = gatedAgent()
  const [a, b] = await nodes(t, 2, { agentPerNode: [failing, gate] }) as [FastifyInstance, FastifyInstance]
  const key = 'agent:main:attached'
  const heard = new EventLog()
  ;(await b.sessionGateway.subscribe(key, {}, heard.listener)).start()
  const tools = [{ type: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }]
  const send = { sessionKey: key, agentId: 'main', input: [user('weather?')], tools, idempotencyKey: 'idem-fails' }
  await a.sessionGateway.send({ ...send, runId: 'run-fails' })
  await heardWithin(heard, e => e.type === 'run.tool_call')
  const attached = await b.sessionGateway.send(send)
  t.match(attached, { runId: 'run-fails', status: 'in_flight' }, 'the same key on B attaches to the run on A')
  fail()
  t.match(await within(attached.result, "the attached run's end"), {
    state: 'error', error: { code: 'FSG_AGENT_FAILED' }, text: 'partial', toolCalls: [{ name: 'get_weather' }]
  })

  t.same(gate.started, [], "B's agent never ran")
})

t.test('a reset on B stops the run on A first, and waits for its end, whether that end comes before the abort is answered or after', async t => {
  for (const order of ['end heard first', 'abort answered first'] as const) {
    const gate = gatedAgent()
    const shared = new MemoryStore()
    let ended = false
    // 'abort answered first': A records the aborted run late, so B must wait for it.
    const slowStore = new Proxy(shared, {
      get (target, name: keyof MemoryStore) {
        if (name === 'append' && order === 'abort answered first') {
          return async (key: string, entries: TranscriptEntry[]) => {
            if (entries.some(e => e.runState === 'aborted')) await new Promise(resolve => setTimeout(resolve, 300))
            await target.append(key, entries)
          }
        }
        const value = target[name]
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
    const [a] = await nodes(t, 1, { agent: gate }, slowStore, `reset-${order}:`) as [FastifyInstance]
    const [b] = await nodes(t, 1, { agent: echoAgent() }, shared, `reset-${order}:`) as [FastifyInstance]
    const key = 'agent:main:reset-across'
    const heard = new EventLog()
    ;(await b.sessionGateway.subscribe(key, {}, heard.listener)).start()
    const ticket = await a.sessionGateway.send({ sessionKey: key, agentId: 'main', input: [user('held')], runId: 'run-held' })
    void ticket.result.then(() => { ended = true })
    await heardWithin(heard, e => e.type === 'run.started' && e.runId === 'run-held')
    const log = logs.get(b) as RedisSessionLog
    if (order === 'end heard first') {
      // B's abort is answered only once B has heard the run end.
      const abort = log.abort.bind(log)
      log.abort = async (k, runId) => {
        const answer = await abort(k, runId)
        await heardWithin(heard, e => e.type === 'run.finished' && e.runId === 'run-held')
        return answer
      }
    }
    await within(b.sessionGateway.reset(key), `the reset on B (${order})`)
    t.ok(ended, `${order}: the run on A had ended when the reset on B resolved`)
    t.equal((await ticket.result).state, 'aborted')
    gate.release()
  }
})
