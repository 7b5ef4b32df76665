import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Agent, AgentOutput, FunctionTool, ToolChoice } from '../agents/agent.js'
import {
  GatewayClosedError, InvalidInputError, isGatewayError, RunAbortedError, SessionNotFoundError, sessionBusy
} from '../errors.js'
import { formatCursor, parseCursor, type SessionEvent } from '../events.js'
import type { ListPage, ListQuery, ReadPage, SessionRow, SessionStore } from '../stores/store.js'
import {
  entryId, isMessageEntry, type AssistantMessage, type RunState, type ToolCallPart,
  type TranscriptEntry, type TranscriptMessage
} from '../transcript.js'
import { randomHex } from '../ids.js'
import { EventRing } from './event-ring.js'
import { IdempotencyCache } from './idempotency.js'
import { Run, untilAborted, type RunResult, type RunUsage, type StopCause } from './run.js'

export type { RunResult, RunUsage } from './run.js'

export interface HubOptions {
  store: SessionStore
  agent: Agent
  /** What a send to a session with a running turn does. */
  busy: 'queue' | 'reject'
  /** How many recent events per session are kept in memory for exact replay. */
  replay: number
  /** Longest a run may take before it is stopped with state `error`. */
  runTimeoutMs: number
  /** Most sends that may wait behind a running turn, per session. */
  maxQueue: number
  /** Idle sessions whose state (replay ring, cursor) stays in memory. */
  maxIdleSessions: number
  /** How long a repeated idempotency key attaches to the first run. */
  idempotencyTtlMs: number
  logger: FastifyBaseLogger
}

export interface SendRequest {
  sessionKey: string
  agentId: string
  /**
   * The turn's new rows: user messages and tool results, and earlier assistant turns a
   * stateless client replays (OpenResponses input may carry the whole conversation).
   */
  input: TranscriptMessage[]
  /** A repeat within the TTL attaches to the first run instead of starting another. */
  idempotencyKey?: string
  /** Defaults to `idempotencyKey`, else a new UUID. */
  runId?: string
  timeoutMs?: number
  tools?: FunctionTool[]
  toolChoice?: ToolChoice
  model?: string
  instructions?: string
  maxOutputTokens?: number
  metadata?: Record<string, string>
}

export interface RunTicket {
  runId: string
  sessionKey: string
  sessionId: string
  /** `started`: this call started it; `in_flight`/`done`: an earlier call with the same idempotency key did. */
  status: 'started' | 'in_flight' | 'done'
  /** Position just before the run's first event: subscribe `since` it to see the whole run. */
  cursor: string
  /** Settles (never rejects) when the run ends. */
  result: Promise<RunResult>
}

/** A snapshot of the run in progress, for a watcher that joins mid-turn. */
export interface RunningSnapshot {
  runId: string
  text: string
  toolCalls: ToolCallPart[]
}

export type Replay =
  /** Nothing was missed. */
  | { kind: 'live' }
  /** Exactly the missed events, from memory. */
  | { kind: 'replay', events: SessionEvent[] }
  /**
   * The gap is gone from memory: the missed events rebuilt from the transcript (each
   * row's `message`, and `run.finished` after an answer; no deltas), and the running
   * run's text so far.
   */
  | { kind: 'catchup', events: SessionEvent[], running?: RunningSnapshot }
  /** The cursor is from another life of the log: start over from this history. */
  | { kind: 'reset', entries: TranscriptEntry[], running?: RunningSnapshot }

export interface SubscribeOptions {
  /** A cursor from an earlier event or answer: what came after it is replayed first. */
  since?: string
  /** History rows to send with a `reset` (default 50). */
  limit?: number
}

export type SessionListener = (event: SessionEvent) => void

export interface Subscription {
  /** Live events follow this position. */
  cursor: string
  replay: Replay
  /** The run in progress at `cursor`, if any; its later output arrives as live events. */
  running?: RunningSnapshot
  /** Delivers the live events held since subscribing, then every new one as it happens. */
  start (): void
  unsubscribe (): void
}

