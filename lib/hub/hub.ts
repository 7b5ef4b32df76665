import { GatewayClosedError, sessionBusy, SessionNotFoundError } from '../errors.js'
import { formatCursor } from '../events.js'
import type { AssistantMessage, ToolCallPart, TranscriptEntry } from '../transcript.js'
import type { ListPage, ListQuery, ReadPage, SessionRow, SessionStore } from '../stores/store.js'
import type {
  ChangeListener, HistoryQuery, HubOptions, OpenResult, RunningSnapshot, RunTicket, SendRequest, SessionChange,
  SessionListener, SubscribeOptions, Subscription
} from './hub-types.js'
import { approximateBytes } from './byte-size.js'
import { IdempotencyCache } from './idempotency.js'
import { Run, type RunResult, type StopCause } from './run.js'
import { SessionRegistry } from './session-registry.js'
import { UNBORN_CURSOR, UNBORN_EPOCH, type SessionState } from './session-state.js'
import { Subscriptions } from './subscriptions.js'
import { checkSendRequest, snapshot, TurnRunner } from './turn-runner.js'

/** A run's result from its answer row (or from a reset that ended it with no answer). */
function resultOf (sessionKey: string, runId: string, entry: TranscriptEntry | undefined, cursor: string): RunResult {
  const message = (entry?.message ?? { role: 'assistant', content: [], stopReason: 'aborted', timestamp: Date.now() }) as AssistantMessage
  const usage = message.usage
  return {
    runId,
    sessionKey,
    state: entry?.runState ?? 'aborted',
    entry: (entry ?? { type: 'message', id: '', parentId: null, timestamp: new Date().toISOString(), message }) as RunResult['entry'],
    message,
    text: message.content.map(part => part.type === 'text' ? part.text : '').join(''),
    toolCalls: message.content.filter((part): part is ToolCallPart => part.type === 'toolCall'),
    ...(entry?.runError === undefined ? {} : { error: entry.runError }),
    ...(usage === undefined ? {} : { usage: { inputTokens: usage.input, outputTokens: usage.output } }),
    cursor
  }
}

export type * from './hub-types.js'
export type { RunResult, RunUsage } from './run.js'
export { UNBORN_CURSOR } from './session-state.js'

/**
 * Owns sessions at run time: one lane per session (turns never interleave), one event
 * log per session with a cursor shared by every transport, live fan-out, replay,
 * abort and idempotency. Knows no transport and no particular store; what must be
 * shared between processes goes through its `SessionLog`.
 */
export class SessionHub {
  readonly #store: SessionStore
  readonly #registry: SessionRegistry
  readonly #runner: TurnRunner
  readonly #subscriptions: Subscriptions
  // This process's handle on each claimed idempotency key: its ticket and run.
  readonly #tickets: IdempotencyCache<Promise<{ ticket: RunTicket, run: Run }>>
  readonly #changeListeners = new Set<ChangeListener>()
  readonly #options: HubOptions
  #closed = false
  readonly #orphanCheck: NodeJS.Timeout

