import { randomUUID } from 'node:crypto'
import type { SessionRow } from '../stores/store.js'
import type { AssistantMessage, TranscriptEntry } from '../transcript.js'
import { isGatewayError } from '../errors.js'
import { lastPosition } from './row-events.js'
import { SessionState, UNBORN_EPOCH, type SessionContext } from './session-state.js'

// The sessions this process holds in memory, most recently used last: loaded from the
// store and the session log on first use, kept while anything uses them (a call, a turn,
// a watcher), and let go beyond `maxIdleSessions` once idle.

export class SessionRegistry {
  // Insertion order doubles as recency: a used state is re-inserted at the end.
  readonly #states = new Map<string, SessionState>()
  readonly #context: SessionContext
  readonly #maxIdle: number

  constructor (context: SessionContext, maxIdleSessions: number) {
    this.#context = context
    this.#maxIdle = maxIdleSessions
  }

  /** Every session in memory now. */
  all (): SessionState[] {
    return [...this.#states.values()]
  }

  /** Runs `fn` with the session's loaded state, which stays in memory meanwhile. */
  async use<T> (key: string, fn: (state: SessionState) => Promise<T>): Promise<T> {
    let state = this.#states.get(key)
    if (state === undefined) {
      state = new SessionState(key, this.#context)
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
        if (this.#states.get(key) === state) this.#drop(state)
        throw err
      }
      if (state.stale) {
        state.stale = false
        state.row = await this.#context.store.get(key)
      }
      return await fn(state)
    } finally {
      state.users--
      this.evictIdle()
    }
  }

  /** Creates the session's row (or adopts the one another process just created). */
  async create (state: SessionState, agentId: string): Promise<void> {
    await this.#adoptStored(state, await this.#context.store.ensure(state.key, agentId))
  }

  /** Lets idle sessions go, least recently used first, down to the limit. */
  evictIdle (): void {
    let excess = this.#states.size - this.#maxIdle
    if (excess <= 0) return
    for (const state of this.#states.values()) {
      if (excess <= 0) break
      if (!state.idle) continue
      this.#drop(state)
      excess--
    }
  }

  #drop (state: SessionState): void {
    this.#states.delete(state.key)
    state.subscription?.unsubscribe()
    this.#context.log.forget(state.key)
  }

  async #load (state: SessionState): Promise<void> {
    await this.#adoptStored(state, await this.#context.store.get(state.key))
    // One subscription per session and process; local watchers hang off it.
    state.subscription = await this.#context.log.subscribe(state.key, state.deliver)
    state.epoch = state.subscription.position.epoch
    state.head = state.subscription.position.seq
  }

  /**
   * Takes a stored row, and the session's place in the log: the log's, or one rebuilt
   * from the transcript (the newest row's last position). A run that began but never
   * ended (the process died mid-turn) is recorded as aborted, and the log gets a new
   * epoch, since the events handed out after its last durable row can no longer be
   * accounted for.
   */
  async #adoptStored (state: SessionState, row: SessionRow | undefined): Promise<void> {
    const { store, log } = this.#context
    state.row = row
    if (row === undefined) {
      const position = await log.position(state.key, async () => ({ epoch: UNBORN_EPOCH, seq: 0 }))
      state.epoch = position.epoch
      state.head = position.seq
      return
    }
    const { entries } = await store.read(state.key, { limit: 16 })
    state.lastEntryId = entries.at(-1)?.id ?? null
    state.runsAtLoad = new Set(entries.flatMap(entry => entry.runId === undefined ? [] : [entry.runId]))
    const newest = entries.findLast((entry): entry is TranscriptEntry & { seq: number } => typeof entry.seq === 'number')
    const epoch = row.epoch ?? row.sessionId
    const head = newest === undefined ? 0 : lastPosition(newest)
    const position = await log.position(state.key, async () => ({ epoch, seq: head }))
    state.epoch = position.epoch
    state.head = position.seq
    // The log still knew the session before it had a row (or another life of it).
    if (position.epoch !== epoch) await state.restart({ epoch, seq: head })
    if (newest?.runId === undefined || newest.runState !== undefined) return
    await this.#recordInterrupted(state, newest.runId)
  }

  /**
   * A run another process was executing, whose lane is now free (that process died):
   * recorded as aborted, as a restart would. Nothing happens while its lane is held.
   */
  async recover (state: SessionState, runId: string): Promise<void> {
    if (await this.#unanswered(state.key, runId)) await this.#recordInterrupted(state, runId)
    // It ended, and its end was not heard here. Unless the end was heard while the transcript
    // was read (`remote` is then gone already): a race no test can stage without a hook.
    /* c8 ignore next */
    else if (state.remote?.runId === runId) state.remote = undefined
  }

  /** Whether the newest row of the transcript is `runId`'s and no answer follows it. */
  async #unanswered (key: string, runId: string): Promise<boolean> {
    const { entries } = await this.#context.store.read(key, { limit: 16 })
    const newest = entries.findLast(entry => typeof entry.seq === 'number')
    return newest?.runId === runId && newest.runState === undefined
  }

  async #recordInterrupted (state: SessionState, runId: string): Promise<void> {
    const { store, log } = this.#context
    // The run is over only if nobody holds the lane: with a shared log it may still run elsewhere.
    let lane
    try {
      lane = await log.acquire(state.key, `recovery-${runId}`, { busy: 'reject', maxQueue: 0 })
    } catch (err) {
      if (isGatewayError(err) && err.code === 'FSG_SESSION_BUSY') return
      throw err
    }
    try {
      // Looked at again under the lane: the run may have answered and let the lane go since.
      if (!await this.#unanswered(state.key, runId)) return
      const interrupted = randomUUID()
      await store.patch(state.key, { epoch: interrupted })
      state.row = { ...state.row as SessionRow, epoch: interrupted }
      await state.restart({ epoch: interrupted, seq: state.head })
      const message: AssistantMessage = {
        role: 'assistant', content: [], stopReason: 'aborted', errorMessage: 'interrupted: the gateway stopped during this run', timestamp: Date.now()
      }
      await state.commit([{ message, runId, runState: 'aborted' }])
    } finally {
      await log.release(state.key, lane)
    }
  }
}
