// `npm run bench`: every benchmark, each against a baseline measured in the same run,
// on 127.0.0.1, servers and load generators in separate processes, all bounded in time.
// Prints one table. ONLY=roundtrip,upstream,… runs a subset.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { percentile, round } from './lib/stats.js'
import { startRedis } from '../test/redis-server.js'
import { run, start, startPlain, type Started } from './lib/processes.js'
import { migrate } from '../lib/postgres/index.js'
import { startPostgres } from '../test/postgres-server.js'

interface Row { what: string, ours: string, baseline: string, ratio: string, goal: string, met: boolean | undefined }
const rows: Row[] = []
const only = process.env.ONLY?.split(',')
const durationMs = Number(process.env.DURATION_MS ?? 4000)

interface RoundTrip { connections: number, turns: number, errors: number, p50: number, p99: number, turnsPerSec: number }

async function roundTrip (server: string, env: Record<string, string>, connections: number): Promise<RoundTrip> {
  const started = await start(server, env)
  try {
    return await run<RoundTrip>('bench/clients/roundtrip.ts', { URL: started.line, CONNECTIONS: String(connections), DURATION_MS: String(durationMs) })
  } finally {
    await started.stop()
  }
}

interface Turns { turns: number, p50: number, p99: number, turnsPerSec: number }

interface Streaming { watchers: number, deltas: number, ok: boolean, eventsPerSec: number, bytes: number }

async function streaming (server: string, env: Record<string, string>, watchers: number, baseline: boolean): Promise<Streaming> {
  const started = await start(server, env)
  try {
    return await run<Streaming>('bench/clients/streaming.ts', { URL: started.line, WATCHERS: String(watchers), DELTAS: env.DELTAS as string, BASELINE: baseline ? '1' : '0' })
  } finally {
    await started.stop()
  }
}

/** Resident memory of a process, in bytes, from /proc (Linux). */
function rss (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) * 1024
}

async function idleMemory (server: string, baseline: boolean, connections: number): Promise<number> {
  const started = await start(server, {})
  try {
    started.child.kill('SIGUSR2')
    await sleep(500)
    const before = rss(started.child.pid as number)
    const clients = await start('bench/clients/idle.ts', { URL: started.line, CONNECTIONS: String(connections), BASELINE: baseline ? '1' : '0' }, 'ready ', 120_000)
    await sleep(1000) // let buffers settle, then collect what the handshakes left behind
    started.child.kill('SIGUSR2')
    await sleep(1000)
    const after = rss(started.child.pid as number)
    await clients.stop()
    return (after - before) / connections
  } finally {
    await started.stop()
  }
}

/** The newest 50 entries of transcripts of 1k, 10k and 100k entries, read in the bench's process. */
async function history (store: string, unit: string, env: Record<string, string>): Promise<void> {
  const sizes = [1000, 10_000, 100_000]
  const result = await run<Record<string, { p50: number, p99: number, bytes: number }>>('bench/clients/history.ts', { SIZES: sizes.join(','), ...env }, 300_000)
  const base = result['1000'] as { p50: number, p99: number }
  for (const size of sizes) {
    const figure = result[String(size)] as { p50: number, p99: number, bytes: number }
    rows.push({
      what: `history: newest 50 of ${size.toLocaleString('en')} entries (${store}, ${round(figure.bytes / 1048576, 1)} ${unit})`,
      ours: `p50 ${round(figure.p50, 3)} ms, p99 ${round(figure.p99, 3)} ms`,
      baseline: `1,000 entries: p50 ${round(base.p50, 3)} ms`,
      ratio: `×${round(figure.p50 / base.p50)}`,
      goal: '100k within 2x of 1k',
      met: size === 100_000 ? figure.p50 / base.p50 <= 2 : undefined
    })
  }
}

/** Teardowns of the redis-server a section started (test/redis-server.ts's, outside a test). */
const stops: Array<() => unknown> = []

