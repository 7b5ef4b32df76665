import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { appendFile, cp, mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { basename, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { FileStore, type Agent, type OpenFile, type StoreContext, type TranscriptEntry } from '../lib/index.js'
import { storeContract } from '../lib/testing/index.js'
import { buildApp, childEnv, gatedAgent, TOKEN, user } from './helpers.js'

/** A file store that closes (its open transcript handles) when the test file ends. */
function fileStore (options: ConstructorParameters<typeof FileStore>[0]): FileStore {
  const store = new FileStore(options)
  t.teardown(() => store.close())
  return store
}

async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-file-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

storeContract({ test: (name, fn) => t.test(`file store: ${name}`, fn), makeStore: async () => fileStore({ dir: await tempDir() }) })

const fixture = fileURLToPath(new URL('fixtures/openclaw-state', import.meta.url))
const MAIN = 'agent:main:main'
/** Before every `updatedAt` in the fixture's sessions.json, in seconds. */
const FIXTURE_WRITTEN = 1_760_000_000

async function openclawCopy (): Promise<string> {
  const dir = await tempDir()
  await cp(fixture, dir, { recursive: true })
  // As OpenClaw left them: no transcript written after the index last said (a copy is written now).
  const sessions = join(dir, 'agents', 'main', 'sessions')
  for (const name of await readdir(sessions)) {
    if (name.endsWith('.jsonl')) await utimes(join(sessions, name), FIXTURE_WRITTEN, FIXTURE_WRITTEN)
  }
  return dir
}

async function lines (path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').filter(line => line !== '')
}

t.test('an OpenClaw state directory is listed, read and continued; OpenClaw can still read it', async t => {
  const dir = await openclawCopy()
  const seen: unknown[] = []
  const agent: Agent = {
    async * respond (request) {
      seen.push(...await request.history())
      yield { type: 'text', delta: 'Still raining.' }
    }
  }
  const app = await buildApp(t, { store: fileStore({ dir }), agent })
  const gw = app.sessionGateway

  const { rows } = await gw.list()
  t.same(rows.map(row => [row.key, row.label, row.preview]), [
    [MAIN, undefined, undefined],
    ['agent:main:telegram:direct:4242', 'Telegram with Ana', undefined],
    ['agent:main:unstarted', undefined, undefined]
  ], 'newest first; an entry whose session id is not a safe file name is left out')
  t.same((await gw.history('agent:main:unstarted', { limit: 5 })).entries, [], 'a session without a transcript file yet is empty')
  const history = await gw.history(MAIN, { limit: 50 })
  t.same(history.entries.map(entry => entry.type), ['model_change', 'thinking_level_change', 'message', 'message', 'message', 'message', 'custom'])
  t.match(history.entries[3]?.message, { role: 'assistant', content: [{ type: 'text' }, { type: 'toolCall', id: 'toolu_01A', name: 'weather', arguments: { city: 'Oslo' } }] })
  t.match(history.entries[4]?.message, { role: 'toolResult', toolCallId: 'toolu_01A', content: [{ text: 'Oslo: 4°C, light rain' }] })

  const result = await (await gw.send({ sessionKey: MAIN, agentId: 'main', input: [user('And tomorrow?')] })).result
  t.equal(result.state, 'final')
  t.same((seen as Array<{ role: string }>).map(message => message.role), ['user', 'assistant', 'toolResult', 'assistant'],
    'the agent sees the whole earlier conversation, tool call and result included')

  await app.close() // writes what the index still owes
  const sessions = join(dir, 'agents', 'main', 'sessions')
  const transcript = await lines(join(sessions, '6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b.jsonl'))
  t.equal(transcript.length, 10)
  const [question, answer] = transcript.slice(-2).map(line => JSON.parse(line))
  t.match(question, { type: 'message', id: /^[0-9a-f]{8}$/, parentId: '0b1c2d3e', timestamp: String, message: { role: 'user', content: [{ type: 'text', text: 'And tomorrow?' }] } },
    'new rows chain onto the last OpenClaw entry, in OpenClaw\'s own shape')
  t.match(answer, { type: 'message', parentId: question.id, message: { role: 'assistant', stopReason: 'stop', content: [{ type: 'text', text: 'Still raining.' }] } })

  const index = JSON.parse(await readFile(join(sessions, 'sessions.json'), 'utf8'))
  t.match(index[MAIN], { sessionId: '6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b', systemSent: true, thinkingLevel: 'low', skillsSnapshot: { skills: [{ name: 'weather' }] }, lastMessagePreview: 'Still raining.' },
    'fields we do not know survive the rewrite')
  t.ok(index[MAIN].updatedAt > 1760000300000)
  t.same(index['agent:main:broken'], { sessionId: '../../../etc/passwd', updatedAt: 1760000000000 }, 'an entry we cannot use stays as it was')
})

t.test('a torn last line is skipped on read, and the next append starts on a fresh line', async t => {
  const dir = await openclawCopy()
  const store = fileStore({ dir })
  const path = join(dir, 'agents', 'main', 'sessions', '0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d.jsonl')
  await appendFile(path, '[1,2]\n"a string"\n{"type":"message","id":"torn0001","parentId":"11aa22bb","message":{"role":"assis')
  const key = 'agent:main:telegram:direct:4242'
  t.same((await store.read(key, { limit: 10 })).entries.map(e => e.id), ['11aa22bb'])
  await store.append(key, [{ type: 'message', id: 'next0001', parentId: '11aa22bb', timestamp: new Date().toISOString(), message: user('after the crash') }])
  t.same((await store.read(key, { limit: 10 })).entries.map(e => e.id), ['11aa22bb', 'next0001'])
  const all = await lines(path)
  t.equal(all.length, 6, 'lines that are not entries are skipped, and kept')
  t.throws(() => JSON.parse(all[4] as string), 'the torn line is still there, alone on its line')
  t.equal(JSON.parse(all[5] as string).id, 'next0001')
})

t.test('reads from the tail: paging a long transcript returns every entry once, in order', async t => {
  const store = fileStore({ dir: await tempDir(), fsync: false })
  const key = 'agent:main:long'
  await store.ensure(key, 'main')
  const big = 'x'.repeat(3000) // entries that straddle the read chunks
  for (let batch = 0; batch < 10; batch++) {
    await store.append(key, Array.from({ length: 50 }, (_, i) => ({
      type: 'message', id: `m${batch * 50 + i}`, parentId: null, timestamp: new Date().toISOString(), message: user(`${batch * 50 + i} ${big}`)
    })))
  }
  const ids: string[] = []
  let before: string | undefined
  do {
    const page = await store.read(key, { limit: 37, ...(before === undefined ? {} : { before }) })
    ids.unshift(...page.entries.map(e => e.id))
    before = page.before
  } while (before !== undefined)
  t.same(ids, Array.from({ length: 500 }, (_, i) => `m${i}`))
})

t.test('keys and ids never make the store touch a path outside its directory', async t => {
  const parent = await tempDir()
  const dir = join(parent, 'state')
  const store = fileStore({ dir })
  const hostile = ['agent:../evil:x', 'agent:nocolon', 'agent:main:../../escape', 'agent:main:/etc/passwd', 'agent:main:..\\..\\escape', 'agent:main:nul\u0000byte', `agent:main:${'a'.repeat(5000)}`, 'global/../../x']
  for (const key of hostile) {
    const row = await store.ensure(key, 'main')
    await store.append(key, [{ type: 'message', id: 'h0000001', parentId: null, timestamp: new Date().toISOString(), message: user('hi') }])
    t.same((await store.read(key, { limit: 5 })).entries.map(e => e.id), ['h0000001'], JSON.stringify(key.slice(0, 40)))
    t.match(row.sessionId, /^[0-9a-f-]{36}$/, 'the file is named by a fresh uuid, never by the key')
  }
  await t.rejects(store.ensure('global', '../evil'), { code: 'FSG_INVALID_INPUT' })
  await t.rejects(store.ensure('weird', 'a/b'), { code: 'FSG_INVALID_INPUT' })
  await t.rejects(store.read('agent:main:../../escape', { limit: 5, sessionId: '../../../../etc/passwd' }), { code: 'FSG_SESSION_NOT_FOUND' })
  await t.rejects(store.putRecord('response', '../../escape', {}), { code: 'FSG_INVALID_INPUT' })
  await t.rejects(store.getRecord('response', 'a\u0000b'), { code: 'FSG_INVALID_INPUT' })
  // An index edited by hand (or by someone hostile) cannot lead us outside either.
  await store.close() // let the index writes that follow the appends land before editing by hand
  const index = join(dir, 'agents', 'main', 'sessions', 'sessions.json')
  const edited = JSON.parse(await readFile(index, 'utf8'))
  edited['agent:main:../../escape'].gatewayGenerations = ['../../../../victim']
  await writeFile(index, JSON.stringify(edited))
  await writeFile(join(parent, 'victim.jsonl'), 'precious')
  await t.rejects(store.read('agent:main:../../escape', { limit: 5, sessionId: '../../../../victim' }), { code: 'FSG_INVALID_INPUT' })
  t.equal(await store.delete('agent:main:../../escape'), true)
  t.equal(await readFile(join(parent, 'victim.jsonl'), 'utf8'), 'precious', 'a delete renames only what is ours')
  await rm(join(parent, 'victim.jsonl'))
  await store.close()
  t.same(await readdir(parent), ['state'], 'nothing was created beside the directory')
  t.same((await walk(dir)).filter(path => !path.startsWith(dir)), [])
})

t.test('records: a line per session and per hour finds each; delete and sweep remove the lists they finish; a record that cannot be read is an error, not absent', async t => {
  const dir = await tempDir()
  const store = fileStore({ dir })
  const key = 'agent:main:kept'
  await store.ensure(key, 'main')
  const expiresAt = Date.now() + 60_000
  await store.putRecord('response', 'resp_1', { n: 1 }, { sessionKey: key, expiresAt })
  const records = join(dir, 'records')
  const [list] = await readdir(join(records, 'sessions'))
  t.match(list, /^[0-9a-f]{64}\.jsonl$/, 'a session key is hashed into a file name')
  t.same(await readdir(join(records, 'expiry')), [`${Math.floor(expiresAt / 3_600_000)}.jsonl`])
  await appendFile(join(records, 'sessions', list as string), '{"kind":"resp') // a line a crash tore
  t.equal(await store.delete(key), true)
  t.same(await readdir(join(records, 'sessions')), [], 'the list went with the session')
  t.same(await readdir(join(records, 'response')), [], 'and so did its record')
  t.equal(await store.sweepRecords(expiresAt + 3_600_000, 10), 0)
  t.same(await readdir(join(records, 'expiry')), [], 'an hour that is over is dropped')
  await mkdir(join(records, 'response', 'resp_2.json'))
  await t.rejects(store.getRecord('response', 'resp_2'), { code: 'EISDIR' })
})

t.test('a record written before records had a session and an expiry (the value alone) is still read', async t => {
  const dir = await tempDir()
  await mkdir(join(dir, 'records', 'response'), { recursive: true })
  const legacy = { principal: 'p', sessionKey: 'agent:main:old', agentId: 'main', sessionId: 's', cursor: 's:0', fields: {}, createdAt: 1 }
  await writeFile(join(dir, 'records', 'response', 'resp_old.json'), JSON.stringify(legacy))
  await writeFile(join(dir, 'records', 'response', 'resp_null.json'), 'null')
  await writeFile(join(dir, 'records', 'response', 'resp_text.json'), '"text"')
  const store = fileStore({ dir })
  t.same(await store.getRecord('response', 'resp_old'), legacy)
  t.equal(await store.getRecord('response', 'resp_null'), null, 'whatever JSON it held')
  t.equal(await store.getRecord('response', 'resp_text'), 'text')
})

t.test('files are private to their owner: 0600 files, 0700 folders', async t => {
  const dir = await tempDir()
  const store = fileStore({ dir })
  await store.ensure('agent:main:private', 'main')
  await store.append('agent:main:private', [{ type: 'message', id: 'p0000001', parentId: null, timestamp: new Date().toISOString(), message: user('secret') }])
  await store.putRecord('response', 'resp_1', { ok: true })
  await store.close() // the index write that follows the append
  for (const path of await walk(dir)) {
    const mode = (await stat(path)).mode & 0o777
    t.equal(mode, (await stat(path)).isDirectory() ? 0o700 : 0o600, path.slice(dir.length))
  }
})

t.test('a damaged index names its file and what to do, at start and on every use; other agents are served as usual', async t => {
  const dir = await openclawCopy()
  const healthy = fileStore({ dir })
  await healthy.ensure('agent:ops:fine', 'ops')
  await healthy.close()
  const index = join(dir, 'agents', 'main', 'sessions', 'sessions.json')
  await writeFile(index, '{"agent:main:main": {"sessionId": "6f1c')
  const logged: Array<{ file: string, message: string }> = []
  const logger = { error: (obj: { file: string }, message: string) => { logged.push({ file: obj.file, message }) }, warn: () => {} } as unknown as StoreContext['logger']

  const store = fileStore({ dir })
  await store.open({ logger })
  const explained = /^session gateway: The session index agents\/main\/sessions\/sessions\.json cannot be read \(.*JSON.*\): the sessions of agent "main" are unavailable until it is repaired\. Restore it from a backup, or repair it by hand \(the gateway leaves it as it is\); other agents' sessions are served as usual$/
  t.match(logged, [{ file: index, message: explained }], 'reported when the store opens, with the full path')
  t.same((await store.list({ limit: 10 })).rows.map(row => row.key), ['agent:ops:fine'], 'the list holds the other agents\' sessions')
  t.equal(logged.length, 2, 'and says again what it left out')
  const refusal = { code: 'FSG_STORE_CORRUPT', statusCode: 503, message: /^The session index agents\/main\/sessions\/sessions\.json cannot be read/ }
  await t.rejects(store.ensure('agent:main:new', 'main'), refusal, 'no fresh start over the damaged index')
  await t.rejects(store.get(MAIN), refusal)
  t.equal(logged.length, 4, 'every use is reported')
  await store.append('agent:ops:fine', [{ type: 'message', id: 'ops00001', parentId: null, timestamp: new Date().toISOString(), message: user('still here') }])
  t.equal((await store.read('agent:ops:fine', { limit: 5 })).entries[0]?.id, 'ops00001', 'the other agent reads and writes as usual')
  t.equal(await readFile(index, 'utf8'), '{"agent:main:main": {"sessionId": "6f1c', 'left as it was, for a person to repair')
  await writeFile(index, '[]')
  await t.rejects(store.get(MAIN), { code: 'FSG_STORE_CORRUPT', message: /\(it is not a JSON object\)/ })
})

t.test('a damaged index over the wire: the client is told, the log names the file at start and per call, other agents answer', async t => {
  const dir = await openclawCopy()
  const healthy = fileStore({ dir })
  await healthy.ensure('agent:ops:fine', 'ops')
  await healthy.close()
  const index = join(dir, 'agents', 'main', 'sessions', 'sessions.json')
  await writeFile(index, '{"agent:main:main": {"sess')
  const lines: Array<{ level: number, msg: string, file?: string }> = []
  const stream = { write: (line: string) => { lines.push(JSON.parse(line)) } }
  const app = await buildApp(t, { store: fileStore({ dir }) }, { logger: { level: 'error', stream } })
  const named = (): number => lines.filter(line => line.file === index && line.msg.includes('Restore it from a backup')).length
  t.equal(named(), 1, 'the start names the file')
  const post = async (headers: Record<string, string>): Promise<{ statusCode: number, body: any }> => {
    const res = await app.inject({ method: 'POST', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers }, payload: { input: 'hello', store: false } })
    return { statusCode: res.statusCode, body: res.json() }
  }
  t.match(await post({ 'x-openclaw-session-key': 'main' }), { statusCode: 503, body: { error: { code: 'store_corrupt', message: /agents\/main\/sessions\/sessions\.json cannot be read/ } } })
  t.equal(named(), 2, 'and so does each call that needs it')
  t.match(await post({ 'x-openclaw-session-key': 'fine', 'x-openclaw-agent-id': 'ops' }), { statusCode: 200, body: { status: 'completed' } }, 'another agent answers')
})

t.test('a lock left by a dead process is broken; a live one is waited for, then given up on', async t => {
  const dir = await openclawCopy()
  const lock = join(dir, 'agents', 'main', 'sessions', 'sessions.json.lock')
  await writeFile(lock, '999999999') // no such process
  const store = fileStore({ dir, lockTimeoutMs: 200 })
  await store.patch(MAIN, { label: 'after a crash' })
  t.equal((await store.get(MAIN))?.label, 'after a crash')

  await writeFile(lock, String(process.pid)) // alive: this very process
  const started = Date.now()
  await t.rejects(store.patch(MAIN, { label: 'blocked' }), { code: 'FSG_STORE_BUSY' })
  t.ok(Date.now() - started >= 150, 'it waited before giving up')
  await writeFile(lock, '') // being written by its owner right now
  await t.rejects(store.patch(MAIN, { label: 'still blocked' }), { code: 'FSG_STORE_BUSY' })
  await utimes(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000))
  await store.patch(MAIN, { label: 'stale lock broken' })
  t.equal((await store.get(MAIN))?.label, 'stale lock broken')
})