export interface OpenResult {
  row?: SessionRow
  /** The newest rows up to the cursor, oldest first (when no `since` was given). */
  entries: TranscriptEntry[]
  /** Present when older rows exist. */
  before?: string
  cursor: string
  running?: RunningSnapshot
  subscription: Subscription
}

/** A session row changed: for lists that stay current without polling. */
export interface SessionChange {
  kind: 'created' | 'updated' | 'reset' | 'deleted'
  sessionKey: string
  agentId: string
}

export type ChangeListener = (change: SessionChange) => void

export interface HistoryQuery {
  limit: number
  before?: string
  sessionId?: string
}

// A session that does not exist yet has this epoch; the first send gives it a real one.
const UNBORN_EPOCH = 'new'
/** The cursor of a session that does not exist (yet). */
export const UNBORN_CURSOR = `${UNBORN_EPOCH}:0`

interface Waiter {
  resolve: () => void
  reject: (err: Error) => void
}

/** One listener on one session. Live events are held until `start()`. */
class Watcher {
  #held: SessionEvent[] | undefined = []
  constructor (readonly listener: SessionListener, readonly logger: FastifyBaseLogger) {}

  deliver (event: SessionEvent): void {
    if (this.#held !== undefined) {
      this.#held.push(event)
      return
    }
    try {
      this.listener(event)
    } catch (err) {
      this.logger.error({ err }, 'session gateway: a session listener threw')
    }
  }

  start (): void {
    const held = this.#held
    if (held === undefined) return
    this.#held = undefined
    for (const event of held) this.deliver(event)
  }
}

class SessionState {
  row: SessionRow | undefined
  epoch = UNBORN_EPOCH
  head = 0
  /** The newest transcript entry's id: the next entry's `parentId`, as OpenClaw chains them. */
  lastEntryId: string | null = null
  readonly watchers = new Set<Watcher>()
  running: Run | undefined
  laneHeld = false
  /** Calls currently holding this state; it is never evicted while any do. */
  users = 0
  readonly queue: Waiter[] = []
  readonly ring: EventRing
  ready: Promise<void> | undefined

  constructor (readonly key: string, replay: number) {
    this.ring = new EventRing(replay)
  }

  get idle (): boolean {
    return this.users === 0 && !this.laneHeld && this.watchers.size === 0
  }

  cursor (): string {
    return formatCursor(this.epoch, this.head)
  }

  adopt (row: SessionRow | undefined): void {
    this.row = row
    const epoch = row === undefined ? UNBORN_EPOCH : row.epoch ?? row.sessionId
    if (epoch !== this.epoch) {
      this.epoch = epoch
      this.ring.clear()
    }
  }
}

/**
 * Owns sessions at run time: one lane per session (turns never interleave), one event
 * log per session with a cursor shared by every transport, live fan-out, replay,
 * abort and idempotency. Knows no transport and no particular store.
 */
export class SessionHub {
  readonly #options: HubOptions
  readonly #store: SessionStore
  // Insertion order doubles as recency: a used state is re-inserted at the end.
  readonly #states = new Map<string, SessionState>()
  readonly #idempotency: IdempotencyCache<Promise<{ ticket: RunTicket, run: Run }>>
  readonly #changeListeners = new Set<ChangeListener>()
  #closed = false

  constructor (options: HubOptions) {
    this.#options = options
    this.#store = options.store
    this.#idempotency = new IdempotencyCache(options.idempotencyTtlMs)
  }

  // ── sending ────────────────────────────────────────────────────────────────

