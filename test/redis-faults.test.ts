import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { echoAgent, MemoryStore, type Agent, type SessionStore } from '../lib/index.js'
import { RedisSessionLog } from '../lib/redis/index.js'
import { GatewaySocket, listen, type Frame } from './gateway-frames.js'
import { buildApp, TOKEN, user } from './helpers.js'
import { startRedis, type RedisServer } from './redis-server.js'

// Redis misbehaving under a running gateway: it sleeps, it restarts (with and without its
// data), it goes away. Watchers that resume by cursor never see a lost acknowledged event,
// a duplicate or a reordering; turns caught in an outage end clearly; the process lives on.

async function gateway (t: Test, redis: RedisServer, store: SessionStore, prefix: string, agent: Agent = echoAgent()): Promise<FastifyInstance> {
  const app = await buildApp(t, {
    store,
    agent,
    sessionLog: new RedisSessionLog({ url: redis.url, keyPrefix: prefix, laneTtlMs: 2000, checkIntervalMs: 200, redisOptions: { maxRetriesPerRequest: 1, retryStrategy: () => 50 } })
  }, { logger: false })
  await listen(app)
  return app
}

const positioned = (socket: GatewaySocket): Frame[] => socket.frames.filter(f => f.type === 'event' && f.payload?.cursor !== undefined && f.event !== 'session.reset')
const seqOf = (cursor: unknown): number => Number(String(cursor).split(':').at(-1))

async function watcher (t: Test, app: FastifyInstance, key: string, since?: string): Promise<{ socket: GatewaySocket, opened: Frame }> {
  const socket = await GatewaySocket.open(app, { caps: ['session-cursor'], headers: { authorization: `Bearer ${TOKEN}` } })
  t.teardown(() => socket.close())
  const opened = await socket.request('sessions.open', { key, ...(since === undefined ? {} : { since }) })
  return { socket, opened }
}

t.test('DEBUG SLEEP while a turn streams: late, but every event, in order', async t => {
  const redis = await startRedis(t)
  const store = new MemoryStore()
  const [a, b] = [await gateway(t, redis, store, 'sleep:', echoAgent({ delayMs: 10 })), await gateway(t, redis, store, 'sleep:')]
  const { socket } = await watcher(t, b, 'slept')
  const ticket = await a.sessionGateway.send({ sessionKey: 'agent:main:slept', agentId: 'main', input: [user('a b c d e f g h i j')] })
  await redis.client().call('DEBUG', 'SLEEP', '0.5')
  t.equal((await ticket.result).text, 'a b c d e f g h i j')
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final', 10_000)
  const seqs = positioned(socket).map(f => seqOf(f.payload.cursor))
  t.same(seqs, Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i))
})

t.test('a Redis restart with AOF loses no acknowledged event: a watcher resumes exactly', async t => {
  const redis = await startRedis(t, { aof: true })
  const store = new MemoryStore()
  const [a, b] = [await gateway(t, redis, store, 'aof:'), await gateway(t, redis, store, 'aof:')]
  const { socket } = await watcher(t, b, 'kept')
  await (await a.sessionGateway.send({ sessionKey: 'agent:main:kept', agentId: 'main', input: [user('before the restart')] })).result
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  const early = positioned(socket).at(2)?.payload.cursor as string
  await new Promise(resolve => setTimeout(resolve, 1200)) // appendfsync everysec: on disk by now
  await redis.restart()
  const { opened } = await watcher(t, b, 'kept', early)
  t.equal(opened.payload.replay, 'replay', 'the stream came back with Redis: exact replay')
  // Through B, whose connection the resume above proved is back (A's may still be reconnecting).
  const after = await (await b.sessionGateway.send({ sessionKey: 'agent:main:kept', agentId: 'main', input: [user('after it')] })).result
  t.equal(after.state, 'final', 'turns go on')
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.message.content[0].text === 'after it', 10_000)
  const seqs = positioned(socket).map(f => seqOf(f.payload.cursor))
  t.same(seqs, Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i), 'the first watcher, resubscribed, saw every event once')
})

t.test('a Redis restart without its data: positions come back from the store, and a resume is a catch-up, never a silent gap', async t => {
  const redis = await startRedis(t)
  const store = new MemoryStore()
  const [a, b] = [await gateway(t, redis, store, 'lost:'), await gateway(t, redis, store, 'lost:')]
  const first = await (await a.sessionGateway.send({ sessionKey: 'agent:main:lost', agentId: 'main', input: [user('one two three')] })).result
  const early = `${first.cursor.split(':')[0] as string}:2`
  await redis.restart() // no persistence: every stream and position is gone
  const { socket, opened } = await watcher(t, b, 'lost', early)
  t.equal(opened.payload.replay, 'catchup', 'the gap is rebuilt from the transcript')
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.equal(opened.payload.cursor, first.cursor, 'the position is the one the transcript gives')
  const next = await (await b.sessionGateway.send({ sessionKey: 'agent:main:lost', agentId: 'main', input: [user('go on')] })).result
  t.equal(next.state, 'final', 'turns go on')
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.message.content[0].text === 'go on', 10_000)
})

t.test('Redis gone: the turn in flight ends clearly, new turns are refused with 503, and all is well once it is back', async t => {
  const redis = await startRedis(t)
  // The first run waits, once started, until Redis is gone; every run echoes.
  const echo = echoAgent()
  let started = (): void => {}
  const running = new Promise<void>(resolve => { started = resolve })
  let free = (): void => {}
  const freed = new Promise<void>(resolve => { free = resolve })
  const agent: Agent = { async * respond (request) { started(); await freed; yield * echo.respond(request) } }
  const app = await gateway(t, redis, new MemoryStore(), 'gone:', agent)
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:gone', agentId: 'main', input: [user('one two three four five six')] })
  await running
  await redis.kill() // while the run is under way
  free()
  const ended = await ticket.result
  t.equal(ended.state, 'error', 'the turn in flight ends in error')
  t.match(ended.error, { code: 'FSG_LOG_UNAVAILABLE' })
  const refused = await app.inject({ method: 'POST', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'gone' }, payload: { model: 'openclaw', input: 'hello?' } })
  t.equal(refused.statusCode, 503, 'a new turn is told to come back')
  await redis.start()
  let back
  for (let i = 0; i < 200; i++) { // up to 20 s for ioredis to reconnect on a loaded machine
    back = await app.inject({ method: 'POST', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': 'gone' }, payload: { model: 'openclaw', input: 'hello again' } })
    if (back.statusCode === 200) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.equal(back?.statusCode, 200, 'turns run again once Redis is back')
  t.equal(back?.json().output[0].content[0].text, 'hello again')
})