async function walk (dir: string): Promise<string[]> {
  const found: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    found.push(path)
    if (entry.isDirectory()) found.push(...await walk(path))
  }
  return found
}

/** A gateway process holding a file store on `dir` (test/children/hold-store.ts): its first line, and its exit. */
function holdStore (t: Test, dir: string): { child: ChildProcess, line: Promise<string>, exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/children/hold-store.ts', dir], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: childEnv(),
    stdio: ['pipe', 'pipe', 'inherit']
  })
  const exit = once(child, 'exit').then(([code]) => code as number | null)
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000) // bounded, whatever happens
  void exit.then(() => clearTimeout(timer))
  t.teardown(() => { child.kill('SIGKILL') })
  const line = new Promise<string>(resolve => {
    let out = ''
    child.stdout?.on('data', chunk => {
      out += String(chunk)
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')))
    })
    void exit.then(() => resolve(out))
  })
  return { child, line, exit }
}

t.test('one process per directory: a second is refused, naming the holder; a dead holder is replaced; close gives the directory back', async t => {
  const dir = await tempDir()
  const lock = join(dir, 'session-gateway.lock')
  const first = holdStore(t, dir)
  const ready = await first.line
  t.match(ready, /^ready \d+$/, 'the first process serves')
  const pid = Number(ready.split(' ')[1])

  const second = holdStore(t, dir)
  t.match(await second.line, new RegExp(`^refused FSG_STORE_LOCKED The file store cannot open ${dir}: it is in use by another gateway process: pid ${pid} on ${hostname()}, since \\S+\\. Stop that one, or give this one its own directory; several processes need the Redis session log and a store they share\\.$`),
    'the second is refused, and told who holds the directory and what to do')
  t.equal(await second.exit, 2, 'and does not start')

  first.child.kill('SIGKILL')
  await first.exit
  t.match(JSON.parse(await readFile(lock, 'utf8')), { pid, host: hostname() }, 'a killed process leaves its lock behind')
  const third = holdStore(t, dir)
  t.match(await third.line, /^ready \d+$/, 'the next process breaks the lock of the dead one, and serves')
  third.child.stdin?.end()
  t.equal(await third.exit, 0)
  await t.rejects(stat(lock), { code: 'ENOENT' }, 'a process that closes gives the directory back')

  const store = fileStore({ dir })
  t.same((await store.list({ limit: 10 })).rows.map(row => row.key).sort(), [`agent:main:process-${pid}`, `agent:main:process-${third.child.pid as number}`].sort(),
    'what each process wrote, one after the other, is there')
})

