import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { migrate } from '../lib/postgres/index.js'
import { childEnv } from './helpers.js'
import { startPostgres } from './postgres-server.js'

// The example gateway with DATABASE_URL set: sessions in PostgreSQL, a restart continues
// them, and a database it cannot use is one line and exit code 1, as every start failure is.

const root = fileURLToPath(new URL('..', import.meta.url))
const SERVER = join(root, 'build', 'examples', 'server.js') // what `npm start` runs (`npm test` builds it)
const server = await startPostgres(t)
const TOKEN = 'example-postgres-token'

/** The exit code, or 'still running' after 20 s (a server that started when it should not have). */
async function exitOf (started: Started): Promise<number | null | string> {
  let timer: NodeJS.Timeout | undefined
  const running = new Promise<string>(resolve => { timer = setTimeout(() => resolve('still running'), 20_000) })
  try {
    return await Promise.race([started.code, running])
  } finally {
    clearTimeout(timer)
  }
}

interface Started { lines: string[], code: Promise<number | null>, stop: () => Promise<number | null> }

/** Starts the built example; resolves with its first four lines, or once it exits. */
async function start (env: Record<string, string>): Promise<Started> {
  const child = spawn(process.execPath, [SERVER], { cwd: root, env: childEnv({ PORT: '0', LOG_LEVEL: 'warn', GATEWAY_TOKEN: TOKEN, ...env }), stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  const code = once(child, 'exit').then(([exitCode]) => exitCode as number | null)
  for (let waited = 0; waited < 30_000 && out.split('\n').length <= 4 && child.exitCode === null; waited += 50) await new Promise(resolve => setTimeout(resolve, 50))
  return {
    lines: out.split('\n').filter(line => line !== ''),
    code,
    stop: async () => {
      child.kill('SIGTERM')
      return await code
    }
  }
}

t.test('a database without the tables: one line saying to run the migration, exit code 1', async t => {
  const started = await start({ DATABASE_URL: server.url })
  t.equal(await exitOf(started), 1)
  t.match(started.lines, [/^cannot start: DATABASE_URL: the session gateway tables in PostgreSQL .* are at version 0 .*npm run postgres:migrate/])
  t.equal(started.lines.length, 1, 'one line')
})

t.test('a database that does not answer: one line naming DATABASE_URL', async t => {
  const started = await start({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/postgres' })
  t.equal(await exitOf(started), 1)
  t.match(started.lines, [/^cannot start: DATABASE_URL cannot be used \(The session store is unavailable: connect ECONNREFUSED .*\): check that PostgreSQL runs there/])
})

t.test('DATABASE_URL set: sessions live in PostgreSQL, and a restarted server continues them', async t => {
  await migrate({ connectionString: server.url })
  const ask = async (url: string, input: string): Promise<Response> => await fetch(`${url}/v1/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-openclaw-session-key': 'demo' },
    body: JSON.stringify({ model: 'openclaw', input })
  })
  const urlOf = (lines: string[]): string => /listening on (http:\/\/\S+)/.exec(lines[0] as string)?.[1] as string

  const first = await start({ DATABASE_URL: server.url })
  t.equal(first.lines[2], 'sessions in PostgreSQL (DATABASE_URL)')
  t.equal((await ask(urlOf(first.lines), 'hello postgres')).status, 200)
  t.equal(await first.stop(), 0, 'stops cleanly')
  const { rows } = await server.pool(1).query('SELECT key, preview, length::int FROM fsg_sessions')
  t.same(rows, [{ key: 'agent:main:demo', preview: 'hello postgres', length: 2 }], 'the session is a row in the database')

  const second = await start({ DATABASE_URL: server.url })
  const url = urlOf(second.lines)
  t.equal((await ask(url, 'and again')).status, 200)
  const history = await (await fetch(`${url}/v1/sessions/${encodeURIComponent('agent:main:demo')}/messages`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { messages: Array<{ content: Array<{ text: string }> }> }
  t.same(history.messages.map(message => message.content[0]?.text), ['hello postgres', 'hello postgres', 'and again', 'and again'], 'the restarted server continued the session')
  t.equal(await second.stop(), 0)
})
