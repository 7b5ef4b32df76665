import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { FileStore, type OpenFile, type TranscriptEntry } from '../lib/index.js'
import { buildApp, gatedAgent, TOKEN, user } from './helpers.js'

// A full disk, two ways: a file layer (FileStore's `openFile`) that runs out of space
// when told to, exactly as a full disk does (a short write, then ENOSPC), or fails a
// flush; and, where the machine lets us mount one, a real 2 MiB tmpfs.

/**
 * A disk with `free` bytes left (every write through the store counts), whose next
 * `shortWrites` writes stop half way, and whose next `failFlushes` flushes and
 * `failTruncates` truncations fail: each of them only of paths that match `faultsOf`.
 */
class Disk {
  free = Number.POSITIVE_INFINITY
  shortWrites = 0
  failFlushes = 0
  faultsOf = /./
  /** How long a failing flush takes before it fails. */
  failAfterMs = 0
  failTruncates = 0

  readonly openFile: OpenFile = async (path, flags, mode) => {
    const handle = await open(path, flags, mode)
    const write = handle.write.bind(handle) as (buffer: Buffer, offset: number, length: number) => Promise<{ bytesWritten: number }>
    const take = (wanted: number): number => {
      const fits = Math.min(wanted, this.free)
      this.free -= fits
      return fits
    }
    handle.write = (async (buffer: Buffer, offset = 0, length = buffer.length) => {
      const short = this.shortWrites > 0 && this.faultsOf.test(path)
      const half = short ? Math.floor(length / 2) : length
      if (short) this.shortWrites--
      const fits = take(half)
      if (fits === 0) throw enospc()
      return await write(buffer, offset, fits) // a short write, as the kernel makes it
    }) as typeof handle.write
    handle.writeFile = async (data: unknown) => {
      const bytes = Buffer.from(String(data))
      const fits = take(bytes.length)
      if (fits > 0) await write(bytes, 0, fits)
      if (fits < bytes.length) throw enospc()
    }
    for (const method of ['sync', 'datasync'] as const) {
      const flush = handle[method].bind(handle)
      handle[method] = async () => {
        if (this.failFlushes > 0 && this.faultsOf.test(path)) {
          this.failFlushes--
          await new Promise(resolve => setTimeout(resolve, this.failAfterMs))
          throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO', syscall: 'fsync' })
        }
        await flush()
      }
    }
    const truncate = handle.truncate.bind(handle)
    handle.truncate = async (length?: number) => {
      if (this.failTruncates > 0 && this.faultsOf.test(path)) {
        this.failTruncates--
        throw Object.assign(new Error('EIO: i/o error, ftruncate'), { code: 'EIO' })
      }
      await truncate(length)
    }
    return handle
  }
}

function enospc (): Error {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' })
}

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-full-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const SESSIONS = join('agents', 'main', 'sessions')

function row (id: string, text = `row ${id}`): TranscriptEntry {
  return { type: 'message', id, parentId: null, timestamp: new Date().toISOString(), message: user(text) }
}

/** Every line of a file, each of which must be JSON (no torn or glued line). */
async function jsonLines (t: Test, path: string): Promise<Array<Record<string, any>>> {
  const text = await readFile(path, 'utf8')
  t.ok(text.endsWith('\n'), 'the file ends with a whole line')
  return text.split('\n').filter(line => line !== '').map(line => JSON.parse(line))
}