t.test('a second gateway on the directory, in the same process, does not start', async t => {
  const dir = await tempDir()
  await buildApp(t, { store: fileStore({ dir }) })
  await t.rejects(buildApp(t, { store: fileStore({ dir }) }), { code: 'FSG_STORE_LOCKED', message: /already open in this process/ })
})

t.test('a store that cannot open for another reason lets the gateway start, and says why in the log', async t => {
  const parent = await tempDir()
  await writeFile(join(parent, 'in-the-way'), '')
  const lines: Array<{ msg: string, err?: { code?: string } }> = []
  const stream = { write: (line: string) => { lines.push(JSON.parse(line)) } }
  const app = await buildApp(t, { store: fileStore({ dir: join(parent, 'in-the-way') }) }, { logger: { level: 'error', stream } })
  t.match(lines, [{ msg: 'session gateway: the store could not open; it is tried again on each call', err: { code: 'EEXIST' } }])
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, 'not ready')
})

t.test('the directory lock: a second store in this process, another host, a lock being written, a previous life of this pid', async t => {
  const dir = await tempDir()
  const lock = join(dir, 'session-gateway.lock')
  const one = fileStore({ dir })
  await one.ensure('agent:main:one', 'main')
  const two = fileStore({ dir })
  await t.rejects(two.list({ limit: 5 }), { code: 'FSG_STORE_LOCKED', message: /it is already open in this process \(one FileStore per directory: share that one\)/ })
  await one.close()
  t.equal((await two.list({ limit: 5 })).rows.length, 1, 'once the first closes, the second opens')
  await two.close()

  await writeFile(lock, JSON.stringify({ pid: 4242, host: 'elsewhere', createdAt: '2026-11-30T10:00:00.000Z' }))
  await t.rejects(fileStore({ dir }).list({ limit: 5 }), {
    code: 'FSG_STORE_LOCKED',
    message: `The file store cannot open ${dir}: it is in use by a gateway process on another host: pid 4242 on elsewhere, since 2026-11-30T10:00:00.000Z. ` +
      `Stop that one, or give this one its own directory; several processes need the Redis session log and a store they share. If that process is gone, delete ${lock}.`
  }, 'a holder on another host cannot be checked: refused, with what to do if it is gone')

  await writeFile(lock, JSON.stringify({ pid: 4242 }))
  await t.rejects(fileStore({ dir }).list({ limit: 5 }), { code: 'FSG_STORE_LOCKED', message: /on another host: pid 4242 on an unnamed host\. / })
  // A live process on this host (the test runner that started us stands in for another gateway).
  await writeFile(lock, JSON.stringify({ pid: process.ppid, host: hostname() }))
  await t.rejects(fileStore({ dir }).list({ limit: 5 }), {
    code: 'FSG_STORE_LOCKED',
    message: `The file store cannot open ${dir}: it is in use by another gateway process: pid ${process.ppid} on ${hostname()}. ` +
      'Stop that one, or give this one its own directory; several processes need the Redis session log and a store they share.'
  })

  await writeFile(lock, '')
  await t.rejects(fileStore({ dir }).list({ limit: 5 }), { code: 'FSG_STORE_LOCKED', message: /another process is opening it right now/ })
  await utimes(lock, new Date(Date.now() - 5000), new Date(Date.now() - 5000))
  const afterEmpty = fileStore({ dir })
  t.equal((await afterEmpty.list({ limit: 5 })).rows.length, 1, 'a lock that never named its process is broken once it is old')
  await afterEmpty.close()

  // This pid, not held here: left by an earlier process with the same pid (pid 1 in a restarted container).
  await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), createdAt: '2026-11-30T10:00:00.000Z' }))
  const again = fileStore({ dir })
  t.equal((await again.list({ limit: 5 })).rows.length, 1)
  t.match(JSON.parse(await readFile(lock, 'utf8')), { pid: process.pid, host: hostname() })
  t.not(JSON.parse(await readFile(lock, 'utf8')).createdAt, '2026-11-30T10:00:00.000Z', 'taken anew')
})

