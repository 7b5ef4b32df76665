import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { AgentModel } from '../../agents/agent.js'
import type { Credentials, Principal } from '../../auth.js'
import { TooManyWatchesError } from '../../errors.js'
import type { SessionService } from '../../session-service.js'
import type { SessionEvent } from '../../events.js'
import type { Subscription } from '../../hub/hub.js'
import type { ResolvedSession, SessionAction, SessionHints, WhenMissing } from '../../resolver.js'
import { mainSessionKey } from '../../session-key.js'
import { NO_TELEMETRY, type Telemetry } from '../../telemetry.js'
import { CloseCode } from '../close-codes.js'
import { invalidRequest, toErrorShape } from './errors.js'
import type { ConnectChallengeFrame, GatewayEventPayloads, HelloOk, SessionsChangedPayload } from './frames.js'
import { callMethod, type MethodContext } from './methods.js'
import {
  CURSOR_CAPABILITY, EVENTS, MAX_HANDSHAKE_BYTES, METHODS, PROTOCOL_VERSION,
  checkConnect, checkParams, describeInvalid, isMethod, type ErrorShape
} from './protocol.js'
import { Outbox, type OutboxItem } from '../outbox.js'
import { payloadJson, sessionEventFrames, type OutgoingEvent } from './session-events.js'

/** All the protocol core needs from a socket; adapters provide it (see route.ts). */
export interface OpenClawSocket {
  send (data: string): void
  close (code: number, reason: string): void
  /** Bytes written but not yet handed to the network. */
  readonly bufferedAmount: number
}

export interface OpenClawConnectionOptions {
  tickIntervalMs: number
  maxPayload: number
  /** The socket is given frames while what it has not drained is at most this; the rest wait, deltas merged. */
  maxBufferedBytes: number
  /** Live frames waiting past this close the connection (1008, a slow consumer). */
  maxQueuedBytes: number
  handshakeTimeoutMs: number
  /** The most sessions one connection watches at once. */
  maxWatchedSessions: number
  serverVersion: string
  defaultAgentId: string
  mainKey: string
  /** The allow-list of agent ids, when there is one. */
  agents?: readonly string[]
  /** The agent's model, when it says. */
  model?: AgentModel
}

export interface OpenClawConnectionContext {
  sessions: SessionService
  /** Authenticated at the upgrade, or null when the credentials come in `connect`. */
  principal: Principal | null
  authenticate (credentials: Credentials): Promise<Principal>
  /** The connection's default session, from the upgrade's header or query. */
  defaultHints: SessionHints
  options: OpenClawConnectionOptions
  /** Default: none. */
  telemetry?: Telemetry
  logger: FastifyBaseLogger
}

/**
 * One client of OpenClaw's gateway protocol v4: the handshake, request dispatch, the
 * sessions this connection watches, and backpressure. It knows no socket library:
 * feed it `receive()` and it writes through `OpenClawSocket`.
 */
export class OpenClawConnection {
  readonly connId = randomUUID()
  readonly #socket: OpenClawSocket
  readonly #sessions: SessionService
  readonly #logger: FastifyBaseLogger
  /** What the method handlers may use of this connection. */
  readonly #context: MethodContext
  readonly #options: OpenClawConnectionOptions
  readonly #telemetry: Telemetry
  readonly #defaultHints: SessionHints
  // Holds the upgrade request; dropped once the handshake is over, so an idle connection stays small.
  #authenticate: OpenClawConnectionContext['authenticate'] | undefined
  #phase: 'handshake' | 'connecting' | 'ready' | 'closed' = 'handshake'
  #principal: Principal | null
  #withCursor = false
  #seq = 0
  readonly #chatSeq = new Map<string, number>()
  readonly #agentSeq = new Map<string, number>()
  /** How to stop each watch: only that, so a watch does not keep its replay's events alive. */
  readonly #watches = new Map<string, () => void>()
  /** Sessions whose watch is being made (by how many requests): each counts against the limit once. */
  readonly #watchesComing = new Map<string, number>()
  #stopWatchingList: (() => void) | undefined
  readonly #outbox: Outbox<OutboxItem>
  #handshakeTimer: NodeJS.Timeout | undefined

