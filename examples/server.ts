// The example gateway: `npm start`. Everything is configured from the environment.
//   PORT (18789)  HOST (127.0.0.1)  GATEWAY_TOKEN (random, printed)
//   GATEWAY_DATA_DIR (./data)  AGENT (echo; see agent-from-env.ts)
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import Fastify from 'fastify'
import sessionGateway, { FileStore, isGatewayError, logSerializers } from '../lib/index.js'
import { agentFromEnv, EnvError } from './agent-from-env.js'

const port = Number(process.env.PORT ?? 18789)
const host = process.env.HOST ?? '127.0.0.1'
const givenToken = process.env.GATEWAY_TOKEN
const token = givenToken ?? randomBytes(24).toString('base64url')
const dataDir = process.env.GATEWAY_DATA_DIR ?? './data'

let chosen: ReturnType<typeof agentFromEnv>
try {
  chosen = agentFromEnv(process.env)
} catch (err) {
  // A mistake in the environment is one line to fix, not a stack trace.
  if (!(err instanceof EnvError) && !isGatewayError(err)) throw err
  process.stderr.write(`cannot start: ${err.message}\n`)
  process.exit(1)
}

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info', serializers: logSerializers } })
await app.register(sessionGateway, {
  auth: { token },
  store: new FileStore({ dir: dataDir }),
  agent: chosen.agent
})

const address = await app.listen({ port, host })
// Plain lines on stdout, so a person (or a script) can pick up the URL and the token.
process.stdout.write(`session gateway listening on ${address}\n`)
// A generated token is shown once, here; one you chose is never echoed back.
process.stdout.write(givenToken === undefined ? `token: ${token}\n` : 'token: (from GATEWAY_TOKEN)\n')
process.stdout.write(`sessions in ${resolve(dataDir)}\n`)
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
