// Creating sessions in the file store: COUNT new sessions, one after another (each awaited,
// fsync on), into a store that already holds SEED sessions, in this process (the store is
// a library; there is no server to cross). The seed index is written directly, in OpenClaw's
// shape, so seeding a large store costs seconds. Prints one JSON line: per-creation p50/p99,
// the total (including the close that writes what the index still owes) and the index size.
// Exits 1 if a created session is missing from the index afterwards.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { randomUUID } from 'node:crypto'
import { FileStore } from '../../lib/index.js'
import { percentile } from '../lib/stats.js'

const seed = Number(process.env.SEED ?? 10_000)
const count = Number(process.env.COUNT ?? 1000)
const dir = mkdtempSync(join(tmpdir(), 'fsg-create-'))
process.once('exit', () => rmSync(dir, { recursive: true, force: true }))

const sessions = join(dir, 'agents', 'main', 'sessions')
mkdirSync(sessions, { recursive: true, mode: 0o700 })
const index: Record<string, unknown> = {}
const start = Date.now() - seed * 1000
for (let i = 0; i < seed; i++) {
  // About the size of a real entry (the index: 1.3 MB for 5,000 sessions).
  index[`agent:main:portal:user-${i % 500}:chat-${i}`] = {
    sessionId: randomUUID(),
    updatedAt: start + i * 1000,
    createdAt: start + i * 1000,
    label: `Conversation ${i}`,
    lastMessagePreview: `entry ${i}: the quick brown fox jumps over the lazy dog, twice over, and then some more words.`,
    systemSent: true,
    chatType: 'direct'
  }
}
writeFileSync(join(sessions, 'sessions.json'), JSON.stringify(index, null, 2), { mode: 0o600 })

const store = new FileStore({ dir })
await store.list({ limit: 1 }) // the index is read once before the clock starts, as a running server has it
const latencies: number[] = []
const t0 = performance.now()
for (let i = 0; i < count; i++) {
  const t = performance.now()
  await store.ensure(`agent:main:bench-new-${i}`, 'main')
  latencies.push(performance.now() - t)
}
await store.close()
const totalMs = performance.now() - t0

const written = JSON.parse(readFileSync(join(sessions, 'sessions.json'), 'utf8')) as Record<string, unknown>
for (let i = 0; i < count; i++) {
  if (written[`agent:main:bench-new-${i}`] === undefined) {
    process.stderr.write(`create: agent:main:bench-new-${i} is not in sessions.json\n`)
    process.exit(1)
  }
}
process.stdout.write(JSON.stringify({
  seed, count, p50: percentile(latencies, 50), p99: percentile(latencies, 99), totalMs,
  indexBytes: statSync(join(sessions, 'sessions.json')).size
}) + '\n')
