import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { echoAgent, type TranscriptEntry } from '../lib/index.js'
import { migrate, PostgresStore } from '../lib/postgres/index.js'
import { RedisSessionLog } from '../lib/redis/index.js'
import { buildApp, TOKEN } from './helpers.js'
import { startPostgres } from './postgres-server.js'
import { startRedis } from './redis-server.js'

// Two gateway apps (each its own hub, store and pool, as two processes would have) on one
// PostgreSQL, running turns at the same time: on different sessions, and on one session
// with the Redis session log that coordinates processes. No row is lost, none is written
// twice, and the turns of one session never interleave.

const server = await startPostgres(t)
await migrate({ connectionString: server.url })

async function gateway (t: Test, options: Parameters<typeof buildApp>[1] = {}): Promise<FastifyInstance> {
  const store = new PostgresStore({ connectionString: server.url })
  t.teardown(() => store.close()) // after the app's own teardown: tap runs them in order
  return await buildApp(t, { store, agent: echoAgent({ delayMs: 1 }), ...options })
}

async function turn (app: FastifyInstance, key: string, input: string): Promise<void> {
  const answer = await app.inject({ method: 'POST', url: '/v1/responses', headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': key }, payload: { model: 'openclaw', input } })
  if (answer.statusCode !== 200) throw new Error(`turn ${input} on ${key}: ${answer.statusCode} ${answer.body}`)
}

const text = (entry: TranscriptEntry): string => `${entry.message?.role as string}: ${entry.message?.content.map(part => part.type === 'text' ? part.text : '').join('') as string}`

async function transcript (key: string): Promise<TranscriptEntry[]> {
  const store = new PostgresStore({ pool: server.pool(1) })
  return (await store.read(key, { limit: 1000 })).entries
}

t.test('two apps, turns on different sessions at once: each session has its own turns, all of them, each once', async t => {
  const apps = [await gateway(t), await gateway(t)]
  const sessions = 6
  const turns = 4
  // Every session gets turns from both apps, one after another; all sessions at once.
  await Promise.all(Array.from({ length: sessions }, async (_, s) => {
    for (let i = 0; i < turns; i++) await turn(apps[(s + i) % 2] as FastifyInstance, `apart-${s}`, `s${s} turn ${i}`)
  }))
  for (let s = 0; s < sessions; s++) {
    const entries = await transcript(`agent:main:apart-${s}`)
    t.same(entries.map(text), Array.from({ length: turns }, (_, i) => [`user: s${s} turn ${i}`, `assistant: s${s} turn ${i}`]).flat(), `session ${s}: every turn, in order`)
  }
})

t.test('two apps on one session at once, coordinated by the Redis session log: turns never interleave, nothing lost', async t => {
  const redis = await startRedis(t)
  const log = (): RedisSessionLog => {
    const sessionLog = new RedisSessionLog({ url: redis.url, keyPrefix: 'pg-apps:' })
    return sessionLog
  }
  const apps = [await gateway(t, { sessionLog: log() }), await gateway(t, { sessionLog: log() })]
  const turns = 12
  await Promise.all(Array.from({ length: turns }, async (_, i) => { await turn(apps[i % 2] as FastifyInstance, 'together', `turn ${i}`) }))
  const entries = await transcript('agent:main:together')
  t.equal(entries.length, turns * 2, 'every question and every answer')
  for (let i = 0; i < entries.length; i += 2) {
    const question = text(entries[i] as TranscriptEntry)
    t.match(question, /^user: turn \d+$/, `row ${i} starts a turn`)
    t.equal(text(entries[i + 1] as TranscriptEntry), question.replace('user', 'assistant'), `row ${i + 1} is that turn's answer`)
  }
  t.equal(new Set(entries.map(text)).size, entries.length, 'none twice')
  const seqs = entries.map(entry => entry.seq as number)
  t.ok(seqs.every((seq, i) => i === 0 || seq > (seqs[i - 1] as number)), 'their seqs only grow, across both apps')
  t.ok(entries.every((entry, i) => entry.parentId === (i === 0 ? null : entries[i - 1]?.id)), 'each row follows the one before it')
})
