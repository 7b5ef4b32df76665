import { mergeDeltas, payloadJson, type OutgoingEvent } from './openclaw/session-events.js'

// Backpressure shared by the transports that stream session events (the gateway
// protocol's WebSocket, the REST event stream): what the socket is given is bounded by
// what it has not drained, not by how many frames one tick produced, so any legal message
// goes through; what waits is bounded in bytes, and a replay goes out as the socket drains.

export interface OutboxOptions {
  /** The socket is given frames while it holds at most this many bytes it has not sent. */
  maxBufferedBytes: number
  /** Live frames waiting past this many bytes: the reader does not keep up. */
  maxQueuedBytes: number
}

/** A frame to send: a session event's encoding, and for event streams its `id`. */
export interface OutboxItem {
  outgoing: OutgoingEvent
  id?: string
}

export interface OutboxSink<T extends OutboxItem> {
  /** Bytes handed to the socket that it has not sent yet. */
  buffered: () => number
  write: (item: T) => void
  /** The live frames waiting passed `maxQueuedBytes`; the sink closes (nothing more is sent). */
  overflow: () => void
}

interface Waiting<T> {
  item: T
  bytes: number
  /** A live frame (counted towards `maxQueuedBytes`), not a paced replay. */
  counted: boolean
}

export class Outbox<T extends OutboxItem> {
  readonly #options: OutboxOptions
  readonly #sink: OutboxSink<T>
  /** Frames waiting for the socket to drain, oldest first. */
  #waiting: Array<Waiting<T>> = []
  /** Bytes of the live frames among them. */
  #waitingBytes = 0
  /** Per run, its delta waiting last among the run's frames, which later deltas of the run join. */
  readonly #pendingDelta = new Map<string, Waiting<T>>()
  #closed = false

  constructor (options: OutboxOptions, sink: OutboxSink<T>) {
    this.#options = options
    this.#sink = sink
  }

  /**
   * Sends a frame, in order: at once while the socket has room and nothing waits, else it
   * waits (a run's deltas merged into one). `paced` frames (a replay: already in memory)
   * do not count towards `maxQueuedBytes`.
   */
  push (item: T, paced = false): void {
    // Callers stop pushing once they closed (the connection's phase, the stream's end).
    if (this.#waiting.length === 0 && this.#sink.buffered() <= this.#options.maxBufferedBytes) return this.#sink.write(item)
    const outgoing = item.outgoing
    const runId = outgoing.runId
    const pending = outgoing.delta === true ? this.#pendingDelta.get(runId as string) : undefined
    if (pending !== undefined) {
      const merged = { ...item, outgoing: mergeDeltas(pending.item.outgoing, outgoing) }
      const bytes = frameBytes(merged.outgoing)
      if (pending.counted) this.#waitingBytes += bytes - pending.bytes
      pending.item = merged
      pending.bytes = bytes
    } else {
      // A frame of the same run or session after a waiting delta: that delta takes no more.
      const sessionKey = outgoing.payload.sessionKey
      for (const [run, delta] of this.#pendingDelta) {
        if (run === runId || delta.item.outgoing.payload.sessionKey === sessionKey) this.#pendingDelta.delete(run)
      }
      const waiting: Waiting<T> = { item, bytes: frameBytes(outgoing), counted: !paced }
      this.#waiting.push(waiting)
      if (outgoing.delta === true) this.#pendingDelta.set(runId as string, waiting)
      if (waiting.counted) this.#waitingBytes += waiting.bytes
    }
    if (this.#waitingBytes > this.#options.maxQueuedBytes) {
      this.close()
      this.#sink.overflow()
    }
  }

  /** The socket drained: frames waiting go out while it has room. */
  pump (): void {
    while (!this.#closed && this.#waiting.length > 0 && this.#sink.buffered() <= this.#options.maxBufferedBytes) {
      const next = this.#waiting.shift() as Waiting<T>
      if (next.counted) this.#waitingBytes -= next.bytes
      const runId = next.item.outgoing.runId
      if (runId !== undefined && this.#pendingDelta.get(runId) === next) this.#pendingDelta.delete(runId)
      this.#sink.write(next.item)
    }
  }

  /** Nothing more goes out; what waited is dropped. */
  close (): void {
    this.#closed = true
    this.#waiting = []
    this.#waitingBytes = 0
    this.#pendingDelta.clear()
  }
}

/**
 * About how many bytes a frame will take. A delta is sized from its texts, not
 * serialized: a run's merged delta is sized again at every merge.
 */
function frameBytes (outgoing: OutgoingEvent): number {
  if (outgoing.delta !== true) return payloadJson(outgoing).length
  // A delta's message is always one text part: the run's text so far.
  const message = outgoing.payload.message as { content: [{ text: string }] }
  return String(outgoing.payload.deltaText).length + message.content[0].text.length + 256
}
