import type { SessionEvent } from '../events.js'

// What the hub shares between processes, for each session: the ordered event log and
// its position, live fan-out, the lane (one turn at a time), idempotency claims and
// abort requests. The in-process log (in-process-log.ts) is the single-node
// implementation; a Redis one lets many nodes behave as one (see SCALE-OUT.md). Both are
// proven by the same contract suite (lib/testing/session-log-contract.ts).
//
// Rows and transcripts are the store's; the log holds only what is live.

/** A place in a session's log: every event up to `seq` of life `epoch`. */
export interface LogPosition {
  readonly epoch: string
  readonly seq: number
}

/** The right to run one turn on a session, and to append its events. */
export interface Lane {
  readonly runId: string
  /**
   * The log's position when the lane was taken (the turn continues from it); undefined
   * when the log holds none for the session (a shared log that lost it: seed it again).
   */
  readonly position: LogPosition | undefined
  /** Whether the turn has been asked to stop, from this process or another. */
  readonly aborted: boolean
  /** Calls `listener` once when the turn is asked to stop (at once if it already was). */
  onAbort (listener: () => void): void
}

export interface LaneOptions {
  /** Wait behind the running turn (`queue`), or fail at once with its run id (`reject`). */
  busy: 'queue' | 'reject'
  /** Most turns that may wait, per session; one more is refused like `reject`. */
  maxQueue: number
}

/** Told every event appended after its subscription's position, in order, once; and restarts. */
export type LogListener = (event: SessionEvent) => void

export interface LogSubscription {
  /** Every event after this position reaches the listener (and none before it). */
  readonly position: LogPosition
  unsubscribe (): void
}

/** What a restart tells live watchers: the session was reset (new generation) or deleted. */
export interface RestartNotice {
  sessionId?: string
  deleted: boolean
}

export interface SessionLog {
  /**
   * The session's position. A log that holds no state for the key asks `seed` (the
   * durable store's view) once, keeps the answer, and returns it.
   */
  position (key: string, seed: () => Promise<LogPosition>): Promise<LogPosition>

  /**
   * Appends events that continue the log: the first must be at the position's `seq + 1`
   * of its epoch and the rest follow it one by one; anything else is refused (a writer
   * that lost its place). Subscribers get each event once it is in. A log that appends
   * at once may return nothing (and throw to refuse): a turn appends an event per delta,
   * and a promise per event is a cost worth sparing. A turn's events come with its
   * `lane`: a shared log refuses them once the lane is no longer that turn's (it expired
   * and another took it), and keeps the lane alive while they come.
   */
  append (key: string, events: readonly SessionEvent[], lane?: Lane): Promise<void> | void

  /**
   * The events after `after` in `epoch`, oldest first, up to the newest; undefined when
   * the log no longer holds every one of them (or the epoch is not the current one):
   * the caller then catches up from the durable transcript.
   */
  read (key: string, epoch: string, after: number): Promise<SessionEvent[] | undefined>

  /** Live events of a session from now on; the answer says from which position. */
  subscribe (key: string, listener: LogListener): Promise<LogSubscription>

  /**
   * A new life of the log at `position` (a reset, a delete, a run found interrupted):
   * the events held so far are dropped, and with a `notice` watchers get `session.reset`.
   */
  restart (key: string, position: LogPosition, notice?: RestartNotice): Promise<void>

  /** Takes the session's lane for `runId`; waits or refuses (`FSG_SESSION_BUSY`) as `options` say. */
  acquire (key: string, runId: string, options: LaneOptions): Promise<Lane>

  /** Gives the lane up: the next waiting turn gets it. */
  release (key: string, lane: Lane): Promise<void>

  /** Refuses every turn still waiting for the lane (`FSG_RUN_ABORTED`). */
  dropWaiting (key: string): Promise<void>

  /** Asks the running turn (only if it is `runId`, when given) to stop; its run id, or undefined. */
  abort (key: string, runId?: string): Promise<string | undefined>

  /**
   * Claims an idempotency key for `runId`, for the log's claim time. Undefined when this
   * call claimed it; else the run id that holds it. A log that answers at once may answer
   * without a promise (every keyed send asks).
   */
  claim (key: string, idempotencyKey: string, runId: string): Promise<string | undefined> | string | undefined

  /** Frees a claim whose send failed before its run began. */
  unclaim (key: string, idempotencyKey: string): Promise<void>

  /** The session is idle here: a log that keeps state per process may let it go. */
  forget (key: string): void

  /** The gateway is closing: let go of connections and timers (the log's data stays where it is). */
  close (): Promise<void>

  /** Resolves when the log can be reached (readiness asks); a log in the process may leave it out. */
  ping?: () => Promise<void>
}
