// History from a store: the newest LIMIT entries of transcripts of SIZES entries, READS
// times each, in this process (the store is a library; the file store has no server to
// cross, the Redis store crosses to REDIS_URL). STORE=file (default) or redis.
// Prints one JSON line: p50/p99 and the transcript's size per size. Exits 1 if a read
// returned the wrong entries.
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import { FileStore, type SessionStore, type TranscriptEntry } from '../../lib/index.js'
import { RedisStore } from '../../lib/redis/index.js'
import { percentile } from '../lib/stats.js'

const sizes = (process.env.SIZES ?? '1000,10000,100000').split(',').map(Number)
const limit = Number(process.env.LIMIT ?? 50)
const reads = Number(process.env.READS ?? 300)
const dir = mkdtempSync(join(tmpdir(), 'fsg-history-'))
process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
const redis = process.env.STORE === 'redis' ? new Redis(process.env.REDIS_URL as string) : undefined
const store: SessionStore = redis === undefined ? new FileStore({ dir, fsync: false }) : new RedisStore({ client: redis, keyPrefix: 'bench:' })
/** What a transcript takes: its file, or its stream in Redis's memory. */
const bytes = async (key: string, sessionId: string): Promise<number> => redis === undefined
  ? statSync(join(dir, 'agents', 'main', 'sessions', `${sessionId}.jsonl`)).size
  : Number(await redis.memory('USAGE', `bench:{${key}}:transcript`))

const results: Record<string, { p50: number, p99: number, bytes: number }> = {}
for (const size of sizes) {
  const key = `agent:main:history-${size}`
  const row = await store.ensure(key, 'main')
  // A realistic row: a sentence or two of text, OpenClaw's fields, our seq and run id.
  for (let written = 0; written < size; written += 1000) {
    const batch = Array.from({ length: Math.min(1000, size - written) }, (_, i): TranscriptEntry => {
      const n = written + i
      return {
        type: 'message', id: n.toString(16).padStart(8, '0'), parentId: null, timestamp: new Date().toISOString(), seq: n + 1, runId: `run-${n >> 1}`,
        message: { role: 'user', content: [{ type: 'text', text: `entry ${n}: the quick brown fox jumps over the lazy dog, twice over.` }], timestamp: Date.now() }
      }
    })
    await store.append(key, batch)
  }
  const latencies: number[] = []
  for (let i = 0; i < reads; i++) {
    const t0 = performance.now()
    const page = await store.read(key, { limit })
    latencies.push(performance.now() - t0)
    if (page.entries.length !== limit || page.entries.at(-1)?.seq !== size) {
      process.stderr.write(`history ${size}: wrong page\n`)
      process.exit(1)
    }
  }
  results[String(size)] = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), bytes: await bytes(key, row.sessionId) }
}
redis?.disconnect()
process.stdout.write(JSON.stringify(results) + '\n')
