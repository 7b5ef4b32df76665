// The example gateway: `npm start`. Everything is configured from the environment.
//   PORT (18789)  HOST (127.0.0.1)  GATEWAY_TOKEN (random, printed)
//   GATEWAY_DATA_DIR (./data)  ECHO_DELAY_MS (0)
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import Fastify from 'fastify'
import sessionGateway, { echoAgent, FileStore, logSerializers } from '../lib/index.js'

const port = Number(process.env.PORT ?? 18789)
const host = process.env.HOST ?? '127.0.0.1'
const givenToken = process.env.GATEWAY_TOKEN
const token = givenToken ?? randomBytes(24).toString('base64url')
const delayMs = Number(process.env.ECHO_DELAY_MS ?? 0)
const dataDir = process.env.GATEWAY_DATA_DIR ?? './data'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info', serializers: logSerializers } })
await app.register(sessionGateway, {
  auth: { token },
  store: new FileStore({ dir: dataDir }),
  agent: echoAgent({ delayMs })
})

const address = await app.listen({ port, host })
// Plain lines on stdout, so a person (or a script) can pick up the URL and the token.
process.stdout.write(`session gateway listening on ${address}\n`)
// A generated token is shown once, here; one you chose is never echoed back.
process.stdout.write(givenToken === undefined ? `token: ${token}\n` : 'token: (from GATEWAY_TOKEN)\n')
process.stdout.write(`sessions in ${resolve(dataDir)}\n`)

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
