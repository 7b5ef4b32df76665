import { setImmediate as yieldToRequests } from 'node:timers/promises'
import type { SessionStore, StoreContext } from './store.js'

/** Records removed per call to the store: small enough that no call holds the store long. */
const BATCH = 500
/** The longest wait between sweeps, whatever the records' lifetime. */
const MAX_INTERVAL_MS = 3_600_000

/**
 * Reclaims the space of expired records in the background (expired records are already
 * not read: this only frees their space). Every `min(ttlMs, 1 h)`, batches of `BATCH`
 * until a batch finds none, each after the requests waiting; a failure is logged and the
 * next sweep tries again. The timer keeps no process alive; `stop` waits for a sweep in progress.
 */
export class RecordSweeper {
  readonly #store: SessionStore
  readonly #logger: StoreContext['logger']
  readonly #timer: NodeJS.Timeout
  #sweeping: Promise<void> | undefined
  #stopped = false

  constructor (store: SessionStore, logger: StoreContext['logger'], ttlMs: number) {
    this.#store = store
    this.#logger = logger
    this.#timer = setInterval(() => { this.#sweeping ??= this.#sweep().finally(() => { this.#sweeping = undefined }) }, Math.min(ttlMs, MAX_INTERVAL_MS))
    this.#timer.unref()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    await this.#sweeping
  }

  async #sweep (): Promise<void> {
    try {
      // A store that expires records itself (Redis) has no sweep: nothing to do.
      while (!this.#stopped && (await this.#store.sweepRecords?.(Date.now(), BATCH) ?? 0) > 0) await yieldToRequests()
    } catch (err) {
      this.#logger.error({ err }, 'session gateway: expired records could not be swept; the next sweep tries again')
    }
  }
}
