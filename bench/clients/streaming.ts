// WATCHERS clients watch one session; one more client starts a turn of DELTAS deltas.
// With URLS, the watchers are spread over several processes sharing one Redis.
// Prints {watchers, deltas, eventsPerSec, bytes}. Exits 1 if a watcher lost, repeated or
// reordered a delta, or missed the final. BASELINE=1: the same frames from a bare `ws`
// broadcast (captured from our own server by CAPTURE first).
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { ProtocolClient, type Frame } from './protocol-client.js'

const url = process.env.URL as string
// URLS: several processes of one deployment (on Redis): watchers spread over them, the turn starts on the first.
const urls = (process.env.URLS ?? url).split(',')
const watchers = Number(process.env.WATCHERS ?? 1)
const deltas = Number(process.env.DELTAS ?? 1000)
const baseline = process.env.BASELINE === '1'
const sessionKey = `stream-${process.pid}`

interface Watch { count: number, bytes: number, first: number, last: number, ok: boolean, done: Promise<void> }

function watch (socket: WebSocket, parse: (data: Buffer) => Frame): Watch {
  let finish: () => void = () => {}
  const w: Watch = { count: 0, bytes: 0, first: 0, last: 0, ok: true, done: new Promise(resolve => { finish = resolve }) }
  socket.on('message', (data: Buffer) => {
    const frame = parse(data)
    if (frame.event !== 'chat') return
    w.bytes += data.length
    if (w.count === 0) w.first = performance.now()
    if (frame.payload?.state === 'delta') {
      // Deltas are "w0 ", "w1 ", … in order: anything else is a lost, repeated or reordered one.
      if (frame.payload.deltaText !== `w${w.count} `) w.ok = false
      w.count++
    } else {
      w.last = performance.now()
      if (w.count !== deltas) w.ok = false
      finish()
    }
  })
  return w
}

const parse = (data: Buffer): Frame => JSON.parse(String(data)) as Frame
let watches: Watch[]
if (baseline) {
  // The bytes our server sent for the same turn: rebuilt here the same way, sent by a bare broadcaster.
  const sockets = await Promise.all(Array.from({ length: watchers }, async () => {
    const socket = new WebSocket(url.replace(/^http/, 'ws'))
    await new Promise(resolve => socket.once('open', resolve))
    return socket
  }))
  watches = sockets.map(socket => watch(socket, parse))
  const driver = new WebSocket(url.replace(/^http/, 'ws'))
  await new Promise(resolve => driver.once('open', resolve))
  const frames: string[] = []
  let text = ''
  for (let i = 0; i < deltas; i++) {
    text += `w${i} `
    frames.push(JSON.stringify({ type: 'event', event: 'chat', payload: { runId: 'r', sessionKey, state: 'delta', deltaText: `w${i} `, message: { role: 'assistant', content: [{ type: 'text', text }], timestamp: Date.now() }, seq: i + 1 }, seq: i + 2 }))
  }
  frames.push(JSON.stringify({ type: 'event', event: 'chat', payload: { runId: 'r', sessionKey, state: 'final', message: { role: 'assistant', content: [{ type: 'text', text }], stopReason: 'stop', timestamp: Date.now() }, stopReason: 'stop', seq: deltas + 1 }, seq: deltas + 3 }))
  const started = performance.now()
  driver.send(JSON.stringify({ frames }))
  await Promise.all(watches.map(async w => await w.done))
  report(started)
  driver.close()
  for (const socket of sockets) socket.close()
} else {
  const clients = await Promise.all(Array.from({ length: watchers }, async (_, i) => await ProtocolClient.connect(urls[i % urls.length] as string, 'bench')))
  for (const client of clients) await client.request('sessions.messages.subscribe', { key: sessionKey })
  watches = clients.map(client => watch(client.socket, parse))
  const driver = await ProtocolClient.connect(url, 'bench')
  const started = performance.now()
  await driver.request('chat.send', { sessionKey, message: 'go', idempotencyKey: `run-${process.pid}` })
  await Promise.all(watches.map(async w => await w.done))
  report(started)
  driver.close()
  for (const client of clients) client.close()
}

function report (started: number): void {
  const end = Math.max(...watches.map(w => w.last))
  const received = watches.reduce((sum, w) => sum + w.count, 0)
  const ok = watches.every(w => w.ok)
  process.stdout.write(JSON.stringify({
    watchers, deltas, ok, eventsPerSec: received / ((end - started) / 1000), bytes: watches.reduce((s, w) => s + w.bytes, 0)
  }) + '\n')
  process.exit(ok ? 0 : 1)
}
