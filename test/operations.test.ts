import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import t from 'tap'
import WebSocket from 'ws'
import { FileStore, InProcessSessionLog, MemoryStore, type Agent, type SessionGatewayOptions } from '../lib/index.js'
import { GatewaySocket, listen } from './gateway-frames.js'
import { buildApp, gatedAgent, TOKEN } from './helpers.js'

const auth = { authorization: `Bearer ${TOKEN}` }

/** Every sample of a scrape of `/metrics`, by `name{labels}`, as a client (Prometheus) reads it. */
async function scrape (app: FastifyInstance, path = '/metrics'): Promise<Map<string, number>> {
  const res = await app.inject({ method: 'GET', url: path })
  if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}`)
  const samples = new Map<string, number>()
  for (const line of res.body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}

async function ask (app: FastifyInstance, input: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await app.inject({ method: 'POST', url: '/v1/responses', headers: { ...auth, ...headers }, payload: { model: 'openclaw', input } })
  return res.statusCode
}

// ── health and readiness ─────────────────────────────────────────────────────

t.test('liveness and readiness answer a probe that carries no token', async t => {
  const app = await buildApp(t)
  const live = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(live.statusCode, 200)
  t.same(live.json(), { status: 'ok' })
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready' })
})

t.test('not ready while the store fails or does not answer in time; the cause stays in the log', async t => {
  const store = new MemoryStore()
  const app = await buildApp(t, { store, health: { timeoutMs: 20 } })
  const list = store.list.bind(store)
  store.list = async () => { throw new Error('connection refused by db.internal:5432') }
  const failing = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(failing.statusCode, 503)
  t.same(failing.json(), { status: 'unavailable', reason: 'the session store is unreachable' }, 'nothing about the store leaks to a probe')
  store.list = async () => await new Promise(() => {})
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, 'a store that hangs is not ready after timeoutMs')
  store.list = list
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'and ready again once it answers')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'alive all along')
})

t.test('not ready while a shared session log does not answer; the store is not blamed', async t => {
  const log = new InProcessSessionLog({ replay: 16, claimTtlMs: 60_000 })
  let ping: () => Promise<void> = async () => { throw new Error('ECONNREFUSED 10.0.0.7:6379') }
  const app = await buildApp(t, { sessionLog: Object.assign(log, { ping: async () => await ping() }), health: { timeoutMs: 20 } })
  const failing = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(failing.statusCode, 503)
  t.same(failing.json(), { status: 'unavailable', reason: 'the session log is unreachable' }, 'which part, and nothing of the cause')
  ping = async () => await new Promise(() => {})
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, 'a log that hangs is not ready after timeoutMs')
  ping = async () => {}
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'and ready once it answers')
})

t.test('a file store whose directory is a file is not ready', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-ready-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'not-a-dir'), '')
  const app = await buildApp(t, { store: new FileStore({ dir: join(dir, 'not-a-dir') }) })
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503)
})

t.test('health routes move with livePath and readyPath, and go with health: false', async t => {
  const moved = await buildApp(t, { health: { livePath: '/ops/live', readyPath: '/ops/ready' } })
  t.equal((await moved.inject({ method: 'GET', url: '/ops/live' })).statusCode, 200)
  t.equal((await moved.inject({ method: 'GET', url: '/ops/ready' })).statusCode, 200)
  t.equal((await moved.inject({ method: 'GET', url: '/healthz' })).statusCode, 404)
  const none = await buildApp(t, { health: false })
  t.equal((await none.inject({ method: 'GET', url: '/healthz' })).statusCode, 404)
  t.equal((await none.inject({ method: 'GET', url: '/readyz' })).statusCode, 404)
})

// ── metrics ──────────────────────────────────────────────────────────────────

t.test('no metrics unless asked for', async t => {
  const app = await buildApp(t)
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404)
})

t.test('metrics: Prometheus text without a token, every series from zero', async t => {
  const app = await buildApp(t, { metrics: {} })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const samples = await scrape(app)
  for (const series of [
    'session_gateway_open_connections{transport="gateway"}',
    'session_gateway_open_connections{transport="responses_websocket"}',
    'session_gateway_open_connections{transport="responses_sse"}',
    'session_gateway_turns_started_total',
    'session_gateway_turns_finished_total{state="final"}',
    'session_gateway_turns_finished_total{state="aborted"}',
    'session_gateway_turns_finished_total{state="error"}',
    'session_gateway_resumes_total{outcome="live"}',
    'session_gateway_resumes_total{outcome="replay"}',
    'session_gateway_resumes_total{outcome="catchup"}',
    'session_gateway_resumes_total{outcome="reset"}',
    'session_gateway_slow_consumer_closes_total'
  ]) t.equal(samples.get(series), 0, series)
})

t.test('metrics: turns started and finished by state, with their duration', async t => {
  let fail = false
  const agent: Agent = {
    async * respond () {
      if (fail) throw new Error('the model is down')
      yield { type: 'text', delta: 'an answer' }
    }
  }
  const app = await buildApp(t, { metrics: {}, agent })
  t.equal(await ask(app, 'one'), 200)
  t.equal(await ask(app, 'two'), 200)
  fail = true
  t.equal(await ask(app, 'three'), 200, 'a failed turn is still an answer')
  const samples = await scrape(app)
  t.equal(samples.get('session_gateway_turns_started_total'), 3)
  t.equal(samples.get('session_gateway_turns_finished_total{state="final"}'), 2)
  t.equal(samples.get('session_gateway_turns_finished_total{state="error"}'), 1)
  t.equal(samples.get('session_gateway_turn_duration_seconds_count{state="final"}'), 2)
  t.equal(samples.get('session_gateway_turn_duration_seconds_bucket{le="600",state="final"}'), 2)
  t.ok((samples.get('session_gateway_turn_duration_seconds_sum{state="final"}') as number) > 0)

  // A repeated idempotency key attaches to the first turn: no second turn is counted.
  t.equal(await ask(app, 'again', { 'idempotency-key': 'k-1' }), 200)
  t.equal(await ask(app, 'again', { 'idempotency-key': 'k-1' }), 200)
  t.equal((await scrape(app)).get('session_gateway_turns_started_total'), 4)
})

t.test('metrics: an aborted turn', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { metrics: {}, agent })
  const { sessionKey, agentId } = await app.sessionGateway.resolve({ sessionKey: 'stop-me' }, { id: 'token' }, 'write')
  const ticket = await app.sessionGateway.send({ sessionKey, agentId, input: [{ role: 'user', content: [{ type: 'text', text: 'long' }], timestamp: Date.now() }] })
  await agent.waitStarted(1)
  await app.sessionGateway.abort(sessionKey)
  await ticket.result
  const samples = await scrape(app)
  t.equal(samples.get('session_gateway_turns_finished_total{state="aborted"}'), 1)
  t.equal(samples.get('session_gateway_turn_duration_seconds_count{state="aborted"}'), 1)
})

t.test('metrics: open connections by transport, as they open and close', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { metrics: {}, agent })
  await listen(app)
  const connections = async (): Promise<number[]> => {
    const samples = await scrape(app)
    return ['gateway', 'responses_websocket', 'responses_sse'].map(transport => samples.get(`session_gateway_open_connections{transport="${transport}"}`) as number)
  }
  const gateway = await GatewaySocket.open(app)
  const responses = await app.injectWS('/v1/responses', { headers: auth })
  t.same(await connections(), [1, 1, 0], 'a gateway-protocol and a WebSocket-mode connection')

  const port = (app.server.address() as { port: number }).port
  const stream = await fetch(`http://127.0.0.1:${port}/v1/responses`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'openclaw', input: 'stream me', stream: true })
  })
  await agent.waitStarted(1)
  t.same(await connections(), [1, 1, 1], 'and an SSE stream while it streams')
  agent.release()
  await stream.text()
  responses.terminate()
  gateway.close()
  await gateway.closedWith()
  for (let i = 0; i < 100 && (await connections()).some(n => n !== 0); i++) await new Promise(resolve => setTimeout(resolve, 5))
  t.same(await connections(), [0, 0, 0], 'each one counted off as it closes')
})

