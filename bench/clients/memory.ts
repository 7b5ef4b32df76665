// Heap held between turns, in this process (the gateway as a library, the file store in a
// temp dir, a gateway-protocol client on 127.0.0.1 watching every session it sends to).
// FLOOD=large: TURNS keyed turns of 1 MiB in 64 KiB words over the socket, one session
// each (each delta carries the text so far). FLOOD=small: TURNS one-line turns through the
// API, one session each, which then go idle.
// OPTIONS: JSON plugin options on top of the defaults. Prints one JSON line.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import sessionGateway, { FileStore } from '../../lib/index.js'
import { GatewaySocket, listen } from '../../test/gateway-frames.js'
import { TOKEN } from '../../test/helpers.js'
import { heapAfterGc } from '../../test/soak.js'

const flood = process.env.FLOOD ?? 'large'
const turns = Number(process.env.TURNS ?? 100)
const dir = mkdtempSync(join(tmpdir(), 'fsg-memory-'))
process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
const app = Fastify()
await app.register(sessionGateway, { auth: { token: TOKEN }, store: new FileStore({ dir, fsync: false }), ...JSON.parse(process.env.OPTIONS ?? '{}') })
await listen(app)
const client = await GatewaySocket.open(app)
const word = 'w'.repeat(64 * 1024 - 1)
const message = (i: number): string => flood === 'large' ? `turn ${i} ${Array.from({ length: 16 }, () => word).join(' ')}` : `hello ${i}`

async function turn (i: number): Promise<void> {
  if (flood === 'small') {
    // Through the API, so the sessions go idle (a connection would go on watching each).
    await (await app.sessionGateway.send({ sessionKey: `agent:main:small-${i}`, agentId: 'main', input: [{ role: 'user', content: [{ type: 'text', text: message(i) }], timestamp: Date.now() }] })).result
    return
  }
  await client.request('chat.send', { sessionKey: `${flood}-${i}`, message: message(i), idempotencyKey: `${flood}-${i}` })
  await client.next(f => f.event === 'chat' && f.payload.runId === `${flood}-${i}` && f.payload.state === 'final', 60_000)
  client.frames.splice(0) // the client keeps nothing
}

await turn(-1) // what the first turn loads, every turn uses
const before = heapAfterGc()
for (let i = 0; i < turns; i++) await turn(i)
const grown = heapAfterGc() - before
client.close()
await app.close()
process.stdout.write(JSON.stringify({ grownBytes: grown, payloadBytes: flood === 'large' ? turns * 1024 * 1024 : turns * 8 }) + '\n')
