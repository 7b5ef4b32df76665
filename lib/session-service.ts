import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { createAuthenticator, type Authenticator, type Credentials, type Principal } from './auth.js'
import {
  SessionHub, type ChangeListener, type HistoryQuery, type OpenResult, type RunTicket, type SendRequest,
  type SessionListener, type SubscribeOptions, type Subscription, type RunningSnapshot
} from './hub/hub.js'
import { InProcessSessionLog } from './hub/in-process-log.js'
import type { SessionLog } from './hub/session-log.js'
import type { ResolvedOptions } from './options.js'
import { isGatewayError } from './errors.js'
import { createResolver, type Resolver, type SessionAction } from './resolver.js'
import { listReadable } from './stores/readable-list.js'
import { NO_TELEMETRY, type Telemetry } from './telemetry.js'
import type { ListPage, ListQuery, ReadPage, SessionRow, SessionStore } from './stores/store.js'

export interface ListOptions extends Partial<ListQuery> {
  /** When given, only the sessions this principal may read are listed. */
  principal?: Principal
}

const MAX_LIST_LIMIT = 1000
/** How long a repeated idempotency key attaches to the first run (OpenAI keeps them 24 h; a turn is shorter). */
const IDEMPOTENCY_TTL_MS = 5 * 60_000

/**
 * `app.sessionGateway`: the machinery every transport uses, for application code
 * and tests. Keys given to its methods must be canonical (from `resolve`).
 */
export class SessionService {
  readonly resolve: Resolver
  readonly store: SessionStore
  /** What processes share at run time (readiness asks whether it can be reached). */
  readonly log: SessionLog
  readonly #hub: SessionHub
  readonly #log: SessionLog
  readonly #authenticate: Authenticator
  readonly #options: ResolvedOptions
  readonly #telemetry: Telemetry

  constructor (options: ResolvedOptions, logger: FastifyBaseLogger, telemetry: Telemetry = NO_TELEMETRY) {
    this.#options = options
    this.#telemetry = telemetry
    this.store = options.store
    this.resolve = createResolver({
      defaultAgentId: options.defaultAgentId,
      mainKey: options.mainKey,
      ...(options.agents === undefined ? {} : { agents: options.agents }),
      ...(options.authorize === undefined ? {} : { authorize: options.authorize })
    })
    this.#authenticate = createAuthenticator(options.auth)
    this.#log = options.sessionLog ?? new InProcessSessionLog({ replay: options.replay, maxReplayBytes: options.maxReplayBytes, claimTtlMs: IDEMPOTENCY_TTL_MS })
    this.log = this.#log
    this.#hub = new SessionHub({
      store: options.store,
      log: this.#log,
      agent: options.agent,
      busy: options.busy,
      runTimeoutMs: options.runTimeoutMs,
      maxQueue: options.maxQueue,
      maxIdleSessions: options.maxIdleSessions,
      idempotencyTtlMs: IDEMPOTENCY_TTL_MS,
      maxIdempotencyBytes: options.maxIdempotencyBytes,
      orphanCheckMs: options.orphanCheckMs,
      logger
    })
  }

  /** The principal behind these credentials; throws `FSG_UNAUTHENTICATED` (401). */
  async authenticate (request: FastifyRequest, credentials: Credentials): Promise<Principal> {
    return await this.#authenticate(request, credentials)
  }

  /** Starts a turn; resolves once the input is durable. See `SessionHub.send`. */
  async send (request: SendRequest): Promise<RunTicket> {
    const ticket = await this.#hub.send(request)
    if (ticket.status === 'started') {
      const started = performance.now()
      this.#telemetry.turnStarted()
      void ticket.result.then(result => this.#telemetry.turnFinished(result.state, (performance.now() - started) / 1000))
    }
    return ticket
  }

  async history (sessionKey: string, query: HistoryQuery): Promise<ReadPage & { sessionId?: string, cursor: string }> {
    return await this.#hub.history(sessionKey, query)
  }

  async subscribe (sessionKey: string, options: SubscribeOptions, listener: SessionListener): Promise<Subscription> {
    return await this.#hub.subscribe(sessionKey, options, listener)
  }

  /** History, cursor, running turn and a subscription from one instant; with `since`, a resume. */
  async open (sessionKey: string, options: SubscribeOptions & { limit: number }, listener: SessionListener): Promise<OpenResult> {
    const opened = await this.#hub.open(sessionKey, options, listener)
    if (options.since !== undefined) this.#telemetry.resumed(opened.subscription.replay.kind)
    return opened
  }

  async abort (sessionKey: string, runId?: string): Promise<{ aborted: boolean, runIds: string[] }> {
    return await this.#hub.abort(sessionKey, runId)
  }

  async get (sessionKey: string): Promise<(SessionRow & { cursor: string, running?: RunningSnapshot }) | undefined> {
    return await this.#hub.get(sessionKey)
  }

  async patch (sessionKey: string, patch: { label?: string }): Promise<SessionRow> {
    return await this.#hub.patch(sessionKey, patch)
  }

  /** Creates the session if it does not exist (a first send does the same). */
  async create (sessionKey: string, agentId: string): Promise<SessionRow> {
    return await this.#hub.create(sessionKey, agentId)
  }

  /** Hears about rows created, updated, reset or deleted; returns the function that stops it. */
  onChange (listener: ChangeListener): () => void {
    return this.#hub.onChange(listener)
  }

  async reset (sessionKey: string): Promise<SessionRow> {
    return await this.#hub.reset(sessionKey)
  }

  async delete (sessionKey: string): Promise<boolean> {
    return await this.#hub.delete(sessionKey)
  }

  /**
   * Whether `principal` may `action` the session: the one question every transport and
   * listing asks, answered by the resolver (the agent allow-list, then `authorize`).
   */
  async allows (principal: Principal, sessionKey: string, action: SessionAction): Promise<boolean> {
    try {
      await this.resolve({ sessionKey }, principal, action)
      return true
    } catch (err) {
      if (isGatewayError(err)) return false
      throw err
    }
  }

  /** The row of the session whose current generation is `sessionId`, if `principal` may read it. */
  async findBySessionId (sessionId: string, principal: Principal): Promise<SessionRow | undefined> {
    const row = await this.store.findBySessionId(sessionId)
    // Found or not, a session the principal may not read looks the same: not there.
    return row !== undefined && await this.allows(principal, row.key, 'read') ? row : undefined
  }

  /** Sessions newest first; with a `principal`, only those it may read. */
  async list (options: ListOptions = {}): Promise<ListPage> {
    const { principal, ...rest } = options
    const limit = Math.min(Math.max(1, rest.limit ?? 50), MAX_LIST_LIMIT)
    const query: ListQuery = { ...rest, limit }
    // With an agent allow-list, rows of other agents (a store shared with OpenClaw) are not ours to show.
    if (principal === undefined || (this.#options.authorize === undefined && this.#options.agents === undefined)) return await this.#hub.list(query)

    return await listReadable(async page => await this.#hub.list(page), query, principal.id, async row => await this.allows(principal, row.key, 'read'))
  }

  /** Stops every running turn (recorded as aborted) and refuses new ones. */
  async close (): Promise<void> {
    await this.#hub.close()
    await this.#log.close()
    await this.store.close?.()
  }
}
