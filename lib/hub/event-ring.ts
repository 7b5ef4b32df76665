import type { SessionEvent } from '../events.js'

/** The newest `capacity` events of one session's log, for exact replay. */
export class EventRing {
  readonly #slots: Array<SessionEvent | undefined>
  #start = 0
  #size = 0

  constructor (readonly capacity: number) {
    this.#slots = new Array(capacity)
  }

  push (event: SessionEvent): void {
    if (this.capacity === 0) return
    if (this.#size < this.capacity) {
      this.#slots[(this.#start + this.#size++) % this.capacity] = event
    } else {
      this.#slots[this.#start] = event
      this.#start = (this.#start + 1) % this.capacity
    }
  }

  clear (): void {
    this.#slots.fill(undefined)
    this.#start = 0
    this.#size = 0
  }

  /**
   * Every held event with `seq > after`, provided the ring still holds `after + 1`;
   * undefined when the oldest of those has already been overwritten.
   */
  after (after: number): SessionEvent[] | undefined {
    const oldest = this.#slots[this.#start]
    if (this.#size === 0 || oldest === undefined || oldest.seq > after + 1) return undefined
    const events: SessionEvent[] = []
    for (let i = 0; i < this.#size; i++) {
      const event = this.#slots[(this.#start + i) % this.capacity] as SessionEvent
      if (event.seq > after) events.push(event)
    }
    return events
  }
}
