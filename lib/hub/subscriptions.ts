import { formatCursor, parseCursor, type SessionEvent } from '../events.js'
import type { ReadPage } from '../stores/store.js'
import type { TranscriptEntry } from '../transcript.js'
import type { OpenResult, Replay, SessionListener, SubscribeOptions, Subscription } from './hub-types.js'
import { rowEvents } from './row-events.js'
import type { SessionRegistry } from './session-registry.js'
import { Watcher, type SessionState } from './session-state.js'
import { snapshot } from './turn-runner.js'

// Watching a session: a subscription taken at one instant of the log, with what the
// watcher missed since its cursor — exactly from the log, else rebuilt from the durable
// transcript, else a fresh start — and live events held until the caller is ready.

export class Subscriptions {
  constructor (readonly registry: SessionRegistry) {}

  /**
   * Watches a session. With `since`, what came after that cursor is in `replay`;
   * live events are held until `start()`, so the caller can send its answer first.
   * Between the two there is no gap and no duplicate.
   */
  async subscribe (sessionKey: string, options: SubscribeOptions, listener: SessionListener): Promise<Subscription> {
    const since = options.since === undefined ? undefined : parseCursor(options.since)
    // A page of history: what a reset answers, and the most rows a catch-up rebuilds.
    const limit = options.limit ?? 50
    return await this.registry.use(sessionKey, async state => {
      // Everything up to the first await happens at one instant of the log: `head`.
      const { head, epoch } = state
      const watcher = new Watcher(listener, state.context.logger, { epoch, seq: head })
      state.watchers.add(watcher)
      const running = snapshot(state)
      const subscription = (replay: Replay): Subscription => ({
        cursor: formatCursor(epoch, head),
        replay,
        ...(running === undefined ? {} : { running }),
        start: () => watcher.start(),
        unsubscribe: () => {
          state.watchers.delete(watcher)
          this.registry.evictIdle()
        }
      })
      // Fresh history: the newest page, and the running turn.
      const reset = async (): Promise<Subscription> => {
        const { entries } = await readUpTo(state, limit, head)
        return subscription({ kind: 'reset', entries, ...(running === undefined ? {} : { running }) })
      }
      try {
        if (since === undefined || (since.epoch === epoch && since.seq === head)) return subscription({ kind: 'live' })
        if (since.epoch !== epoch || since.seq > head) return await reset()
        const recent = await state.context.log.read(state.key, epoch, since.seq)
        if (recent !== undefined) return subscription({ kind: 'replay', events: recent.filter(event => event.seq <= head) })
        const events = await eventsBetween(state, epoch, since.seq, head, limit)
        if (events !== undefined) return subscription({ kind: 'catchup', events, ...(running === undefined ? {} : { running }) })
        // More rows missed than a page of history holds: a reset too (a catch-up of a whole
        // long transcript would be held in memory for each resume).
        return await reset()
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
      return await this.registry.use(sessionKey, async state => {
        const { replay } = subscription
        const page: ReadPage = replay.kind === 'reset'
          ? { entries: replay.entries }
          : options.since !== undefined
            ? { entries: [] }
            : await readUpTo(state, options.limit, parseCursor(subscription.cursor).seq)
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
}

/** The newest `limit` rows committed at or before `head`. */
async function readUpTo (state: SessionState, limit: number, head: number): Promise<ReadPage> {
  if (state.row === undefined) return { entries: [] }
  const page = await state.context.store.read(state.key, { limit })
  // Rows committed after `head` arrive as live events; leave them out here.
  const entries = page.entries.filter(entry => entry.seq === undefined || entry.seq <= head)
  return page.before === undefined ? { entries } : { entries, before: page.before }
}

/**
 * The log's events with `after < seq <= head`, rebuilt from the transcript read from the
 * newest backwards; undefined when they span more than `maxRows` rows.
 */
async function eventsBetween (state: SessionState, epoch: string, after: number, head: number, maxRows: number): Promise<SessionEvent[] | undefined> {
  const events: SessionEvent[] = []
  let rows = 0
  let before: string | undefined
  for (;;) {
    const page = await state.context.store.read(state.key, { limit: Math.min(100, maxRows + 1), ...(before === undefined ? {} : { before }) })
    for (let i = page.entries.length - 1; i >= 0; i--) {
      const entry = page.entries[i] as TranscriptEntry
      const seq = entry.seq ?? 0
      if (seq + 1 <= after) return events.reverse()
      if (++rows > maxRows) return undefined
      const rebuilt = rowEvents(state.key, epoch, entry)
      for (let j = rebuilt.length - 1; j >= 0; j--) {
        const event = rebuilt[j] as SessionEvent
        if (event.seq > after && event.seq <= head) events.push(event)
      }
    }
    if (page.before === undefined) return events.reverse()
    before = page.before
  }
}