const sections: Record<string, () => Promise<void>> = {
  async memory () {
    const MiB = 1024 * 1024
    // The same floods with the byte limits off (as high as they go) are the baseline: what the
    // process held before memory was bounded in bytes.
    const unbounded = JSON.stringify({ maxReplayBytes: Number.MAX_SAFE_INTEGER, maxIdempotencyBytes: Number.MAX_SAFE_INTEGER })
    for (const [flood, turns] of [['large', 100], ['small', 10_000]] as const) {
      const measure = async (options: string): Promise<{ grownBytes: number }> => await run('bench/clients/memory.ts', { FLOOD: flood, TURNS: String(turns), OPTIONS: options }, 600_000)
      const ours = await measure('{}')
      const base = await measure(unbounded)
      rows.push({
        what: flood === 'large'
          ? `heap held after ${turns} keyed turns of 1 MiB (16 deltas each), one session each, watched over a socket; defaults`
          : `heap held after ${turns.toLocaleString('en')} one-line turns, one session each, left idle; defaults`,
        ours: `${round(ours.grownBytes / MiB, 1)} MiB`,
        baseline: `${round(base.grownBytes / MiB, 1)} MiB (byte limits off)`,
        ratio: `×${round(ours.grownBytes / base.grownBytes)}`,
        goal: 'under maxReplayBytes + maxIdempotencyBytes + maxIdleSessions × 2 KiB (100 MiB)',
        met: ours.grownBytes < 100 * MiB
      })
    }
  },

  async roundtrip () {
    for (const connections of [1, 16, 256]) {
      const bare = await roundTrip('bench/servers/bare-gateway.ts', {}, connections)
      const ours = await roundTrip('bench/servers/gateway.ts', { STORE: 'memory' }, connections)
      const ratio = ours.p50 / bare.p50
      rows.push({
        what: `WS chat.send→final, memory store, ${connections} conn`,
        ours: `p50 ${round(ours.p50)} ms, p99 ${round(ours.p99)} ms, ${Math.round(ours.turnsPerSec)} turns/s`,
        baseline: `p50 ${round(bare.p50)} ms, p99 ${round(bare.p99)} ms, ${Math.round(bare.turnsPerSec)} turns/s`,
        ratio: `p50 ×${round(ratio)}, turns/s ×${round(ours.turnsPerSec / bare.turnsPerSec)}`,
        goal: 'p50 within 2x of bare',
        met: ratio <= 2
      })
    }
  },

  async filestore () {
    for (const connections of [1, 16]) {
      const memory = await roundTrip('bench/servers/gateway.ts', { STORE: 'memory' }, connections)
      const durable = await roundTrip('bench/servers/gateway.ts', { STORE: 'file' }, connections)
      const unflushed = await roundTrip('bench/servers/gateway.ts', { STORE: 'file', FSYNC: '0' }, connections)
      rows.push({
        what: `WS chat.send→final, file store, ${connections} conn`,
        ours: `p50 ${round(durable.p50)} ms, p99 ${round(durable.p99)} ms, ${Math.round(durable.turnsPerSec)} turns/s; without fsync p50 ${round(unflushed.p50)} ms, ${Math.round(unflushed.turnsPerSec)} turns/s`,
        baseline: `memory store: p50 ${round(memory.p50)} ms, p99 ${round(memory.p99)} ms, ${Math.round(memory.turnsPerSec)} turns/s`,
        ratio: `p50 ×${round(durable.p50 / memory.p50)}; fsync is ${Math.round(100 * Math.max(0, durable.p50 - unflushed.p50) / durable.p50)}% of p50`,
        goal: 'say where the time goes',
        met: undefined
      })
    }
  },

  async history () {
    await history('file store', 'MiB', {})
  },

  async redis () {
    // Many processes on Redis against one process in memory, in the same run: turns (16
    // connections, 8 on each of two processes), and one session's deltas to 100 watchers
    // (50 on each process; the turn runs on the first).
    const redis = await startRedis({ teardown: fn => { stops.push(fn) } })
    const pair = async (env: Record<string, string>): Promise<[Started, Started]> => {
      const shared = { STORE: 'redis', LOG: 'redis', REDIS_URL: redis.url, KEY_PREFIX: `bench-${Date.now()}:`, ...env }
      return [await start('bench/servers/gateway.ts', shared), await start('bench/servers/gateway.ts', shared)]
    }
    try {
      const one = await roundTrip('bench/servers/gateway.ts', { STORE: 'memory' }, 16)
      const turnServers = await pair({})
      let two: RoundTrip[]
      try {
        two = await Promise.all(turnServers.map(async server => await run<RoundTrip>('bench/clients/roundtrip.ts', { URL: server.line, CONNECTIONS: '8', DURATION_MS: String(durationMs) })))
      } finally {
        for (const server of turnServers) await server.stop()
      }
      // Where the time goes: each half of Redis alone, in one process.
      const logOnly = await roundTrip('bench/servers/gateway.ts', { STORE: 'memory', LOG: 'redis', REDIS_URL: redis.url, KEY_PREFIX: `bench-log-${Date.now()}:` }, 16)
      const storeOnly = await roundTrip('bench/servers/gateway.ts', { STORE: 'redis', REDIS_URL: redis.url, KEY_PREFIX: `bench-store-${Date.now()}:` }, 16)
      const turnsPerSec = two.reduce((sum, side) => sum + side.turnsPerSec, 0)
      const p50 = Math.max(...two.map(side => side.p50))
      rows.push({
        what: 'WS chat.send→final, 16 conn: two processes on Redis (RedisStore + RedisSessionLog), 8 conn each',
        ours: `p50 ${round(p50)} ms (the slower process), p99 ${round(Math.max(...two.map(side => side.p99)))} ms, ${Math.round(turnsPerSec)} turns/s in all`,
        baseline: `one process, memory store and in-process log: p50 ${round(one.p50)} ms, p99 ${round(one.p99)} ms, ${Math.round(one.turnsPerSec)} turns/s`,
        ratio: `p50 ×${round(p50 / one.p50)}, turns/s ×${round(turnsPerSec / one.turnsPerSec)}; one process with only the Redis log: p50 ${round(logOnly.p50)} ms, ${Math.round(logOnly.turnsPerSec)} turns/s; with only RedisStore: p50 ${round(storeOnly.p50)} ms, ${Math.round(storeOnly.turnsPerSec)} turns/s`,
        goal: 'say where the time goes',
        met: undefined
      })

      const deltas = process.env.DELTAS ?? '1000'
      const single = await streaming('bench/servers/gateway.ts', { AGENT: 'burst', DELTAS: deltas }, 100, false)
      const fanServers = await pair({ AGENT: 'burst', DELTAS: deltas })
      let spread: Streaming
      try {
        spread = await run<Streaming>('bench/clients/streaming.ts', { URL: fanServers[0].line, URLS: fanServers.map(server => server.line).join(','), WATCHERS: '100', DELTAS: deltas, BASELINE: '0' })
      } finally {
        for (const server of fanServers) await server.stop()
      }
      rows.push({
        what: `deltas to 100 watchers of one session (${deltas} deltas) over two processes on Redis, 50 each`,
        ours: `${Math.round(spread.eventsPerSec)} events/s${spread.ok ? '' : ' (a watcher lost, repeated or reordered a delta)'}`,
        baseline: `one process, memory: ${Math.round(single.eventsPerSec)} events/s`,
        ratio: `×${round(spread.eventsPerSec / single.eventsPerSec)}`,
        goal: 'every delta to every watcher, in order; say the cost',
        met: spread.ok
      })
    } finally {
      for (const stop of stops.splice(0)) await stop()
    }
  },

  async redishistory () {
    const redis = await startRedis({ teardown: fn => { stops.push(fn) } })
    try {
      await history('Redis store', 'MiB in Redis', { STORE: 'redis', REDIS_URL: redis.url })
    } finally {
      for (const stop of stops.splice(0)) await stop()
    }
  },

  async sessions () {
    // Creating sessions must not slow down as the store grows: the same 1,000 creations into
    // an empty store and into one that already holds 10,000 sessions, in this run.
    interface Created { p50: number, p99: number, totalMs: number, indexBytes: number }
    const create = async (seed: number): Promise<Created> => await run<Created>('bench/clients/create-sessions.ts', { SEED: String(seed), COUNT: '1000' }, 600_000)
    const empty = await create(0)
    const full = await create(10_000)
    const ratio = full.p50 / empty.p50
    rows.push({
      what: `file store: create 1,000 sessions, one after another, into 10,000 (sessions.json ${round(full.indexBytes / 1048576, 1)} MiB after)`,
      ours: `${round(full.totalMs / 1000)} s in all, p50 ${round(full.p50)} ms, p99 ${round(full.p99)} ms`,
      baseline: `into an empty store: ${round(empty.totalMs / 1000)} s in all, p50 ${round(empty.p50)} ms, p99 ${round(empty.p99)} ms`,
      ratio: `p50 ×${round(ratio)}, in all ×${round(full.totalMs / empty.totalMs)}`,
      goal: 'p50 into 10,000 within 1.5x of into none',
      met: ratio <= 1.5
    })
  },

  async http () {
    // Record what our server answers, so the bare route answers exactly as many bytes.
    const recorder = await start('bench/servers/gateway.ts', { STORE: 'memory' })
    const post = async (body: unknown): Promise<string> => await (await fetch(`${recorder.line}/v1/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
      body: JSON.stringify(body)
    })).text()
    const dir = mkdtempSync(join(tmpdir(), 'fsg-bench-http-'))
    const input = { model: 'openclaw', input: 'hello from the benchmark' }
    writeFileSync(join(dir, 'body.json'), await post(input))
    writeFileSync(join(dir, 'events.txt'), await post({ ...input, stream: true }))
    await recorder.stop()
    try {
      for (const stream of [false, true]) {
        const body = JSON.stringify({ ...input, stream })
        const measure = async (server: string, env: Record<string, string>): Promise<{ requestsPerSec: number, p99: number }> => {
          const started = await start(server, env)
          try {
            return await run('bench/clients/http.ts', { URL: started.line, BODY: body, CONNECTIONS: '10', DURATION_MS: String(durationMs) })
          } finally {
            await started.stop()
          }
        }
        const bare = await measure('bench/servers/bare-fastify.ts', { BODY_FILE: join(dir, 'body.json'), SSE_FILE: join(dir, 'events.txt') })
        const ours = await measure('bench/servers/gateway.ts', { STORE: 'memory' })
        const ratio = ours.requestsPerSec / bare.requestsPerSec
        rows.push({
          what: `HTTP POST /v1/responses, ${stream ? 'streamed (SSE)' : 'JSON'}, 10 conn, a fresh session each`,
          ours: `${Math.round(ours.requestsPerSec)} req/s, p99 ${ours.p99} ms`,
          baseline: `${Math.round(bare.requestsPerSec)} req/s, p99 ${bare.p99} ms (bare Fastify route, same bytes)`,
          ratio: `×${round(ratio)}`,
          goal: 'at least 60% of bare',
          met: ratio >= 0.6
        })
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  },

  async idle () {
    const connections = Number(process.env.IDLE_CONNECTIONS ?? 5000)
    const bare = await idleMemory('bench/servers/bare-ws.ts', true, connections)
    // The same handshake on a bare @fastify/websocket route: what the framework itself costs.
    const framework = await idleMemory('bench/servers/bare-gateway.ts', false, connections)
    const ours = await idleMemory('bench/servers/gateway.ts', false, connections)
    rows.push({
      what: `idle: ${connections} authenticated gateway connections`,
      ours: `${round(ours / 1024, 1)} KiB/connection`,
      baseline: `${round(bare / 1024, 1)} KiB/connection (bare ws); ${round(framework / 1024, 1)} KiB (bare @fastify/websocket)`,
      ratio: `×${round(ours / bare)}`,
      goal: 'at most 2x bare',
      met: ours / bare <= 2
    })
  },

  async coldstart () {
    // `npm start`'s server process exactly as npm starts it, against a bare Fastify app run
    // the same way: spawn → the first POST /v1/responses answered, then resident memory
    // once idle. Median of 5, interleaved.
    const [command, script] = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ') as [string, string]
    if (command !== 'node') throw new Error(`npm start is not plain node: ${command}`)
    const tries = 5
    const runs: Record<'ours' | 'bare', Array<{ ms: number, rss: number }>> = { ours: [], bare: [] }
    const measure = async (file: string, env: Record<string, string>, prefix: string): Promise<{ ms: number, rss: number }> => {
      const t0 = performance.now()
      const server = await startPlain(file, env, prefix)
      try {
        const res = await fetch(`${server.line}/v1/responses`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
          body: JSON.stringify({ model: 'openclaw', input: 'hello' })
        })
        await res.text()
        if (res.status !== 200) throw new Error(`${file} answered ${res.status}`)
        const ms = performance.now() - t0
        await sleep(2000) // idle: nothing more to do
        return { ms, rss: rss(server.child.pid as number) }
      } finally {
        await server.stop()
      }
    }
    for (let i = 0; i < tries; i++) {
      runs.bare.push(await measure('bench/servers/bare-start.js', {}, 'listening '))
      const dir = mkdtempSync(join(tmpdir(), 'fsg-bench-start-'))
      try {
        runs.ours.push(await measure(script, { PORT: '0', GATEWAY_TOKEN: 'bench', GATEWAY_DATA_DIR: dir }, 'session gateway listening on '))
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
    const median = (side: 'ours' | 'bare', field: 'ms' | 'rss'): number => percentile(runs[side].map(run => run[field]), 50)
    const mib = (bytes: number): number => round(bytes / 1048576, 1)
    rows.push({
      what: `cold start: npm start's server (plain node, file store), spawn → first POST /v1/responses answered (median of ${tries})`,
      ours: `${Math.round(median('ours', 'ms'))} ms`,
      baseline: `${Math.round(median('bare', 'ms'))} ms (bare Fastify app, plain node)`,
      ratio: `×${round(median('ours', 'ms') / median('bare', 'ms'))}`,
      goal: 'at most 500 ms',
      met: median('ours', 'ms') <= 500
    })
    rows.push({
      what: `idle memory: npm start's server, resident set 2 s after its first answer (median of ${tries})`,
      ours: `${mib(median('ours', 'rss'))} MiB`,
      baseline: `${mib(median('bare', 'rss'))} MiB (bare Fastify app, plain node)`,
      ratio: `×${round(median('ours', 'rss') / median('bare', 'rss'))}`,
      goal: 'at most 80 MiB',
      met: median('ours', 'rss') <= 80 * 1048576
    })
  },

  async upstream () {
    // The same instant upstream, reached straight and through the gateway, in one run; and the
    // gateway's own turn with no upstream (echo agent), to say where the added time goes.
    const upstream = await start('bench/servers/instant-upstream.ts')
    const turns = async (env: Record<string, string>, client: Record<string, string>): Promise<Turns> => {
      const gateway = await start('bench/servers/gateway.ts', { STORE: 'memory', ...env })
      try {
        return await run<Turns>('bench/clients/turns.ts', { URL: gateway.line, MODE: 'gateway', DURATION_MS: String(durationMs), ...client })
      } finally {
        await gateway.stop()
      }
    }
    try {
      const direct = await run<Turns>('bench/clients/turns.ts', { URL: upstream.line, MODE: 'upstream', DURATION_MS: String(durationMs) })
      const through = await turns({ AGENT: 'openai', UPSTREAM_URL: upstream.line }, {})
      const echo = await turns({}, { EXPECTED: 'hello' })
      rows.push({
        what: 'turn through openAIAgent, instant upstream, 1 client (HTTP JSON, a fresh session each)',
        ours: `p50 ${round(through.p50)} ms, p99 ${round(through.p99)} ms, ${Math.round(through.turnsPerSec)} turns/s`,
        baseline: `straight to the upstream (streamed chat completion): p50 ${round(direct.p50)} ms, p99 ${round(direct.p99)} ms; the gateway's own turn (echo agent): p50 ${round(echo.p50)} ms`,
        ratio: `adds ${round(through.p50 - direct.p50)} ms p50 (×${round(through.p50 / direct.p50)}): ${round(echo.p50)} ms the gateway's turn, ${round(through.p50 - direct.p50 - echo.p50)} ms the hop`,
        goal: 'say where the time goes',
        met: undefined
      })
    } finally {
      await upstream.stop()
    }
  },

  async postgres () {
    // The same appends and history reads on the file store and on PostgresStore, both
    // durable when acknowledged (fsync on; PostgreSQL commits with synchronous_commit on).
    interface StoreIo { append: { p50: number, p99: number, perSec: number, concurrentPerSec: number }, history: Record<string, { p50: number, p99: number }> }
    const stops: Array<() => unknown> = []
    try {
      const database = await startPostgres({ teardown: fn => { stops.push(fn) } }, { fsync: true })
      await migrate({ connectionString: database.url })
      const file = await run<StoreIo>('bench/clients/store-io.ts', { STORE: 'file' }, 600_000)
      const postgres = await run<StoreIo>('bench/clients/store-io.ts', { STORE: 'postgres', DATABASE_URL: database.url }, 600_000)
      rows.push({
        what: 'append one entry, one after another (one session); then 16 sessions at once (PostgreSQL store)',
        ours: `p50 ${round(postgres.append.p50, 3)} ms, p99 ${round(postgres.append.p99, 3)} ms; 16 sessions: ${Math.round(postgres.append.concurrentPerSec)} appends/s`,
        baseline: `file store: p50 ${round(file.append.p50, 3)} ms, p99 ${round(file.append.p99, 3)} ms; 16 sessions: ${Math.round(file.append.concurrentPerSec)} appends/s`,
        ratio: `p50 ×${round(postgres.append.p50 / file.append.p50)}, 16 sessions ×${round(postgres.append.concurrentPerSec / file.append.concurrentPerSec)}`,
        goal: 'say where the time goes',
        met: undefined
      })
      for (const size of Object.keys(postgres.history)) {
        const ours = postgres.history[size] as { p50: number, p99: number }
        const theirs = file.history[size] as { p50: number, p99: number }
        const small = postgres.history[Object.keys(postgres.history)[0] as string] as { p50: number }
        rows.push({
          what: `history: newest 50 of ${Number(size).toLocaleString('en')} entries (PostgreSQL store)`,
          ours: `p50 ${round(ours.p50, 3)} ms, p99 ${round(ours.p99, 3)} ms (×${round(ours.p50 / small.p50)} of the smallest)`,
          baseline: `file store: p50 ${round(theirs.p50, 3)} ms, p99 ${round(theirs.p99, 3)} ms`,
          ratio: `×${round(ours.p50 / theirs.p50)}`,
          goal: 'largest within 2x of smallest',
          met: size === Object.keys(postgres.history).at(-1) ? ours.p50 / small.p50 <= 2 : undefined
        })
      }
    } finally {
      for (const stop of stops.splice(0)) await stop()
    }
  },

  async streaming () {
    const deltas = process.env.DELTAS ?? '1000'
    for (const watchers of [1, 100]) {
      const bare = await streaming('bench/servers/bare-ws.ts', { DELTAS: deltas }, watchers, true)
      const ours = await streaming('bench/servers/gateway.ts', { AGENT: 'burst', DELTAS: deltas }, watchers, false)
      const ratio = ours.eventsPerSec / bare.eventsPerSec
      rows.push({
        what: `deltas to ${watchers} watcher(s) of one session (${deltas} deltas)`,
        ours: `${Math.round(ours.eventsPerSec)} events/s`,
        baseline: `${Math.round(bare.eventsPerSec)} events/s (bare ws broadcast, same bytes)`,
        ratio: `×${round(ratio)}`,
        goal: 'at least half of bare',
        met: ratio >= 0.5
      })
    }
  }
}

for (const [name, section] of Object.entries(sections)) {
  if (only !== undefined && !only.includes(name)) continue
  process.stderr.write(`bench: ${name}…\n`)
  await section()
}

const header = ['what', 'ours', 'baseline (same run)', 'ratio', 'goal', 'met']
const lines = rows.map(r => [r.what, r.ours, r.baseline, r.ratio, r.goal, r.met === undefined ? '—' : r.met ? 'yes' : 'no'])
process.stdout.write(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n`)
for (const line of lines) process.stdout.write(`| ${line.join(' | ')} |\n`)
