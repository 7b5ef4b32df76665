/** An event held by a ring, as the budget counts it. */
export interface HeldEvent {
  readonly bytes: number
  /** Drops the event from its ring (it is that ring's oldest). */
  readonly drop: () => void
  released: boolean
}

/**
 * The bytes that every session's replay ring of a process may hold together. Past the
 * limit the oldest events go first, whichever session they belong to: a resume from
 * further back is answered from the store (`catchup`/`reset`), never wrongly.
 */
export class ReplayBudget {
  #used = 0
  // Every held event in the order it came; released ones are skipped, and swept out once
  // they are the greater part, so the queue stays as small as what is held.
  #queue: HeldEvent[] = []
  #head = 0
  #released = 0

  constructor (readonly maxBytes: number) {}

  get usedBytes (): number {
    return this.#used
  }

  /** Counts a new event; the oldest held events are dropped while the total is past the limit. */
  hold (held: HeldEvent): void {
    this.#queue.push(held)
    this.#used += held.bytes
    while (this.#used > this.maxBytes) {
      const oldest = this.#queue[this.#head++] as HeldEvent
      if (!oldest.released) oldest.drop() // which releases it
      this.#released-- // and it has left the queue
    }
    this.#compact()
  }

  /** The event left its ring (overwritten, dropped, or the ring cleared). */
  release (held: HeldEvent): void {
    held.released = true
    this.#used -= held.bytes
    this.#released++
    this.#compact()
  }

  #compact (): void {
    const gone = this.#head + this.#released
    if (gone <= 1024 || gone <= this.#queue.length / 2) return
    this.#queue = this.#queue.slice(this.#head).filter(entry => !entry.released)
    this.#head = 0
    this.#released = 0
  }
}
