import { request as httpRequest, type IncomingMessage } from 'node:http'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { echoAgent, type SessionGatewayOptions } from '../lib/index.js'
import { GatewaySocket, listen, type Frame } from './gateway-frames.js'
import { buildApp, TOKEN, user } from './helpers.js'

// Legal messages at the size limits, over real sockets on 127.0.0.1: the largest frame a
// client may send, and a resume across a turn of several MiB, must reach the client whole.

const MAX_PAYLOAD = 4 * 1024 * 1024

/** A message of many 64 KiB words whose `chat.send` frame is exactly `frameBytes` long. */
function messageFilling (frameBytes: number, frameOf: (message: string) => string): string {
  const word = 'w'.repeat(64 * 1024 - 1)
  const probe = frameOf('')
  const room = frameBytes - Buffer.byteLength(probe)
  const words = Math.floor(room / (word.length + 1))
  const body = Array.from({ length: words }, () => word).join(' ')
  return body + ' ' + 'x'.repeat(room - body.length - 1)
}

async function app (t: Test, gateway: { maxQueuedBytes?: number } = {}, options: Partial<SessionGatewayOptions> = {}): Promise<FastifyInstance> {
  const app = await buildApp(t, { agent: echoAgent(), gateway, ...options })
  await listen(app)
  return app
}

/** The first frame that matches; fails at once, and briefly, when the socket closes or time runs out. */
async function until (client: GatewaySocket, match: (frame: Frame) => boolean, timeoutMs = 60_000): Promise<Frame> {
  let onClose: (code: number, reason: Buffer) => void = () => {}
  const closed = new Promise<never>((resolve, reject) => {
    onClose = (code, reason) => reject(new Error(`closed ${code} ${String(reason)} after ${client.frames.length} frames`))
    client.socket.once('close', onClose)
  })
  const found = client.next(match, timeoutMs).catch(() => { throw new Error(`no matching frame within ${timeoutMs} ms, after ${client.frames.length} frames`) })
  try {
    return await Promise.race([found, closed])
  } finally {
    client.socket.off('close', onClose)
  }
}

async function open (t: Test, app: FastifyInstance, caps?: string[]): Promise<GatewaySocket> {
  const socket = await GatewaySocket.open(app, caps === undefined ? {} : { caps })
  t.teardown(() => socket.close())
  return socket
}

t.test('a chat.send of exactly maxPayload reaches its final on the sender\'s own connection', async t => {
  const server = await app(t)
  const client = await open(t, server)
  const frameOf = (message: string): string => JSON.stringify({ type: 'req', id: 'big', method: 'chat.send', params: { sessionKey: 'large', message, idempotencyKey: 'large-1' } })
  const message = messageFilling(MAX_PAYLOAD, frameOf)
  const frame = frameOf(message)
  t.equal(Buffer.byteLength(frame), MAX_PAYLOAD, 'the frame is exactly the largest allowed')
  client.send(frame)
  t.match(await until(client, f => f.id === 'big'), { ok: true, payload: { status: 'started' } })
  const final = await until(client, f => f.event === 'chat' && f.payload?.state !== 'delta')
  t.equal(client.closed, undefined, 'the connection is open')
  t.equal(final.payload.state, 'final')
  t.equal(final.payload.message.content[0].text, message, 'the whole answer')
  const deltas = client.events('chat').filter(f => f.payload.state === 'delta').map(f => String(f.payload.deltaText)).join('')
  t.equal(deltas, message, 'the deltas, merged or not, add up to the answer')
})

