// Appends and history reads against one store, in this process (the store is a library:
// the file store has no server to cross; PostgresStore crosses to DATABASE_URL).
// STORE=file (fsync on, its default) or postgres (DATABASE_URL, tables migrated).
// - append: APPENDS appends of one entry to one session, one after another, as a turn's
//   two commits are (each awaited: acknowledged = durable); then the same count spread
//   over 16 sessions at once.
// - history: the newest 50 entries of transcripts of SIZES entries, READS times each.
// Prints one JSON line. Exits 1 if a read returned the wrong entries.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { FileStore, type SessionStore, type TranscriptEntry } from '../../lib/index.js'
import { PostgresStore } from '../../lib/postgres/index.js'
import { percentile } from '../lib/stats.js'

const appends = Number(process.env.APPENDS ?? 1000)
const sizes = (process.env.SIZES ?? '1000,100000').split(',').map(Number)
const reads = Number(process.env.READS ?? 300)
const dir = mkdtempSync(join(tmpdir(), 'fsg-store-io-'))
process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
const store: SessionStore = process.env.STORE === 'postgres'
  ? new PostgresStore({ connectionString: process.env.DATABASE_URL as string, maxConnections: 16 })
  : new FileStore({ dir })

// A realistic row: a sentence or two of text, OpenClaw's fields, our seq and run id.
const entry = (n: number): TranscriptEntry => ({
  type: 'message', id: n.toString(16).padStart(8, '0'), parentId: null, timestamp: new Date().toISOString(), seq: n + 1, runId: `run-${n >> 1}`,
  message: { role: 'user', content: [{ type: 'text', text: `entry ${n}: the quick brown fox jumps over the lazy dog, twice over.` }], timestamp: Date.now() }
})

const one = 'agent:main:append-one'
await store.ensure(one, 'main')
const latencies: number[] = []
for (let i = 0; i < appends; i++) {
  const t0 = performance.now()
  await store.append(one, [entry(i)])
  latencies.push(performance.now() - t0)
}
const many = Array.from({ length: 16 }, (_, i) => `agent:main:append-many-${i}`)
for (const key of many) await store.ensure(key, 'main')
const t0 = performance.now()
await Promise.all(many.map(async key => {
  for (let i = 0; i < appends / many.length; i++) await store.append(key, [entry(i)])
}))
const concurrentPerSec = appends / ((performance.now() - t0) / 1000)

const history: Record<string, { p50: number, p99: number }> = {}
for (const size of sizes) {
  const key = `agent:main:history-${size}`
  await store.ensure(key, 'main')
  for (let written = 0; written < size; written += 1000) {
    await store.append(key, Array.from({ length: Math.min(1000, size - written) }, (_, i) => entry(written + i)))
  }
  const took: number[] = []
  for (let i = 0; i < reads; i++) {
    const started = performance.now()
    const page = await store.read(key, { limit: 50 })
    took.push(performance.now() - started)
    if (page.entries.length !== 50 || page.entries.at(-1)?.seq !== size) {
      process.stderr.write(`history ${size}: wrong page\n`)
      process.exit(1)
    }
  }
  history[String(size)] = { p50: percentile(took, 50), p99: percentile(took, 99) }
}
await store.close?.()
process.stdout.write(JSON.stringify({ append: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), perSec: 1000 / (latencies.reduce((a, b) => a + b, 0) / latencies.length), concurrentPerSec }, history }) + '\n')
