import type { SessionEvent } from '../events.js'
import { approximateBytes } from './byte-size.js'
import type { HeldEvent, ReplayBudget } from './replay-budget.js'

// What holding one event costs beside the event: its slot, the budget's entry, the callback.
const SLOT_BYTES = 160

interface Slot {
  event: SessionEvent
  held: HeldEvent
}

/**
 * The newest events of one session's log, for exact replay: at most `capacity` of them,
 * and fewer when the process's replay budget (bytes, shared by every session) drops the
 * oldest. It grows as events come, so an idle session with a short history costs little.
 */
export class EventRing {
  #slots: Array<Slot | undefined> = []
  #start = 0

  constructor (readonly capacity: number, readonly budget: ReplayBudget) {}

  push (event: SessionEvent): void {
    if (this.capacity === 0) return
    const bytes = SLOT_BYTES + approximateBytes(event)
    // Too large to hold at all: a replay across it must come from the store, so the ring
    // keeps nothing before it either; other sessions keep theirs.
    if (bytes > this.budget.maxBytes) return this.clear()
    if (this.#slots.length - this.#start === this.capacity) this.dropOldest()
    const slot: Slot = { event, held: { bytes, drop: () => { this.dropOldest() }, released: false } }
    this.#slots.push(slot)
    this.budget.hold(slot.held)
  }

  /** Lets the oldest event go (the ring is full, or the budget needs the bytes). */
  dropOldest (): void {
    const slot = this.#slots[this.#start] as Slot
    this.#slots[this.#start++] = undefined
    this.budget.release(slot.held)
    // Give the array back once the dropped front is its greater part.
    if (this.#start > 32 && this.#start * 2 > this.#slots.length) {
      this.#slots = this.#slots.slice(this.#start)
      this.#start = 0
    }
  }

  clear (): void {
    for (let i = this.#start; i < this.#slots.length; i++) this.budget.release((this.#slots[i] as Slot).held)
    this.#slots = []
    this.#start = 0
  }

  /**
   * Every held event with `seq > after`, provided the ring still holds `after + 1`;
   * undefined when the oldest of those has already been dropped.
   */
  after (after: number): SessionEvent[] | undefined {
    const oldest = this.#slots[this.#start]
    if (oldest === undefined || oldest.event.seq > after + 1) return undefined
    const events: SessionEvent[] = []
    for (let i = this.#start; i < this.#slots.length; i++) {
      const event = (this.#slots[i] as Slot).event
      if (event.seq > after) events.push(event)
    }
    return events
  }
}
