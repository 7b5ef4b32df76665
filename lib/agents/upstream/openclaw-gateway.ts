import { randomUUID } from 'node:crypto'
import type WebSocket from 'ws'
import { UpstreamFailedError, UpstreamProtocolError, UpstreamRejectedError, UpstreamTimeoutError } from '../../errors.js'
import { VERSION } from '../../version.js'
import { scrub } from './event-stream.js'

// A few reads from an OpenClaw gateway over its own protocol (v4), for what its HTTP API
// does not offer (its sessions and their history): connect, ask, close. Read-only.
// OpenClaw keeps a client's scopes without a paired device only for a backend client on
// its own machine with its token, so that is how this client presents itself.

export interface OpenClawGatewayTarget {
  /** The gateway's http(s) URL; its WebSocket is at the same origin. */
  url: string
  token?: string
  headers: Record<string, string>
  /** Longest wait for any one answer. */
  timeoutMs: number
  /** Largest frame accepted, in bytes. */
  maxFrameBytes: number
}

export type GatewayRequest = (method: string, params: Record<string, unknown>) => Promise<Record<string, any>>

/** Opens a connection, lets `use` make requests on it, and closes it whatever happens. */
export async function withOpenClawGateway<T> (target: OpenClawGatewayTarget, use: (request: GatewayRequest) => Promise<T>): Promise<T> {
  // Loaded when first needed: importing ws as an ES module costs a start that never reads OpenClaw's sessions.
  const { default: Socket } = await import('ws')
  const connection = new Connection(target, Socket)
  try {
    await connection.ready
    return await use(async (method, params) => await connection.request(method, params))
  } finally {
    connection.close()
  }
}

interface Frame { type?: string, id?: string, ok?: boolean, event?: string, payload?: unknown, error?: { code?: string, message?: string } }

class Connection {
  readonly ready: Promise<void>
  readonly #target: OpenClawGatewayTarget
  readonly #socket: WebSocket
  readonly #waiting = new Map<string, (frame: Frame) => void>()
  readonly #challenged: Promise<void>
  #challenge!: () => void
  // Rejected once, with the first failure: every wait races it, so nothing waits on a dead connection.
  readonly #failed: Promise<never>
  #fail!: (err: Error) => void

  constructor (target: OpenClawGatewayTarget, Socket: typeof WebSocket) {
    this.#target = target
    this.#failed = new Promise<never>((_resolve, reject) => { this.#fail = reject })
    this.#failed.catch(() => {})
    this.#challenged = new Promise<void>(resolve => { this.#challenge = resolve })
    const url = new URL(target.url)
    url.protocol = url.protocol.replace('http', 'ws')
    // No Origin header: OpenClaw takes one for a browser, which must pair.
    this.#socket = new Socket(url.origin, { headers: target.headers, maxPayload: target.maxFrameBytes })
    this.#socket.on('message', data => this.#receive(String(data)))
    this.#socket.on('error', err => this.#fail(this.#unreachable(err.message)))
    this.#socket.on('close', (code, reason) => this.#fail(this.#unreachable(`closed with ${code} ${String(reason)}`.trim())))
    this.ready = this.#handshake()
  }

  async #handshake (): Promise<void> {
    await this.#bounded('connect.challenge', this.#challenged)
    const hello = await this.request('connect', {
      minProtocol: 4,
      maxProtocol: 4,
      client: { id: 'gateway-client', version: VERSION, platform: process.platform, mode: 'backend' },
      role: 'operator',
      scopes: ['operator.read'],
      ...(this.#target.token === undefined ? {} : { auth: { token: this.#target.token } })
    })
    const scopes: unknown = hello.auth?.scopes
    if (!Array.isArray(scopes) || !scopes.includes('operator.read')) {
      throw new UpstreamRejectedError(`${this.#name()} let this gateway connect without the operator.read scope, so its sessions cannot be read: OpenClaw grants it to a backend client without a paired device only on its own machine (run it on the same host and use its loopback address), or set openClawAgent's sessions: false`)
    }
  }

  async request (method: string, params: Record<string, unknown>): Promise<Record<string, any>> {
    const id = randomUUID()
    const answer = new Promise<Frame>(resolve => this.#waiting.set(id, resolve))
    this.#socket.send(JSON.stringify({ type: 'req', id, method, params }))
    const frame = await this.#bounded(`answer to ${method}`, answer)
    if (frame.ok !== true) {
      const { code, message } = { ...frame.error }
      throw new UpstreamRejectedError(`${this.#name()} refused ${method} (${String(code)}: ${scrub(String(message), this.#secrets()).slice(0, 300)}): check token (the OpenClaw gateway's token), and that it is OpenClaw 2026.7 or later`)
    }
    if (typeof frame.payload !== 'object' || frame.payload === null) throw new UpstreamProtocolError(`${this.#name()} answered ${method} without a payload`)
    return frame.payload as Record<string, any>
  }

  close (): void {
    this.#fail(new UpstreamFailedError(`${this.#name()}: connection closed`))
    this.#socket.terminate()
  }

  #receive (text: string): void {
    let frame: Frame
    try {
      frame = JSON.parse(text) as Frame
    } catch {
      return this.#fail(new UpstreamProtocolError(`${this.#name()} sent a frame that is not JSON: check that url is an OpenClaw gateway`))
    }
    if (frame.type === 'event' && frame.event === 'connect.challenge') this.#challenge()
    if (frame.type !== 'res' || frame.id === undefined) return
    this.#waiting.get(frame.id)?.(frame)
    this.#waiting.delete(frame.id)
  }

  /** `promise`, unless the connection fails or `timeoutMs` passes first. */
  async #bounded<T> (what: string, promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new UpstreamTimeoutError(`${this.#name()} sent no ${what} within ${this.#target.timeoutMs} ms: check url, and that the OpenClaw gateway is not overloaded`)), this.#target.timeoutMs)
    })
    try {
      return await Promise.race([promise, timeout, this.#failed])
    } finally {
      clearTimeout(timer)
    }
  }

  #unreachable (reason: string): Error {
    return new UpstreamFailedError(`${this.#name()} could not be reached or dropped the connection (${scrub(reason, this.#secrets())}): check url and that the OpenClaw gateway is running`)
  }

  #name (): string {
    return `OpenClaw gateway ${new URL(this.#target.url).origin} (gateway protocol)`
  }

  #secrets (): { secrets: string[] } {
    return { secrets: this.#target.token === undefined ? [] : [this.#target.token] }
  }
}
