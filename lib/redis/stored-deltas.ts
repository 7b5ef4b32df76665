import type { RunDeltaEvent, SessionEvent } from '../events.js'

// A delta's `text` is the whole text so far: stored with every delta, an answer would cost
// Redis the square of its length (512 deltas of a 20 KB answer hold 10 MB). A delta that
// extends the one before it in its run is stored without its text, and readers rebuild it;
// every TEXT_CHECKPOINT positions one carries it again, so a reader looks back no further.
// Pub/sub messages carry every text: they are not kept.

export const TEXT_CHECKPOINT = 64

/** An event as the stream holds it: a delta's text may be left out. */
export type StoredEvent = Exclude<SessionEvent, RunDeltaEvent> | (Omit<RunDeltaEvent, 'text'> & { text?: string })

/** What the writer remembers of the turn it appends to, per session. */
interface Written {
  epoch: string
  runId: string
  length: number
  /** The position of the last delta stored with its text. */
  textAt: number
}

export class DeltaWriter {
  readonly #last = new Map<string, Written>()

  /** The event as stored: a delta that extends the last one of its run leaves its text out. */
  stored (key: string, event: SessionEvent): StoredEvent {
    if (event.type !== 'run.delta') {
      if (event.type === 'run.finished' || event.type === 'session.reset') this.#last.delete(key)
      return event
    }
    const last = this.#last.get(key)
    // The hub's text only grows by its deltas: the length and the ending say this one extends the last.
    const follows = last !== undefined && last.epoch === event.epoch && last.runId === event.runId &&
      event.text.length === last.length + event.delta.length && event.text.endsWith(event.delta) &&
      event.seq - last.textAt < TEXT_CHECKPOINT
    this.#last.set(key, { epoch: event.epoch, runId: event.runId, length: event.text.length, textAt: follows ? last.textAt : event.seq })
    if (!follows) return event
    const { text: _text, ...withoutText } = event
    return withoutText
  }

  /** After an append that failed: the next delta is stored whole. */
  forget (key: string): void {
    this.#last.delete(key)
  }

  clear (): void {
    this.#last.clear()
  }
}

/**
 * The events with every delta's text rebuilt from the ones before it in its run; a delta
 * whose run's earlier text is not among them (trimmed from the stream) is `undefined`.
 */
export function rebuildTexts (stored: readonly StoredEvent[]): Array<SessionEvent | undefined> {
  const texts = new Map<string, string>()
  return stored.map(event => {
    if (event.type !== 'run.delta') return event
    const run = `${event.epoch}\n${event.runId}`
    if (event.text !== undefined) {
      texts.set(run, event.text)
      return event as RunDeltaEvent
    }
    const before = texts.get(run)
    if (before === undefined) return undefined
    const text = before + event.delta
    texts.set(run, text)
    return { ...event, text }
  })
}
