import type { FastifyBaseLogger } from 'fastify'
import { formatCursor, type RunFinishedEvent, type SessionEvent } from '../events.js'
import type { SessionRow, SessionStore } from '../stores/store.js'
import { entryId, type RunState, type ToolCallPart, type TranscriptEntry, type TranscriptMessage } from '../transcript.js'
import type { SessionListener } from './hub-types.js'
import { rowEvents } from './row-events.js'
import type { Run } from './run.js'
import type { LogPosition, LogSubscription, SessionLog } from './session-log.js'

// One session as this process holds it while it is in use: its row, its place in the
// log (mirrored from the session log, which is the authority), the run this process is
// executing, and the local watchers the log's events fan out to. Writing goes through
// here: rows to the store first, then their events to the log.

// A session that does not exist yet has this epoch; the first send gives it a real one.
export const UNBORN_EPOCH = 'new'
/** The cursor of a session that does not exist (yet). */
export const UNBORN_CURSOR = `${UNBORN_EPOCH}:0`

/** A row before it has its place in the log. */
export interface RowDraft {
  message: TranscriptMessage
  runId: string
  runState?: RunState
  runError?: { code: string, message: string }
}

export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never
/** An event as its writer makes it: the state gives it its place. */
export type EventDraft = DistributiveOmit<SessionEvent, 'sessionKey' | 'epoch' | 'seq' | 'at'>

export interface SessionContext {
  store: SessionStore
  log: SessionLog
  logger: FastifyBaseLogger
}

/** What this process knows of a run another process executes (from the log's events). */
export interface RemoteRun {
  runId: string
  text: string
  toolCalls: ToolCallPart[]
}

/** One listener on one session. Live events are held until `start()`. */
export class Watcher {
  #held: SessionEvent[] | undefined = []
  /** Where the subscription stands: what came at or before it is the answer's, not live. */
  constructor (readonly listener: SessionListener, readonly logger: FastifyBaseLogger, readonly after: LogPosition) {}