t.test('sessions.open {since} across turns of several MiB replays every event, paced by the socket', async t => {
  // Less than the replay (about 35 MiB waits to be sent), more than one turn's live frames;
  // memory enough to hold three such turns' events (each delta carries the text so far).
  const server = await app(t, { maxQueuedBytes: 20 * 1024 * 1024 }, { maxReplayBytes: 512 * 1024 * 1024 })
  const sender = await open(t, server)
  await sender.request('sessions.open', { key: 'resumed' })
  const texts: string[] = []
  for (let turn = 0; turn < 3; turn++) {
    const text = Array.from({ length: 40 }, (_, i) => `${turn}-${i}-` + 'r'.repeat(64 * 1024)).join(' ')
    texts.push(text)
    const ack = await sender.request('chat.send', { sessionKey: 'resumed', message: text, idempotencyKey: `resumed-${turn}` })
    t.equal(ack.ok, true)
    await until(sender, f => f.event === 'chat' && f.payload?.runId === `resumed-${turn}` && f.payload.state === 'final')
  }
  // A client that reconnects with the cursor it had before the turns: the session's start.
  const since = `${String(sender.events('session.message')[0]?.payload.cursor).split(':')[0] as string}:0`
  const reader = await open(t, server, ['session-cursor'])
  const resumed = await reader.request('sessions.open', { key: 'resumed', since })
  t.equal(resumed.payload.replay, 'replay', 'exactly the missed events, from memory')
  const lastFinal = await until(reader, f => f.event === 'chat' && f.payload?.runId === 'resumed-2' && f.payload.state === 'final')
  t.equal(reader.closed, undefined, 'the connection is open')
  t.equal(lastFinal.payload.cursor, resumed.payload.cursor, 'up to where the session stands')
  const finals = reader.events('chat').filter(f => f.payload.state === 'final').map(f => f.payload.message.content[0].text)
  t.same(finals, texts, 'every answer, whole, in order')
  const users = reader.events('session.message').filter(f => f.payload.message.role === 'user').map(f => f.payload.message.content[0].text)
  t.same(users, texts, 'every user message')
  const seqOf = (cursor: unknown): number => Number(String(cursor).split(':').at(-1))
  let expected = seqOf(since) + 1
  const gaps: string[] = []
  for (const frame of reader.frames.filter(f => f.type === 'event' && f.payload?.cursor !== undefined)) {
    const from = seqOf(frame.payload.cursorFrom ?? frame.payload.cursor)
    if (from !== expected) gaps.push(`${String(frame.event)} at ${from}, expected ${expected}`)
    expected = seqOf(frame.payload.cursor) + 1
  }
  t.same(gaps, [], 'no position lost or repeated')
})

t.test('the REST event stream resumes across turns of several MiB, paced by the reader', async t => {
  const server = await buildApp(t, { agent: echoAgent(), rest: { maxQueuedBytes: 20 * 1024 * 1024 } })
  await listen(server)
  const texts: string[] = []
  let since = ''
  for (let turn = 0; turn < 3; turn++) {
    const text = Array.from({ length: 40 }, (_, i) => `${turn}-${i}-` + 's'.repeat(64 * 1024)).join(' ')
    texts.push(text)
    const ticket = await server.sessionGateway.send({ sessionKey: 'agent:main:sse', agentId: 'main', input: [user(text)] })
    if (turn === 0) since = `${ticket.cursor.split(':')[0] as string}:0`
    await ticket.result
  }
  const port = (server.server.address() as { port: number }).port
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path: '/v1/sessions/sse/events', headers: { authorization: `Bearer ${TOKEN}`, 'last-event-id': since } })
    request.on('response', resolve).on('error', reject).end()
  })
  t.teardown(() => response.destroy())
  let text = ''
  const finals: string[] = []
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${finals.length} finals within 60 s`)), 60_000)
    response.on('end', () => reject(new Error('the stream ended')))
    response.on('data', (chunk: Buffer) => {
      text += String(chunk)
      for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
        const event = text.slice(0, end)
        text = text.slice(end + 2)
        if (!event.includes('event: chat') || !event.includes('"state":"final"')) continue
        finals.push(JSON.parse(event.slice(event.indexOf('data: ') + 6)).message.content[0].text)
        if (finals.length === 3) {
          clearTimeout(timer)
          resolve()
        }
      }
    })
  })
  t.same(finals, texts, 'every answer, whole, in order')
})