  /**
   * Starts a turn. Resolves once the input rows are durable in the store, with the
   * run's id and the cursor just before its first event.
   */
  async send (request: SendRequest): Promise<RunTicket> {
    if (this.#closed) throw new GatewayClosedError()
    checkSendRequest(request)
    if (request.idempotencyKey === undefined) return (await this.#startRun(request)).ticket

    const idempotencyKey = `${request.sessionKey}\n${request.idempotencyKey}`
    const earlier = this.#idempotency.get(idempotencyKey)
    if (earlier !== undefined) {
      const { ticket, run } = await earlier
      return { ...ticket, status: run.finished ? 'done' : 'in_flight' }
    }
    const started = this.#startRun(request)
    this.#idempotency.set(idempotencyKey, started)
    // A send that failed before its run began leaves nothing to attach to.
    started.catch(() => this.#idempotency.delete(idempotencyKey))
    return (await started).ticket
  }

  async #startRun (request: SendRequest): Promise<{ ticket: RunTicket, run: Run }> {
    return await this.#use(request.sessionKey, async state => {
      const runId = request.runId ?? request.idempotencyKey ?? randomUUID()
      await this.#acquireLane(state)
      const run = new Run(runId, state.key)
      state.running = run
      let cursor: string
      try {
        if (this.#closed) throw new GatewayClosedError()
        // The first send creates the session (or finds that another process just did).
        if (state.row === undefined) await this.#create(state, request.agentId)
        cursor = state.cursor()
        await this.#commit(state, request.input.map(message => ({ message, runId })))
      } catch (err) {
        state.running = undefined
        this.#releaseLane(state)
        throw err
      }
      const row = state.row as SessionRow
      this.#emit(state, { type: 'run.started', runId, ...(request.model === undefined ? {} : { model: request.model }) })
      void this.#execute(state, row, run, request)
      return {
        ticket: { runId, sessionKey: state.key, sessionId: row.sessionId, status: 'started', cursor, result: run.result },
        run
      }
    })
  }

  async #execute (state: SessionState, row: SessionRow, run: Run, request: SendRequest): Promise<void> {
    const timeoutMs = request.timeoutMs ?? this.#options.runTimeoutMs
    const timer = setTimeout(() => run.abort({ kind: 'timeout', ms: timeoutMs }), timeoutMs)
    let failure: { code: string, message: string } | undefined
    try {
      const outputs = this.#options.agent.respond({
        sessionKey: state.key,
        sessionId: row.sessionId,
        agentId: row.agentId,
        runId: run.runId,
        input: request.input,
        history: (limit?: number) => this.#historyBefore(state.key, row.sessionId, request.input.length, limit),
        tools: request.tools ?? [],
        toolChoice: request.toolChoice ?? 'auto',
        ...(request.model === undefined ? {} : { model: request.model }),
        ...(request.instructions === undefined ? {} : { instructions: request.instructions }),
        ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
        metadata: request.metadata ?? {},
        signal: run.controller.signal
      })
      for await (const output of untilAborted(outputs, run.controller.signal)) {
        this.#apply(state, run, request, output)
      }
    } catch (err) {
      if (run.cause === undefined) {
        // An agent that fails with a gateway code (an upstream's FSG_UPSTREAM_*) keeps it.
        failure = err instanceof AgentProtocolError
          ? { code: 'FSG_AGENT_PROTOCOL', message: err.message }
          : isGatewayError(err)
            ? { code: err.code, message: err.message }
            : { code: 'FSG_AGENT_FAILED', message: err instanceof Error ? err.message : String(err) }
        this.#options.logger.error({ err, sessionKey: state.key, runId: run.runId }, 'session gateway: agent failed')
      }
    } finally {
      clearTimeout(timer)
    }
    await this.#finish(state, run, failure)
  }

  #apply (state: SessionState, run: Run, request: SendRequest, output: AgentOutput): void {
    switch (output?.type) {
      case 'text':
        if (typeof output.delta !== 'string') throw new AgentProtocolError('a text output without a string delta')
        if (output.delta === '') return
        run.text += output.delta
        this.#emit(state, { type: 'run.delta', runId: run.runId, delta: output.delta, text: run.text })
        return
      case 'function_call': {
        const call = toolCall(output, request)
        run.toolCalls.push(call)
        this.#emit(state, { type: 'run.tool_call', runId: run.runId, call })
        return
      }
      case 'reasoning':
        if (typeof output.delta !== 'string') throw new AgentProtocolError('a reasoning output without a string delta')
        if (output.delta === '') return
        run.reasoning += output.delta
        this.#emit(state, { type: 'run.reasoning', runId: run.runId, delta: output.delta })
        return
      case 'usage':
        run.usage = {
          inputTokens: output.inputTokens,
          outputTokens: output.outputTokens,
          ...(output.cachedTokens === undefined ? {} : { cachedTokens: output.cachedTokens }),
          ...(output.reasoningTokens === undefined ? {} : { reasoningTokens: output.reasoningTokens })
        }
        return
      case 'incomplete':
        run.incomplete = true
        return
      default:
        throw new AgentProtocolError(`unknown output type ${JSON.stringify((output as { type?: unknown } | undefined)?.type)}`)
    }
  }

  async #finish (state: SessionState, run: Run, failure: { code: string, message: string } | undefined): Promise<void> {
    let { state: runState, error } = outcome(run, failure)
    const content: AssistantMessage['content'] = []
    if (run.reasoning !== '') content.push({ type: 'thinking', thinking: run.reasoning })
    if (run.text !== '') content.push({ type: 'text', text: run.text })
    content.push(...run.toolCalls)
    const message: AssistantMessage = {
      role: 'assistant',
      content,
      stopReason: stopReason(runState, run),
      ...(error === undefined ? {} : { errorMessage: error.message }),
      ...(run.usage === undefined ? {} : { usage: transcriptUsage(run.usage) }),
      timestamp: Date.now()
    }
    let entry: TranscriptEntry
    try {
      // Announced as a `message` at its own seq; `run.finished` takes the next one.
      [entry] = await this.#commit(state, [{ message, runId: run.runId, runState, ...(error === undefined ? {} : { runError: error }) }]) as [TranscriptEntry]
    } catch (err) {
      // The answer could not be recorded: the client must not believe it was.
      this.#options.logger.error({ err, sessionKey: state.key, runId: run.runId }, 'session gateway: could not record the end of a run')
      runState = 'error'
      error = { code: 'FSG_STORE_FAILED', message: 'the answer could not be recorded' }
      entry = this.#entry({ message: { ...message, stopReason: 'error', errorMessage: error.message }, runId: run.runId, runState }, state.head, state.lastEntryId)
    }
    const finished = entry as TranscriptEntry & { message: AssistantMessage }
    const errorField = error === undefined ? {} : { error }
    this.#emit(state, { type: 'run.finished', runId: run.runId, state: runState, entry: finished, ...errorField })
    this.#changed('updated', state)
    run.finished = true
    state.running = undefined
    run.settle({
      runId: run.runId,
      sessionKey: state.key,
      state: runState,
      entry: finished,
      message: finished.message,
      text: run.text,
      toolCalls: run.toolCalls,
      ...errorField,
      ...(run.usage === undefined ? {} : { usage: run.usage }),
      cursor: state.cursor()
    })
    this.#releaseLane(state)
  }

  // ── the lane ───────────────────────────────────────────────────────────────

  async #acquireLane (state: SessionState): Promise<void> {
    if (!state.laneHeld) {
      state.laneHeld = true
      return
    }
    if (this.#options.busy === 'reject' || state.queue.length >= this.#options.maxQueue) {
      // While the lane is held, `running` is set: #startRun sets it right after taking the lane.
      throw sessionBusy(state.key, (state.running as Run).runId, state.cursor())
    }
    // #releaseLane hands the lane over directly, so no other send can slip in between.
    await new Promise<void>((resolve, reject) => state.queue.push({ resolve, reject }))
  }

  #releaseLane (state: SessionState): void {
    const next = state.queue.shift()
    if (next !== undefined) {
      next.resolve()
      return
    }
    state.laneHeld = false
    this.#evictIdle()
  }

  // ── the event log ──────────────────────────────────────────────────────────

  /**
   * Appends rows to the store with the next sequence numbers, then announces each.
   * The head only moves once the store has them, so a failed write leaves no gap.
   */
  async #commit (
    state: SessionState,
    rows: RowDraft[],
    announce = true
  ): Promise<TranscriptEntry[]> {
    let parentId = state.lastEntryId
    const entries = rows.map((row, i) => {
      const entry = this.#entry(row, state.head + 1 + i, parentId)
      parentId = entry.id
      return entry
    })
    await this.#store.append(state.key, entries)
    state.head += entries.length
    state.lastEntryId = parentId
    if (announce) {
      for (const entry of entries) {
        this.#emit(state, { type: 'message', entry, runId: entry.runId as string }, entry.seq)
      }
    }
    return entries
  }

  #entry (row: RowDraft, seq: number, parentId: string | null): TranscriptEntry {
    return {
      type: 'message',
      id: entryId(),
      parentId,
      timestamp: new Date(row.message.timestamp).toISOString(),
      message: row.message,
      seq,
      runId: row.runId,
      ...(row.runState === undefined ? {} : { runState: row.runState }),
      ...(row.runError === undefined ? {} : { runError: row.runError })
    }
  }

  /** Gives the event the next position (or `seq`, when its row was committed there) and fans it out. */
  #emit (state: SessionState, body: DistributiveOmit<SessionEvent, 'sessionKey' | 'epoch' | 'seq' | 'at'>, seq?: number): void {
    // The body is always a fresh object: completing it in place spares a copy per event
    // (a spread over a dozen event shapes is one of the hottest lines of a turn).
    const event = body as SessionEvent
    event.sessionKey = state.key
    event.epoch = state.epoch
    event.seq = seq ?? ++state.head
    event.at = Date.now()
    state.ring.push(event)
    for (const watcher of state.watchers) watcher.deliver(event)
  }

  /** Starts a new epoch (after a reset or delete) and tells every watcher. */
  #restart (state: SessionState, row: SessionRow | undefined): void {
    state.adopt(row)
    state.head = 0
    state.lastEntryId = null
    const event: SessionEvent = {
      type: 'session.reset',
      sessionKey: state.key,
      epoch: state.epoch,
      seq: 0,
      at: Date.now(),
      deleted: row === undefined,
      ...(row === undefined ? {} : { sessionId: row.sessionId })
    }
    for (const watcher of state.watchers) watcher.deliver(event)
  }

  // ── watching ───────────────────────────────────────────────────────────────

  /**
   * Watches a session. With `since`, what came after that cursor is in `replay`;
   * live events are held until `start()`, so the caller can send its answer first.
   * Between the two there is no gap and no duplicate.
   */
  async subscribe (sessionKey: string, options: SubscribeOptions, listener: SessionListener): Promise<Subscription> {
    const since = options.since === undefined ? undefined : parseCursor(options.since)
    return await this.#use(sessionKey, async state => {
      // Everything up to the first await happens at one instant of the log: `head`.
      const { head, epoch } = state
      const watcher = new Watcher(listener, this.#options.logger)
      state.watchers.add(watcher)
      const running = snapshot(state.running)
      const subscription = (replay: Replay): Subscription => ({
        cursor: formatCursor(epoch, head),
        replay,
        ...(running === undefined ? {} : { running }),
        start: () => watcher.start(),
        unsubscribe: () => {
          state.watchers.delete(watcher)
          this.#evictIdle()
        }
      })
      try {
        if (since === undefined || (since.epoch === epoch && since.seq === head)) return subscription({ kind: 'live' })
        if (since.epoch !== epoch || since.seq > head) {
          const { entries } = await this.#readUpTo(state, options.limit ?? 50, head)
          return subscription({ kind: 'reset', entries, ...(running === undefined ? {} : { running }) })
        }
        const recent = state.ring.after(since.seq)
        if (recent !== undefined) return subscription({ kind: 'replay', events: recent.filter(event => event.seq <= head) })
        const events = await this.#eventsBetween(state, since.seq, head)
        return subscription({ kind: 'catchup', events, ...(running === undefined ? {} : { running }) })
      } catch (err) {
        state.watchers.delete(watcher)
        throw err
      }
    })
  }

  /**
   * Recent history and a subscription taken at one instant, so nothing falls between
   * load and listen. With `since`, the history is left out unless the answer is a reset.
   */
  async open (sessionKey: string, options: SubscribeOptions & { limit: number }, listener: SessionListener): Promise<OpenResult> {
    const subscription = await this.subscribe(sessionKey, options, listener)
    try {
      return await this.#use(sessionKey, async state => {
        const { replay } = subscription
        const page: ReadPage = replay.kind === 'reset'
          ? { entries: replay.entries }
          : options.since !== undefined
            ? { entries: [] }
            : await this.#readUpTo(state, options.limit, parseCursor(subscription.cursor).seq)
        return {
          ...(state.row === undefined ? {} : { row: { ...state.row } }),
          entries: page.entries,
          ...(page.before === undefined ? {} : { before: page.before }),
          cursor: subscription.cursor,
          ...(subscription.running === undefined ? {} : { running: subscription.running }),
          subscription
        }
      })
    } catch (err) {
      subscription.unsubscribe()
      throw err
    }
  }

  // ── reading and managing sessions ──────────────────────────────────────────

  /** The row with its cursor and the run in progress; undefined when the session does not exist. */
  async get (sessionKey: string): Promise<(SessionRow & { cursor: string, running?: RunningSnapshot }) | undefined> {
    return await this.#use(sessionKey, async state => {
      const cursor = state.cursor()
      const running = snapshot(state.running)
      // The store has the live row (updatedAt, preview); the hub only the log's position.
      const row = await this.#store.get(sessionKey)
      return row === undefined ? undefined : { ...row, cursor, ...(running === undefined ? {} : { running }) }
    })
  }

  async history (sessionKey: string, query: HistoryQuery): Promise<ReadPage & { sessionId: string, cursor: string }> {
    return await this.#use(sessionKey, async state => {
      if (state.row === undefined) throw new SessionNotFoundError(sessionKey)
      const cursor = state.cursor()
      const page = await this.#store.read(sessionKey, query)
      return { ...page, sessionId: query.sessionId ?? state.row.sessionId, cursor }
    })
  }

  async list (query: ListQuery): Promise<ListPage> {
    return await this.#store.list(query)
  }

  async patch (sessionKey: string, patch: { label?: string }): Promise<SessionRow> {
    return await this.#use(sessionKey, async state => {
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
    return await this.#use(sessionKey, async state => {
      const run = state.running
      if (run === undefined || run.finished || (runId !== undefined && run.runId !== runId)) return { aborted: false, runIds: [] }
      await this.#stop(state, { kind: 'abort' })
      return { aborted: true, runIds: [run.runId] }
    })
  }

  /** Points the key at a new, empty transcript (the old one stays readable) and starts a new epoch. */
  async reset (sessionKey: string): Promise<SessionRow> {
    return await this.#use(sessionKey, async state => {
      await this.#stop(state, { kind: 'reset' })
      const row = await this.#store.reset(sessionKey)
      if (row === undefined) throw new SessionNotFoundError(sessionKey)
      this.#restart(state, row)
      this.#changed('reset', state)
      return { ...row }
    })
  }

  async delete (sessionKey: string): Promise<boolean> {
    return await this.#use(sessionKey, async state => {
      await this.#stop(state, { kind: 'reset' })
      const agentId = state.row?.agentId
      const deleted = await this.#store.delete(sessionKey)
      if (deleted) {
        this.#restart(state, undefined)
        this.#changed('deleted', state, agentId)
      }
      return deleted
    })
  }

  /** Creates the session if it does not exist yet (a first send does the same). */
  async create (sessionKey: string, agentId: string): Promise<SessionRow> {
    return await this.#use(sessionKey, async state => {
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
    await Promise.all([...this.#states.values()].map(state => this.#stop(state, { kind: 'shutdown' })))
  }

  /** Drops the waiting turns, stops the running one and waits until its end is recorded. */
  async #stop (state: SessionState, cause: StopCause): Promise<void> {
    for (const waiter of state.queue.splice(0)) waiter.reject(new RunAbortedError(state.key))
    const run = state.running
    if (run === undefined) return
    run.abort(cause)
    await run.result
  }

  // ── session state ──────────────────────────────────────────────────────────

  /** Runs `fn` with the session's loaded state, which stays in memory meanwhile. */
  async #use<T> (key: string, fn: (state: SessionState) => Promise<T>): Promise<T> {
    let state = this.#states.get(key)
    if (state === undefined) {
      state = new SessionState(key, this.#options.replay)
      state.ready = this.#load(state)
    } else {
      this.#states.delete(key)
    }
    this.#states.set(key, state)
    state.users++
    try {
      try {
        await state.ready
      } catch (err) {
        // A failed load is not kept: the next call tries again.
        if (this.#states.get(key) === state) this.#states.delete(key)
        throw err
      }
      return await fn(state)
    } finally {
      state.users--
      this.#evictIdle()
    }
  }

  /**
   * Rebuilds a session's position from the store: the head is the newest committed
   * row's `seq`. A run that began but never ended (the process died mid-turn) is
   * recorded as aborted, and the log gets a new epoch, since the events handed out
   * after its last durable row can no longer be accounted for.
   */
  async #create (state: SessionState, agentId: string): Promise<void> {
    // `ensure` may find that another process created the row meanwhile: adopt it as stored.
    await this.#adoptStored(state, await this.#store.ensure(state.key, agentId))
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

  async #load (state: SessionState): Promise<void> {
    await this.#adoptStored(state, await this.#store.get(state.key))
  }

  async #adoptStored (state: SessionState, row: SessionRow | undefined): Promise<void> {
    state.adopt(row)
    if (row === undefined) return
    const { entries } = await this.#store.read(state.key, { limit: 16 })
    state.lastEntryId = entries.at(-1)?.id ?? null
    const newest = entries.findLast(entry => typeof entry.seq === 'number')
    // An answer's row is followed by its `run.finished`, one seq later.
    state.head = newest === undefined ? 0 : (newest.seq as number) + (newest.runState === undefined ? 0 : 1)
    if (newest?.runId === undefined || newest.runState !== undefined) return
    const epoch = randomUUID()
    await this.#store.patch(state.key, { epoch })
    state.adopt({ ...row, epoch })
    const message: AssistantMessage = {
      role: 'assistant', content: [], stopReason: 'aborted', errorMessage: 'interrupted: the gateway stopped during this run', timestamp: Date.now()
    }
    await this.#commit(state, [{ message, runId: newest.runId, runState: 'aborted' }], false)
    state.head++
  }

  #evictIdle (): void {
    let excess = this.#states.size - this.#options.maxIdleSessions
    if (excess <= 0) return
    for (const [key, state] of this.#states) {
      if (excess <= 0) break
      if (!state.idle) continue
      this.#states.delete(key)
      excess--
    }
  }

  // ── reading helpers ────────────────────────────────────────────────────────

  /** The newest `limit` rows committed at or before `head`. */
  async #readUpTo (state: SessionState, limit: number, head: number): Promise<ReadPage> {
    if (state.row === undefined) return { entries: [] }
    const page = await this.#store.read(state.key, { limit })
    // Rows committed after `head` arrive as live events; leave them out here.
    const entries = page.entries.filter(entry => entry.seq === undefined || entry.seq <= head)
    return page.before === undefined ? { entries } : { entries, before: page.before }
  }

  /**
   * The log's events with `after < seq <= head`, rebuilt from the transcript read from the
   * newest backwards: each row's `message`, and an answer's `run.finished` one seq later.
   */
  async #eventsBetween (state: SessionState, after: number, head: number): Promise<SessionEvent[]> {
    const events: SessionEvent[] = []
    let before: string | undefined
    for (;;) {
      const page = await this.#store.read(state.key, { limit: 100, ...(before === undefined ? {} : { before }) })
      for (let i = page.entries.length - 1; i >= 0; i--) {
        const entry = page.entries[i] as TranscriptEntry
        const seq = entry.seq ?? 0
        if (seq + 1 <= after) return events.reverse()
        const rebuilt = rowEvents(state.key, state.epoch, entry)
        for (let j = rebuilt.length - 1; j >= 0; j--) {
          const event = rebuilt[j] as SessionEvent
          if (event.seq > after && event.seq <= head) events.push(event)
        }
      }
      if (page.before === undefined) return events.reverse()
      before = page.before
    }
  }

  /** The messages committed before this turn's input, oldest first. */
  async #historyBefore (key: string, sessionId: string, inputRows: number, limit = 200): Promise<TranscriptMessage[]> {
    const { entries } = await this.#store.read(key, { limit: limit + inputRows, sessionId })
    const messages = entries.filter(isMessageEntry).map(entry => entry.message)
    return messages.slice(0, Math.max(0, messages.length - inputRows)).slice(-limit)
  }
}