  deliver (event: SessionEvent): void {
    // A log that tells its events late (Redis) may still bring ones the subscription's answer covers.
    if (event.type !== 'session.reset' && event.epoch === this.after.epoch && event.seq <= this.after.seq) return
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

/** How many ended runs a session remembers (see `SessionState.finished`). */
const RECENT_ENDS = 8

export class SessionState {
  row: SessionRow | undefined
  epoch = UNBORN_EPOCH
  head = 0
  /** The newest transcript entry's id: the next entry's `parentId`, as OpenClaw chains them. */
  lastEntryId: string | null = null
  /**
   * The runs of the newest rows when the state was read from the store: a send repeated
   * with its idempotency key after a restart (whose claims died with the process) finds
   * its run here instead of starting it again.
   */
  runsAtLoad: ReadonlySet<string> = new Set()
  readonly watchers = new Set<Watcher>()
  running: Run | undefined
  /** Turns of this process holding or waiting for the session's lane. */
  lanes = 0
  /** Calls currently holding this state; it is never evicted while any do. */
  users = 0
  ready: Promise<void> | undefined
  /** This process's one subscription to the session's log; local watchers hang off it. */
  subscription: LogSubscription | undefined
  /** Settles when every append so far has (a failed one fails the run that made it). */
  #appending: Promise<void> = Promise.resolve()
  /** An append was refused: the head may be ahead of the log's. */
  #diverged = false

  constructor (readonly key: string, readonly context: SessionContext) {}

  get idle (): boolean {
    return this.users === 0 && this.lanes === 0 && this.watchers.size === 0
  }

  cursor (): string {
    return formatCursor(this.epoch, this.head)
  }

  /** Takes the log's events: the position moves, and every local watcher hears them. */
  readonly deliver = (event: SessionEvent): void => {
    // While a run of ours holds the lane nobody else appends: an event heard now is our own or
    // a late one, which the lane's position counted already (it must not move the head back).
    if (this.running === undefined) this.#move(event)
    // Another process created, reset or deleted the session: the row here is out of date.
    if (event.type === 'session.reset' || (this.row === undefined && event.type === 'message')) this.stale = true
    if (this.running === undefined || !('runId' in event) || event.runId !== this.running.runId) this.#follow(event)
    for (const watcher of this.watchers) watcher.deliver(event)
  }

  /** Where the log stands after another process's event. */
  #move (event: SessionEvent): void {
    // A row another process committed, newer than ours: the next row we write follows it.
    if (event.type === 'message' && (event.epoch !== this.epoch || event.seq > this.head)) this.lastEntryId = event.entry.id
    // A reset, or events of another life of the log (another process restarted it).
    if (event.type === 'session.reset' || event.epoch !== this.epoch) {
      this.epoch = event.epoch
      this.head = event.seq
    } else {
      // Events this process appended moved the head already; others' move it here.
      this.head = Math.max(this.head, event.seq)
    }
  }

  /** The row must be read again before it is used (the log told of a change made elsewhere). */
  stale = false

  /** A run another process executes on this session, as far as its events tell. */
  remote: RemoteRun | undefined
  /** Waits for the end of a run of another process. */
  readonly #finishing = new Set<{ runId: string, resolve: (event: RunFinishedEvent | undefined) => void }>()
  /**
   * The runs of other processes whose end was heard lately: the end travels on the
   * subscriber connection and may come before the answer a wait began after (an abort's).
   */
  readonly #ended: string[] = []

  /**
   * Settles with the run's `run.finished`; undefined if the session was reset first, or if
   * the end was heard before the wait began (the transcript has the answer then).
   */
  async finished (runId: string, signal?: AbortSignal): Promise<RunFinishedEvent | undefined> {
    if (this.#ended.includes(runId)) return undefined
    return await new Promise(resolve => {
      const waiting = { runId, resolve }
      this.#finishing.add(waiting)
      // Given up (its answer was found elsewhere): the wait leaves nothing behind.
      signal?.addEventListener('abort', () => { this.#finishing.delete(waiting) })
    })
  }

  #follow (event: SessionEvent): void {
    switch (event.type) {
      case 'run.started':
        this.remote = { runId: event.runId, text: '', toolCalls: [] }
        return
      case 'run.delta':
        if (this.remote?.runId === event.runId) this.remote.text = event.text
        return
      case 'run.tool_call':
        this.remote?.toolCalls.push(event.call)
        return
      case 'run.finished':
        if (this.remote?.runId === event.runId) this.remote = undefined
        if (this.#ended.push(event.runId) > RECENT_ENDS) this.#ended.shift()
        for (const waiting of [...this.#finishing].filter(waiting => waiting.runId === event.runId)) {
          this.#finishing.delete(waiting)
          waiting.resolve(event)
        }
        return
      case 'session.reset':
        this.remote = undefined
        for (const waiting of this.#finishing) waiting.resolve(undefined)
        this.#finishing.clear()
    }
  }

  /** Moves to a new life of the log at `position` (watchers are told when `notice` says so). */
  async restart (position: LogPosition, notice?: { sessionId?: string, deleted: boolean }): Promise<void> {
    this.epoch = position.epoch
    this.head = position.seq
    await this.context.log.restart(this.key, position, notice)
  }

  /**
   * Appends rows to the store with the next positions, then announces them in the log.
   * The head only moves once the store has them, so a failed write leaves no gap.
   */
  async commit (rows: RowDraft[]): Promise<TranscriptEntry[]> {
    let parentId = this.lastEntryId
    let seq = this.head
    const entries = rows.map(row => {
      // An answer takes two positions: its row, then its run.finished (see row-events.ts).
      const entry = this.entry(row, seq + 1, parentId)
      seq += row.runState === undefined ? 1 : 2
      parentId = entry.id
      return entry
    })
    await this.context.store.append(this.key, entries)
    this.lastEntryId = parentId
    this.#append(entries.flatMap(entry => rowEvents(this.key, this.epoch, entry)))
    return entries
  }

  entry (row: RowDraft, seq: number, parentId: string | null): TranscriptEntry {
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

  /** Gives an event the next position and appends it. */
  emit (body: EventDraft): void {
    // The body is always a fresh object: completing it in place spares a copy per event
    // (a spread over a dozen event shapes is one of the hottest lines of a turn).
    const event = body as SessionEvent
    event.sessionKey = this.key
    event.epoch = this.epoch
    event.seq = this.head + 1
    event.at = Date.now()
    this.#append([event])
  }

  /** Appends an event built elsewhere at its own position (the end of a run whose row could not be written). */
  append (event: SessionEvent): void {
    this.#append([event])
  }

  /**
   * Settles once every append so far is in the log, or has failed. After a refusal the
   * head is taken back from the log, so what follows continues the log, not the refused
   * events (which no watcher got).
   */
  async appended (): Promise<void> {
    await this.#appending
    if (!this.#diverged) return
    try {
      const position = await this.context.log.position(this.key, async () => ({ epoch: this.epoch, seq: this.head }))
      this.#diverged = false
      this.epoch = position.epoch
      this.head = position.seq
    } catch (err) {
      this.context.logger.error({ err, sessionKey: this.key }, 'session gateway: the session log cannot say where the session is')
    }
  }

  #append (events: SessionEvent[]): void {
    // The head moves now, so the next event takes the next position even while this
    // append is in flight; the log refuses anything that does not follow.
    this.head = (events.at(-1) as SessionEvent).seq
    let appending
    try {
      appending = this.context.log.append(this.key, events, this.running?.lane)
    } catch (err) {
      return this.#refused(err)
    }
    // A log that appended at once returned nothing: no promise to keep track of.
    if (appending === undefined) return
    const settled = appending.catch(err => this.#refused(err))
    this.#appending = Promise.all([this.#appending, settled]).then(() => {})
  }

  #refused (err: unknown): void {
    this.#diverged = true
    this.context.logger.error({ err, sessionKey: this.key }, 'session gateway: the session log refused events')
    this.running?.abort({ kind: 'log', message: 'the session log refused the run\'s events' })
  }
}
