import { once } from 'node:events'
import WebSocket from 'ws'

export interface Frame {
  type: string
  id?: string
  ok?: boolean
  event?: string
  payload?: Record<string, any>
  error?: { code: string, message: string }
}

/**
 * A minimal gateway-protocol client for load generation: handshake, requests by id,
 * and one event callback. Deliberately small, so the client costs little next to the server.
 */
export class ProtocolClient {
  readonly socket: WebSocket
  #nextId = 0
  readonly #pending = new Map<string, (frame: Frame) => void>()
  onEvent: (frame: Frame) => void = () => {}

  private constructor (socket: WebSocket) {
    this.socket = socket
    socket.on('message', data => {
      const frame = JSON.parse(String(data)) as Frame
      if (frame.type === 'res') {
        const resolve = this.#pending.get(frame.id as string)
        this.#pending.delete(frame.id as string)
        resolve?.(frame)
      } else {
        this.onEvent(frame)
      }
    })
  }

  static async connect (url: string, token: string, caps: string[] = []): Promise<ProtocolClient> {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/gateway`, { headers: { authorization: `Bearer ${token}` } })
    const [challenge] = await once(socket, 'message') as [Buffer]
    if ((JSON.parse(String(challenge)) as Frame).event !== 'connect.challenge') throw new Error('no challenge')
    const client = new ProtocolClient(socket)
    const hello = await client.request('connect', {
      minProtocol: 4, maxProtocol: 4, caps, client: { id: 'test', version: '1', platform: 'node', mode: 'test' }
    })
    if (hello.ok !== true) throw new Error(`connect failed: ${JSON.stringify(hello.error)}`)
    return client
  }

  async request (method: string, params: unknown): Promise<Frame> {
    const id = String(++this.#nextId)
    const answer = new Promise<Frame>(resolve => this.#pending.set(id, resolve))
    this.socket.send(JSON.stringify({ type: 'req', id, method, params }))
    return await answer
  }

  close (): void {
    this.socket.close()
  }
}
