// The plugin as a benchmark server: `listening <url>` on stdout, token `bench`.
//   STORE=memory|file   DATA_DIR, FSYNC=0|1 (for file)   AGENT=echo|burst|openai   DELTAS (burst: deltas per turn)
//   UPSTREAM_URL (openai: an OpenAI-compatible server, such as bench/servers/instant-upstream.ts)
//   STORE=redis and/or LOG=redis with REDIS_URL, KEY_PREFIX: processes that share one Redis behave as one
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import sessionGateway, { echoAgent, FileStore, MemoryStore, openAIAgent, type Agent, type SessionLog, type SessionStore } from '../../lib/index.js'
import { RedisSessionLog, RedisStore } from '../../lib/redis/index.js'

// Asked before its memory is read (SIGUSR2): collect garbage. Installed before anything can send it.
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.())

const deltas = Number(process.env.DELTAS ?? 1000)
const burst: Agent = {
  async * respond () {
    for (let i = 0; i < deltas; i++) yield { type: 'text', delta: `w${i} ` }
  }
}

// FSYNC=0 measures the file store without flushing each append: the difference is the durable write.
function store (): SessionStore {
  if (process.env.STORE === 'redis') return new RedisStore({ url: process.env.REDIS_URL as string, keyPrefix: process.env.KEY_PREFIX ?? 'bench:' })
  if (process.env.STORE !== 'file') return new MemoryStore()
  const dir = process.env.DATA_DIR ?? mkdtempSync(join(tmpdir(), 'fsg-bench-'))
  if (process.env.DATA_DIR === undefined) process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return new FileStore({ dir, fsync: process.env.FSYNC !== '0' })
}

function agent (): Agent {
  if (process.env.AGENT === 'burst') return burst
  if (process.env.AGENT === 'openai') return openAIAgent({ baseURL: `${process.env.UPSTREAM_URL as string}/v1`, model: 'bench', maxRetries: 0 })
  return echoAgent()
}

function sessionLog (): SessionLog | undefined {
  if (process.env.LOG !== 'redis') return undefined
  return new RedisSessionLog({ url: process.env.REDIS_URL as string, keyPrefix: process.env.KEY_PREFIX ?? 'bench:', replay: 4096 })
}

const log = sessionLog()
const app = Fastify({ logger: false })
await app.register(sessionGateway, {
  auth: { token: 'bench' },
  agent: agent(),
  replay: 4096,
  store: store(),
  ...(log === undefined ? {} : { sessionLog: log }),
  gateway: { maxBufferedBytes: 64 * 1024 * 1024 }
})
const url = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(`listening ${url}\n`)
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
