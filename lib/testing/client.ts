import type { FastifyInstance } from 'fastify'
import type {} from '@fastify/websocket'
import { GatewayClient, type GatewayClientOptions, type WebSocketConstructor, type WebSocketLike } from '../client/index.js'

export interface TestClientOptions extends Omit<GatewayClientOptions, 'url' | 'WebSocket'> {
  /** The gateway protocol's path, with a query string if you like. Default `/gateway`. */
  path?: string
  /** Headers of the upgrade request (`authorization`, `x-openclaw-session-key`). */
  headers?: Record<string, string>
}

/**
 * A connected, typed client of the gateway protocol over `app.injectWS`: no port, no
 * network, one line in a test. It does not reconnect unless asked to. Close it, or the
 * app, when the test is done.
 */
export async function connectClient (app: FastifyInstance, options: TestClientOptions = {}): Promise<GatewayClient> {
  const { path = '/gateway', headers = {}, ...rest } = options
  // `new` on a function that returns an object yields that object: here, injectWS's socket,
  // taken in `onInit` so the client's listeners are on it before the first frame.
  const InjectedWebSocket = function (url: string): WebSocketLike {
    let socket: WebSocketLike | undefined
    app.injectWS(url, { headers }, {
      onInit: ws => {
        // injectWS's in-memory streams never report the end of a close handshake, so both
        // ends would wait out ws's 30 s close timer: a client that closes cuts the link.
        const close = ws.close.bind(ws)
        ws.close = (code, reason) => {
          close(code, reason)
          ws.terminate()
        }
        socket = ws as unknown as WebSocketLike
      }
    }).catch((err: Error) => {
      // The upgrade was refused (a 401, say): the client sees what a browser would, a close.
      socket?.onclose?.({ code: 1006, reason: err.message })
    })
    return socket as WebSocketLike
  } as unknown as WebSocketConstructor
  const client = new GatewayClient({ reconnect: false, ...rest, url: path, WebSocket: InjectedWebSocket })
  await client.ready
  return client
}
