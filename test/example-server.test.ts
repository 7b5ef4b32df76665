import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { startFakeOpenClaw, OPENCLAW_TOKEN } from './fake-openclaw.js'
import { chatChunks, startFakeUpstream, writeSse } from './fake-upstream.js'
import { agentFromEnv, EnvError } from '../examples/agent-from-env.js'
import { GatewaySocket } from './gateway-frames.js'
import { childEnv } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Starts `examples/server.ts` as `npm start` would, and reads its first two lines. */
async function start (env: Record<string, string>): Promise<{ url: string, port: number, tokenLine: string, dataLine: string, stop: (signal: NodeJS.Signals) => Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/server.ts'], {
    cwd: root,
    env: childEnv({ PORT: '0', LOG_LEVEL: 'warn', ...env }),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let out = ''
  child.stdout.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start-up lines; got ${JSON.stringify(out)}`)), 20_000)
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      if (out.split('\n').length > 3) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', code => reject(new Error(`exited with ${code}`)))
  })
  const [listening, tokenLine, dataLine] = out.split('\n') as [string, string, string]
  const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(listening)?.[1] as string
  return {
    url,
    port: Number(new URL(url).port),
    tokenLine,
    dataLine,
    async stop (signal) {
      child.kill(signal)
      const [code] = await once(child, 'exit') as [number | null]
      return code
    }
  }
}

async function dataDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-example-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('npm start: prints its URL and token, and stops cleanly on SIGTERM', async t => {
  const dir = await dataDir(t)
  const server = await start({ GATEWAY_DATA_DIR: dir })
  t.equal(server.dataLine, `sessions in ${dir}`)
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.match(server.tokenLine, /^token: [\w-]{32}$/, 'a generated token is printed once')
  const token = server.tokenLine.slice('token: '.length)
  const res = await fetch(`${server.url}/nothing-here`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(res.status, 404, 'the server answers')
  t.equal(await server.stop('SIGTERM'), 0)
})

t.test('a token from GATEWAY_TOKEN is used and never echoed; SIGINT stops too', async t => {
  const server = await start({ GATEWAY_TOKEN: 'chosen-secret-token', GATEWAY_DATA_DIR: await dataDir(t) })
  t.equal(server.tokenLine, 'token: (from GATEWAY_TOKEN)')
  t.equal(await server.stop('SIGINT'), 0)
})

const SECRET = 'example-secret-token'

async function connect (port: number): Promise<GatewaySocket> {
  return await GatewaySocket.open({ port }, { headers: { authorization: `Bearer ${SECRET}` } })
}

t.test('sessions persist in GATEWAY_DATA_DIR: a restarted server lists and continues them', async t => {
  const dir = await dataDir(t)
  const first = await start({ GATEWAY_TOKEN: SECRET, GATEWAY_DATA_DIR: dir })
  const socket = await connect(first.port)
  await socket.request('chat.send', { sessionKey: 'kept', message: 'remember me', idempotencyKey: 'k-1' })
  await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  socket.close()
  t.equal(await first.stop('SIGTERM'), 0)

  const second = await start({ GATEWAY_TOKEN: SECRET, GATEWAY_DATA_DIR: dir })
  t.teardown(() => second.stop('SIGKILL'))
  const again = await connect(second.port)
  const list = await again.request('sessions.list', {})
  t.match(list.payload.sessions, [{ key: 'agent:main:kept', lastMessagePreview: 'remember me' }])
  await again.request('chat.send', { sessionKey: 'kept', message: 'and this', idempotencyKey: 'k-2' })
  await again.next(f => f.event === 'chat' && f.payload.state === 'final')
  const history = await again.request('chat.history', { sessionKey: 'kept' })
  t.same(history.payload.messages.map((m: { role: string, content: Array<{ text: string }> }) => `${m.role}:${m.content[0]?.text}`),
    ['user:remember me', 'assistant:remember me', 'user:and this', 'assistant:and this'])
  again.close()
})

t.test('kill -9 in the middle of a stream: every acknowledged message and every finished answer survives', async t => {
  const dir = await dataDir(t)
  const first = await start({ GATEWAY_TOKEN: SECRET, GATEWAY_DATA_DIR: dir, ECHO_DELAY_MS: '20' })
  const socket = await connect(first.port)
  for (let i = 0; i < 3; i++) {
    await socket.request('chat.send', { sessionKey: 'crash', message: `turn ${i}`, idempotencyKey: `c-${i}` })
    await socket.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === `c-${i}`)
  }
  const long = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ')
  const ack = await socket.request('chat.send', { sessionKey: 'crash', message: long, idempotencyKey: 'c-long' })
  t.match(ack.payload, { status: 'started' }, 'acknowledged, so the question is on disk')
  await socket.next(f => f.event === 'chat' && f.payload.state === 'delta' && f.payload.runId === 'c-long' && String(f.payload.deltaText).includes('w5'))
  t.equal(await first.stop('SIGKILL'), null)

  const second = await start({ GATEWAY_TOKEN: SECRET, GATEWAY_DATA_DIR: dir })
  t.teardown(() => second.stop('SIGKILL'))
  const again = await connect(second.port)
  const history = await again.request('chat.history', { sessionKey: 'crash' })
  const rows = history.payload.messages.map((m: { role: string, stopReason?: string, content: Array<{ text: string }> }) => `${m.role}:${m.content[0]?.text ?? ''}:${m.stopReason ?? ''}`)
  t.same(rows, [
    'user:turn 0:', 'assistant:turn 0:stop',
    'user:turn 1:', 'assistant:turn 1:stop',
    'user:turn 2:', 'assistant:turn 2:stop',
    `user:${long}:`, 'assistant::aborted'
  ], 'the interrupted run is recorded as aborted on restart')
  await again.request('chat.send', { sessionKey: 'crash', message: 'still here', idempotencyKey: 'c-after' })
  const final = await again.next(f => f.event === 'chat' && f.payload.state === 'final' && f.payload.runId === 'c-after')
  t.equal(final.payload.message.content[0].text, 'still here', 'and the session goes on')
  again.close()

  const index = JSON.parse(await readFile(join(dir, 'agents', 'main', 'sessions', 'sessions.json'), 'utf8')) as Record<string, { sessionId: string }>
  const transcript = await readFile(join(dir, 'agents', 'main', 'sessions', `${index['agent:main:crash']?.sessionId}.jsonl`), 'utf8')
  for (const line of transcript.trimEnd().split('\n')) t.doesNotThrow(() => JSON.parse(line), 'every line is whole JSON')
})

/** Runs `npm start`'s server expecting it to refuse to start: its exit code and what it printed. */
async function failedStart (env: Record<string, string>): Promise<{ code: number | null, stderr: string, stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/server.ts'], { cwd: root, env: childEnv({ PORT: '0', ...env }), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += String(chunk) })
  child.stderr.on('data', chunk => { stderr += String(chunk) })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stderr, stdout }
}

t.test('AGENT=openai and AGENT=openclaw put a real upstream behind npm start', async t => {
  const upstream = await startFakeUpstream(t)
  upstream.handle(async (_request, res) => { await writeSse(res, chatChunks({ text: 'from the model' })) })
  const openai = await start({ GATEWAY_TOKEN: SECRET, GATEWAY_DATA_DIR: await dataDir(t), AGENT: 'openai', OPENAI_BASE_URL: `${upstream.origin}/v1`, OPENAI_MODEL: 'local-model', OPENAI_API_KEY: 'sk-local' })
  t.teardown(() => openai.stop('SIGKILL'))
  const answer = await fetch(`${openai.url}/v1/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'openclaw', input: 'hi' })
  })
  t.match(await answer.json(), { status: 'completed', output: [{ content: [{ text: 'from the model' }] }] })
  t.match(upstream.requests[0], { path: '/v1/chat/completions', headers: { authorization: 'Bearer sk-local' }, body: { model: 'local-model' } })

  const claw = await startFakeOpenClaw(t)
  const openclaw = await start({ GATEWAY_TOKEN: SECRET, GATEWAY_DATA_DIR: await dataDir(t), AGENT: 'openclaw', OPENCLAW_URL: claw.origin, OPENCLAW_TOKEN: OPENCLAW_TOKEN })
  t.teardown(() => openclaw.stop('SIGKILL'))
  const socket = await connect(openclaw.port)
  await socket.request('chat.send', { sessionKey: 'claw', message: 'hello', idempotencyKey: 'o-1' })
  const final = await socket.next(f => f.event === 'chat' && f.payload.state === 'final')
  t.equal(final.payload.message.content[0].text, 'echo: hello (turn 1 of agent:main:claw)')
  socket.close()
})

