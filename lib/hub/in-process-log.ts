import type { SessionEvent } from '../events.js'
import { RunAbortedError, sessionBusy } from '../errors.js'
import { formatCursor } from '../events.js'
import { EventRing } from './event-ring.js'
import { IdempotencyCache } from './idempotency.js'
import { ReplayBudget } from './replay-budget.js'
import { LaneAbort } from './lane-abort.js'
import type { Lane, LaneOptions, LogListener, LogPosition, LogSubscription, RestartNotice, SessionLog } from './session-log.js'

export interface InProcessLogOptions {
  /** Recent events kept per session for exact replay. */
  replay: number
  /** Bytes of events kept for replay, every session together (the oldest go first). Default 64 MiB. */
  maxReplayBytes?: number
  /** How long an idempotency claim holds. */
  claimTtlMs: number
  /** Most idempotency claims kept at once (the oldest go first). */
  maxClaims?: number
}

export const DEFAULT_MAX_REPLAY_BYTES = 64 * 1024 * 1024

interface Waiter {
  runId: string
  resolve: (lane: Lane) => void
  reject: (err: Error) => void
}

class InProcessLane extends LaneAbort implements Lane {
  constructor (readonly runId: string, readonly position: LogPosition) {
    super()
  }
}

/** One session's live state in this process. */
class LogState {
  epoch = ''
  seq = 0
  readonly ring: EventRing
  readonly listeners = new Set<LogListener>()
  lane: InProcessLane | undefined
  readonly queue: Waiter[] = []
  seeding: Promise<LogPosition> | undefined

  constructor (ring: EventRing) {
    this.ring = ring
  }

  get idle (): boolean {
    return this.listeners.size === 0 && this.lane === undefined && this.queue.length === 0
  }
}

/**
 * The session log of a single process: everything lives in memory, and every call
 * completes at once (its promise is already settled). The position is seeded from the
 * durable store whenever a session comes back into memory, so cursors survive restarts.
 */
export class InProcessSessionLog implements SessionLog {
  readonly #states = new Map<string, LogState>()
  readonly #claims: IdempotencyCache<string>
  readonly #replay: number
  readonly #budget: ReplayBudget

  constructor (options: InProcessLogOptions) {
    this.#replay = options.replay
    this.#budget = new ReplayBudget(options.maxReplayBytes ?? DEFAULT_MAX_REPLAY_BYTES)
    this.#claims = new IdempotencyCache(options.claimTtlMs, { maxEntries: options.maxClaims })
  }

  async position (key: string, seed: () => Promise<LogPosition>): Promise<LogPosition> {
    const state = this.#state(key)
    if (state.epoch !== '') return { epoch: state.epoch, seq: state.seq }
    state.seeding ??= seed().finally(() => { state.seeding = undefined })
    const seeded = await state.seeding
    if (state.epoch === '') {
      state.epoch = seeded.epoch
      state.seq = seeded.seq
    }
    return { epoch: state.epoch, seq: state.seq }
  }

  append (key: string, events: readonly SessionEvent[]): void {
    const state = this.#state(key)
    // All or nothing: the whole batch must follow the log before any of it goes in.
    events.forEach((event, i) => {
      if (event.epoch !== state.epoch || event.seq !== state.seq + 1 + i) {
        throw new Error(`session log: event ${formatCursor(event.epoch, event.seq)} does not follow ${formatCursor(state.epoch, state.seq + i)}`)
      }
    })
    for (const event of events) {
      state.seq = event.seq
      state.ring.push(event)
      for (const listener of state.listeners) listener(event)
    }
  }

  async read (key: string, epoch: string, after: number): Promise<SessionEvent[] | undefined> {
    const state = this.#states.get(key)
    if (state === undefined || state.epoch !== epoch) return undefined
    if (after === state.seq) return []
    return state.ring.after(after)
  }

  async subscribe (key: string, listener: LogListener): Promise<LogSubscription> {
    const state = this.#state(key)
    state.listeners.add(listener)
    return {
      position: { epoch: state.epoch, seq: state.seq },
      unsubscribe: () => { state.listeners.delete(listener) }
    }
  }

  async restart (key: string, position: LogPosition, notice?: RestartNotice): Promise<void> {
    const state = this.#state(key)
    state.epoch = position.epoch
    state.seq = position.seq
    state.ring.clear()
    if (notice === undefined) return
    const event: SessionEvent = {
      type: 'session.reset',
      sessionKey: key,
      epoch: position.epoch,
      seq: position.seq,
      at: Date.now(),
      deleted: notice.deleted,
      ...(notice.sessionId === undefined ? {} : { sessionId: notice.sessionId })
    }
    for (const listener of state.listeners) listener(event)
  }

  async acquire (key: string, runId: string, options: LaneOptions): Promise<Lane> {
    const state = this.#state(key)
    if (state.lane === undefined) return (state.lane = new InProcessLane(runId, { epoch: state.epoch, seq: state.seq }))
    if (options.busy === 'reject' || state.queue.length >= options.maxQueue) {
      throw sessionBusy(key, state.lane.runId, formatCursor(state.epoch, state.seq))
    }
    // `release` hands the lane over directly, so no other turn can slip in between.
    return await new Promise<Lane>((resolve, reject) => state.queue.push({ runId, resolve, reject }))
  }

  async release (key: string, lane: Lane): Promise<void> {
    const state = this.#states.get(key)
    if (state?.lane !== lane) return
    const next = state.queue.shift()
    state.lane = next === undefined ? undefined : new InProcessLane(next.runId, { epoch: state.epoch, seq: state.seq })
    if (next !== undefined) next.resolve(state.lane as Lane)
  }

  async dropWaiting (key: string): Promise<void> {
    const state = this.#states.get(key)
    for (const waiter of state?.queue.splice(0) ?? []) waiter.reject(new RunAbortedError(key))
  }

  async abort (key: string, runId?: string): Promise<string | undefined> {
    const lane = this.#states.get(key)?.lane
    if (lane === undefined || (runId !== undefined && lane.runId !== runId)) return undefined
    lane.abort()
    return lane.runId
  }

  claim (key: string, idempotencyKey: string, runId: string): string | undefined {
    const claimKey = `${key}\n${idempotencyKey}`
    const holder = this.#claims.get(claimKey)
    if (holder !== undefined) return holder
    this.#claims.set(claimKey, runId)
    return undefined
  }

  async unclaim (key: string, idempotencyKey: string): Promise<void> {
    this.#claims.delete(`${key}\n${idempotencyKey}`)
  }

  forget (key: string): void {
    const state = this.#states.get(key)
    if (state?.idle !== true || state.seeding !== undefined) return
    state.ring.clear()
    this.#states.delete(key)
  }

  async close (): Promise<void> {
    // Nothing to let go of: the log lives and dies with the process.
  }

  #state (key: string): LogState {
    let state = this.#states.get(key)
    if (state === undefined) {
      state = new LogState(new EventRing(this.#replay, this.#budget))
      this.#states.set(key, state)
    }
    return state
  }
}