// ── helpers ──────────────────────────────────────────────────────────────────

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** The agent yielded something the hub cannot accept (an unknown output, a tool it was not offered). */
class AgentProtocolError extends Error {}

function checkSendRequest (request: SendRequest): void {
  if (!Array.isArray(request.input) || request.input.length === 0) throw new InvalidInputError('a turn needs at least one message')
  const choice = request.toolChoice
  if (typeof choice === 'object' && !(request.tools ?? []).some(tool => tool.name === choice.name)) {
    throw new InvalidInputError(`tool_choice names "${choice.name}", which is not among the offered tools`)
  }
  if (choice === 'required' && (request.tools ?? []).length === 0) {
    throw new InvalidInputError('tool_choice "required" needs at least one tool')
  }
}

/** Checks a function call against the turn's tools and turns it into a transcript part. */
function toolCall (output: Extract<AgentOutput, { type: 'function_call' }>, request: SendRequest): ToolCallPart {
  const offered = request.tools ?? []
  if (request.toolChoice === 'none' || !offered.some(tool => tool.name === output.name)) {
    throw new AgentProtocolError(`the agent called "${String(output.name)}", which this turn does not offer`)
  }
  let args = output.arguments
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args) as Record<string, unknown>
    } catch {
      throw new AgentProtocolError(`the agent's arguments for "${output.name}" are not JSON`)
    }
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    throw new AgentProtocolError(`the agent's arguments for "${output.name}" are not a JSON object`)
  }
  return { type: 'toolCall', id: output.callId ?? `call_${randomHex()}`, name: output.name, arguments: args }
}

