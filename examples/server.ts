// The example gateway: `npm start`. Everything is configured from the environment.
//   PORT (18789)  HOST (127.0.0.1)  GATEWAY_TOKEN (random, printed)
//   GATEWAY_DATA_DIR (./data)  LOG_LEVEL (info)  AGENT (echo; see agent-from-env.ts)  HEADERS_TIMEOUT_MS (10000)
//   DATABASE_URL (set: PostgreSQL for the store, migrated first with `npm run postgres:migrate`)
//   REDIS_URL (set: the Redis session log, shared with other processes, and Redis for the store unless DATABASE_URL)
//   CONTROL_UI_ROOT (set: OpenClaw's Control UI from that directory at / instead of the demo portal)
//   See sessions-from-env.ts.
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import sessionGateway, { logSerializers } from 'fastify-session-gateway'
import { agentFromEnv } from './agent-from-env.js'
import { portal } from './portal/serve.js'
import { sessionsFromEnv } from './sessions-from-env.js'
import { envChoice, envInteger, envText, guardStart, StartError } from './startup.js'

// Until it listens, every failure is one line on stderr and exit code 1.
const started = guardStart()
const port = envInteger('PORT', 18789, 0, 65535)
const host = envText('HOST', '127.0.0.1') ?? '127.0.0.1'
const givenToken = envText('GATEWAY_TOKEN', 'a random token, printed at start')
const token = givenToken ?? randomBytes(24).toString('base64url')
// OpenClaw's Control UI takes `/` (and every path under it), where the demo portal would be.
const controlUiRoot = envText('CONTROL_UI_ROOT', 'the demo portal at /')
const logLevel = envChoice('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info')
// A mistake in the agent's variables is one line too (agentFromEnv says which).
const chosen = agentFromEnv(process.env)
// A file store in GATEWAY_DATA_DIR, PostgreSQL or Redis (checked here, before listening).
const sessions = await sessionsFromEnv()

// Node gives a request 60 s to finish its headers, and looks only every 30 s: a WebSocket
// upgrade (or any request) that never finishes them held its socket that long.
const headersTimeout = envInteger('HEADERS_TIMEOUT_MS', 10_000, 1, 600_000)

const app = Fastify({
  logger: { level: logLevel, serializers: logSerializers },
  http: { headersTimeout, connectionsCheckingInterval: Math.min(1000, headersTimeout) }
})
try {
  await app.register(sessionGateway, {
    auth: { token },
    store: sessions.store,
    ...(sessions.sessionLog === undefined ? {} : { sessionLog: sessions.sessionLog, orphanCheckMs: sessions.orphanCheckMs }),
    ...(controlUiRoot === undefined ? {} : { controlUi: { root: controlUiRoot } }),
    agent: chosen.agent
  })
} catch (err) {
  // The plugin names its option; whoever runs this set a variable.
  if ((err as { code?: string }).code === 'FSG_INVALID_OPTION' && (err as Error).message.includes('"controlUi.root"')) {
    throw new StartError(`CONTROL_UI_ROOT=${controlUiRoot as string} holds no Control UI (its index.html): point it at the dist/control-ui directory of the openclaw npm package (npm pack openclaw && tar xzf openclaw-*.tgz package/dist/control-ui)`)
  }
  throw err
}
if (controlUiRoot === undefined) await app.register(portal) // the demo portal at /

const address = await app.listen({ port, host })
started()
// Plain lines on stdout, so a person (or a script) can pick up the URL and the token.
process.stdout.write(`session gateway listening on ${address}\n`)
// A generated token is shown once, here; one you chose is never echoed back.
process.stdout.write(givenToken === undefined ? `token: ${token}\n` : 'token: (from GATEWAY_TOKEN)\n')
process.stdout.write(`${sessions.description}\n`)
process.stdout.write(`agent: ${chosen.description}\n`)
process.stdout.write(controlUiRoot === undefined ? 'page: the demo portal\n' : `page: OpenClaw's Control UI from ${controlUiRoot}\n`)

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
