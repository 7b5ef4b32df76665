import type { RunDeltaEvent, RunReasoningEvent, SessionEvent } from '../events.js'

// A delta's `text` is the whole text so far (of the answer, or of its reasoning): stored
// with every delta, a turn would cost Redis the square of its length (512 deltas of a 20 KB
// answer hold 10 MB). A delta that extends the one before it of its kind in its run is
// stored without its text, and readers rebuild it; once TEXT_CHECKPOINT positions have
// passed since the last delta of its kind stored whole, the next is stored whole again, so
// a reader looks back no further. Pub/sub messages carry every text: they are not kept.

export const TEXT_CHECKPOINT = 64

type GrowingText = RunDeltaEvent | RunReasoningEvent

/** An event as the stream holds it: a delta's text may be left out. */
export type StoredEvent = Exclude<SessionEvent, GrowingText> | (Omit<RunDeltaEvent, 'text'> & { text?: string }) | (Omit<RunReasoningEvent, 'text'> & { text?: string })

/** What the writer remembers of the text it last appended, per session and kind. */
interface Written {
  epoch: string
  runId: string
  text: string
  /** The position of the last delta of this kind stored with its text. */
  wholeAt: number
}

const GROWING = ['run.delta', 'run.reasoning'] as const

export class DeltaWriter {
  readonly #last = new Map<string, Written>()

  /** The event as stored: a delta that extends the last one of its kind in its run leaves its text out. */
  stored (key: string, event: SessionEvent): StoredEvent {
    if (event.type !== 'run.delta' && event.type !== 'run.reasoning') {
      if (event.type === 'run.finished' || event.type === 'session.reset') this.forget(key)
      return event
    }
    const name = `${key}\n${event.type}`
    const last = this.#last.get(name)
    const follows = last !== undefined && last.epoch === event.epoch && last.runId === event.runId &&
      event.seq - last.wholeAt < TEXT_CHECKPOINT && event.text === last.text + event.delta
    this.#last.set(name, { epoch: event.epoch, runId: event.runId, text: event.text, wholeAt: follows ? last.wholeAt : event.seq })
    if (!follows) return event
    const { text: _text, ...withoutText } = event
    return withoutText
  }

  /** After an append that failed, or when the session's turn is over: its next deltas are stored whole. */
  forget (key: string): void {
    for (const type of GROWING) this.#last.delete(`${key}\n${type}`)
  }

  clear (): void {
    this.#last.clear()
  }
}

/**
 * The events with every delta's text rebuilt from the ones before it of its kind in its run;
 * a delta whose earlier text is not among them (trimmed from the stream) is `undefined`.
 */
export function rebuildTexts (stored: readonly StoredEvent[]): Array<SessionEvent | undefined> {
  const texts = new Map<string, string>()
  return stored.map(event => {
    if (event.type !== 'run.delta' && event.type !== 'run.reasoning') return event
    const run = `${event.epoch}\n${event.runId}\n${event.type}`
    if (event.text !== undefined) {
      texts.set(run, event.text)
      return event as GrowingText
    }
    const before = texts.get(run)
    if (before === undefined) return undefined
    const text = before + event.delta
    texts.set(run, text)
    return { ...event, text } as GrowingText
  })
}
