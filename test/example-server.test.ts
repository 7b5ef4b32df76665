import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { startFakeOpenClaw, OPENCLAW_TOKEN } from './fake-openclaw.js'
import { chatChunks, startFakeUpstream, writeSse } from './fake-upstream.js'
import { GatewaySocket } from './gateway-frames.js'
import { childEnv } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
// What `npm start` runs: plain `node` on the built example (`npm test` builds it first).
const [command, SERVER, ...extra] = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ')
t.same([command, extra], ['node', []], 'npm start is plain node, one file, no loader')

/** Starts the built example as `npm start` does (plain `node`, no loader), and reads its first lines. */
async function start (env: Record<string, string>): Promise<{ url: string, port: number, tokenLine: string, dataLine: string, pageLine: string, stop: (signal: NodeJS.Signals) => Promise<number | null> }> {
  const child = spawn(process.execPath, [SERVER as string], {
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
      if (out.split('\n').length > 5) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', code => reject(new Error(`exited with ${code}`)))
  })
  const [listening, tokenLine, dataLine, , pageLine] = out.split('\n') as [string, string, string, string, string]
  const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(listening)?.[1] as string
  return {
    url,
    port: Number(new URL(url).port),
    tokenLine,
    dataLine,
    pageLine,
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
  t.equal(server.pageLine, 'page: the demo portal')
  const token = server.tokenLine.slice('token: '.length)
  const res = await fetch(`${server.url}/nothing-here`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(res.status, 404, 'the server answers')
  t.equal(await server.stop('SIGTERM'), 0)
})

t.test('CONTROL_UI_ROOT puts OpenClaw\'s Control UI at / in place of the demo portal', async t => {
  const ui = await dataDir(t)
  await writeFile(join(ui, 'index.html'), '<!doctype html><title>OpenClaw Control</title>')
  const server = await start({ GATEWAY_DATA_DIR: await dataDir(t), CONTROL_UI_ROOT: ui })
  t.teardown(() => server.stop('SIGKILL'))
  t.equal(server.pageLine, `page: OpenClaw's Control UI from ${ui}`)
  const page = await fetch(`${server.url}/`)
  t.equal(page.status, 200)
  t.match(await page.text(), /<title>OpenClaw Control<\/title>/, 'the UI\'s page at /')
  t.equal((await fetch(`${server.url}/portal.js`)).status, 404, 'the demo portal is not served beside it')
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

/** Runs the example to its exit, expecting it not to start. */
async function failToStart (env: Record<string, string>): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [SERVER as string], { cwd: root, env: childEnv({ PORT: '0', LOG_LEVEL: 'warn', ...env }) })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr }
}