t.test('a missing or bad variable stops the start with one line saying which, and exit code 1', async t => {
  // Two real starts show the line and the exit code; the rest of the rules are checked in-process.
  for (const [env, line] of [
    [{ AGENT: 'openai' }, 'cannot start: AGENT=openai needs OPENAI_MODEL: the model to ask for, such as gpt-4o-mini\n'],
    [{ AGENT: 'openai', OPENAI_MODEL: 'm', OPENAI_BASE_URL: 'localhost:8000/v1' }, 'cannot start: Invalid session gateway option "openAIAgent.baseURL": an http(s) URL such as "https://api.openai.com/v1"\n']
  ] as Array<[Record<string, string>, string]>) {
    const { code, stderr, stdout } = await failedStart(env)
    t.equal(code, 1, line)
    t.equal(stderr, line)
    t.equal(stdout, '', 'nothing started')
  }
  const cases: Array<[Record<string, string>, string]> = [
    [{ AGENT: 'openai', OPENAI_MODEL: 'gpt-4o-mini' }, 'AGENT=openai needs OPENAI_API_KEY: the key for api.openai.com (or set OPENAI_BASE_URL for another server)'],
    [{ AGENT: 'openai', OPENAI_MODEL: 'm', OPENAI_API_KEY: 'k', OPENAI_API: 'soap' }, 'OPENAI_API must be "chat" or "responses", not "soap"'],
    [{ AGENT: 'openclaw' }, "AGENT=openclaw needs OPENCLAW_URL: the OpenClaw gateway's URL, such as http://127.0.0.1:18789"],
    [{ AGENT: 'gpt' }, 'AGENT must be echo, openai or openclaw, not "gpt"'],
    [{ ECHO_DELAY_MS: 'slow' }, 'ECHO_DELAY_MS must be a whole number of milliseconds, not "slow"']
  ]
  for (const [env, message] of cases) t.throws(() => agentFromEnv(env), new EnvError(message), message)
  t.match(agentFromEnv({ AGENT: 'openai', OPENAI_MODEL: 'm', OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', OPENAI_API: 'responses' }), { description: 'openai (responses API, model m, http://127.0.0.1:1/v1)' })
  t.match(agentFromEnv({}), { description: 'echo' })
})
