import { ConnectionError, ServerError } from './errors.js'
import type {
  ConnectParams, EventFrame, HelloOk, MethodName, MethodParams, MethodResult, OpenPayload, ServerFrame
} from './frames.js'
import { randomId } from './ids.js'
import { notify } from './listeners.js'
import { Session } from './session.js'

// A client of the gateway protocol that knows no socket library: it takes any constructor
// with the WHATWG WebSocket shape (the browser's, Node 22's global, or `ws`).

/** What the client needs from a WebSocket: the browser's, or `ws`. */
export interface WebSocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}

export type WebSocketConstructor = new (url: string) => WebSocketLike

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface GatewayClientOptions {
  /** The gateway's WebSocket URL, such as `ws://127.0.0.1:18789/gateway`. */
  url: string
  /** Sent in `connect` (never in the URL, so it stays out of logs). */
  token?: string
  password?: string
  /** Default: the global `WebSocket` (browsers, Node 22+). On Node 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor
  /** Who is connecting, as `connect` tells the gateway. */
  client?: Partial<ConnectParams['client']>
  /** Reconnect after a dropped connection, with exponential backoff; `false` to stay closed. */
  reconnect?: false | { initialDelayMs?: number, maxDelayMs?: number }
  /** A request made while disconnected waits for the reconnect (default) or fails at once with `NOT_CONNECTED`. */
  whileDisconnected?: 'wait' | 'fail'
  /** Longest wait for an answer, waiting for a connection included. Default 30000. */
  requestTimeoutMs?: number
  /** Longest wait for a socket to open and finish the handshake. Default 10000. */
  connectTimeoutMs?: number
  /** History rows `open()` loads. Default 50. */
  historyLimit?: number
}

interface Pending {
  id: string
  method: MethodName
  params: Record<string, unknown>
  resolve: (payload: unknown) => void
  reject: (err: Error) => void
  timer: ReturnType<typeof setTimeout>
  /** Written on the current socket (else waiting for one). */
  sent: boolean
  /** Session resumes go out before anything that waited for the connection. */
  internal: boolean
}

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
const DEFAULT_INITIAL_DELAY_MS = 500
const DEFAULT_MAX_DELAY_MS = 15_000
const PROTOCOL = 4
const NORMAL_CLOSE = 1000

/**
 * One connection to the gateway, kept alive: the handshake, request/response matching,
 * a heartbeat watchdog, reconnects with backoff, and the sessions opened on it, which
 * resume from their cursors after every reconnect.
 */
export class GatewayClient {
  /** Resolves at the first `hello-ok`; rejects (and closes the client) if the first connection fails. */
  readonly ready: Promise<HelloOk>
  #state: ConnectionState = 'connecting'
  #hello: HelloOk | undefined
  #socket: WebSocketLike | undefined
  #handshakeId: string | undefined
  #refused: ConnectionError | undefined
  #attempt = 0
  #everOpen = false
  #lastFrameAt = 0
  #connectTimer: ReturnType<typeof setTimeout> | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  #watchdog: ReturnType<typeof setInterval> | undefined
  readonly #pending = new Map<string, Pending>()
  readonly #sessions = new Map<string, Session>()
  readonly #stateListeners = new Set<(state: ConnectionState) => void>()
  readonly #eventListeners = new Set<(frame: EventFrame) => void>()
  #watchingList = false
  readonly #messageSubscriptions = new Set<string>()
  #settleReady!: { resolve: (hello: HelloOk) => void, reject: (err: Error) => void }
  readonly #options: Required<Omit<GatewayClientOptions, 'token' | 'password' | 'client' | 'reconnect'>> & GatewayClientOptions

