import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createParser } from 'eventsource-parser'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { GatewayClient, type Session, type SessionUpdate, type WebSocketConstructor } from '../lib/client/index.js'
import { FileStore, isMessageEntry, type TranscriptEntry } from '../lib/index.js'
import { childEnv, TOKEN } from './helpers.js'
import { bounds } from './soak.js'

// A mixed load on one gateway process over real sockets: clients of the gateway protocol
// (the typed client, whose sockets are cut at random), OpenResponses over HTTP (JSON and
// SSE) and its WebSocket mode, on a few shared sessions, with a slow consumer that never
// reads. In the same run the disk fills up for a while, and the process is killed with
// SIGKILL and started again on the same data directory and port. At the end every
// acknowledged turn is in the transcript once, answered where the client saw the answer,
// no two turns interleave, and every gateway client's view is exactly the transcript's.

const root = fileURLToPath(new URL('..', import.meta.url))
const { clients: CLIENTS, sessions: SESSIONS, loadMs: LOAD_MS } = bounds

interface Server { port: number, child: ChildProcess }

async function startServer (t: Test, dir: string, port: number, env: Record<string, string> = {}): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/children/soak-server.ts', dir, String(port)], {
    cwd: root,
    env: childEnv({ TOKEN, ...env }),
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const listening = await new Promise<number>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error('the server did not start within 30 s')), 30_000)
    child.stdout?.on('data', (chunk: Buffer) => {
      out += String(chunk)
      const found = /listening (\d+)\n/.exec(out)
      if (found === null) return
      clearTimeout(timer)
      resolve(Number(found[1]))
    })
    child.once('exit', code => {
      clearTimeout(timer)
      reject(new Error(`the server exited (${String(code)}) before it listened`))
    })
  })
  return { port: listening, child }
}

/** A turn a client was told about: accepted (its input is stored), or answered too. */
interface Turn { client: string, session: string, text: string, runId: string, answered: boolean }