t.test('sessions created and acknowledged survive a kill -9 of the process, however far their index write got', async t => {
  const dir = await tempDir()
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/children/create-sessions.ts', dir, '400'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000) // bounded, whatever happens
  const acknowledged: string[] = []
  let rest = ''
  child.stdout.on('data', chunk => {
    rest += String(chunk)
    const lines = rest.split('\n')
    rest = lines.pop() as string
    acknowledged.push(...lines.filter(line => line.startsWith('agent:')))
    // Killed mid-way: creations, index writes and journal emptyings are all in flight.
    if (acknowledged.length >= 150) child.kill('SIGKILL')
  })
  await once(child, 'exit')
  clearTimeout(timer)
  t.ok(acknowledged.length >= 150, `${acknowledged.length} sessions were acknowledged before the kill`)

  const store = fileStore({ dir })
  const listed = new Set((await store.list({ limit: 1000 })).rows.map(row => row.key))
  t.same(acknowledged.filter(key => !listed.has(key)), [], 'every acknowledged session is there')
  await store.close()
  const index = JSON.parse(await readFile(join(dir, SESSIONS, 'sessions.json'), 'utf8'))
  t.same(acknowledged.filter(key => index[key] === undefined), [], 'and in sessions.json, for OpenClaw, once the store has opened')
  t.equal((await stat(join(dir, SESSIONS, 'sessions.json.journal'))).size, 0, 'the journal is empty again')
})