t.test('metrics: resume outcomes of sessions.open with since', async t => {
  const app = await buildApp(t, { metrics: {}, replay: 2 })
  await listen(app)
  const client = await GatewaySocket.open(app, { caps: ['session-cursor'] })
  t.teardown(() => client.close())
  // The cursor just after a whole turn, as its final `chat` event carries it.
  const send = async (message: string): Promise<string> => {
    await client.request('chat.send', { sessionKey: 'resumed', message, idempotencyKey: message })
    return (await client.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === message)).payload.cursor as string
  }
  const start = await send('first')
  const open = async (since: string): Promise<string> => (await client.request('sessions.open', { key: 'resumed', since })).payload.replay as string
  t.equal(await open(start), 'live')
  const epoch = start.slice(0, start.lastIndexOf(':'))
  const seq = Number(start.slice(start.lastIndexOf(':') + 1))
  t.equal(await open(`${epoch}:${seq - 1}`), 'replay', 'the last event is still in memory')
  await send('second')
  t.equal(await open(start), 'catchup', 'a turn later, memory (2 events) no longer covers the gap')
  t.equal(await open(`another-epoch:${seq}`), 'reset')
  t.equal(await open(start), 'catchup')
  const samples = await scrape(app)
  t.same(['live', 'replay', 'catchup', 'reset'].map(outcome => samples.get(`session_gateway_resumes_total{outcome="${outcome}"}`)), [1, 1, 2, 1])
})

