import t from 'tap'
import { NO_TELEMETRY } from '../lib/telemetry.js'
import { ResponsesService } from '../lib/transports/responses/service.js'
import { ResponsesConnection } from '../lib/transports/responses/websocket-connection.js'
import { buildApp, gatedAgent } from './helpers.js'

// WebSocket mode's protocol core, driven without a socket.

class FakeSocket {
  readonly bufferedAmount = 0
  readonly frames: Array<Record<string, any>> = []
  closed: { code: number, reason: string } | undefined
  failSends = false

  send (text: string): void {
    if (this.failSends) throw new Error('gone')
    this.frames.push(JSON.parse(text))
  }

  close (code: number, reason: string): void {
    this.closed = { code, reason }
  }
}

async function until (check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise(resolve => setTimeout(resolve, 5))
}

t.test('the core: string frames, a queue that outlives a closed socket, a failing send, expiry mid-response', async t => {
  const agent = gatedAgent()
  const app = await buildApp(t, { agent })
  const service = new ResponsesService(app.sessionGateway, app.log, 60_000)
  const make = (maxAgeMs = 60_000): { socket: FakeSocket, connection: ResponsesConnection } => {
    const socket = new FakeSocket()
    const connection = new ResponsesConnection(socket, { service, principal: { id: 'p' }, hints: {}, maxAgeMs, maxPayload: 65536, maxBufferedBytes: 1 << 20, maxQueuedBytes: 1 << 20, telemetry: NO_TELEMETRY, logger: app.log })
    t.teardown(() => connection.dispose())
    return { socket, connection }
  }

  const { socket, connection } = make()
  connection.receive('null', false)
  connection.receive(JSON.stringify({ type: 'response.create', input: 'first' }), false)
  connection.receive(JSON.stringify({ type: 'response.create', input: 'queued behind' }), false)
  await until(() => socket.frames.length > 0)
  t.match(socket.frames[0], { type: 'error', error: { param: 'type' } })
  await agent.waitStarted(1)
  connection.close(1000, 'bye')
  connection.receive(JSON.stringify({ type: 'response.create', input: 'ignored' }), false)
  agent.release()
  await new Promise(resolve => setTimeout(resolve, 30))
  t.equal(agent.started.length, 1, 'a response queued behind a closed socket never starts')
  t.same(socket.closed, { code: 1000, reason: 'bye' })

  const failing = make()
  failing.socket.failSends = true
  failing.connection.receive('{"type":"nope"}', false)
  await until(() => failing.socket.closed !== undefined)
  t.same(failing.socket.closed, { code: 1011, reason: 'send failed' })

  const aging = make(50)
  aging.connection.receive(JSON.stringify({ type: 'response.create', input: 'long one' }), false)
  await agent.waitStarted(2)
  await new Promise(resolve => setTimeout(resolve, 80))
  aging.connection.receive(JSON.stringify({ type: 'response.create', input: 'too late' }), false)
  t.match(aging.socket.frames.at(-1), { type: 'error', error: { code: 'websocket_connection_limit_reached' } })
  t.same(aging.socket.closed, { code: 1000, reason: 'websocket_connection_limit_reached' })
  agent.release()

  const flooding = make()
  for (let i = 0; i < 40; i++) flooding.connection.receive(JSON.stringify({ type: 'response.create', input: `flood ${i}` }), false)
  t.equal(flooding.socket.frames.filter(f => f.error?.code === 'too_many_pending_responses').length, 8, 'past 32 waiting frames, the rest are refused at once')
  t.match(flooding.socket.frames[0], { type: 'error', status: 429, error: { type: 'rate_limit_error' } })
  for (let i = 0; i < 32; i++) agent.release()
  flooding.connection.close(1000, 'done')

  const big = make()
  big.connection.receive(Buffer.alloc(70_000, 0x20), false)
  t.same(big.socket.closed, { code: 1009, reason: 'frame too large' }, 'the core enforces maxPayload itself (the app may allow more)')
})