t.test('a session created while the index is being written keeps its journal line until the next write takes it in', async t => {
  const dir = await tempDir()
  // Each index write's flush waits for the test's word, so a creation lands in the middle of one.
  const gates: Array<{ reached: () => void, open: Promise<void> }> = []
  const gate = (): { reached: Promise<void>, release: () => void } => {
    let reached = (): void => {}
    let release = (): void => {}
    gates.push({ reached: () => reached(), open: new Promise(resolve => { release = resolve }) })
    return { reached: new Promise(resolve => { reached = resolve }), release }
  }
  const openFile: OpenFile = async (path, flags, mode) => {
    const handle = await open(path, flags, mode)
    if (/^sessions\.json\.\d+\.[0-9a-f]{8}\.tmp$/.test(basename(path))) { // the index's temp file, not the journal's
      const datasync = handle.datasync.bind(handle)
      handle.datasync = async () => {
        const next = gates.shift()
        next?.reached()
        await next?.open
        await datasync()
      }
    }
    return handle
  }
  const store = fileStore({ dir, openFile })
  const journal = join(dir, SESSIONS, 'sessions.json.journal')
  const keys = async (): Promise<string[]> => (await readFile(journal, 'utf8')).split('\n').filter(Boolean).map(line => JSON.parse(line).key)
  const firstWrite = gate()
  const secondWrite = gate()
  await store.ensure('agent:main:first', 'main')
  await firstWrite.reached // the index write that takes `first` in is under way
  await store.ensure('agent:main:second', 'main')
  t.same(await keys(), ['agent:main:first', 'agent:main:second'])
  firstWrite.release()
  await secondWrite.reached // the first write is done; the next one waits, so `second` stays pending
  // The journal is emptied just after the write that took `first` in (bounded wait).
  for (let i = 0; i < 200 && (await keys()).includes('agent:main:first'); i++) await new Promise(resolve => setTimeout(resolve, 5))
  t.same(await keys(), ['agent:main:second'], 'what the index has left the journal; what it does not yet, stays')
  secondWrite.release()
  await store.close()
  t.match(JSON.parse(await readFile(join(dir, SESSIONS, 'sessions.json'), 'utf8')), { 'agent:main:first': {}, 'agent:main:second': {} })
  t.same(await keys(), [], 'and the next write empties it')
})

t.test('the journal, read when the store opens: what the index lacks is taken in; what it has, what was deleted since, and a torn line are not', async t => {
  const dir = await tempDir()
  const sessions = join(dir, SESSIONS)
  await mkdir(sessions, { recursive: true })
  const id = (n: number): string => `00000000-0000-4000-8000-00000000000${n}`
  const entry = (n: number): Record<string, unknown> => ({ sessionId: id(n), updatedAt: 1_760_000_000_000 + n, createdAt: 1_760_000_000_000 + n })
  await writeFile(join(sessions, 'sessions.json'), JSON.stringify({ 'agent:main:indexed': { ...entry(3), label: 'kept' } }))
  for (const n of [1, 3]) await writeFile(join(sessions, `${id(n)}.jsonl`), `{"type":"session","id":"${id(n)}"}\n`)
  await writeFile(join(sessions, 'sessions.json.journal'), [
    { key: 'agent:main:lost', entry: entry(1) }, // created, then the crash came before the index write
    { key: 'agent:main:deleted', entry: entry(2) }, // its transcript is archived: deleted since
    { key: 'agent:main:indexed', entry: entry(3) }, // the index took it in before the crash
    { key: 'agent:main:bad', entry: { sessionId: '../../escape', updatedAt: 1 } },
    'not a creation'
  ].map(line => JSON.stringify(line)).join('\n') + '\n{"key":"agent:main:torn","entry":{"sessionI')
  const store = fileStore({ dir })
  t.same((await store.list({ limit: 10 })).rows.map(row => [row.key, row.label]), [['agent:main:indexed', 'kept'], ['agent:main:lost', undefined]])
  t.match(JSON.parse(await readFile(join(sessions, 'sessions.json'), 'utf8')), { 'agent:main:lost': { sessionId: id(1) }, 'agent:main:indexed': { label: 'kept' } },
    'written to sessions.json before the store serves')
  t.equal(await readFile(join(sessions, 'sessions.json.journal'), 'utf8'), '', 'and the journal emptied')
  await store.close()

  // A journal that cannot be read at all might hold sessions: the store does not open without it.
  await rm(join(sessions, 'sessions.json.journal'))
  await mkdir(join(sessions, 'sessions.json.journal'))
  const blocked = fileStore({ dir })
  await t.rejects(blocked.list({ limit: 10 }), { code: 'EISDIR' })
  await t.rejects(blocked.list({ limit: 10 }), { code: 'EISDIR' }, 'the next call tries again, and says the same')
  await rm(join(sessions, 'sessions.json.journal'), { recursive: true })
  t.equal((await blocked.list({ limit: 10 })).rows.length, 2, 'and opens once the journal can be read')
})

