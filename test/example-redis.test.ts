// The example gateway on Redis (REDIS_URL set): two processes of the built example, as
// `npm start` runs it, on two ports and one real Redis, behave as one gateway. A turn over
// HTTP on one is read over REST and watched (and resumed by cursor) over WebSocket on the
// other; when the process running a turn is killed with SIGKILL, the other tells its
// watchers the turn ended, frees the session after the lease, and takes the next turn.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { GatewaySocket, type Frame } from './gateway-frames.js'
import { childEnv } from './helpers.js'
import { startRedis } from './redis-server.js'

const root = fileURLToPath(new URL('..', import.meta.url))
// `npm test` builds the example first.
const SERVER = join(root, 'build/examples/server.js')
const TOKEN = 'example-redis-token'
const auth = { authorization: `Bearer ${TOKEN}` }

const redis = await startRedis(t)

interface Server { url: string, port: number, child: ChildProcess, lines: string[] }

/** Starts the built example with `env` on a free port and waits (bounded) for its start-up lines. */
async function start (t: Test, env: Record<string, string>): Promise<Server> {
  const child = spawn(process.execPath, [SERVER], {
    cwd: root,
    env: childEnv({ PORT: '0', LOG_LEVEL: 'warn', GATEWAY_TOKEN: TOKEN, REDIS_URL: redis.url, ...env }),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  // Teardowns do not run when tap times the test out: a server left behind would hold its port.
  const orphan = (): void => { child.kill('SIGKILL') }
  process.once('exit', orphan)
  child.once('exit', () => process.off('exit', orphan))
  t.teardown(async () => await kill(child))
  let out = ''
  child.stdout.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example did not start within 30 s; it said ${JSON.stringify(out)}`)), 30_000)
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      if (out.split('\n').length > 4) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', code => {
      clearTimeout(timer)
      reject(new Error(`the example exited with ${code}: ${out}`))
    })
  })
  const lines = out.split('\n')
  const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(lines[0] as string)?.[1] as string
  return { url, port: Number(new URL(url).port), child, lines }
}

async function kill (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGKILL')
  await once(child, 'exit')
}

async function watch (t: Test, server: Server, key: string, since?: string): Promise<{ socket: GatewaySocket, opened: Frame }> {
  const socket = await GatewaySocket.open(server, { headers: auth, caps: ['session-cursor'] })
  t.teardown(() => socket.socket.terminate())
  const opened = await socket.request('sessions.open', { key, ...(since === undefined ? {} : { since }) })
  if (opened.ok !== true) throw new Error(`sessions.open failed: ${JSON.stringify(opened.error)}`)
  return { socket, opened }
}

async function turn (server: Server, key: string, input: string): Promise<Response> {
  return await fetch(`${server.url}/v1/responses`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json', 'x-openclaw-session-key': key },
    body: JSON.stringify({ model: 'openclaw', input }),
    signal: AbortSignal.timeout(30_000)
  })
}

/** The session's transcript as REST shows it, `role: text` per message. */
async function history (server: Server, key: string): Promise<string[]> {
  const res = await fetch(`${server.url}/v1/sessions/${encodeURIComponent(key)}/messages?limit=50`, { headers: auth, signal: AbortSignal.timeout(10_000) })
  const body = await res.json() as { messages: Array<{ role: string, content: Array<{ text?: string }> }> }
  return body.messages.map(m => `${m.role}: ${m.content[0]?.text ?? ''}`)
}

const positioned = (socket: GatewaySocket): Frame[] => socket.frames.filter(f => f.type === 'event' && f.payload?.cursor !== undefined)
const seqOf = (cursor: unknown): number => Number(String(cursor).split(':').at(-1))
const words = (n: number, tag: string): string => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ')

t.test('two example processes on one Redis: a turn over HTTP on A is listed, read, watched live and resumed by cursor on B', async t => {
  t.setTimeout(90_000)
  if (!existsSync(SERVER)) return t.fail(`${SERVER} is missing: run npm run build (npm test does)`)
  const env = { ECHO_DELAY_MS: '20', REDIS_KEY_PREFIX: 'two:' }
  const [a, b] = await Promise.all([start(t, env), start(t, env)]) as [Server, Server]
  t.not(a.port, b.port, 'two ports')
  t.equal(a.lines[2], `sessions in Redis at ${redis.url} (key prefix two:)`, 'each says where its sessions are')

  const key = 'agent:main:crossing'
  const { socket: live } = await watch(t, b, key)
  const first = await turn(a, key, 'hello across processes')
  t.equal(first.status, 200)
  t.equal((await first.json() as { output: Array<{ content: Array<{ text: string }> }> }).output[0]?.content[0]?.text, 'hello across processes')
  const final = await live.next(f => f.event === 'chat' && f.payload.state === 'final', 10_000)
  t.equal(final.payload.message.content[0].text, 'hello across processes', 'a watcher on B saw the turn on A live')

  const listed = await (await fetch(`${b.url}/v1/sessions`, { headers: auth })).json() as { sessions: Array<{ key: string, lastMessagePreview?: string }> }
  t.match(listed.sessions, [{ key, lastMessagePreview: 'hello across processes' }], 'B lists the session A made')
  t.same(await history(b, key), ['user: hello across processes', 'assistant: hello across processes'], 'and reads its history over REST')

  // A longer turn on A; the watcher on B drops mid-turn and resumes on B by its cursor.
  const text = words(30, 'w')
  const { socket: steady } = await watch(t, a, key) // stays, to know when more has gone by
  const posting = turn(a, key, text)
  const delta = (word: string) => (f: Frame) => f.event === 'chat' && f.payload.state === 'delta' && String(f.payload.deltaText).includes(word)
  await live.next(delta('w5'), 10_000)
  live.socket.terminate()
  const seen = positioned(live)
  await steady.next(delta('w12'), 10_000) // more of the answer goes by meanwhile
  const { socket: resumed, opened } = await watch(t, b, key, seen.at(-1)?.payload.cursor as string)
  t.equal(opened.payload.replay, 'replay', 'the missed events come exactly, from Redis')
  t.equal((await posting).status, 200)
  await resumed.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.message.content[0].text === text, 10_000)
  const all = [...seen, ...positioned(resumed)]
  const seqs = all.map(f => seqOf(f.payload.cursor))
  t.same(seqs, Array.from({ length: seqs.length }, (_, i) => (seqs[0] as number) + i), 'every position once, in order, across the drop')
  t.equal(all.filter(f => f.event === 'chat' && f.payload.state === 'delta').map(f => f.payload.deltaText).join('').endsWith(text), true, 'and the whole answer')

  // And the other way round: a turn on B, read on A.
  t.equal((await turn(b, key, 'and back')).status, 200)
  t.same((await history(a, key)).slice(-2), ['user: and back', 'assistant: and back'])
})

t.test('kill -9 of the process running a turn: B tells its watcher the turn ended, frees the session after the lease, and takes the next turn', async t => {
  t.setTimeout(90_000)
  if (!existsSync(SERVER)) return t.fail(`${SERVER} is missing: run npm run build (npm test does)`)
  // A slow echo (the turn runs for about 12 s) and a short lease, checked often.
  const env = { ECHO_DELAY_MS: '400', REDIS_KEY_PREFIX: 'kill:', LANE_TTL_MS: '1000', ORPHAN_CHECK_MS: '200' }
  const [a, b] = await Promise.all([start(t, env), start(t, env)]) as [Server, Server]
  const key = 'agent:main:dies'
  const { socket: watcher } = await watch(t, b, key)
  const sender = await GatewaySocket.open(a, { headers: auth })
  t.teardown(() => sender.socket.terminate())
  const sent = await sender.request('chat.send', { sessionKey: key, message: words(30, 'x'), idempotencyKey: 'run-on-a' })
  t.match(sent, { ok: true, payload: { runId: 'run-on-a', status: 'started' } })
  await watcher.next(f => f.event === 'chat' && f.payload.runId === 'run-on-a' && f.payload.state === 'delta', 10_000)

  const killed = Date.now()
  await kill(a.child)
  const end = await watcher.next(f => f.event === 'chat' && f.payload.runId === 'run-on-a' && f.payload.state !== 'delta', 15_000)
  const tookMs = Date.now() - killed
  t.equal(end.payload.state, 'aborted', 'the watcher on B hears the turn ended')
  t.ok(tookMs < 8000, `within the lease (1 s) and a check, not the defaults' 10 s (${tookMs} ms)`)

  const next = await turn(b, key, 'still here')
  t.equal(next.status, 200, 'a new turn on B succeeds')
  t.equal((await next.json() as { output: Array<{ content: Array<{ text: string }> }> }).output[0]?.content[0]?.text, 'still here')
  const rows = await history(b, key)
  t.equal(rows[0], `user: ${words(30, 'x')}`, 'the dead turn\'s message is kept')
  t.match(rows[1], /^assistant: /, 'its answer is recorded as it ended')
  t.same(rows.slice(-2), ['user: still here', 'assistant: still here'])
  t.equal(rows.length, 4)
})

t.test('a REDIS_URL that cannot be used stops the example at start, with one line and no password', async t => {
  if (!existsSync(SERVER)) return t.fail(`${SERVER} is missing: run npm run build (npm test does)`)
  const refuse = async (url: string): Promise<{ code: number | null, err: string }> => {
    const child = spawn(process.execPath, [SERVER], { cwd: root, env: childEnv({ PORT: '0', GATEWAY_TOKEN: TOKEN, REDIS_URL: url }), stdio: ['ignore', 'ignore', 'pipe'] })
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000) // bounded, whatever happens
    let err = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
    const [code] = await once(child, 'exit') as [number | null]
    clearTimeout(timer)
    return { code, err }
  }
  // A port nobody listens on: the test's own Redis, stopped.
  const down = await startRedis(t)
  await down.kill()
  const unreachable = await refuse(`redis://:s3cret@127.0.0.1:${down.port}`)
  t.equal(unreachable.code, 1)
  t.match(unreachable.err, new RegExp(`^cannot start: REDIS_URL=redis://:\\*\\*\\*@127\\.0\\.0\\.1:${down.port} cannot be used \\(.+\\): start Redis there`))
  t.notMatch(unreachable.err, /s3cret/, 'the password is not printed')
  t.equal(unreachable.err.trim().split('\n').length, 1, 'one line')
  t.match(await refuse('http://127.0.0.1:6379'), { code: 1, err: /^cannot start: REDIS_URL must start with redis:\/\/ or rediss:\/\// })
  t.match(await refuse('not a url'), { code: 1, err: /^cannot start: REDIS_URL is not a URL/ })
})