  constructor (socket: OpenClawSocket, context: OpenClawConnectionContext) {
    this.#socket = socket
    this.#sessions = context.sessions
    this.#logger = context.logger
    this.#options = context.options
    this.#telemetry = context.telemetry ?? NO_TELEMETRY
    this.#defaultHints = context.defaultHints
    this.#authenticate = context.authenticate
    this.#principal = context.principal
    this.#outbox = new Outbox(context.options, {
      buffered: () => socket.bufferedAmount,
      write: item => this.#sendNow(item.outgoing),
      overflow: () => {
        this.#telemetry.slowConsumerClosed()
        this.close(CloseCode.policy, 'slow consumer')
      }
    })
    const connection = this
    const { defaultAgentId, mainKey, agents, model } = context.options
    this.#context = {
      sessions: this.#sessions,
      facts: { defaultAgentId, mainKey, ...(agents === undefined ? {} : { agents }), ...(model === undefined ? {} : { model }) },
      get principal () { return connection.#principal as Principal },
      get withCursor () { return connection.#withCursor },
      resolve: async (hints, action, whenMissing) => await this.#resolve(hints, action, whenMissing),
      watching: sessionKey => this.#watches.has(sessionKey),
      holdRoomToWatch: sessionKey => this.#holdRoomToWatch(sessionKey),
      watch: (sessionKey, subscription) => this.#watch(sessionKey, subscription),
      unwatch: sessionKey => this.#unwatch(sessionKey),
      watchList: () => this.#watchList(),
      unwatchList: () => this.#unwatchList(),
      listener: event => { for (const outgoing of sessionEventFrames(event, this.#withCursor)) this.#send(outgoing) },
      send: (outgoing, paced) => this.#send(outgoing, paced)
    }
  }

  /** Sends the challenge the official client waits for, and starts the handshake clock. */
  open (): void {
    this.#write({ type: 'event', event: 'connect.challenge', payload: { nonce: randomUUID(), ts: Date.now() } } satisfies ConnectChallengeFrame)
    this.#handshakeTimer = setTimeout(() => this.close(CloseCode.policy, 'handshake timeout'), this.#options.handshakeTimeoutMs)
  }

  /** Takes one frame from the socket. Never throws: every failure becomes an answer or a close. */
  receive (data: Buffer | string, isBinary: boolean): void {
    if (this.#phase === 'closed') return
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length
    // ws enforces maxPayload itself when we registered it; an app that registered
    // @fastify/websocket on its own may have allowed more.
    if (size > this.#options.maxPayload) return this.close(CloseCode.tooBig, 'frame too large')
    if (this.#phase !== 'ready') {
      if (size > MAX_HANDSHAKE_BYTES) return this.close(CloseCode.tooBig, 'handshake frame too large')
      if (isBinary) return this.close(CloseCode.policy, 'the first frame must be a connect request')
    }
    if (isBinary) return this.#event('error', invalidRequest('binary frames are not part of the protocol'))
    let frame: unknown
    try {
      frame = JSON.parse(String(data))
    } catch {
      if (this.#phase === 'handshake') return this.close(CloseCode.policy, 'the first frame must be a connect request')
      return this.#event('error', invalidRequest('the frame is not JSON'))
    }
    const request = asRequest(frame)
    if (this.#phase === 'handshake') {
      if (typeof request === 'string' || request.method !== 'connect') return this.close(CloseCode.policy, 'the first frame must be a connect request')
      this.#phase = 'connecting'
      this.#connect(request.id, request.params).catch(err => this.#fail(err))
      return
    }
    if (this.#phase === 'connecting') {
      const id = idOf(frame)
      if (id !== undefined) this.#respond(id, invalidRequest('wait for hello-ok before sending requests'))
      return
    }
    if (typeof request === 'string') {
      const id = idOf(frame)
      return id === undefined ? this.#event('error', invalidRequest(request)) : this.#respond(id, invalidRequest(request))
    }
    this.#dispatch(request.id, request.method, request.params).catch(err => this.#fail(err))
  }

  /** Ends the connection from our side. */
  close (code: number, reason: string): void {
    if (this.#phase === 'closed') return
    this.dispose()
    this.#socket.close(code, reason)
  }

  /** The socket is gone: stop every timer and subscription. */
  dispose (): void {
    this.#phase = 'closed'
    clearTimeout(this.#handshakeTimer)
    this.#outbox.close()
    for (const unsubscribe of this.#watches.values()) unsubscribe()
    this.#watches.clear()
    this.#stopWatchingList?.()
  }

  // ── the handshake ──────────────────────────────────────────────────────────

  async #connect (id: string, params: unknown): Promise<void> {
    if (!checkConnect.Check(params)) {
      this.#respond(id, invalidRequest(describeInvalid(checkConnect, params, 'params')))
      return this.close(CloseCode.policy, 'invalid connect params')
    }
    if (params.minProtocol > PROTOCOL_VERSION || params.maxProtocol < PROTOCOL_VERSION) {
      this.#respond(id, { code: 'INVALID_REQUEST', message: `protocol mismatch: this sessions speaks ${PROTOCOL_VERSION}`, details: { expectedProtocol: PROTOCOL_VERSION } })
      return this.close(CloseCode.protocolMismatch, 'protocol mismatch')
    }
    try {
      if (this.#principal === null) {
        const auth = params.auth ?? {}
        const authenticate = this.#authenticate as OpenClawConnectionContext['authenticate']
        this.#principal = await authenticate({
          ...(auth.token === undefined ? {} : { token: auth.token }),
          ...(auth.password === undefined ? {} : { password: auth.password })
        })
      }
      // A default session named at the upgrade must pass the resolver like any other.
      if (this.#defaultHints.sessionKey !== undefined) await this.#resolve({}, 'read')
    } catch (err) {
      this.#respond(id, toErrorShape(err, this.#logger))
      return this.close(CloseCode.policy, 'unauthorized')
    }
    if (this.#phase === 'closed') return
    this.#phase = 'ready'
    clearTimeout(this.#handshakeTimer)
    this.#authenticate = undefined
    this.#withCursor = params.caps?.includes(CURSOR_CAPABILITY) ?? false
    const options = this.#options
    this.#respond(id, undefined, {
      type: 'hello-ok',
      protocol: PROTOCOL_VERSION,
      server: { version: options.serverVersion, connId: this.connId },
      features: { methods: METHODS, events: [...EVENTS] },
      snapshot: {
        presence: [],
        health: {},
        stateVersion: { presence: 0, health: 0 },
        uptimeMs: Math.round(process.uptime() * 1000),
        sessionDefaults: {
          defaultAgentId: options.defaultAgentId,
          mainKey: options.mainKey,
          mainSessionKey: mainSessionKey(options.defaultAgentId, options.mainKey)
        }
      },
      auth: { role: params.role ?? 'operator', scopes: params.scopes ?? [] },
      policy: { maxPayload: options.maxPayload, maxBufferedBytes: options.maxBufferedBytes, tickIntervalMs: options.tickIntervalMs }
    } satisfies HelloOk)
  }

  /** The heartbeat the official client expects every `tickIntervalMs` (the adapter's timer calls it). */
  tick (): void {
    this.#event('tick', { ts: Date.now() })
  }

  // ── requests ───────────────────────────────────────────────────────────────

  async #dispatch (id: string, method: string, params: unknown): Promise<void> {
    if (method === 'connect') return this.#respond(id, invalidRequest('already connected'))
    if (!isMethod(method)) return this.#respond(id, invalidRequest(`unknown method "${method}"`))
    const given = params ?? {}
    const check = checkParams[method]
    if (!check.Check(given)) return this.#respond(id, invalidRequest(describeInvalid(check, given, 'params')))
    try {
      const { payload, after } = await callMethod(this.#context, method, given)
      this.#respond(id, undefined, payload)
      after?.()
    } catch (err) {
      this.#respond(id, toErrorShape(err, this.#logger))
    }
  }

  /**
   * The session a frame means: its own `sessionKey`/`key` (and `agentId`), else the
   * connection's default from the upgrade (or, with `fresh`, a new one). Always through
   * the one resolver.
   */
  async #resolve (hints: SessionHints, action: SessionAction, whenMissing?: WhenMissing): Promise<ResolvedSession> {
    const given = hints.sessionKey !== undefined || whenMissing === 'fresh'
    const defaults = this.#defaultHints
    const named = given ? hints : { ...defaults, agentId: hints.agentId ?? defaults.agentId }
    return await this.#sessions.resolve(named, this.#principal as Principal, action, whenMissing)
  }

  // ── watching sessions ──────────────────────────────────────────────────────

  #holdRoomToWatch (sessionKey: string): () => void {
    // Held even for a session watched now: it may be let go before the request watches it again.
    const holds = this.#watchesComing.get(sessionKey) ?? 0
    if (holds === 0 && !this.#watches.has(sessionKey)) {
      const coming = [...this.#watchesComing.keys()].filter(key => !this.#watches.has(key)).length
      const most = this.#options.maxWatchedSessions
      if (this.#watches.size + coming >= most) throw new TooManyWatchesError(most)
    }
    this.#watchesComing.set(sessionKey, holds + 1)
    return () => {
      const left = (this.#watchesComing.get(sessionKey) as number) - 1
      if (left === 0) this.#watchesComing.delete(sessionKey)
      else this.#watchesComing.set(sessionKey, left)
    }
  }

  #watch (sessionKey: string, subscription: Subscription): void {
    // A subscription that completes after the connection closed is let go at once.
    if (this.#phase === 'closed') return subscription.unsubscribe()
    this.#watches.get(sessionKey)?.()
    this.#watches.set(sessionKey, subscription.unsubscribe)
  }

  #unwatch (sessionKey: string): boolean {
    this.#watches.get(sessionKey)?.()
    return this.#watches.delete(sessionKey)
  }

  #watchList (): void {
    if (this.#stopWatchingList !== undefined) return
    this.#stopWatchingList = this.#sessions.onChange(change => {
      this.#sessions.allows(this.#principal as Principal, change.sessionKey, 'read').then(readable => {
        if (readable) this.#event('sessions.changed', { sessionKey: change.sessionKey, agentId: change.agentId, reason: change.kind, ts: Date.now() } satisfies SessionsChangedPayload)
      }, err => this.#logger.error({ err, connId: this.connId }, 'session gateway: could not check who may see a change'))
    })
  }

  #unwatchList (): boolean {
    const was = this.#stopWatchingList !== undefined
    this.#stopWatchingList?.()
    this.#stopWatchingList = undefined
    return was
  }

  // ── writing ────────────────────────────────────────────────────────────────

  /**
   * The socket drained some of what it was given (the adapter calls this from the send
   * callback): frames waiting for room go out now.
   */
  drained (): void {
    this.#outbox.pump()
  }

  /**
   * Sends an event frame, in the log's order, through the outbox (see outbox.ts): a
   * consumer that does not keep up gets its deltas merged (finals always arrive), and
   * one whose live frames waiting pass `maxQueuedBytes` is closed with 1008 and can come
   * back with a cursor. `paced`: a replay, sent as the socket drains.
   */
  #send (outgoing: OutgoingEvent, paced = false): void {
    if (this.#phase !== 'ready') return
    this.#outbox.push({ outgoing }, paced)
  }

  #sendNow (outgoing: OutgoingEvent): void {
    if (outgoing.runId === undefined) return this.#writeEvent(outgoing.event, payloadJson(outgoing))
    this.#sendRun(outgoing)
  }

  /** A `chat` or `agent` frame of a run, with its per-run `seq` (each kind counts on its own, from 1). */
  #sendRun (outgoing: OutgoingEvent): void {
    const runId = outgoing.runId as string
    const counters = outgoing.event === 'chat' ? this.#chatSeq : this.#agentSeq
    const seq = (counters.get(runId) ?? 0) + 1
    counters.set(runId, seq)
    if (outgoing.event === 'chat' && outgoing.payload.state !== 'delta') {
      // The run is over; its counters are not needed any more.
      this.#chatSeq.delete(runId)
      this.#agentSeq.delete(runId)
    }
    // The shared payload JSON with this connection's per-run seq spliced in front.
    this.#writeEvent(outgoing.event, `{"seq":${seq},${payloadJson(outgoing).slice(1)}`)
  }

  #event<E extends keyof GatewayEventPayloads> (event: E, payload: GatewayEventPayloads[E]): void {
    this.#writeEvent(event, JSON.stringify(payload))
  }

  /** An event frame around an already-serialized payload, with this connection's next seq. */
  #writeEvent (event: string, payloadJson: string): void {
    if (this.#phase !== 'ready') return
    this.#writeRaw(`{"type":"event","event":${JSON.stringify(event)},"payload":${payloadJson},"seq":${++this.#seq}}`)
  }

  #respond (id: string, error: ErrorShape | undefined, payload?: unknown): void {
    this.#write(error === undefined
      ? { type: 'res', id, ok: true, payload }
      : { type: 'res', id, ok: false, error })
  }

  #write (frame: unknown): void {
    this.#writeRaw(JSON.stringify(frame))
  }

  #writeRaw (text: string): void {
    if (this.#phase === 'closed') return
    try {
      this.#socket.send(text)
    } catch (err) {
      this.#logger.warn({ err, connId: this.connId }, 'session gateway: a frame could not be sent')
      this.close(CloseCode.serverError, 'send failed')
    }
  }

  // A last-resort guard: #connect and #dispatch answer their own failures, so reaching
  // this is a bug. Closing beats an unhandled rejection that would end the process.
  /* c8 ignore next 4 */
  #fail (err: unknown): void {
    this.#logger.error({ err, connId: this.connId }, 'session gateway: connection failed')
    this.close(CloseCode.serverError, 'internal error')
  }
}

function asRequest (frame: unknown): { id: string, method: string, params?: unknown } | string {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) return 'a frame must be a JSON object'
  const { type, id, method } = frame as Record<string, unknown>
  if (type !== 'req') return 'only "req" frames may be sent to the gateway'
  if (typeof id !== 'string' || id === '') return 'a request needs a non-empty string "id"'
  if (typeof method !== 'string' || method === '') return 'a request needs a non-empty string "method"'
  return frame as { id: string, method: string, params?: unknown }
}

function idOf (frame: unknown): string | undefined {
  const id = (frame as { id?: unknown } | null)?.id
  return typeof id === 'string' && id !== '' ? id : undefined
}