t.test('disk errors other than "not there" are reported, never taken for an empty store', async t => {
  const agentsIsFile = await tempDir()
  await writeFile(join(agentsIsFile, 'agents'), '')
  await t.rejects(fileStore({ dir: agentsIsFile }).list({ limit: 5 }), { code: 'ENOTDIR' })

  const agentIsFile = await tempDir()
  await mkdir(join(agentIsFile, 'agents'))
  await writeFile(join(agentIsFile, 'agents', 'main'), '')
  await t.rejects(fileStore({ dir: agentIsFile }).get('agent:main:x'), { code: 'ENOTDIR' })

  const indexIsFolder = await tempDir()
  await mkdir(join(indexIsFolder, 'agents', 'main', 'sessions', 'sessions.json'), { recursive: true })
  await t.rejects(fileStore({ dir: indexIsFolder }).get('agent:main:x'), { code: 'EISDIR' })

  const loop = await openclawCopy()
  const transcript = join(loop, 'agents', 'main', 'sessions', '6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b.jsonl')
  await rm(transcript)
  await symlink(transcript, transcript)
  await t.rejects(fileStore({ dir: loop }).read(MAIN, { limit: 5 }), { code: 'ELOOP' })
  t.throws(() => fileStore({ dir: '' }), { code: 'FSG_INVALID_INPUT' })
})

t.test('an index write that cannot get the lock is kept and written on close', async t => {
  const dir = await openclawCopy()
  const index = join(dir, 'agents', 'main', 'sessions', 'sessions.json')
  const lock = `${index}.lock`
  const store = fileStore({ dir, lockTimeoutMs: 50 })
  await writeFile(lock, String(process.pid)) // held by a live process
  await store.append(MAIN, [{ type: 'custom', id: 'l0000000', parentId: null, timestamp: new Date().toISOString() }])
  await store.append(MAIN, [{ type: 'message', id: 'l0000001', parentId: null, timestamp: new Date().toISOString(), message: user('while locked') }])
  await new Promise(resolve => setTimeout(resolve, 150))
  t.equal((await store.get(MAIN))?.preview, 'while locked', 'this process still sees it')
  t.notMatch(await readFile(index, 'utf8'), /while locked/, 'the index could not be written yet')
  await rm(lock)
  await store.close()
  t.match(JSON.parse(await readFile(index, 'utf8'))[MAIN], { lastMessagePreview: 'while locked' })
})

t.test('another writer appending to a transcript: the list shows its time and newest message, read from the tail of that transcript alone, and the index keeps them', async t => {
  const dir = await openclawCopy()
  const sessions = join(dir, 'agents', 'main', 'sessions')
  const transcript = join(sessions, '6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b.jsonl')
  const line = (id: string, message: object): string => JSON.stringify({ type: 'message', id, parentId: null, timestamp: new Date().toISOString(), message }) + '\n'
  const here = fileStore({ dir })
  t.same((await here.list({ limit: 5 })).rows.map(row => [row.key, row.preview]), [[MAIN, undefined], ['agent:main:telegram:direct:4242', undefined], ['agent:main:unstarted', undefined]])

  // OpenClaw (sharing the directory) answers a turn: its lines, and no word to our index.
  const envelope = 'Sender (untrusted metadata):\n```json\n{ "label": "Ana" }\n```\n\n'
  await appendFile(transcript, line('e0000001', { role: 'user', content: [{ type: 'text', text: `${envelope}And tomorrow?` }], timestamp: 1 }) +
    line('e0000002', { role: 'assistant', content: [{ type: 'text', text: 'Tomorrow: sun.' }], stopReason: 'stop', timestamp: 2 }))
  await utimes(transcript, 1_760_000_500, 1_760_000_500)
  const grown = await here.list({ limit: 5 })
  t.same(grown.rows[0], { ...grown.rows[0], key: MAIN, preview: 'Tomorrow: sun.', updatedAt: 1_760_000_500_000 }, 'its newest message, and when it was written')
  // Then only the user's message, and the time left as it was: the size says it grew.
  await appendFile(transcript, line('e0000003', { role: 'user', content: `${envelope}And the day after?`, timestamp: 3 }))
  await utimes(transcript, 1_760_000_500, 1_760_000_500)
  t.equal((await here.list({ limit: 5 })).rows[0]?.preview, 'And the day after?', 'OpenClaw\'s user text, as OpenClaw shows it')

  // A session of ours that another writer gave only an entry without text: its time moves, no preview.
  const quiet = await here.ensure('agent:main:quiet', 'main')
  const quietPath = join(sessions, `${quiet.sessionId}.jsonl`)
  await appendFile(quietPath, JSON.stringify({ type: 'model_change', id: 'f0000001', parentId: null, timestamp: new Date().toISOString(), provider: 'p', modelId: 'm' }) + '\n')
  const later = Math.floor(Date.now() / 1000) + 3600
  await utimes(quietPath, later, later)
  t.match((await here.list({ limit: 5 })).rows[0], { key: 'agent:main:quiet', updatedAt: later * 1000, preview: undefined })

  // In the index: another process (a restart) lists the same without reading the transcript again.
  await here.close()
  const index = JSON.parse(await readFile(join(sessions, 'sessions.json'), 'utf8'))
  t.match(index[MAIN], { lastMessagePreview: 'And the day after?', updatedAt: 1_760_000_500_000 })
  await writeFile(transcript, (await readFile(transcript, 'utf8')).replace('And the day after?', 'And the day later?'))
  await utimes(transcript, 1_760_000_500, 1_760_000_500)
  const again = fileStore({ dir })
  t.equal((await again.get(MAIN))?.preview, 'And the day after?')
  t.equal((await again.list({ limit: 5 })).rows.find(row => row.key === MAIN)?.preview, 'And the day after?', 'same size, same time: not read again')
})

t.test('another writer growing a transcript by entries without text, while our own newest message still waits for the index: that message stays the preview', async t => {
  const dir = await openclawCopy()
  const sessions = join(dir, 'agents', 'main', 'sessions')
  const index = join(sessions, 'sessions.json')
  const lock = `${index}.lock`
  const here = fileStore({ dir, lockTimeoutMs: 50 })
  const row = await here.get(MAIN) as { sessionId: string }
  await writeFile(lock, String(process.pid)) // held by a live process: our touch stays pending
  await here.append(MAIN, [{ type: 'message', id: 'p0000001', parentId: null, timestamp: new Date().toISOString(), runId: 'r1', message: user('ours, not yet indexed') }])
  // More entries than the tail read for a preview, none with text (OpenClaw's model changes, say).
  const transcript = join(sessions, `${row.sessionId}.jsonl`)
  await appendFile(transcript, Array.from({ length: 20 }, (_, i) => JSON.stringify({ type: 'custom', id: `q${String(i).padStart(7, '0')}`, parentId: null, timestamp: new Date().toISOString() }) + '\n').join(''))
  const later = Math.floor(Date.now() / 1000) + 3600
  await utimes(transcript, later, later)
  t.match((await here.list({ limit: 5 })).rows.find(listed => listed.key === MAIN), { updatedAt: later * 1000, preview: 'ours, not yet indexed' })
  await rm(lock)
  await here.close()
  t.match(JSON.parse(await readFile(index, 'utf8'))[MAIN], { updatedAt: later * 1000, lastMessagePreview: 'ours, not yet indexed' })
})