t.test('metrics: a slow consumer closed with 1008', async t => {
  // One answer far bigger than what the network takes at once, to a client that stops reading.
  const agent: Agent = { async * respond () { yield { type: 'text', delta: 'x'.repeat(16 * 1024 * 1024) } } }
  const app = await buildApp(t, { metrics: {}, agent, gateway: { maxBufferedBytes: 1024 } })
  await listen(app)
  const port = (app.server.address() as { port: number }).port
  const ws = new WebSocket(`ws://127.0.0.1:${port}/gateway`, { headers: auth })
  t.teardown(() => ws.terminate())
  const frames: string[] = []
  ws.on('message', (data: Buffer) => frames.push(String(data).slice(0, 200)))
  const closed = new Promise<number>(resolve => ws.once('close', code => resolve(code)))
  await once(ws, 'open')
  ws.send(JSON.stringify({ type: 'req', id: 'c', method: 'connect', params: { minProtocol: 4, maxProtocol: 4, client: { id: 'slow', version: '1', platform: 'node', mode: 'test' } } }))
  while (!frames.some(frame => frame.includes('"hello-ok"'))) await new Promise(resolve => setTimeout(resolve, 5))
  ws.pause()
  ws.send(JSON.stringify({ type: 'req', id: 's', method: 'chat.send', params: { sessionKey: 'slow', message: 'go', idempotencyKey: 'slow-1' } }))
  const slowCloses = async (): Promise<number | undefined> => (await scrape(app)).get('session_gateway_slow_consumer_closes_total')
  for (let i = 0; i < 400 && await slowCloses() === 0; i++) await new Promise(resolve => setTimeout(resolve, 5))
  t.equal(await slowCloses(), 1)
  ws.resume()
  t.equal(await closed, 1008)
})

t.test('metrics: store errors by operation; the store\'s own refusals are not errors', async t => {
  const store = new MemoryStore()
  const app = await buildApp(t, { metrics: {}, store })
  t.equal(await ask(app, 'before', { 'x-openclaw-session-key': 'kept' }), 200)
  const append = store.append.bind(store)
  store.append = async () => { throw new Error('disk full') }
  t.equal(await ask(app, 'lost', { 'x-openclaw-session-key': 'kept' }), 500)
  store.append = append
  // A read of a generation that does not exist is an answer (404), not a failure.
  await t.rejects(app.sessionGateway.history('agent:main:kept', { limit: 1, sessionId: 'no-such-generation' }), { code: 'FSG_SESSION_NOT_FOUND' })
  const samples = await scrape(app)
  t.equal(samples.get('session_gateway_store_errors_total{operation="append"}'), 1)
  t.equal(samples.get('session_gateway_store_errors_total{operation="read"}'), undefined)
})

t.test('metrics: a store of your own keeps its other methods and its private fields', async t => {
  class OwnStore extends MemoryStore {
    readonly #name = 'own'
    describe (): string { return this.#name }
  }
  const app = await buildApp(t, { metrics: {}, store: new OwnStore() })
  t.equal((app.sessionGateway.store as OwnStore).describe(), 'own')
  t.ok(app.sessionGateway.store instanceof OwnStore)
})

t.test('metrics: into your own registry, at your own path, or with no route', async t => {
  const registry = new Registry()
  const moved = await buildApp(t, { metrics: { registry, path: '/internal/metrics' } })
  t.equal(await ask(moved, 'hi'), 200)
  t.equal((await scrape(moved, '/internal/metrics')).get('session_gateway_turns_started_total'), 1)
  t.match(await registry.metrics(), /session_gateway_turns_started_total 1/)

  const mine = new Registry()
  const unrouted = await buildApp(t, { metrics: { registry: mine, path: false } })
  t.equal((await unrouted.inject({ method: 'GET', url: '/metrics' })).statusCode, 404)
  t.match(await mine.metrics(), /session_gateway_turns_started_total 0/)
})

t.test('bad health and metrics options are named at registration', async t => {
  const cases: Array<[unknown, RegExp]> = [
    [{ health: { livePath: 'healthz' } }, /"health": false, or \{ livePath: "\/…", readyPath: "\/…", timeoutMs: 1…600000 \}/],
    [{ health: { timeoutMs: 0 } }, /"health"/],
    [{ metrics: { path: 'metrics' } }, /"metrics": false, or \{ path: "\/…" or false, registry: a prom-client Registry \}/],
    [{ metrics: { registry: {} } }, /"metrics"/],
    [{ metrics: { prefix: 'x' } }, /"metrics"/]
  ]
  for (const [options, message] of cases) {
    await t.rejects(buildApp(t, options as Partial<SessionGatewayOptions>), { code: 'FSG_INVALID_OPTION', message })
  }
})