t.test('a short write or a failed flush of a transcript fails the append, and leaves the file as it was', async t => {
  const dir = await tempDir(t)
  const disk = new Disk()
  const store = new FileStore({ dir, openFile: disk.openFile })
  t.teardown(() => store.close())
  const key = 'agent:main:full'
  const { sessionId } = await store.ensure(key, 'main')
  const path = join(dir, SESSIONS, `${sessionId}.jsonl`)
  // Faults of the transcript only: an index write still under way must not take one.
  disk.faultsOf = new RegExp(`${sessionId}\\.jsonl$`)
  await store.append(key, [row('before01')])
  const kept = await readFile(path, 'utf8')

  disk.free = 10
  await t.rejects(store.append(key, [row('torn0001', 'x'.repeat(200))]), {
    code: 'FSG_STORE_FAILED',
    statusCode: 503,
    message: new RegExp(`could not write ${join(SESSIONS, sessionId)}\\.jsonl: only 10 of \\d+ bytes were written \\(is the disk full\\?\\)`)
  })
  t.equal(await readFile(path, 'utf8'), kept, 'the ten bytes that fit were cut off again')
  await t.rejects(store.append(key, [row('nospace1')]), { code: 'FSG_STORE_FAILED', message: /ENOSPC: no space left on device/ })
  t.equal(await readFile(path, 'utf8'), kept)

  disk.free = Number.POSITIVE_INFINITY
  disk.failFlushes = 1
  await t.rejects(store.append(key, [row('unflush1')]), { code: 'FSG_STORE_FAILED', message: /EIO: i\/o error, fsync/ })
  t.equal(await readFile(path, 'utf8'), kept, 'written but not flushed: cut off too, since the caller was told it failed')

  await store.append(key, [row('after001')])
  // Two appends at once, one of them cut short (whichever reaches the disk first): undoing
  // it must not undo the other.
  disk.shortWrites = 1
  const ids = ['twin0001', 'twin0002']
  const settled = await Promise.allSettled(ids.map(async id => await store.append(key, [row(id)])))
  const acknowledged = ids.filter((_, i) => settled[i]?.status === 'fulfilled')
  t.equal(acknowledged.length, 1, 'one was cut short, the other written whole')
  t.match(settled.find(result => result.status === 'rejected'), { reason: { code: 'FSG_STORE_FAILED' } })
  t.same((await store.read(key, { limit: 10 })).entries.map(entry => entry.id), ['before01', 'after001', ...acknowledged], 'only what was acknowledged')
  t.same((await jsonLines(t, path)).map(line => line.id), [sessionId, 'before01', 'after001', ...acknowledged], 'every line whole: the next append was not glued to a torn one')

  // Cut short, and the cut cannot be undone: the half line stays, alone on its line.
  disk.shortWrites = 1
  disk.failTruncates = 1
  await t.rejects(store.append(key, [row('halfway1')]), { code: 'FSG_STORE_FAILED' })
  await store.append(key, [row('fresh001')])
  t.same((await store.read(key, { limit: 10 })).entries.map(entry => entry.id), ['before01', 'after001', ...acknowledged, 'fresh001'], 'the torn line is skipped on read')
  const lines = (await readFile(path, 'utf8')).split('\n')
  t.match(lines.at(-3), /^\{"type":"message","id":"halfway1"/)
  t.throws(() => JSON.parse(lines.at(-3) as string), 'the half line is there')
  t.equal(JSON.parse(lines.at(-2) as string).id, 'fresh001', 'and the next append starts on a line of its own')
})

t.test('a turn whose rows cannot be written fails clearly, and the next turn is whole', async t => {
  const dir = await tempDir(t)
  const disk = new Disk()
  const agent = gatedAgent()
  const store = new FileStore({ dir, openFile: disk.openFile })
  const app = await buildApp(t, { store, agent })
  /** Lets the index update that follows a turn land now, not into the full disk. */
  const settle = async (): Promise<void> => {
    await store.close()
    await store.open()
  }
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-openclaw-session-key': 'disk' }
  const post = async (input: string): Promise<{ statusCode: number, body: any }> => {
    const res = await app.inject({ method: 'POST', url: '/v1/responses', headers, payload: { model: 'openclaw', input, store: false } })
    return { statusCode: res.statusCode, body: res.json() }
  }
  const turn = async (input: string): Promise<{ statusCode: number, body: any }> => {
    const answer = post(input)
    await agent.waitStarted(agent.started.length + 1)
    agent.release()
    return await answer
  }

  t.match(await turn('first question'), { statusCode: 200, body: { status: 'completed' } })
  await settle()
  disk.free = 30 // the user's row does not fit
  const refused = await post('second question')
  t.match(refused, { statusCode: 503, body: { error: { code: 'store_failed', type: 'server_error', message: /could not write agents\/main\/sessions\/.*\.jsonl: only 30 of/ } } },
    'the client is told the turn failed, and why')

  // The question fits, the answer does not: the run ends in error, and says so.
  disk.free = Number.POSITIVE_INFINITY
  const ticket = await app.sessionGateway.send({ sessionKey: 'agent:main:disk', agentId: 'main', input: [user('third question')] })
  await agent.waitStarted(2)
  disk.free = 0
  agent.release()
  t.match(await ticket.result, { state: 'error', error: { code: 'FSG_STORE_FAILED' } })

  disk.free = Number.POSITIVE_INFINITY
  t.match(await turn('fourth question'), { statusCode: 200, body: { status: 'completed', output: [{ content: [{ text: 'fourth question' }] }] } })
  const { entries } = await app.sessionGateway.history('agent:main:disk', { limit: 20 })
  t.same(entries.map(entry => `${entry.message?.role}: ${(entry.message?.content[0] as { text?: string } | undefined)?.text ?? ''}`), [
    'user: first question', 'assistant: first question', 'user: third question', 'user: fourth question', 'assistant: fourth question'
  ], 'the refused question is not there; the unrecorded answer is not there; every acknowledged row is')
  const row = await app.sessionGateway.get('agent:main:disk')
  await jsonLines(t, join(dir, SESSIONS, `${row?.sessionId as string}.jsonl`))
})

t.test('a session whose journal line cannot be written is not created', async t => {
  const dir = await tempDir(t)
  const disk = new Disk()
  const store = new FileStore({ dir, openFile: disk.openFile })
  t.teardown(() => store.close())
  await store.ensure('agent:main:first', 'main')
  disk.failFlushes = 1
  disk.faultsOf = /sessions\.json\.journal$/
  // Slow to fail: the index write the first creation scheduled runs meanwhile, and must not take the second in.
  disk.failAfterMs = 50
  await t.rejects(store.ensure('agent:main:second', 'main'), { code: 'FSG_STORE_FAILED', message: /could not write agents\/main\/sessions\/sessions\.json\.journal: EIO/ })
  t.equal(await store.get('agent:main:second'), undefined, 'not there')
  const again = await store.ensure('agent:main:second', 'main')
  t.same((await store.list({ limit: 5 })).rows.map(row => row.key).sort(), ['agent:main:first', 'agent:main:second'])
  await store.close()
  t.equal(JSON.parse(await readFile(join(dir, SESSIONS, 'sessions.json'), 'utf8'))['agent:main:second'].sessionId, again.sessionId, 'the second try is the one written')
})

t.test('a record or an index that cannot be written fails clearly, and leaves no temp file behind', async t => {
  const dir = await tempDir(t)
  const disk = new Disk()
  const store = new FileStore({ dir, openFile: disk.openFile })
  t.teardown(() => store.close())
  await store.putRecord('response', 'resp_1', { status: 'in_progress' })
  const records = join(dir, 'records', 'response')

  for (const free of [0, 12]) { // nothing fits; part of it fits
    disk.free = free
    await t.rejects(store.putRecord('response', 'resp_1', { status: 'completed', text: 'x'.repeat(100) }), {
      code: 'FSG_STORE_FAILED', message: /could not write records\/response\/resp_1\.json: ENOSPC/
    }, `${free} bytes free`)
    t.same(await readdir(records), ['resp_1.json'], 'no temp file left')
    t.same(await store.getRecord('response', 'resp_1'), { status: 'in_progress' }, 'the record is as it was')
  }
  disk.free = Number.POSITIVE_INFINITY
  disk.failFlushes = 1
  await t.rejects(store.putRecord('response', 'resp_1', { status: 'completed' }), { code: 'FSG_STORE_FAILED', message: /EIO/ })
  t.same(await readdir(records), ['resp_1.json'])
  disk.failFlushes = 1
  disk.faultsOf = /records\/response$/ // the folder, after the rename
  await t.rejects(store.putRecord('response', 'resp_1', { status: 'renamed' }), { code: 'FSG_STORE_FAILED', message: /could not write records\/response: EIO/ },
    'a folder that cannot be flushed fails the write too: the rename may not survive a crash')
  disk.faultsOf = /./
  const key = 'agent:main:indexed'
  await store.ensure(key, 'main')
  await store.close() // the index is written
  await store.open()
  const index = await readFile(join(dir, SESSIONS, 'sessions.json'), 'utf8')
  const cases: Array<[number, number, RegExp]> = [
    [0, 0, /sessions\.json\.lock: ENOSPC/], // not even the lock
    [100, 0, /sessions\.json: ENOSPC/], // the lock, then part of the new index
    [Number.POSITIVE_INFINITY, 1, /sessions\.json: EIO/] // all of it, but not flushed
  ]
  for (const [free, failFlushes, reason] of cases) {
    disk.free = free
    disk.failFlushes = failFlushes
    await t.rejects(store.patch(key, { label: 'not written' }), { code: 'FSG_STORE_FAILED', message: reason })
    t.same((await readdir(join(dir, SESSIONS))).filter(name => name.endsWith('.tmp') || name.endsWith('.lock')), [], 'no temp file, no lock left')
    t.equal(await readFile(join(dir, SESSIONS, 'sessions.json'), 'utf8'), index, 'the index is as it was')
    t.equal((await store.get(key))?.label, undefined, 'and so is what this process reads')
  }
  disk.failFlushes = 0
  await store.putRecord('response', 'resp_1', { status: 'completed' })
  t.same(await store.getRecord('response', 'resp_1'), { status: 'completed' })
})

t.test('a lock whose owner could not be written is removed at once; an empty or unreadable lock does not block for long', async t => {
  const dir = await tempDir(t)
  const disk = new Disk()
  const store = new FileStore({ dir, openFile: disk.openFile, lockTimeoutMs: 5000 })
  t.teardown(() => store.close())
  const key = 'agent:main:locked'
  await store.ensure(key, 'main')
  const lock = join(dir, SESSIONS, 'sessions.json.lock')

  disk.free = 0
  await t.rejects(store.patch(key, { label: 'while full' }), { code: 'FSG_STORE_FAILED', message: /could not write agents\/main\/sessions\/sessions\.json\.lock: ENOSPC/ })
  t.notOk((await readdir(join(dir, SESSIONS))).includes('sessions.json.lock'), 'no empty lock is left to block the next writer')
  disk.free = Number.POSITIVE_INFINITY
  t.equal((await store.patch(key, { label: 'space is back' }))?.label, 'space is back')

  // Left by others: an empty lock (an older gateway whose disk filled), one that is not JSON,
  // and OpenClaw's own shape naming a process that is gone. Each is broken well within
  // `lockTimeoutMs` (five seconds), where an owned lock would be waited on for thirty.
  for (const content of ['', 'null', '{"pid": 12', '{"pid":999999999,"createdAt":"2026-01-01T00:00:00.000Z"}']) {
    await writeFile(lock, content)
    t.equal((await store.patch(key, { label: `after ${JSON.stringify(content)}` }))?.label, `after ${JSON.stringify(content)}`)
  }
  await store.close()
  await writeFile(lock, JSON.stringify({ pid: process.pid, createdAt: new Date().toISOString() }))
  const impatient = new FileStore({ dir, lockTimeoutMs: 100 })
  t.teardown(() => impatient.close())
  await t.rejects(impatient.patch(key, { label: 'blocked' }), { code: 'FSG_STORE_BUSY', message: new RegExp(`held by pid ${process.pid}`) },
    'a lock in OpenClaw\'s shape naming a live process is respected, and named')
  await rm(lock)
})

const run = promisify(execFile)

t.test('on a real 2 MiB tmpfs, filled and then freed: nothing acknowledged is lost, nothing torn is left', async t => {
  const mount = await tempDir(t)
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mount])
  } catch (err) {
    // Only where mounting is refused (no privilege, a container); CI must be able to.
    if (process.env.CI !== undefined) throw err
    t.plan(0, `mount -t tmpfs was refused here (${String((err as Error).message).split('\n')[0]}); the injected full disk above covers the same paths`)
    return
  }
  t.teardown(async () => await run('umount', [mount]))
  const dir = join(mount, 'state')
  await mkdir(dir)
  const store = new FileStore({ dir })
  const app = await buildApp(t, { store })
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-openclaw-session-key': 'tmpfs' }
  const turn = async (input: string): Promise<{ statusCode: number, body: any }> => {
    const res = await app.inject({ method: 'POST', url: '/v1/responses', headers, payload: { model: 'openclaw', input, store: false } })
    return { statusCode: res.statusCode, body: res.json() }
  }
  t.match(await turn('before the disk fills'), { statusCode: 200, body: { status: 'completed' } })
  await store.close() // the index update that follows the turn lands now, not into the filled disk
  await store.open()

  // Fill every byte, in pieces, down to the last page.
  const filler = join(mount, 'filler')
  const handle = await open(filler, 'w')
  for (const size of [1 << 20, 1 << 16, 1 << 12, 1 << 8, 1]) {
    const chunk = Buffer.alloc(size, 0x61)
    for (let i = 0; i < 4096; i++) {
      const written = await handle.write(chunk).then(({ bytesWritten }) => bytesWritten, () => 0)
      if (written < size) break
    }
  }
  await handle.close()
  const question = `while the disk is full: ${'many words '.repeat(6000)}` // pages more than any file could free
  t.match(await turn(question), { statusCode: 503, body: { error: { code: 'store_failed' } } }, 'refused, clearly')

  await rm(filler)
  t.match(await turn('after space is back'), { statusCode: 200, body: { status: 'completed' } })
  const row = await app.sessionGateway.get('agent:main:tmpfs')
  const lines = await jsonLines(t, join(dir, SESSIONS, `${row?.sessionId as string}.jsonl`))
  t.same(lines.slice(1).map(line => line.message.content[0].text), [
    'before the disk fills', 'before the disk fills', 'after space is back', 'after space is back'
  ], 'every line whole, the refused turn absent')
  t.equal((await app.sessionGateway.patch('agent:main:tmpfs', { label: 'indexed' })).label, 'indexed', 'the index can be written again at once')
  t.same((await readdir(join(dir, SESSIONS))).filter(name => name.endsWith('.tmp') || name.endsWith('.lock')), [], 'no temp file, no lock left')
})
