import { ConnectionError, ServerError } from './errors.js'
import { randomId } from './ids.js'
import { notify } from './listeners.js'
import type {
  AssistantMessage, Attachment, EventFrame, HistoryMessage, MethodName, MethodParams, MethodResult, OpenPayload, RunState, SessionEntry
} from './frames.js'

/** What a session needs from its client (`GatewayClient` is one). */
export interface SessionHost {
  readonly state: string
  request: <M extends MethodName>(method: M, params: MethodParams<M>) => Promise<MethodResult<M>>
  /** Re-opens a session on the connection that is resuming, applying the answer as it is read. */
  resumeRequest: (params: MethodParams<'sessions.open'>, onAnswer: (payload: OpenPayload) => void) => Promise<void>
  /** The session ended: stop delivering its events. */
  forget: (session: Session) => void
}

/** What happened to an open session, in the order it happened, each thing once. */
export type SessionUpdate =
  /** A row was committed: the user's message, a tool result, or the answer at the end of a turn. */
  | { type: 'message', message: HistoryMessage, runId?: string }
  /** A turn began (`model`: the one it runs on, when the agent says). */
  | { type: 'run.start', runId: string, model?: string }
  /** The running turn's text grew by `delta`; `text` is all of it so far (render that). */
  | { type: 'delta', runId: string, text: string, delta: string }
  /** The running turn's reasoning grew by `delta`; `text` is all of it so far. */
  | { type: 'reasoning', runId: string, text: string, delta: string }
  /** The running turn called a tool; its result comes later as a `message` with role `toolResult`. */
  | { type: 'tool', runId: string, name: string, toolCallId: string, args: Record<string, unknown> }
  /** A turn ended; its answer came just before as a `message`. */
  | { type: 'run.end', runId: string, state: RunState, message?: Partial<AssistantMessage>, errorMessage?: string }
  /** The history was replaced (the session was reset or deleted, or its past could not be resumed). */
  | { type: 'reset', messages: HistoryMessage[], running?: { runId: string, text: string }, deleted: boolean }
  /** `loadOlder()` put older rows in front of `messages`. */
  | { type: 'older', messages: HistoryMessage[] }
  /** The handle ended: `close()`, the client's `close()`, or an `error` (the gateway refused the resume). */
  | { type: 'closed', error?: Error }

export interface SendOptions {
  /** The key of an earlier send that failed, to retry it without starting a second turn. */
  idempotencyKey?: string
  attachments?: Attachment[]
  timeoutMs?: number
}

/**
 * An open session: its history, its running turn and its cursor, kept in step with the
 * gateway. After a reconnect it re-opens itself with `since` and applies whatever the
 * answer is (nothing missed, the missed events, a catch-up, or a fresh history), so
 * `messages` holds every message once, in order.
 */
export class Session {
  readonly key: string
  agentId: string
  sessionId: string | undefined
  entry: SessionEntry | undefined
  /** Oldest first. */
  messages: HistoryMessage[]
  /** The turn in progress and its text so far. */
  running: { runId: string, text: string } | undefined
  /** The position of the last event applied. */
  cursor: string
  /** Present while older rows exist (see `loadOlder`). */
  before: string | undefined
  closed = false
  readonly #client: SessionHost
  readonly #limit: number
  /** Counts the times `messages` was replaced: a page loaded for an older history is let go. */
  #generation = 0
  #loadingOlder: Promise<HistoryMessage[]> | undefined
  readonly #listeners = new Set<(update: SessionUpdate) => void>()

  /** @internal Made by `GatewayClient.open`. */
  constructor (client: SessionHost, opened: OpenPayload, limit: number) {
    this.#client = client
    this.#limit = limit
    this.key = opened.key
    this.agentId = opened.agentId
    this.sessionId = opened.sessionId
    this.entry = opened.entry
    this.messages = opened.messages
    this.before = opened.before
    this.cursor = opened.cursor
    this.running = opened.running
  }