t.test('appends of our own are never taken for another writer\'s; a restart reads a transcript written after its row once, then no more', async t => {
  const dir = await tempDir()
  const here = fileStore({ dir })
  const row = await here.ensure('agent:main:ours', 'main')
  await here.append('agent:main:ours', [{ type: 'message', id: 'a0000001', parentId: null, timestamp: new Date().toISOString(), runId: 'r1', message: user('mine') }])
  const path = join(dir, 'agents', 'main', 'sessions', `${row.sessionId}.jsonl`)
  const future = Math.floor(Date.now() / 1000) + 7200
  await utimes(path, future, future) // a clock that jumped, a backup tool: the time alone does not say another wrote
  const listed = (await here.list({ limit: 5 })).rows[0]
  t.equal(listed?.preview, 'mine')
  t.ok((listed?.updatedAt ?? 0) < future * 1000, 'the size we wrote is the size there: our own row as it is')
  await here.close()
  const restarted = fileStore({ dir })
  t.match((await restarted.list({ limit: 5 })).rows[0], { preview: 'mine', updatedAt: future * 1000 }, 'a process that never knew it goes by the time: read once')
})

t.test('OpenClaw changing the index meanwhile: a session it deleted stays deleted, one it created wins and ours stays readable', async t => {
  const dir = await openclawCopy()
  const sessions = join(dir, 'agents', 'main', 'sessions')
  const here = fileStore({ dir })
  await here.get(MAIN) // opened
  // OpenClaw holds the index while it changes it; our index write waits for it.
  await writeFile(join(sessions, 'sessions.json.lock'), JSON.stringify({ pid: process.pid, createdAt: new Date().toISOString() }))
  await here.append(MAIN, [{ type: 'message', id: 'd0000001', parentId: null, timestamp: new Date().toISOString(), message: user('last words') }])
  const ours = await here.ensure('agent:main:both', 'main')
  const index = JSON.parse(await readFile(join(sessions, 'sessions.json'), 'utf8'))
  delete index[MAIN]
  index['agent:main:both'] = { sessionId: '0b0b0b0b-1111-4222-8333-444455556666', updatedAt: Date.now() }
  await writeFile(join(sessions, 'sessions.json'), JSON.stringify(index))
  await rm(join(sessions, 'sessions.json.lock'))
  await here.close()
  const written = JSON.parse(await readFile(join(sessions, 'sessions.json'), 'utf8'))
  t.notOk(MAIN in written, 'not brought back by the late index write')
  t.match(written['agent:main:both'], { sessionId: '0b0b0b0b-1111-4222-8333-444455556666', gatewayGenerations: [ours.sessionId] })
  t.equal(await here.get(MAIN), undefined)
  t.same((await here.read('agent:main:both', { limit: 5, sessionId: ours.sessionId })).entries, [], 'our generation is still readable by its id')
})

t.test('transcript handles stay open: another writer\'s torn line is still caught, many sessions do not exhaust handles', async t => {
  const dir = await openclawCopy()
  const store = fileStore({ dir, fsync: false })
  const key = 'agent:main:telegram:direct:4242'
  const path = join(dir, 'agents', 'main', 'sessions', '0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d.jsonl')
  const row = (id: string): TranscriptEntry => ({ type: 'message', id, parentId: null, timestamp: new Date().toISOString(), message: user(id) })
  // Two appends at once on a file nobody has open yet: one handle, both lines whole.
  await Promise.all([store.append(key, [row('both0001')]), store.append(key, [row('both0002')])])
  await appendFile(path, '{"torn by someone else')
  await store.append(key, [row('after001')])
  const lines = (await readFile(path, 'utf8')).split('\n').filter(Boolean)
  t.same(lines.slice(-2).map(line => line.slice(0, 22)), ['{"torn by someone else', '{"type":"message","id"'], 'the next line starts fresh')
  t.same((await store.read(key, { limit: 3 })).entries.map(e => e.id).sort(), ['after001', 'both0001', 'both0002'])

  for (let i = 0; i < 70; i++) {
    await store.ensure(`agent:main:many-${i}`, 'main')
    await store.append(`agent:main:many-${i}`, [row(`many${String(i).padStart(4, '0')}`)])
  }
  const open = (await readdir('/proc/self/fd')).length
  t.ok(open < 200, `handles are bounded (${open} descriptors open)`)
  t.equal(await store.delete('agent:main:many-69'), true, 'a session whose handle is open can be deleted (archived)')
  await store.close()
})

t.test('a transcript that cannot be opened for appending is an error, and the next append tries again', async t => {
  const dir = await openclawCopy()
  const store = fileStore({ dir, fsync: false })
  const path = join(dir, 'agents', 'main', 'sessions', '6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b.jsonl')
  const kept = await readFile(path, 'utf8')
  await rm(path)
  await mkdir(path)
  const row = (id: string): TranscriptEntry => ({ type: 'message', id, parentId: null, timestamp: new Date().toISOString(), message: user(id) })
  await t.rejects(store.append(MAIN, [row('fail0001')]), { code: 'EISDIR' })
  await rm(path, { recursive: true })
  await writeFile(path, kept)
  await store.append(MAIN, [row('again001')])
  t.equal((await store.read(MAIN, { limit: 1 })).entries[0]?.id, 'again001')
})