t.test(`mixed load: ${CLIENTS} clients on ${SESSIONS} sessions for ${LOAD_MS} ms, cut sockets, a full disk and a kill -9; nothing acknowledged is lost`, async t => {
  const dir = await mkdtemp(join(tmpdir(), 'fsg-soak-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  // The disk is full for a tenth of the run, early on; the process dies half way through.
  let server = await startServer(t, dir, 0, { FULL_FROM_MS: String(Math.round(LOAD_MS * 0.2)), FULL_FOR_MS: String(Math.round(LOAD_MS * 0.1)) })
  const port = server.port
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + LOAD_MS
  const turns: Turn[] = []
  const wrong: string[] = []
  const figures = { refused: 0, resumes: 0, events: 0, latencies: [] as number[] }
  const keyOf = (n: number): string => `agent:main:soak-${n % SESSIONS}`
  const pick = (): string => keyOf(Math.floor(Math.random() * SESSIONS))

  // ── the clients ──────────────────────────────────────────────────────────
  const gatewayClients: Array<{ client: GatewayClient, session: Session }> = []

  async function gatewayClient (id: string, key: string): Promise<void> {
    let latest: WebSocket | undefined
    class Cuttable extends WebSocket {
      constructor (url: string) {
        super(url)
        latest = this
      }
    }
    const client = await GatewayClient.connect({ url: `ws://127.0.0.1:${port}/gateway`, token: TOKEN, WebSocket: Cuttable as unknown as WebSocketConstructor, reconnect: { initialDelayMs: 20, maxDelayMs: 250 }, requestTimeoutMs: 30_000 })
    client.onState(state => { if (state === 'reconnecting') figures.resumes++ })
    const session = await client.open(key)
    gatewayClients.push({ client, session })
    const ends = new Map<string, string>()
    session.on((update: SessionUpdate) => {
      figures.events++
      if (update.type === 'run.end') ends.set(update.runId, update.state)
    })
    for (let n = 0; Date.now() < deadline; n++) {
      const text = `${id}-t${n}`
      const started = performance.now()
      let runId: string
      try {
        const sending = session.send(text)
        if (Math.random() < 0.2) latest?.terminate() // the network drops, before or during the turn
        runId = (await sending).runId
      } catch {
        figures.refused++ // a full disk refuses the turn: it was not acknowledged
        await sleep(20)
        continue
      }
      const turn: Turn = { client: id, session: key, text, runId, answered: false }
      turns.push(turn)
      for (let i = 0; i < 1000 && !ends.has(runId); i++) await sleep(10)
      if (ends.get(runId) === 'final') {
        turn.answered = true
        figures.latencies.push(performance.now() - started)
      }
    }
  }

  async function httpClient (id: string, stream: boolean): Promise<void> {
    for (let n = 0; Date.now() < deadline; n++) {
      const text = `${id}-t${n}`
      const session = pick()
      const started = performance.now()
      let res: Response
      try {
        res = await fetch(`${base}/v1/responses`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': session },
          body: JSON.stringify({ model: 'openclaw', input: text, stream }),
          signal: AbortSignal.timeout(30_000)
        })
      } catch {
        figures.refused++ // the process is down: nothing was acknowledged
        await sleep(50)
        continue
      }
      let body: string
      try {
        body = await res.text()
      } catch {
        figures.refused++ // killed mid-answer: the client saw no end
        continue
      }
      if (res.status !== 200) {
        if (res.status !== 503) wrong.push(`${id}: ${res.status} ${body.slice(0, 200)}`)
        figures.refused++
        continue
      }
      let response: Record<string, any> | undefined
      let streamed = ''
      if (stream) {
        const parser = createParser({
          onEvent: event => {
            if (event.data === '[DONE]') return
            const data = JSON.parse(event.data) as Record<string, any>
            if (data.type === 'response.output_text.delta') streamed += String(data.delta)
            if (data.type === 'response.completed' || data.type === 'response.failed' || data.type === 'response.incomplete') response = data.response as Record<string, any>
          }
        })
        parser.feed(body)
      } else {
        response = JSON.parse(body) as Record<string, any>
      }
      if (response === undefined) {
        figures.refused++ // the stream was cut before its end
        continue
      }
      // The input was stored before the first byte of the answer.
      const turn: Turn = { client: id, session, text, runId: response.id, answered: false }
      turns.push(turn)
      if (response.status !== 'completed') continue // a turn that failed clearly (its answer could not be stored)
      const answer = response.output?.[0]?.content?.[0]?.text
      if (answer !== text || (stream && streamed !== text)) wrong.push(`${id}: answered ${JSON.stringify(answer)} (streamed ${JSON.stringify(streamed)}) to ${text}`)
      turn.answered = true
      figures.latencies.push(performance.now() - started)
    }
  }

  async function webSocketModeClient (id: string): Promise<void> {
    const session = pick()
    let socket: WebSocket | undefined
    let frames: Array<Record<string, any>> = []
    for (let n = 0; Date.now() < deadline; n++) {
      if (socket?.readyState !== WebSocket.OPEN) {
        try {
          socket = new WebSocket(`ws://127.0.0.1:${port}/v1/responses`, { headers: { authorization: `Bearer ${TOKEN}`, 'x-openclaw-session-key': session } })
          const opened = socket
          opened.on('message', data => { frames.push(JSON.parse(String(data)) as Record<string, any>) })
          opened.on('error', () => {})
          await once(opened, 'open')
        } catch {
          figures.refused++
          await sleep(50)
          continue
        }
      }
      frames = []
      const text = `${id}-t${n}`
      const started = performance.now()
      socket.send(JSON.stringify({ type: 'response.create', model: 'openclaw', input: text }))
      const until = Date.now() + 30_000
      const end = (): Record<string, any> | undefined => frames.find(f => ['response.completed', 'response.failed', 'response.incomplete', 'error'].includes(f.type))
      while (end() === undefined && socket.readyState === WebSocket.OPEN && Date.now() < until) await sleep(5)
      const last = end()
      if (last === undefined || last.type === 'error') {
        figures.refused++
        continue
      }
      const turn: Turn = { client: id, session, text, runId: last.response.id, answered: false }
      turns.push(turn)
      if (last.type !== 'response.completed') continue
      if (last.response.output?.[0]?.content?.[0]?.text !== text) wrong.push(`${id}: answered ${JSON.stringify(last.response.output)} to ${text}`)
      turn.answered = true
      figures.latencies.push(performance.now() - started)
    }
    socket?.close()
  }

  // One consumer that never reads: the server must not let it slow or break the others.
  const slow = new WebSocket(`ws://127.0.0.1:${port}/gateway`)
  slow.on('error', () => {})
  await once(slow, 'open')
  slow.pause()

  const running: Array<Promise<void>> = []
  for (let i = 0; i < CLIENTS; i++) {
    const id = `c${i}`
    switch (i % 4) {
      case 0: running.push(gatewayClient(id, keyOf(i))); break
      case 1: running.push(httpClient(id, false)); break
      case 2: running.push(httpClient(id, true)); break
      case 3: running.push(webSocketModeClient(id)); break
    }
  }

  // Half way: kill -9, and the same process again on the same directory and port.
  await sleep(LOAD_MS / 2)
  server.child.kill('SIGKILL')
  await once(server.child, 'exit')
  server = await startServer(t, dir, port)
  await Promise.all(running)
  slow.terminate()

  // ── what the clients saw, against what was stored ────────────────────────
  t.same(wrong, [], 'no client was answered wrongly')
  t.ok(turns.filter(turn => turn.answered).length >= CLIENTS, `turns were answered (${turns.filter(turn => turn.answered).length})`)
  // Each gateway client's view, once every turn has ended: exactly the newest rows of the transcript.
  for (const { client, session } of gatewayClients) {
    let stored: string[] = []
    for (let i = 0; i < 200; i++) {
      stored = (await client.chat.history({ sessionKey: session.key, limit: 1000 })).messages.map(message => message.id as string)
      if (session.running === undefined && session.messages.length > 0 && session.messages.at(-1)?.id === stored.at(-1)) break
      await sleep(25)
    }
    const view = session.messages.map(message => message.id as string)
    t.same(view, stored.slice(-view.length), `${session.key}: a client's view is the transcript's newest ${view.length} rows, each once, in order`)
    client.close()
  }
  server.child.kill('SIGTERM')
  await once(server.child, 'exit')

  const store = new FileStore({ dir })
  t.teardown(async () => await store.close())
  const seen = new Set<string>()
  for (let n = 0; n < SESSIONS; n++) {
    const key = keyOf(n)
    const entries: TranscriptEntry[] = []
    let before: string | undefined
    do {
      const page = await store.read(key, { limit: 500, ...(before === undefined ? {} : { before }) })
      entries.unshift(...page.entries)
      before = page.before
    } while (before !== undefined)
    const rows = entries.filter(isMessageEntry)
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as TranscriptEntry & { message: { role: string, content: Array<{ text?: string }> } }
      if (row.message.role !== 'user') continue
      const text = row.message.content[0]?.text as string
      if (seen.has(text)) wrong.push(`${key}: ${text} stored twice`)
      seen.add(text)
      // A turn's answer follows its input at once, no other turn in between (a turn whose
      // answer could not be stored, on the full disk, has none).
      const answer = rows.findIndex(other => other.runId === row.runId && other.message.role === 'assistant')
      if (answer !== -1 && answer !== i + 1) wrong.push(`${key}: another turn came between ${text} and its answer`)
    }
    for (const turn of turns.filter(turn => turn.session === key)) {
      const input = rows.findIndex(row => row.runId === turn.runId && row.message.role === 'user')
      if (input === -1) {
        wrong.push(`${key}: ${turn.client}'s acknowledged ${turn.text} is not stored`)
        continue
      }
      const answer = rows[input + 1] as (TranscriptEntry & { message: { content: Array<{ text?: string }> } }) | undefined
      if (turn.answered && (answer?.runState !== 'final' || answer.message.content[0]?.text !== turn.text)) wrong.push(`${key}: the answer to ${turn.text} is not stored as the client saw it`)
    }
  }
  t.same(wrong, [], 'every acknowledged turn is stored once, answered as its client saw, and no two turns interleave')
  const sorted = figures.latencies.sort((a, b) => a - b)
  t.comment(`turns acknowledged ${turns.length}, answered ${sorted.length}, refused (clearly) ${figures.refused}, reconnects ${figures.resumes}, session updates ${figures.events}, p50 ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms, p99 ${Math.round(sorted[Math.floor(sorted.length * 0.99)] ?? 0)} ms`)
})