  constructor (options: GatewayClientOptions) {
    const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (WebSocketClass === undefined) throw new TypeError('no global WebSocket here: pass one, e.g. { WebSocket } from the "ws" package')
    this.#options = {
      ...options,
      WebSocket: WebSocketClass,
      whileDisconnected: options.whileDisconnected ?? 'wait',
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      historyLimit: options.historyLimit ?? 50
    }
    this.ready = new Promise<HelloOk>((resolve, reject) => { this.#settleReady = { resolve, reject } })
    // Whoever awaits `ready` sees the failure; nobody awaiting it is not an unhandled rejection.
    this.ready.catch(() => {})
    this.#dial()
  }

  /** A connected client: resolves at `hello-ok`, rejects if the gateway cannot be reached or refuses. */
  static async connect (options: GatewayClientOptions): Promise<GatewayClient> {
    const client = new GatewayClient(options)
    await client.ready
    return client
  }

  get state (): ConnectionState {
    return this.#state
  }

  /** The latest `hello-ok` (server version, policy, session defaults). */
  get hello (): HelloOk | undefined {
    return this.#hello
  }

  /** Calls `listener` with every new state; returns the function that stops it. */
  onState (listener: (state: ConnectionState) => void): () => void {
    this.#stateListeners.add(listener)
    return () => { this.#stateListeners.delete(listener) }
  }

  /** Every event frame, as it arrives (sessions' events too). */
  onEvent (listener: (frame: EventFrame) => void): () => void {
    this.#eventListeners.add(listener)
    return () => { this.#eventListeners.delete(listener) }
  }

  // ── methods ────────────────────────────────────────────────────────────────

  /** Any method, typed by name. */
  async request<M extends MethodName> (method: M, params: MethodParams<M>): Promise<MethodResult<M>> {
    return await this.#request(method, params as Record<string, unknown>, false) as MethodResult<M>
  }

  readonly chat = {
    /** Starts a turn. The idempotency key is made for you; pass the one of a failed send to retry it safely. */
    send: async (params: Omit<MethodParams<'chat.send'>, 'idempotencyKey'> & { idempotencyKey?: string }): Promise<MethodResult<'chat.send'>> =>
      await this.request('chat.send', { ...params, idempotencyKey: params.idempotencyKey ?? randomId() }),
    history: async (params: MethodParams<'chat.history'>) => await this.request('chat.history', params),
    abort: async (params: MethodParams<'chat.abort'>) => await this.request('chat.abort', params)
  }

  readonly sessions = {
    list: async (params: MethodParams<'sessions.list'> = {}) => await this.request('sessions.list', params),
    resolve: async (params: MethodParams<'sessions.resolve'>) => await this.request('sessions.resolve', params),
    create: async (params: MethodParams<'sessions.create'> = {}) => await this.request('sessions.create', params),
    patch: async (params: MethodParams<'sessions.patch'>) => await this.request('sessions.patch', params),
    reset: async (params: MethodParams<'sessions.reset'>) => await this.request('sessions.reset', params),
    delete: async (params: MethodParams<'sessions.delete'>) => await this.request('sessions.delete', params),
    /** `sessions.changed` events follow (see `onEvent`), and keep following after a reconnect. */
    subscribe: async () => {
      const result = await this.request('sessions.subscribe', {})
      this.#watchingList = true
      return result
    },
    unsubscribe: async () => {
      this.#watchingList = false
      return await this.request('sessions.unsubscribe', {})
    },
    /** The raw `sessions.open` answer; `open()` is what keeps a session in step. */
    open: async (params: MethodParams<'sessions.open'>) => await this.request('sessions.open', params),
    messages: {
      subscribe: async (params: MethodParams<'sessions.messages.subscribe'>) => {
        const result = await this.request('sessions.messages.subscribe', params)
        this.#messageSubscriptions.add(result.key)
        return result
      },
      unsubscribe: async (params: MethodParams<'sessions.messages.unsubscribe'>) => {
        const result = await this.request('sessions.messages.unsubscribe', params)
        this.#messageSubscriptions.delete(result.key)
        return result
      }
    }
  }

  /**
   * Opens a session: its recent history, its running turn, and its live events from
   * the same instant. The handle keeps its cursor and resumes after every reconnect.
   * Opening a key that is already open returns the same handle.
   */
  async open (key: string, options: { agentId?: string, limit?: number } = {}): Promise<Session> {
    let session: Session | undefined
    await this.#request('sessions.open', {
      key,
      ...(options.agentId === undefined ? {} : { agentId: options.agentId }),
      limit: options.limit ?? this.#options.historyLimit
    }, false, payload => {
      // Applied as the answer arrives, before the frames after it are read.
      const opened = payload as OpenPayload
      session = this.#sessions.get(opened.key)
      if (session !== undefined) return
      session = new Session(this, opened, options.limit ?? this.#options.historyLimit)
      this.#sessions.set(opened.key, session)
    })
    return session as Session
  }

  /** Skips the rest of the backoff (the browser says the network is back, say): dials now if waiting to. */
  reconnectNow (): void {
    if (this.#state !== 'reconnecting' || this.#socket !== undefined) return
    clearTimeout(this.#retryTimer)
    this.#dial()
  }

  /** Closes the connection for good: waiting requests fail with `CLOSED`, sessions end. */
  close (): void {
    this.#shutDown(new ConnectionError('CLOSED', 'the client was closed'))
  }

  // ── used by Session ────────────────────────────────────────────────────────

  /** @internal */
  forget (session: Session): void {
    if (this.#sessions.get(session.key) === session) this.#sessions.delete(session.key)
  }

  // ── the connection ─────────────────────────────────────────────────────────

  #dial (): void {
    this.#setState(this.#everOpen ? 'reconnecting' : 'connecting')
    let socket: WebSocketLike
    try {
      socket = new this.#options.WebSocket(this.#options.url)
    } catch (err) {
      // A malformed URL is the caller's mistake, not a network problem.
      this.#shutDown(new ConnectionError('UNREACHABLE', `cannot open ${this.#options.url}: ${(err as Error).message}`))
      return
    }
    this.#socket = socket
    this.#handshakeId = undefined
    socket.onmessage = event => this.#receive(socket, event.data)
    socket.onclose = event => this.#lost(event.code, event.reason)
    socket.onerror = () => {} // a close follows, with its code
    this.#connectTimer = setTimeout(() => this.#drop(socket, 'the handshake took too long'), this.#options.connectTimeoutMs)
  }

  #receive (socket: WebSocketLike, data: unknown): void {
    this.#lastFrameAt = Date.now()
    let frame: ServerFrame
    try {
      frame = JSON.parse(String(data)) as ServerFrame
    } catch {
      return this.#drop(socket, 'the gateway sent a frame that is not JSON')
    }
    if (frame.type === 'res') return this.#answer(socket, frame)
    if (frame.type !== 'event') return
    if (frame.event === 'connect.challenge' && this.#handshakeId === undefined) return this.#sendConnect(socket)
    notify(this.#eventListeners, frame)
    // OpenClaw's `agent` frames name their session in `data`.
    const sessionKey = frame.event === 'agent' ? frame.payload.data?.sessionKey : (frame.payload as { sessionKey?: unknown }).sessionKey
    if (typeof sessionKey === 'string') this.#sessions.get(sessionKey)?.receive(frame)
  }

  #sendConnect (socket: WebSocketLike): void {
    const { token, password, client } = this.#options
    this.#handshakeId = `connect-${randomId()}`
    const params: ConnectParams = {
      minProtocol: PROTOCOL,
      maxProtocol: PROTOCOL,
      client: { id: 'fastify-session-gateway-client', version: '1', platform: 'js', mode: 'ui', ...client },
      caps: ['session-cursor'],
      ...(token === undefined && password === undefined
        ? {}
        : { auth: { ...(token === undefined ? {} : { token }), ...(password === undefined ? {} : { password }) } })
    }
    socket.send(JSON.stringify({ type: 'req', id: this.#handshakeId, method: 'connect', params }))
  }

  #answer (socket: WebSocketLike, frame: Extract<ServerFrame, { type: 'res' }>): void {
    if (frame.id === this.#handshakeId) {
      if (!frame.ok) {
        // Wrong credentials or protocol: trying again would only be refused again.
        this.#refused = new ConnectionError('REFUSED', `the gateway refused the connection: ${frame.error.message}`)
        return this.#drop(socket, 'refused')
      }
      return this.#opened(socket, frame.payload as HelloOk)
    }
    const pending = this.#pending.get(frame.id)
    if (pending === undefined) return
    this.#settle(pending)
    if (frame.ok) pending.resolve(frame.payload)
    else pending.reject(new ServerError(pending.method, frame.error))
  }

  #opened (socket: WebSocketLike, hello: HelloOk): void {
    clearTimeout(this.#connectTimer)
    this.#hello = hello
    // Reached and accepted: from now on a drop means reconnect, not "unreachable".
    this.#everOpen = true
    const tick = hello.policy.tickIntervalMs
    // The gateway ticks every interval; a link silent for two is dead, whatever TCP thinks.
    this.#watchdog = setInterval(() => {
      if (Date.now() - this.#lastFrameAt > 2 * tick) this.#drop(socket, 'the gateway went silent')
    }, tick)
    const resumes: Array<Promise<unknown>> = [...this.#sessions.values()].map(async session => {
      if (await session.resume() && socket === this.#socket) this.#drop(socket, 'a session could not be resumed')
    })
    if (this.#watchingList) resumes.push(this.#request('sessions.subscribe', {}, true))
    for (const key of this.#messageSubscriptions) resumes.push(this.#request('sessions.messages.subscribe', { key }, true))
    // Sessions resume before anything that waited goes out, so a send lands after its session's cursor.
    void Promise.allSettled(resumes).then(() => {
      if (socket !== this.#socket) return
      // Backoff starts over once a connection is of use, not at every handshake.
      this.#attempt = 0
      this.#setState('open')
      this.#settleReady.resolve(hello)
      for (const pending of this.#pending.values()) if (!pending.sent) this.#write(pending)
    })
  }

  /** The socket closed (or we gave up on it): fail or keep what was in flight, then reconnect or stop. */
  #lost (code: number, reason: string): void {
    this.#socket = undefined
    clearTimeout(this.#connectTimer)
    clearInterval(this.#watchdog)
    const handshaking = this.#state !== 'open' && this.#hello === undefined
    // 1002 (protocol) and 1008 (policy) during the handshake: the gateway said no.
    const refused = this.#refused ?? (this.#handshakeId !== undefined && !this.#everOpen && (code === 1002 || code === 1008)
      ? new ConnectionError('REFUSED', `the gateway refused the connection (${code}${reason === '' ? '' : `: ${reason}`})`)
      : undefined)
    if (refused !== undefined) return this.#shutDown(refused)
    if (!this.#everOpen || this.#options.reconnect === false) {
      return this.#shutDown(new ConnectionError(handshaking ? 'UNREACHABLE' : 'CONNECTION_LOST',
        `the connection to ${this.#options.url} ${handshaking ? 'could not be made' : 'was lost'} (${code}${reason === '' ? '' : `: ${reason}`})`))
    }
    this.#hello = undefined
    for (const pending of [...this.#pending.values()]) {
      if (!pending.sent) continue
      pending.sent = false
      // What is safe to repeat goes out again after the reconnect; the rest may or may not have happened.
      if (pending.internal || this.#options.whileDisconnected === 'fail' || !repeatable(pending)) {
        this.#settle(pending)
        pending.reject(lostError(pending))
      }
    }
    this.#setState('reconnecting')
    const { initialDelayMs = DEFAULT_INITIAL_DELAY_MS, maxDelayMs = DEFAULT_MAX_DELAY_MS } = this.#options.reconnect ?? {}
    const delay = Math.min(maxDelayMs, initialDelayMs * 2 ** this.#attempt++) * (0.5 + Math.random() / 2)
    this.#retryTimer = setTimeout(() => this.#dial(), delay)
  }

  /** Gives up on a socket now: a dead link may take minutes to report its close. */
  #drop (socket: WebSocketLike, reason: string): void {
    detach(socket)
    socket.close(NORMAL_CLOSE, reason)
    this.#lost(1006, reason)
  }

  #shutDown (error: ConnectionError): void {
    if (this.#state === 'closed') return
    const socket = this.#socket
    this.#socket = undefined
    clearTimeout(this.#connectTimer)
    clearTimeout(this.#retryTimer)
    clearInterval(this.#watchdog)
    if (socket !== undefined) {
      detach(socket)
      socket.close(NORMAL_CLOSE, 'client closed')
    }
    this.#setState('closed')
    this.#settleReady.reject(error)
    for (const pending of [...this.#pending.values()]) {
      this.#settle(pending)
      pending.reject(withKey(error, pending))
    }
    for (const session of [...this.#sessions.values()]) session.end(error.code === 'CLOSED' ? undefined : error)
    this.#sessions.clear()
  }

  #setState (state: ConnectionState): void {
    if (state === this.#state) return
    this.#state = state
    notify(this.#stateListeners, state)
  }

  // ── requests ───────────────────────────────────────────────────────────────

  /**
   * Sends a request now, or once the connection is open. `onAnswer` runs as the answer
   * is read, before any later frame: what follows an answer may depend on it.
   * @internal `internal` requests (session resumes) go out while the connection is still resuming.
   */
  async #request (method: MethodName, params: Record<string, unknown>, internal: boolean, onAnswer?: (payload: unknown) => void): Promise<unknown> {
    if (this.#state === 'closed') throw withKey(new ConnectionError('CLOSED', 'the client is closed'), { method, params })
    if (this.#state !== 'open' && !internal && this.#options.whileDisconnected === 'fail') {
      throw withKey(new ConnectionError('NOT_CONNECTED', `not connected to the gateway (${this.#state})`), { method, params })
    }
    return await new Promise((resolve, reject) => {
      const pending: Pending = {
        id: randomId(),
        method,
        params,
        resolve: payload => {
          onAnswer?.(payload)
          resolve(payload)
        },
        reject,
        timer: setTimeout(() => {
          this.#settle(pending)
          reject(withKey(new ConnectionError('TIMEOUT', `${method}: no answer within ${this.#options.requestTimeoutMs} ms`), pending))
        }, this.#options.requestTimeoutMs),
        sent: false,
        internal
      }
      this.#pending.set(pending.id, pending)
      if (this.#state === 'open' || (internal && this.#hello !== undefined)) this.#write(pending)
    })
  }

  /** @internal Session resumes: sent on the connection that is resuming. */
  async resumeRequest (params: MethodParams<'sessions.open'>, onAnswer: (payload: OpenPayload) => void): Promise<void> {
    await this.#request('sessions.open', params as Record<string, unknown>, true, onAnswer as (payload: unknown) => void)
  }

  #write (pending: Pending): void {
    pending.sent = true
    const socket = this.#socket as WebSocketLike
    socket.send(JSON.stringify({ type: 'req', id: pending.id, method: pending.method, params: pending.params }))
  }

  #settle (pending: Pending): void {
    clearTimeout(pending.timer)
    this.#pending.delete(pending.id)
  }
}

/**
 * Stops hearing from a socket we gave up on. Its error handler stays a no-op: `ws`
 * reports closing a socket that was still connecting as an error, fatal if unheard.
 */
function detach (socket: WebSocketLike): void {
  socket.onmessage = null
  socket.onclose = null
  socket.onerror = () => {}
}

/** Requests that do the same thing when repeated: reads, and sends made idempotent by their key. */
function repeatable (pending: Pending): boolean {
  switch (pending.method) {
    case 'chat.send':
    case 'chat.history':
    case 'sessions.list':
    case 'sessions.resolve':
    case 'sessions.patch':
    case 'sessions.open':
    case 'sessions.subscribe':
    case 'sessions.unsubscribe':
    case 'sessions.messages.subscribe':
    case 'sessions.messages.unsubscribe':
      return true
    case 'chat.abort':
      return pending.params.runId !== undefined
    case 'sessions.create':
      return pending.params.key !== undefined
    default:
      return false
  }
}

function lostError (pending: Pending): ConnectionError {
  return withKey(new ConnectionError('CONNECTION_LOST', `${pending.method}: the connection dropped before the answer; it may or may not have been carried out`), pending)
}

/** A failed `chat.send` names its idempotency key, so a retry cannot start a second turn. */
function withKey (error: ConnectionError, pending: { method: string, params: Record<string, unknown> }): ConnectionError {
  const key = pending.params.idempotencyKey
  return pending.method === 'chat.send' && typeof key === 'string' ? new ConnectionError(error.code, error.message, key) : error
}
