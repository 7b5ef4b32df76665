import t from 'tap'
import type { SessionUpdate } from '../lib/client/index.js'
import { echoAgent } from '../lib/index.js'
import { clientOf, nextUpdate, TrackedWebSocket } from './client-support.js'
import { listen } from './gateway-frames.js'
import { buildApp } from './helpers.js'

const ROUNDS = 100
const DEADLINE_MS = 90_000

t.test(`the socket dropped at a random point of a turn, ${ROUNDS} times: the text assembled from updates is the final answer, every message once`, async t => {
  // A small ring, so some gaps are replayed from memory and longer ones caught up from the store.
  const app = await buildApp(t, { agent: echoAgent({ delayMs: 1 }), replay: 8 })
  await listen(app)
  const client = await clientOf(t, app, { reconnect: { initialDelayMs: 1, maxDelayMs: 10 } })
  await client.sessions.create({ key: 'drops' })
  const session = await client.open('drops')
  // What a UI shows for the turn: the streamed text, extended by each delta, until the answer's row replaces it.
  let expected = ''
  let shown = ''
  let runId: string | undefined
  const wrong: string[] = []
  session.on((update: SessionUpdate) => {
    if (update.type === 'delta') {
      shown = update.runId === runId ? shown + update.delta : update.text
      runId = update.runId
      if (shown !== update.text || !expected.startsWith(shown)) wrong.push(`streamed ${JSON.stringify(shown)} of ${JSON.stringify(expected)}`)
    }
    if (update.type === 'message' && update.message.role === 'assistant') shown = update.message.content.map(part => part.type === 'text' ? part.text : '').join('')
    if (update.type === 'reset') shown = update.running?.text ?? ''
  })
  // Frames the client has read since the turn began; the drop comes after a random number of them.
  let frames = 0
  client.onEvent(() => { frames++ })

  const started = Date.now()
  let rounds = 0
  for (; rounds < ROUNDS && Date.now() - started < DEADLINE_MS; rounds++) {
    const words = 4 + (rounds % 17)
    const text = Array.from({ length: words }, (_, i) => `r${rounds}w${i}`).join(' ')
    expected = text
    const dropAfter = Math.floor(Math.random() * (words + 4))
    frames = 0
    const ended = nextUpdate(session, update => update.type === 'run.end', 10_000)
    const sending = session.send(text)
    for (let i = 0; i < 2000 && frames < dropAfter && session.running?.text !== text; i++) await new Promise(resolve => setImmediate(resolve))
    TrackedWebSocket.latest.terminate()
    await sending
    const end = await ended as Extract<SessionUpdate, { type: 'run.end' }>
    t.equal(end.state, 'final')
    if (shown !== text) t.fail(`round ${rounds}: shows ${JSON.stringify(shown)}, the answer is ${JSON.stringify(text)}`)
  }
  t.same(wrong, [], 'streamed text never doubled or skipped ahead')
  t.equal(rounds, ROUNDS, `all ${ROUNDS} rounds ran within ${DEADLINE_MS} ms`)
  const roles = session.messages.map(message => message.role)
  t.equal(roles.length, 2 * ROUNDS, 'every message once')
  t.ok(roles.every((role, i) => role === (i % 2 === 0 ? 'user' : 'assistant')), 'in order')
  const stored = await client.chat.history({ sessionKey: 'drops', limit: 1000 })
  t.same(session.messages.map(message => message.id), stored.messages.map(message => message.id), 'the same rows, in the same order, as the store')
})