  /** Calls `listener` with every update; returns the function that stops it. */
  on (listener: (update: SessionUpdate) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** The updates from now on, as an async iterator; it ends after `closed`. */
  events (): AsyncIterableIterator<SessionUpdate> {
    const queue: SessionUpdate[] = []
    let wake: (() => void) | undefined
    let done = this.closed
    const stop = this.on(update => {
      queue.push(update)
      wake?.()
    })
    const finish = (): IteratorResult<SessionUpdate> => {
      done = true
      stop()
      return { done: true, value: undefined }
    }
    return {
      [Symbol.asyncIterator] () { return this },
      async next () {
        while (queue.length === 0) {
          if (done) return finish()
          await new Promise<void>(resolve => { wake = resolve })
        }
        const update = queue.shift() as SessionUpdate
        if (update.type === 'closed') done = true
        return { done: false, value: update }
      },
      async return () { return finish() }
    }
  }

  /** Sends a user message; the answer streams as updates. A failed send's error carries its `idempotencyKey`. */
  async send (message: string, options: SendOptions = {}): Promise<MethodResult<'chat.send'>> {
    const { idempotencyKey = randomId(), ...rest } = options
    return await this.#client.request('chat.send', { sessionKey: this.key, message, idempotencyKey, ...rest })
  }

  /** Stops the running turn (only `runId`, when given). */
  async abort (runId?: string): Promise<MethodResult<'chat.abort'>> {
    return await this.#client.request('chat.abort', { sessionKey: this.key, ...(runId === undefined ? {} : { runId }) })
  }

  /**
   * Loads the page of rows before the oldest one held, puts it in front of `messages` and
   * returns it. Calls made while one is loading share it (a scroll handler may fire twice).
   */
  async loadOlder (limit = this.#limit): Promise<HistoryMessage[]> {
    this.#loadingOlder ??= this.#loadOlder(limit).finally(() => { this.#loadingOlder = undefined })
    return await this.#loadingOlder
  }

  async #loadOlder (limit: number): Promise<HistoryMessage[]> {
    if (this.before === undefined) return []
    const generation = this.#generation
    const page = await this.#client.request('chat.history', { sessionKey: this.key, before: this.before, limit })
    // The history was replaced while the page came (a reset): the page belongs to the old one.
    if (generation !== this.#generation) return []
    this.before = page.before
    this.messages = [...page.messages, ...this.messages]
    this.#emit({ type: 'older', messages: page.messages })
    return page.messages
  }

  /** Stops following the session. */
  close (): void {
    if (this.closed) return
    this.#client.forget(this)
    if (this.#client.state === 'open') this.#client.request('sessions.messages.unsubscribe', { key: this.key }).catch(() => {})
    this.end()
  }

  // ── used by GatewayClient ──────────────────────────────────────────────────

  /**
   * @internal Re-opens the session on a new connection, from its cursor. True when it must
   * be tried again on another connection: the gateway could not answer now, or did not answer.
   */
  async resume (): Promise<boolean> {
    try {
      await this.#client.resumeRequest({ key: this.key, since: this.cursor, limit: this.#limit }, opened => this.#resumed(opened))
      return false
    } catch (err) {
      // The gateway refused (the session is no longer this principal's, say): that is final.
      if (err instanceof ServerError && !err.retryable) {
        this.#client.forget(this)
        this.end(err)
        return false
      }
      // Refused for now (a store that failed), or no answer on a link that seems up: this
      // session would go stale, so another connection resumes it. A connection that dropped
      // again needs nothing: the next one resumes.
      return err instanceof ServerError || (err instanceof ConnectionError && err.code === 'TIMEOUT')
    }
  }

  /** @internal An event frame about this session (the client stops delivering once it ended). */
  receive (frame: EventFrame): void {
    switch (frame.event) {
      case 'session.message': {
        const { payload } = frame
        if (!this.#advance(payload.cursor)) return
        const message = { ...payload.message, id: payload.messageId } as HistoryMessage
        this.messages.push(message)
        // The answer's row takes over from the running text.
        if (payload.message.role === 'assistant' && this.running?.runId === payload.runId) this.running = undefined
        this.#emit({ type: 'message', message, ...(payload.runId === undefined ? {} : { runId: payload.runId }) })
        return
      }
      case 'chat': {
        const { payload } = frame
        const cursor = payload.cursor as string // asked for with the session-cursor capability
        if (payload.state !== 'delta') {
          if (!this.#advance(cursor)) return
          if (this.running?.runId === payload.runId) this.running = undefined
          this.#emit({
            type: 'run.end',
            runId: payload.runId,
            state: payload.state,
            ...(payload.message === undefined ? {} : { message: payload.message }),
            ...(payload.errorMessage === undefined ? {} : { errorMessage: payload.errorMessage })
          })
          return
        }
        const replaced = payload.replace === true
        // A snapshot (`replace`) stands at the cursor it was taken at, which may be one already seen.
        if (!this.#advance(cursor) && !replaced) return
        const before = this.running?.runId === payload.runId ? this.running.text : ''
        const deltaText = payload.deltaText as string
        // A snapshot is the whole text so far; the text of a turn only grows.
        const text = replaced ? deltaText : before + deltaText
        this.running = { runId: payload.runId, text }
        this.#emit({ type: 'delta', runId: payload.runId, text, delta: text.slice(before.length) })
        return
      }
      case 'agent': {
        const { payload } = frame
        if (!this.#advance(payload.cursor as string)) return
        const { runId } = payload
        if (payload.stream === 'lifecycle' && payload.data.phase === 'start') {
          this.running = { runId, text: '' }
          this.#emit({ type: 'run.start', runId, ...(payload.data.model === undefined ? {} : { model: payload.data.model }) })
        } else if (payload.stream === 'thinking') {
          this.#emit({ type: 'reasoning', runId, text: payload.data.text, delta: payload.data.delta })
        } else if (payload.stream === 'tool' && payload.data.phase === 'start') {
          const { name, toolCallId, args } = payload.data
          this.#emit({ type: 'tool', runId, name, toolCallId, args })
        }
        // OpenClaw's other agent streams (a tool's result, say) are not ours to send: let them be.
        return
      }
      case 'session.reset': {
        const { payload } = frame
        this.cursor = payload.cursor
        this.sessionId = payload.sessionId
        this.messages = []
        this.#generation++
        this.before = undefined
        this.running = undefined
        this.#emit({ type: 'reset', messages: [], deleted: payload.deleted })
      }
    }
  }

  /** @internal Called once: by close(), the client's close, or a refused resume. */
  end (error?: Error): void {
    this.closed = true
    this.#emit(error === undefined ? { type: 'closed' } : { type: 'closed', error })
    this.#listeners.clear()
  }

  #resumed (opened: OpenPayload): void {
    this.agentId = opened.agentId
    this.sessionId = opened.sessionId
    this.entry = opened.entry
    // A catch-up does not bring the end of a turn whose answer was never stored: with no turn
    // running now, none is (one still running sends its text again in the events that follow).
    if (opened.replay === 'catchup' && opened.running === undefined) this.running = undefined
    // `live`: nothing was missed; `replay` and `catchup`: what was missed follows as events.
    if (opened.replay !== 'reset') return
    this.messages = opened.messages
    this.#generation++
    this.before = opened.before
    this.cursor = opened.cursor
    this.running = opened.running
    this.#emit({
      type: 'reset',
      messages: opened.messages,
      ...(opened.running === undefined ? {} : { running: opened.running }),
      deleted: opened.entry === undefined
    })
  }

  /** Moves the cursor to `cursor`; false when that event was already applied. */
  #advance (cursor: string): boolean {
    const at = splitCursor(cursor)
    const mine = splitCursor(this.cursor)
    if (at.epoch === mine.epoch && at.seq <= mine.seq) return false
    this.cursor = cursor
    return true
  }

  #emit (update: SessionUpdate): void {
    notify(this.#listeners, update)
  }
}

function splitCursor (cursor: string): { epoch: string, seq: number } {
  const colon = cursor.lastIndexOf(':')
  return { epoch: cursor.slice(0, colon), seq: Number(cursor.slice(colon + 1)) }
}