t.test('an entry without text moves its session up in sessions.json, and gives it no preview', async t => {
  const dir = await tempDir()
  const store = fileStore({ dir })
  const key = 'agent:main:quiet'
  const created = await store.ensure(key, 'main')
  await store.append(key, [{ type: 'custom', id: 'q0000001', parentId: null, timestamp: new Date().toISOString() }])
  await store.close()
  const entry = JSON.parse(await readFile(join(dir, SESSIONS, 'sessions.json'), 'utf8'))[key]
  t.ok(entry.updatedAt > created.updatedAt)
  t.notOk('lastMessagePreview' in entry)
})

t.test('a reset right after an append drops the index update still owed to the old generation', async t => {
  const store = fileStore({ dir: await tempDir() })
  const key = 'agent:main:reset-soon'
  await store.ensure(key, 'main')
  t.equal((await store.reset(key))?.preview, undefined, 'with nothing owed')
  await store.append(key, [{ type: 'message', id: 'old00001', parentId: null, timestamp: new Date().toISOString(), message: user('old words') }])
  // The index update that follows the append waits a moment; the reset comes first.
  t.equal((await store.reset(key))?.preview, undefined, 'the new generation does not show the old preview')
  await store.close() // writes whatever is still owed
  t.equal((await store.get(key))?.preview, undefined, 'nor is it written later')
})

/** A file layer that notes every flush: of which file (relative to `dir`), and its size then. */
function countingFlushes (dir: string): { openFile: OpenFile, flushes: Array<{ path: string, size: number }> } {
  const flushes: Array<{ path: string, size: number }> = []
  const openFile: OpenFile = async (path, flags, mode) => {
    const handle = await open(path, flags, mode)
    for (const method of ['sync', 'datasync'] as const) {
      const flush = handle[method].bind(handle)
      handle[method] = async () => {
        flushes.push({ path: relative(dir, path), size: (await handle.stat()).size })
        await flush()
      }
    }
    return handle
  }
  return { openFile, flushes }
}

const SESSIONS = join('agents', 'main', 'sessions')
const isIndexTemp = (path: string): boolean => path.startsWith(join(SESSIONS, 'sessions.json.')) && path.endsWith('.tmp')

t.test('what a send acknowledges is on the disk: its rows, and the journal line that finds them', async t => {
  const dir = await tempDir()
  const { openFile, flushes } = countingFlushes(dir)
  const agent = gatedAgent()
  const app = await buildApp(t, { store: fileStore({ dir, openFile }), agent })
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:durable', agentId: 'main', input: [user('keep this')] })
  const seen = flushes.length
  const transcript = join(SESSIONS, `${ticket.sessionId}.jsonl`)
  const journal = join(SESSIONS, 'sessions.json.journal')
  const size = async (): Promise<number> => (await stat(join(dir, transcript))).size
  const acknowledged = await size()
  t.ok(flushes.some(flush => flush.path === transcript && flush.size === acknowledged), 'the transcript was flushed with the user\'s row in it')
  const line = flushes.findIndex(flush => flush.path === journal && flush.size > 0)
  t.ok(line >= 0, 'the new session\'s journal line was flushed')
  t.ok(flushes.slice(line + 1, seen).some(flush => flush.path === SESSIONS), 'then its folder: the names of the journal and of the new transcript are on the disk too')
  t.notOk(flushes.slice(0, seen).some(flush => isIndexTemp(flush.path)), 'and no index rewrite was waited for')

  agent.release()
  await ticket.result
  const answered = await size()
  t.ok(answered > acknowledged, 'the answer was appended')
  t.ok(flushes.some(flush => flush.path === transcript && flush.size === answered), 'the answer was flushed before the run said it ended')
})

t.test('every append, index rewrite and record is flushed before it resolves; with fsync: false nothing is', async t => {
  for (const fsync of [true, false]) {
    const dir = await tempDir()
    const { openFile, flushes } = countingFlushes(dir)
    const store = fileStore({ dir, fsync, openFile })
    const key = 'agent:main:counted'
    const row = await store.ensure(key, 'main')
    const since = (from: number): string[] => flushes.slice(from).map(flush => isIndexTemp(flush.path) ? 'index temp' : flush.path)

    let seen = flushes.length
    await store.patch(key, { label: 'counted' })
    t.same(since(seen), fsync ? ['index temp', SESSIONS] : [], `fsync ${String(fsync)}: an index rewrite, then its folder`)
    seen = flushes.length
    const transcript = join(SESSIONS, `${row.sessionId}.jsonl`)
    for (let i = 0; i < 3; i++) {
      await store.append(key, [{ type: 'message', id: `c000000${i}`, parentId: null, timestamp: new Date().toISOString(), message: user(`row ${i}`) }])
      // The index update that follows an append comes later, by design: only the transcript counts here.
      t.equal(since(seen).filter(path => path === transcript).length, fsync ? i + 1 : 0, `fsync ${String(fsync)}: append ${i + 1}`)
    }
    await store.close() // the index updates that followed the appends
    seen = flushes.length
    const records = join('records', 'response')
    await store.putRecord('response', 'resp_1', { n: 1 })
    t.same(since(seen).map(path => path.startsWith(join(records, 'resp_1.json.')) ? 'record temp' : path),
      fsync ? ['record temp', records] : [], `fsync ${String(fsync)}: a record, then its folder`)
    // A record of a session, that expires: first the lines that find it (and the folders naming a list just made).
    const expiresAt = Date.now() + 60_000
    const lists = { sessions: join('records', 'sessions'), expiry: join('records', 'expiry') }
    const hour = join(lists.expiry, `${Math.floor(expiresAt / 3_600_000)}.jsonl`)
    for (const [id, expected] of [['resp_2', [lists.sessions, lists.expiry]], ['resp_3', []]] as const) {
      seen = flushes.length
      await store.putRecord('response', id, { n: 2 }, { sessionKey: key, expiresAt })
      const flushed = since(seen).map(path => path.startsWith(join(records, `${id}.json.`)) ? 'record temp' : path.startsWith(lists.sessions + '/') ? 'session list' : path)
      t.same(flushed, fsync ? ['session list', ...expected.slice(0, 1), hour, ...expected.slice(1), 'record temp', records] : [],
        `fsync ${String(fsync)}: ${id}'s session list${expected.length === 0 ? '' : ' and its folder'}, its hour${expected.length === 0 ? '' : ' and its folder'}, then the record`)
    }
  }
})