  constructor (options: HubOptions) {
    this.#options = options
    this.#store = options.store
    this.#registry = new SessionRegistry({ store: options.store, log: options.log, logger: options.logger }, options.maxIdleSessions)
    this.#subscriptions = new Subscriptions(this.#registry)
    this.#tickets = new IdempotencyCache(options.idempotencyTtlMs, { maxBytes: options.maxIdempotencyBytes })
    this.#runner = new TurnRunner({
      agent: options.agent,
      lane: { busy: options.busy, maxQueue: options.maxQueue },
      runTimeoutMs: options.runTimeoutMs,
      logger: options.logger,
      create: async (state, agentId) => await this.#create(state, agentId),
      closed: () => this.#closed,
      released: () => this.#registry.evictIdle(),
      changed: state => this.#changed('updated', state)
    })
    // A run another process executes ends when its process dies too: its lane expires, and we record it.
    this.#orphanCheck = setInterval(() => { void this.#recoverOrphans() }, options.orphanCheckMs)
    this.#orphanCheck.unref()
  }

  async #recoverOrphans (): Promise<void> {
    for (const state of this.#registry.all()) {
      const remote = state.remote
      if (remote === undefined || state.running !== undefined) continue
      await this.#registry.use(state.key, async loaded => { await this.#registry.recover(loaded, remote.runId) }).catch((err: unknown) => {
        this.#options.logger.warn({ err, sessionKey: state.key }, 'session gateway: could not check a run of another process')
      })
    }
  }

  // ── sending ────────────────────────────────────────────────────────────────

  /**
   * Starts a turn. Resolves once the input rows are durable in the store, with the
   * run's id and the cursor just before its first event.
   */
  async send (request: SendRequest): Promise<RunTicket> {
    if (this.#closed) throw new GatewayClosedError()
    checkSendRequest(request)
    const idempotencyKey = request.idempotencyKey
    const start = async (): Promise<{ ticket: RunTicket, run: Run }> =>
      await this.#registry.use(request.sessionKey, async state => {
        // Keyed by its idempotency key, and already in the transcript: a repeat whose claim a restart forgot.
        if (idempotencyKey !== undefined && request.runId === undefined && state.runsAtLoad.has(idempotencyKey)) return await this.#attach(request.sessionKey, idempotencyKey)
        return await this.#runner.start(state, request)
      })
    if (idempotencyKey === undefined) return (await start()).ticket

    const local = `${request.sessionKey}\n${idempotencyKey}`
    const earlier = this.#tickets.get(local)
    if (earlier !== undefined) {
      const { ticket, run } = await earlier
      return { ...ticket, status: run.finished ? 'done' : 'in_flight' }
    }
    const runId = request.runId ?? idempotencyKey
    const claiming = this.#options.log.claim(request.sessionKey, idempotencyKey, runId)
    // A log that answers at once spares a step; a shared one is awaited.
    const started = claiming instanceof Promise
      ? claiming.then(async holder => await this.#claimed(request, holder, start))
      : this.#claimed(request, claiming, start)
    this.#tickets.set(local, started)
    // A send that failed before its run began leaves nothing to attach to; one that ran
    // keeps its answer, which counts against the cache's bytes once it is known.
    started.then(async ({ ticket }) => { this.#tickets.weigh(local, started, approximateBytes((await ticket.result).entry)) }, () => this.#tickets.delete(local))
    return (await started).ticket
  }

  /** Starts the run of a fresh claim, or attaches to the run of the one that holds it. */
  async #claimed (request: SendRequest, holder: string | undefined, start: () => Promise<{ ticket: RunTicket, run: Run }>): Promise<{ ticket: RunTicket, run: Run }> {
    // Claimed by a run of another process: attach to it, as a repeat here would.
    if (holder !== undefined) return await this.#attach(request.sessionKey, holder)
    return await start().catch(async (err: unknown) => {
      await this.#options.log.unclaim(request.sessionKey, request.idempotencyKey as string)
      throw err
    })
  }

  /** A ticket for a run another process started: `done` with its answer, or `in_flight` with its end to come. */
  async #attach (sessionKey: string, runId: string): Promise<{ ticket: RunTicket, run: Run }> {
    return await this.#registry.use(sessionKey, async state => {
      // Created by the other process since this one last looked, its first row not heard yet.
      state.row ??= await this.#store.get(sessionKey)
      // Claimed there a moment ago, its session not created yet: nothing to attach to so far,
      // so the repeat is told the session is busy with that run, as any send would be.
      if (state.row === undefined) throw sessionBusy(sessionKey, runId, state.cursor())
      // Listened for before reading: an end heard during the read is not missed (one heard
      // before it is remembered, and the read finds its answer).
      const found = new AbortController()
      const finishing = state.finished(runId, found.signal)
      const rows = await this.#rowsOf(sessionKey, runId)
      const answer = rows.find(entry => entry.runState !== undefined)
      // The position just before the run's first row: watching since it shows the whole run.
      const cursor = formatCursor(state.epoch, Math.max(0, (rows[0]?.seq ?? state.head + 1) - 1))
      const run = new Run(runId)
      const settle = (entry: TranscriptEntry | undefined, at: string): void => {
        run.finished = true
        run.settle(resultOf(sessionKey, runId, entry, at))
      }
      if (answer !== undefined) {
        found.abort()
        settle(answer, state.cursor())
      } else void finishing.then(event => settle(event?.entry, state.cursor()))
      const ticket: RunTicket = { runId, sessionKey, sessionId: state.row.sessionId, status: run.finished ? 'done' : 'in_flight', cursor, result: run.result }
      return { ticket, run }
    })
  }

  /** The rows `runId` wrote in the current generation: read back from the newest until found. */
  async #rowsOf (sessionKey: string, runId: string): Promise<TranscriptEntry[]> {
    let page = await this.#store.read(sessionKey, { limit: 50 })
    for (;;) {
      const rows = page.entries.filter(entry => entry.runId === runId)
      if (rows.length > 0 || page.before === undefined) return rows
      page = await this.#store.read(sessionKey, { limit: 200, before: page.before })
    }
  }

  // ── watching ───────────────────────────────────────────────────────────────

  /** See `Subscriptions.subscribe`: a cursor, what was missed since `since`, then live events. */
  async subscribe (sessionKey: string, options: SubscribeOptions, listener: SessionListener): Promise<Subscription> {
    return await this.#subscriptions.subscribe(sessionKey, options, listener)
  }

  /** See `Subscriptions.open`: history, cursor and running turn from one instant, and a subscription. */
  async open (sessionKey: string, options: SubscribeOptions & { limit: number }, listener: SessionListener): Promise<OpenResult> {
    return await this.#subscriptions.open(sessionKey, options, listener)
  }

  // ── reading and managing sessions ──────────────────────────────────────────

  /** The row with its cursor and the run in progress; undefined when the session does not exist. */
  async get (sessionKey: string): Promise<(SessionRow & { cursor: string, running?: RunningSnapshot }) | undefined> {
    return await this.#registry.use(sessionKey, async state => {
      const cursor = state.cursor()
      const running = snapshot(state)
      // The store has the live row (updatedAt, preview); the hub only the log's position.
      const row = await this.#store.get(sessionKey)
      return row === undefined ? undefined : { ...row, cursor, ...(running === undefined ? {} : { running }) }
    })
  }

  /**
   * A page of the transcript and the session's cursor. A session that does not exist yet
   * has an empty history at the unborn cursor; an old generation (`sessionId`) must exist.
   */
  async history (sessionKey: string, query: HistoryQuery): Promise<ReadPage & { sessionId?: string, cursor: string }> {
    return await this.#registry.use(sessionKey, async state => {
      if (state.row === undefined) {
        if (query.sessionId !== undefined) throw new SessionNotFoundError(sessionKey)
        return { entries: [], cursor: UNBORN_CURSOR }
      }
      const cursor = state.cursor()
      const page = await this.#store.read(sessionKey, query)
      return { ...page, sessionId: query.sessionId ?? state.row.sessionId, cursor }
    })
  }

  async list (query: ListQuery): Promise<ListPage> {
    return await this.#store.list(query)
  }

  async patch (sessionKey: string, patch: { label?: string }): Promise<SessionRow> {
    return await this.#registry.use(sessionKey, async state => {
      const row = await this.#store.patch(sessionKey, patch)
      if (row === undefined) throw new SessionNotFoundError(sessionKey)
      state.row = row
      this.#changed('updated', state)
      return { ...row }
    })
  }

  /**
   * Aborts the running turn (only if it is `runId`, when given) and drops the turns
   * waiting behind it. Resolves once the aborted run has been recorded.
   */
  async abort (sessionKey: string, runId?: string): Promise<{ aborted: boolean, runIds: string[] }> {
    return await this.#registry.use(sessionKey, async state => {
      const run = state.running
      if (run !== undefined && !run.finished && runId !== undefined && run.runId !== runId) return { aborted: false, runIds: [] }
      await this.#options.log.dropWaiting(sessionKey)
      // Through the log, as from any process: the run (here or on another) hears it on its lane.
      const stopped = await this.#options.log.abort(sessionKey, runId)
      if (stopped === undefined) return { aborted: false, runIds: [] }
      if (run?.runId === stopped) await run.result
      else await state.finished(stopped)
      return { aborted: true, runIds: [stopped] }
    })
  }

  /** Points the key at a new, empty transcript (the old one stays readable) and starts a new epoch. */
  async reset (sessionKey: string): Promise<SessionRow> {
    return await this.#registry.use(sessionKey, async state => {
      await this.#stop(state, { kind: 'reset' })
      const row = await this.#store.reset(sessionKey)
      if (row === undefined) throw new SessionNotFoundError(sessionKey)
      state.row = row
      state.lastEntryId = null
      await state.restart({ epoch: row.epoch ?? row.sessionId, seq: 0 }, { sessionId: row.sessionId, deleted: false })
      this.#changed('reset', state)
      return { ...row }
    })
  }

  async delete (sessionKey: string): Promise<boolean> {
    return await this.#registry.use(sessionKey, async state => {
      await this.#stop(state, { kind: 'reset' })
      const agentId = state.row?.agentId
      const deleted = await this.#store.delete(sessionKey)
      if (deleted) {
        state.row = undefined
        state.lastEntryId = null
        await state.restart({ epoch: UNBORN_EPOCH, seq: 0 }, { deleted: true })
        this.#changed('deleted', state, agentId)
      }
      return deleted
    })
  }

  /** Creates the session if it does not exist yet (a first send does the same). */
  async create (sessionKey: string, agentId: string): Promise<SessionRow> {
    return await this.#registry.use(sessionKey, async state => {
      if (state.row === undefined) await this.#create(state, agentId)
      return { ...state.row as SessionRow }
    })
  }

  /** Hears about every row that is created, updated (a turn ended, a label changed), reset or deleted. */
  onChange (listener: ChangeListener): () => void {
    this.#changeListeners.add(listener)
    return () => { this.#changeListeners.delete(listener) }
  }

  /** Stops every run (recorded as aborted) and refuses new sends. */
  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#orphanCheck)
    // A log that cannot be reached must not keep the gateway from closing: local runs stop all the same.
    await Promise.all(this.#registry.all().map(async state => {
      await this.#stop(state, { kind: 'shutdown' }).catch(async (err: unknown) => {
        this.#options.logger.warn({ err, sessionKey: state.key }, 'session gateway: the session log could not be told of a shutdown')
        state.running?.abort({ kind: 'shutdown' })
        await state.running?.result
      })
    }))
  }

  /** Drops the waiting turns, stops the running one (here, or on another process) and waits until its end is recorded. */
  async #stop (state: SessionState, cause: StopCause): Promise<void> {
    await this.#options.log.dropWaiting(state.key)
    const run = state.running
    if (run !== undefined) {
      run.abort(cause)
      await run.result
      return
    }
    const remote = state.remote
    if (remote === undefined) return
    // Listened for before asking: the end may come back before the answer does.
    const finished = state.finished(remote.runId)
    if (await this.#options.log.abort(state.key, remote.runId) !== undefined) await finished
  }

  async #create (state: SessionState, agentId: string): Promise<void> {
    // `ensure` may find that another process created the row meanwhile: it is adopted as stored.
    await this.#registry.create(state, agentId)
    this.#changed('created', state)
  }

  #changed (kind: SessionChange['kind'], state: SessionState, agentId = (state.row as SessionRow).agentId): void {
    const change = { kind, sessionKey: state.key, agentId }
    for (const listener of this.#changeListeners) {
      try {
        listener(change)
      } catch (err) {
        this.#options.logger.error({ err }, 'session gateway: a change listener threw')
      }
    }
  }
}
