// Support for the client's tests: `ws` as the client's WebSocket (Node 20 has no global
// one), a listening gateway, and a scripted fake gateway for what a real one never does.
import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import WebSocket, { WebSocketServer } from 'ws'
import { GatewayClient, type GatewayClientOptions, type Session, type SessionUpdate, type WebSocketConstructor } from '../lib/client/index.js'
import { TOKEN } from './helpers.js'

/** `ws`, remembering every socket it opened, so a test can cut one. */
export class TrackedWebSocket extends WebSocket {
  static readonly opened: TrackedWebSocket[] = []
  /** While set, every dial fails (a refused port), so a test can act while a client is away. */
  static hold = false
  constructor (url: string) {
    super(TrackedWebSocket.hold ? 'ws://127.0.0.1:1/held' : url)
    TrackedWebSocket.opened.push(this)
  }

  /** Cuts the newest connection and keeps the client away until `release()`. */
  static cut (): void {
    TrackedWebSocket.hold = true
    TrackedWebSocket.latest.terminate()
  }

  static release (): void {
    TrackedWebSocket.hold = false
  }

  static get latest (): TrackedWebSocket {
    return TrackedWebSocket.opened.at(-1) as TrackedWebSocket
  }
}

export const WS = TrackedWebSocket as unknown as WebSocketConstructor

export function gatewayUrl (app: FastifyInstance): string {
  return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/gateway`
}

/** A client of a listening app, closed by the test's teardown. */
export async function clientOf (
  t: { teardown: (fn: () => unknown) => void },
  app: FastifyInstance,
  options: Partial<GatewayClientOptions> = {}
): Promise<GatewayClient> {
  const client = await GatewayClient.connect({ url: gatewayUrl(app), token: TOKEN, WebSocket: WS, reconnect: { initialDelayMs: 5, maxDelayMs: 50 }, ...options })
  t.teardown(() => client.close())
  return client
}

/** Resolves with the first update that matches (bounded: rejects after `timeoutMs`). */
export async function nextUpdate (session: Session, match: (update: SessionUpdate) => boolean, timeoutMs = 5000): Promise<SessionUpdate> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop()
      reject(new Error(`no matching update within ${timeoutMs} ms`))
    }, timeoutMs)
    const stop = session.on(update => {
      if (!match(update)) return
      clearTimeout(timer)
      stop()
      resolve(update)
    })
  })
}

/** Resolves when the client reaches `state` (bounded). */
export async function reaches (client: GatewayClient, state: GatewayClient['state'], timeoutMs = 5000): Promise<void> {
  if (client.state === state) return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`state ${client.state}, not ${state}, after ${timeoutMs} ms`)), timeoutMs)
    const stop = client.onState(now => {
      if (now !== state) return
      clearTimeout(timer)
      stop()
      resolve()
    })
  })
}

export function texts (session: Session): string[] {
  return session.messages.map(message => `${message.role}:${message.content.map(part => part.type === 'text' ? part.text : '').join('')}`)
}

/**
 * A fake gateway on 127.0.0.1 that runs `script` for each connection: for what a real
 * gateway never does (silence, junk, refusals by close code).
 */
export async function fakeGateway (
  t: { teardown: (fn: () => unknown) => void },
  script: (socket: WebSocket, frames: AsyncIterable<any>) => void | Promise<void>
): Promise<{ url: string, connections: number }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  const state = { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/gateway`, connections: 0 }
  server.on('connection', socket => {
    state.connections++
    const queue: any[] = []
    let wake: (() => void) | undefined
    socket.on('message', data => {
      queue.push(JSON.parse(String(data)))
      wake?.()
    })
    const frames = {
      async * [Symbol.asyncIterator] () {
        for (;;) {
          while (queue.length === 0) await new Promise<void>(resolve => { wake = resolve })
          yield queue.shift()
        }
      }
    }
    void script(socket, frames)
  })
  t.teardown(async () => {
    for (const client of server.clients) client.terminate()
    await new Promise(resolve => server.close(resolve))
  })
  return state
}

/** The frames of a handshake that succeeds, with the given tick interval. */
export function hello (id: string, tickIntervalMs = 30_000): string {
  return JSON.stringify({
    type: 'res',
    id,
    ok: true,
    payload: {
      type: 'hello-ok',
      protocol: 4,
      server: { version: 'fake', connId: 'c' },
      features: { methods: [], events: [] },
      snapshot: { presence: [], health: {}, stateVersion: { presence: 0, health: 0 }, uptimeMs: 0, sessionDefaults: { defaultAgentId: 'main', mainKey: 'main', mainSessionKey: 'agent:main:main' } },
      auth: { role: 'operator', scopes: [] },
      policy: { maxPayload: 1024, maxBufferedBytes: 1024, tickIntervalMs }
    }
  })
}

export const CHALLENGE = JSON.stringify({ type: 'event', event: 'connect.challenge', payload: { nonce: 'n', ts: 0 } })
