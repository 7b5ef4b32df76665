// The example gateway: `npm start`. Everything is configured from the environment.
//   PORT (18789)  HOST (127.0.0.1)  GATEWAY_TOKEN (random, printed)
//   GATEWAY_DATA_DIR (./data)  LOG_LEVEL (info)  AGENT (echo; see agent-from-env.ts)  HEADERS_TIMEOUT_MS (10000)
//   DATABASE_URL (unset: the file store; set: PostgreSQL, migrated first with `npm run postgres:migrate`)
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import Fastify from 'fastify'
import sessionGateway, { FileStore, logSerializers, type SessionStore } from 'fastify-session-gateway'
import { PostgresStore } from 'fastify-session-gateway/postgres'
import { agentFromEnv } from './agent-from-env.js'
import { portal } from './portal/serve.js'
import { checkDatabase, checkDataDir, envChoice, envInteger, envText, guardStart } from './startup.js'

// Until it listens, every failure is one line on stderr and exit code 1.
const started = guardStart()
const port = envInteger('PORT', 18789, 0, 65535)
const host = envText('HOST', '127.0.0.1') ?? '127.0.0.1'
const givenToken = envText('GATEWAY_TOKEN', 'a random token, printed at start')
const token = givenToken ?? randomBytes(24).toString('base64url')
const dataDir = envText('GATEWAY_DATA_DIR', './data') ?? './data'
const databaseUrl = envText('DATABASE_URL', 'the file store in GATEWAY_DATA_DIR')
const logLevel = envChoice('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info')
// A mistake in the agent's variables is one line too (agentFromEnv says which).
const chosen = agentFromEnv(process.env)
let store: SessionStore
if (databaseUrl === undefined) {
  await checkDataDir(dataDir, 'GATEWAY_DATA_DIR')
  store = new FileStore({ dir: dataDir })
} else {
  // Sessions in PostgreSQL: the database must answer, with its tables made, before we listen.
  const database = new PostgresStore({ connectionString: databaseUrl })
  await checkDatabase(async () => { await database.open() })
  store = database
}

// Node gives a request 60 s to finish its headers, and looks only every 30 s: a WebSocket
// upgrade (or any request) that never finishes them held its socket that long.
const headersTimeout = envInteger('HEADERS_TIMEOUT_MS', 10_000, 1, 600_000)

const app = Fastify({
  logger: { level: logLevel, serializers: logSerializers },
  http: { headersTimeout, connectionsCheckingInterval: Math.min(1000, headersTimeout) }
})
await app.register(sessionGateway, {
  auth: { token },
  store,
  agent: chosen.agent
})
await app.register(portal) // the demo portal at /

const address = await app.listen({ port, host })
started()
// Plain lines on stdout, so a person (or a script) can pick up the URL and the token.
process.stdout.write(`session gateway listening on ${address}\n`)
// A generated token is shown once, here; one you chose is never echoed back.
process.stdout.write(givenToken === undefined ? `token: ${token}\n` : 'token: (from GATEWAY_TOKEN)\n')
process.stdout.write(databaseUrl === undefined ? `sessions in ${resolve(dataDir)}\n` : 'sessions in PostgreSQL (DATABASE_URL)\n')
process.stdout.write(`agent: ${chosen.description}\n`)

let closing = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    app.close().then(() => process.exit(0), err => {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  })
}