t.test('every start failure is one line on stderr that says what and how to fix it, and exit code 1', async t => {
  const dir = await dataDir(t)
  const taken = createServer()
  await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { taken.close() })
  const takenPort = String((taken.address() as AddressInfo).port)
  const file = join(dir, 'a-file')
  await writeFile(file, '')

  // A directory of its own for each: the file store serves one process per directory, and these run at once.
  const own = (name: string): string => join(dir, name)
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['port in use', { PORT: takenPort, GATEWAY_DATA_DIR: own('port') }, new RegExp(`^cannot start: port ${takenPort} on 127\\.0\\.0\\.1 is already in use: stop the process that holds it, or set PORT to another port`)],
    ['a data dir that is a file', { GATEWAY_DATA_DIR: file }, /^cannot start: GATEWAY_DATA_DIR=.*a-file cannot be used for sessions \(EEXIST: a file is in the way\): point GATEWAY_DATA_DIR at a directory/],
    ['a data dir under a file', { GATEWAY_DATA_DIR: join(file, 'sessions') }, /^cannot start: GATEWAY_DATA_DIR=.*sessions cannot be used for sessions \(ENOTDIR: a file is in the way\)/],
    ['a port that is not a number', { PORT: 'eighty', GATEWAY_DATA_DIR: own('number') }, /^cannot start: PORT="eighty" is not valid: set it to an integer from 0 to 65535, or unset it for 18789\n$/],
    ['an unknown log level', { LOG_LEVEL: 'loud', GATEWAY_DATA_DIR: own('level') }, /^cannot start: LOG_LEVEL="loud" is not valid: set it to one of fatal, error, warn, info, debug, trace, silent, or unset it for info\n$/],
    ['an empty token', { GATEWAY_TOKEN: '', GATEWAY_DATA_DIR: own('token') }, /^cannot start: GATEWAY_TOKEN is set but empty: give it a value, or unset it for a random token/],
    ['a negative delay', { ECHO_DELAY_MS: '-5', GATEWAY_DATA_DIR: own('delay') }, /^cannot start: ECHO_DELAY_MS="-5" is not valid/],
    ['a host that is not here', { HOST: '192.0.2.1', GATEWAY_DATA_DIR: own('host') }, /^cannot start: HOST=192\.0\.2\.1 is not an address of this machine: set HOST to one of its addresses/],
    ['a Control UI root with no Control UI', { CONTROL_UI_ROOT: own('no-ui'), GATEWAY_DATA_DIR: own('ui') }, /^cannot start: CONTROL_UI_ROOT=.*no-ui holds no Control UI \(its index\.html\): point it at the dist\/control-ui directory of the openclaw npm package/],
    ['an empty Control UI root', { CONTROL_UI_ROOT: ' ', GATEWAY_DATA_DIR: own('empty-ui') }, /^cannot start: CONTROL_UI_ROOT is set but empty: give it a value, or unset it for the demo portal at \//],
    ['a host name that does not resolve', { HOST: 'no-such-host.invalid', GATEWAY_DATA_DIR: own('resolve') }, /^cannot start: HOST=no-such-host\.invalid cannot be resolved: set HOST to an address of this machine/]
  ]
  // Each case is its own process; they run side by side.
  const results = await Promise.all(cases.map(async ([, env]) => await failToStart(env)))
  for (const [i, [what, , line]] of cases.entries()) {
    const result = results[i] as Awaited<ReturnType<typeof failToStart>>
    t.equal(result.code, 1, `${what}: exit code 1`)
    t.match(result.stderr, line, `${what}: says what and how to fix it`)
    t.equal(result.stderr.split('\n').length, 2, `${what}: in one line`)
    t.equal(result.stdout, '', `${what}: nothing else`)
  }
})

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

t.test('a missing or bad agent variable stops the start with one line saying which, and exit code 1', async t => {
  const dir = await dataDir(t)
  const cases: Array<[Record<string, string>, string]> = [
    [{ AGENT: 'openai' }, 'AGENT=openai needs OPENAI_MODEL: the model to ask for, such as gpt-4o-mini'],
    [{ AGENT: 'openai', OPENAI_MODEL: 'gpt-4o-mini' }, 'AGENT=openai needs OPENAI_API_KEY: the key for api.openai.com (or set OPENAI_BASE_URL for another server)'],
    [{ AGENT: 'openai', OPENAI_MODEL: 'm', OPENAI_BASE_URL: 'localhost:8000/v1' }, 'Invalid session gateway option "openAIAgent.baseURL": an http(s) URL such as "https://api.openai.com/v1"'],
    [{ AGENT: 'openai', OPENAI_MODEL: 'm', OPENAI_API_KEY: 'k', OPENAI_API: 'soap' }, 'OPENAI_API="soap" is not valid: set it to one of chat, responses, or unset it for chat'],
    [{ AGENT: 'openclaw' }, "AGENT=openclaw needs OPENCLAW_URL: the OpenClaw gateway's URL, such as http://127.0.0.1:18789"],
    [{ AGENT: 'gpt' }, 'AGENT="gpt" is not valid: set it to one of echo, openai, openclaw, or unset it for echo'],
    [{ ECHO_DELAY_MS: 'slow' }, 'ECHO_DELAY_MS="slow" is not valid: set it to an integer from 0 to 60000, or unset it for 0']
  ]
  // Each case is its own process; they run side by side.
  const results = await Promise.all(cases.map(async ([env]) => await failToStart({ ...env, GATEWAY_DATA_DIR: dir })))
  for (const [i, [, line]] of cases.entries()) {
    const result = results[i] as Awaited<ReturnType<typeof failToStart>>
    t.equal(result.code, 1, line)
    t.equal(result.stderr, `cannot start: ${line}\n`)
    t.equal(result.stdout, '', 'nothing started')
  }
})