function outcome (run: Run, failure: { code: string, message: string } | undefined): { state: RunState, error?: { code: string, message: string } } {
  if (failure !== undefined) return { state: 'error', error: failure }
  switch (run.cause?.kind) {
    case undefined: return { state: 'final' }
    case 'abort': return { state: 'aborted' }
    case 'timeout': return { state: 'error', error: { code: 'FSG_RUN_TIMEOUT', message: `the run took longer than ${run.cause.ms} ms` } }
    case 'shutdown': return { state: 'aborted', error: { code: 'FSG_GATEWAY_CLOSED', message: 'the gateway is shutting down' } }
    case 'reset': return { state: 'aborted', error: { code: 'FSG_SESSION_RESET', message: 'the session was reset' } }
  }
}

/** A row before it has its place in the log. */
interface RowDraft {
  message: TranscriptMessage
  runId: string
  runState?: RunState
  runError?: { code: string, message: string }
}

/** A transcript row as the events that announced it: its `message`, then `run.finished` for an answer. */
function rowEvents (sessionKey: string, epoch: string, entry: TranscriptEntry): SessionEvent[] {
  const seq = entry.seq ?? 0
  const at = Date.parse(entry.timestamp)
  const runId = entry.runId ?? ''
  const events: SessionEvent[] = [{ type: 'message', sessionKey, epoch, seq, at, runId, entry }]
  if (entry.runState !== undefined && entry.message?.role === 'assistant') {
    events.push({
      type: 'run.finished',
      sessionKey,
      epoch,
      seq: seq + 1,
      at,
      runId,
      state: entry.runState,
      entry: entry as TranscriptEntry & { message: AssistantMessage },
      ...(entry.runError === undefined ? {} : { error: entry.runError })
    })
  }
  return events
}

function transcriptUsage (usage: RunUsage): NonNullable<AssistantMessage['usage']> {
  return {
    input: usage.inputTokens,
    output: usage.outputTokens,
    totalTokens: usage.inputTokens + usage.outputTokens,
    ...(usage.cachedTokens === undefined ? {} : { cacheRead: usage.cachedTokens }),
    ...(usage.reasoningTokens === undefined ? {} : { reasoning: usage.reasoningTokens })
  }
}

function snapshot (run: Run | undefined): RunningSnapshot | undefined {
  return run === undefined || run.finished ? undefined : { runId: run.runId, text: run.text, toolCalls: [...run.toolCalls] }
}

function stopReason (state: RunState, run: Run): AssistantMessage['stopReason'] {
  if (state === 'aborted') return 'aborted'
  if (state === 'error') return 'error'
  return run.toolCalls.length > 0 ? 'toolUse' : run.incomplete ? 'length' : 'stop'
}
